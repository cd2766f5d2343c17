"""The wheel with its own FFTW (tools/build_wheel.sh): builds FFTW and the wheel, repairs it and
tests it in a fresh venv with the system's FFTW hidden; and the sdist (tools/check_sdist.sh): it
builds on the system's FFTW and, without one, stops with CMake's message. Slow (minutes; the wheel
script installs system packages, the sdist one needs root for its private mount namespace), so
they run only when asked: CRYOCORE_TEST_WHEEL=1 pytest tests/test_wheel.py."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CRYOCORE_TEST_WHEEL") != "1", reason="set CRYOCORE_TEST_WHEEL=1 to build the wheel")
def test_the_wheel_carries_its_fftw_and_works_without_the_systems(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "tools" / "build_wheel.sh")], capture_output=True, text=True,
                         env=dict(os.environ, WORK=os.environ.get("CRYOCORE_WHEEL_WORK", str(tmp_path))), timeout=3600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "no libfftw3f loaded" in out.stdout and "bundled" in out.stdout
    assert "_core needs no libfftw3f" in out.stdout and "_core exports no FFTW symbol" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CRYOCORE_TEST_WHEEL") != "1", reason="set CRYOCORE_TEST_WHEEL=1 to build the sdist")
def test_the_sdist_builds_on_the_systems_fftw_and_says_what_is_missing_without(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "tools" / "check_sdist.sh")], capture_output=True, text=True,
                         env=dict(os.environ, WORK=str(tmp_path)), timeout=3600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RMS shift error" in out.stdout and "system library" in out.stdout
    if "skipped the build without FFTW" not in out.stdout:
        assert "cryocore needs FFTW 3 in single precision" in out.stdout
