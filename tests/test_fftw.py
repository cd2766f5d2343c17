"""FFTW planning effort, wisdom and plan cache."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest

import cryocore
from conftest import fourier_shift, smooth_image

EFFORTS = ["estimate", "measure", "patient", "exhaustive"]

pytestmark = pytest.mark.usefixtures("restore_planning")


@pytest.mark.parametrize("effort", EFFORTS)
def test_set_get_planning_round_trip(effort):
    cryocore.set_planning(effort)
    assert cryocore.get_planning() == effort
    cryocore.set_planning(effort.upper())  # names are case-insensitive
    assert cryocore.get_planning() == effort
    for other in EFFORTS:
        cryocore.set_planning(other)
        assert cryocore.get_planning() == other


def test_bad_effort_leaves_setting_unchanged():
    cryocore.set_planning("patient")
    with pytest.raises(ValueError, match="effort"):
        cryocore.set_planning("fast")
    assert cryocore.get_planning() == "patient"


def test_wisdom_export_forget_import(rng):
    shape = (44, 52)  # a box no other test uses, so its plans are new here
    ref = smooth_image(rng, shape)
    imgs = np.array([fourier_shift(ref, s) for s in rng.uniform(-5, 5, (3, 2))])
    cryocore.forget_wisdom()
    assert cryocore._core.plan_cache_size() == 0
    empty = cryocore.export_wisdom()
    assert isinstance(empty, bytes)
    cryocore.set_planning("measure")
    expected = cryocore.register(ref, imgs)
    assert cryocore._core.plan_cache_size() >= 1
    blob = cryocore.export_wisdom()
    assert isinstance(blob, bytes) and len(blob) > 0
    assert len(blob) > len(empty)
    assert b"fftw" in blob
    cryocore.forget_wisdom()
    assert cryocore._core.plan_cache_size() == 0
    assert len(cryocore.export_wisdom()) < len(blob)
    cryocore.import_wisdom(blob)
    assert len(cryocore.export_wisdom()) >= len(blob)
    # a str and a bytearray are accepted too
    cryocore.import_wisdom(blob.decode())
    cryocore.import_wisdom(bytearray(blob))
    again = cryocore.register(ref, imgs)
    np.testing.assert_allclose(again.shifts, expected.shifts, atol=1e-4)
    np.testing.assert_allclose(again.scores, expected.scores, atol=1e-4)


def test_rejected_wisdom_keeps_existing_wisdom(rng):
    cryocore.set_planning("measure")
    ref = smooth_image(rng, (40, 36))
    cryocore.register(ref, ref)
    before = cryocore.export_wisdom()
    with pytest.raises(ValueError, match="wisdom"):
        cryocore.import_wisdom(b"garbage")
    after = cryocore.export_wisdom()
    assert len(after) >= len(before) > 0


def test_plan_cache_size_and_clear(rng):
    cryocore._core.clear_plan_cache()
    assert cryocore._core.plan_cache_size() == 0
    ref = smooth_image(rng, (36, 40))
    cryocore.register(ref, ref)
    n = cryocore._core.plan_cache_size()
    assert n >= 1
    cryocore.register(ref, ref)  # cached: no new plan
    assert cryocore._core.plan_cache_size() == n
    cryocore.shift(smooth_image(rng, (37, 41)), (1.0, 2.0))
    assert cryocore._core.plan_cache_size() == n + 1
    cryocore._core.clear_plan_cache()
    assert cryocore._core.plan_cache_size() == 0


def _results(ref, imgs, shifts):
    reg = cryocore.register(ref, imgs)
    band = cryocore.register(ref, imgs, lowpass=0.3, highpass=0.03)
    maps = cryocore.correlation_maps(ref, imgs)
    moved = cryocore.shift(imgs, shifts)
    acc = cryocore.Accumulator(imgs.shape[1:]).add(imgs, shifts)
    return [reg.shifts, reg.scores, band.shifts, band.scores, maps, moved, acc.mean()]


@pytest.mark.parametrize(
    "effort, shape",
    [
        pytest.param("estimate", (64, 64), id="estimate-64x64"),
        pytest.param("patient", (64, 64), id="patient-64x64"),
        pytest.param("estimate", (65, 65), id="estimate-65x65"),
        pytest.param("patient", (65, 65), id="patient-65x65"),
        pytest.param("estimate", (48, 80), id="estimate-48x80"),
        pytest.param("patient", (48, 80), id="patient-48x80"),
        pytest.param("exhaustive", (9, 9), id="exhaustive-9x9"),
        pytest.param("exhaustive", (8, 10), id="exhaustive-8x10"),
    ],
)
def test_results_agree_across_planning_efforts(rng, effort, shape):
    ref = smooth_image(rng, shape, sigma_f=0.15)
    imgs = np.array([fourier_shift(ref, s) for s in rng.uniform(-3, 3, (4, 2))])
    imgs += 0.5 * rng.standard_normal(imgs.shape)
    shifts = rng.uniform(-3, 3, (4, 2))
    cryocore.set_planning("measure")
    cryocore._core.clear_plan_cache()
    base = _results(ref, imgs, shifts)
    cryocore.set_planning(effort)
    cryocore._core.clear_plan_cache()
    other = _results(ref, imgs, shifts)
    for a, b in zip(base, other):
        np.testing.assert_allclose(b, a, atol=1e-4 * max(1.0, np.abs(a).max()), rtol=0)
    cryocore._core.clear_plan_cache()


def test_show_config_names_the_fftw_in_use(capsys):
    c = cryocore.build_config()
    assert c["version"] == cryocore.__version__ and c["fftw_version"].startswith("3.")
    assert c["planning"] == cryocore.get_planning() and c["threads"] >= 1
    if not c["fftw_bundled"]:  # the system's shared library, which this process has loaded
        assert "libfftw3f" in c["fftw_library"]
    cryocore.show_config()
    out = capsys.readouterr().out
    assert f"cryocore {cryocore.__version__}" in out and f"FFTW {c['fftw_version']}" in out
    # the build options: the CMake build type and cryocore's options, and the hot loops' versions
    assert "CRYOCORE_NATIVE=" in c["build_options"] and c["build_options"] in out
    multiversioned = (platform.machine() == "x86_64" and sys.platform == "linux"
                      and "CRYOCORE_SANITIZE=OFF" in c["build_options"])  # (simd.hpp's rule; gcc or clang)
    expected = "x86-64-v3 (AVX2, FMA) and the build's target" if multiversioned else "one version"
    assert c["hot_loops"] in out and expected in c["hot_loops"]
    from cryocore.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert c["fftw_version"] in capsys.readouterr().out
