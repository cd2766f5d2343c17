"""Ctrl-C (SIGINT) stops long runs within a second and leaves no partial output."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import cryocore
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((64, 64, 64)).astype(np.float32)   # 64 references: slow per image
    imgs = rng.standard_normal((int(sys.argv[1]), 64, 64)).astype(np.float32)
    cryocore.register(refs, imgs[:8], threads=2)                     # plans made
    print("ready", flush=True)
    t0 = time.perf_counter()
    try:
        cryocore.register(refs, imgs, threads=2)
        print("finished", time.perf_counter() - t0, flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.perf_counter() - t0, flush=True)
    """
)


def _run_until_ready(argv, **kw):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    return p


def test_register_stops_within_a_second(tmp_path):
    script = tmp_path / "long.py"
    script.write_text(SCRIPT)
    # How long would the full run take? Time a small run, extrapolate.
    r = subprocess.run([sys.executable, str(script), "200"], capture_output=True, text=True, timeout=120)
    per_image = float(r.stdout.split()[-1]) / 200
    n = int(max(2000, 6.0 / per_image))  # at least ~6 s of work
    p = _run_until_ready([sys.executable, str(script), str(n)])
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    t_signal = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    elapsed_after_signal = time.perf_counter() - t_signal
    assert out.startswith("interrupted"), (out, err)
    assert elapsed_after_signal < 1.5  # process gone within a second or so (interpreter exit included)
    assert float(out.split()[1]) < 0.5 + 1.0


def test_cli_align_interrupted_leaves_no_output_file(tmp_path):
    rng = np.random.default_rng(1)
    stack = tmp_path / "noise.npy"
    np.save(stack, rng.standard_normal((1500, 96, 96)).astype(np.float32))  # never converges
    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-m", "cryocore", "align", str(stack), "-o", str(out), "--iterations", "200", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(3.0)
    assert p.poll() is None, "the run ended before it could be interrupted"
    t_signal = time.perf_counter()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert time.perf_counter() - t_signal < 1.5
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []
    assert stack.exists()
