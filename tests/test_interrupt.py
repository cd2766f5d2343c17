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
    np.save(stack, rng.standard_normal((1500, 96, 96)).astype(np.float32))  # tolerance 0: never converges
    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-m", "cryocore", "align", str(stack), "-o", str(out), "--iterations", "200", "--quiet",
         "--no-rotate", "--tolerance-px", "0"],
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
    # Only the (complete, atomically written) resume state may be there: no output file.
    left = [q.name for q in out.iterdir()] if out.exists() else []
    assert all(name.startswith(".cryocore-") for name in left), left
    assert not [q for q in left if q.endswith(".partial")]
    assert stack.exists()


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """kill -9 in the middle of `cryocore align`, then `--resume`: same files as an uninterrupted run.

    FFTW_MEASURE may pick other plans in another process (other last bits), so
    every process here plans with FFTW_ESTIMATE, as README advises for
    bit-reproducible runs."""
    import cryocore

    env = dict(os.environ, CRYOCORE_PLANNING="estimate")

    sim = cryocore.simulate(1200, 96, snr=0.05, max_shift=6, rotate=False, seed=5)
    stack = tmp_path / "stack.npy"
    np.save(stack, sim.images)
    argv = ["align", str(stack), "--iterations", "12", "--quiet", "--threads", "2", "--no-rotate"]
    ref_out, out = tmp_path / "reference", tmp_path / "out"
    assert subprocess.run([sys.executable, "-m", "cryocore", *argv, "-o", str(ref_out)], env=env).returncode == 0

    p = subprocess.Popen([sys.executable, "-m", "cryocore", *argv, "-o", str(out)], env=env)
    ckpt = out / ".cryocore-checkpoint.npz"
    t0 = time.perf_counter()
    while not ckpt.exists() and p.poll() is None and time.perf_counter() - t0 < 60:
        time.sleep(0.002)
    p.kill()  # SIGKILL: no clean-up at all
    p.wait()
    assert ckpt.exists(), "the run finished before it could be killed"
    with np.load(ckpt) as z:
        killed_at = int(z["iteration"])
    assert not (out / "average.mrc").exists()

    r = subprocess.run([sys.executable, "-m", "cryocore", "align", "--resume", str(out)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert not ckpt.exists()
    import mrcfile

    import starfile

    assert (out / "particles.csv").read_bytes() == (ref_out / "particles.csv").read_bytes()
    a, b = starfile.read(out / "particles.star"), starfile.read(ref_out / "particles.star")  # header has a time
    assert a["particles"].equals(b["particles"]) and a["optics"].equals(b["optics"])
    for name in ("average.mrc", "half1.mrc", "half2.mrc"):  # headers hold a creation time
        with mrcfile.open(out / name) as a, mrcfile.open(ref_out / name) as b:
            assert np.array_equal(a.data, b.data), name
    import json

    hist = json.loads((out / "report.json").read_text())["history"]
    assert max(h["iteration"] for h in hist) > killed_at


def test_resume_refuses_other_parameters(tmp_path):
    import cryocore
    from cryocore.alignment import align

    sim = cryocore.simulate(60, 64, snr=0.5, rotate=False, seed=6)
    ck = str(tmp_path / "ck.npz")
    a = align(sim.images, progress=False, iterations=3, tolerance_px=0, checkpoint=ck)  # with rotations
    b = align(sim.images, progress=False, iterations=3, tolerance_px=0, checkpoint=ck, resume=True)  # nothing left
    assert np.array_equal(a.angles, b.angles)
    assert np.array_equal(a.shifts, b.shifts) and np.array_equal(a.average, b.average)
    with pytest.raises(ValueError, match="another input or other parameters"):
        align(sim.images, progress=False, iterations=3, tolerance_px=0, checkpoint=ck, resume=True, seed=9)
