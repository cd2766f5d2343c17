#!/usr/bin/env python
"""Does cryocore's cost per image stay flat as the stack grows, with memory bounded by --max-memory?

Writes a simulated stack of N images (default 100 000 x 128 x 128 float32, 6.5 GB) to disk in
chunks, and a second file with its first 2 000 images; then runs ``cryocore align`` on each
(translations only, and with rotations) in a subprocess, with the same settings, and reports

  * images x iterations per second (from the run's report.json: iterations_s),
  * peak anonymous memory: RssAnon of the process, sampled every 20 ms from /proc/PID/status
    (file-backed pages of the memory-mapped stack are not anonymous memory),
  * the ratio of the cost per image and iteration, large / small (target <= 1.5),
  * peak RssAnon against max_memory + 0.5 GB.

It then measures, in this process on the first 2 000 images:

  * one align iteration with rotations against one ``register(rotate=True)`` pass over the same
    images against their average (target <= 1.5x),
  * multi-reference alignment with K = 10 references against K = 1 (target <= 6x).

    python benchmarks/scale.py                         # 100 000 images, 10 iterations each
    python benchmarks/scale.py --n 20000 --iterations 3   # smaller
    python benchmarks/scale.py --keep DIR              # keep (and reuse) the stacks in DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")  # idle BLAS threads spin and steal cores

import numpy as np  # noqa: E402

import cryocore  # noqa: E402

SIZE = 128
SMALL = 2000


def write_stack(path: Path, n: int, seed: int = 0, chunk: int = 5000) -> None:
    """n simulated images (SNR 0.1, rotations, shifts up to 8 px) written chunk by chunk."""
    import mrcfile

    if path.exists():
        with mrcfile.mmap(path, mode="r") as m:
            if m.data.shape == (n, SIZE, SIZE):
                return
    tmp = path.with_suffix(".partial")
    with mrcfile.new_mmap(str(tmp), shape=(n, SIZE, SIZE), mrc_mode=2, overwrite=True) as m:
        m.set_image_stack()
        m.voxel_size = 2.0
        for k, start in enumerate(range(0, n, chunk)):
            stop = min(n, start + chunk)
            sim = cryocore.simulate(stop - start, SIZE, snr=0.1, max_shift=8, rotate=True, seed=seed + k)
            m.data[start:stop] = sim.images
    os.replace(tmp, path)


class RssAnonPeak:
    """Samples RssAnon of a process every 20 ms until it ends; .peak in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = f"/proc/{self.pid}/status"
        while True:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.02)

    def join(self) -> None:
        self._thread.join(timeout=1)


def run_cli(stack: Path, out: Path, rotate: bool, iterations: int, max_memory: str) -> dict:
    cmd = [sys.executable, "-m", "cryocore", "align", str(stack), "-o", str(out), "--overwrite", "--quiet",
           "--iterations", str(iterations), "--tolerance-px", "0", "--max-memory", max_memory]
    if not rotate:
        cmd.append("--no-rotate")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    mon = RssAnonPeak(proc.pid)
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    mon.join()
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    t = report["timings_s"]
    n = report["n_images"]
    return dict(n=n, wall_s=wall, iterations_s=t["iterations_s"], per_s=n * iterations / t["iterations_s"],
                peak_anon=mon.peak, cache_bytes=t.get("cache_bytes", 0), memory=t.get("memory"))


def in_process(stack: Path, threads: int, iterations: int, cli_rotations: Optional[float]) -> None:
    """Rotations: one align iteration vs one register pass; K = 10 vs K = 1."""
    with cryocore.io.open_stack(str(stack)) as s:
        images = s.read(0, SMALL)
    avg = images.mean(axis=0)
    reg = []
    for _ in range(3):
        t0 = time.perf_counter()
        cryocore.register(avg, images, rotate=True, threads=threads)
        reg.append(time.perf_counter() - t0)
    t_reg = min(reg)
    res = cryocore.align(images, progress=False, iterations=iterations, tolerance_px=0, threads=threads)
    t_it = res.timings["iterations_s"] / iterations
    print(f"\nrotations, the first {SMALL} images against their average: one register(rotate=True) pass "
          f"{t_reg:.3f} s ({SMALL / t_reg:.0f} img/s)")
    print(f"  one align iteration (mean of {iterations}), in memory: {t_it:.3f} s ({SMALL / t_it:.0f} img/s): "
          f"{t_it / t_reg:.2f}x  (target <= 1.5)  {'PASS' if t_it <= 1.5 * t_reg else 'MISS'}")
    if cli_rotations:
        r = (SMALL / cli_rotations) / t_reg
        print(f"  one iteration of `cryocore align` on the file (above): {SMALL / cli_rotations:.3f} s "
              f"({cli_rotations:.0f} img/s): {r:.2f}x  (target <= 1.5)  {'PASS' if r <= 1.5 else 'MISS'}")
    rng = np.random.default_rng(0)
    refs = np.stack([images[rng.choice(SMALL, 200, replace=False)].mean(axis=0) for _ in range(10)])
    times = {}
    for k in (1, 10):
        t0 = time.perf_counter()
        r = cryocore.align(images, refs[:k] if k > 1 else refs[0], progress=False, iterations=3, tolerance_px=0,
                           threads=threads)
        times[k] = r.timings["iterations_s"] / 3
    ratio = times[10] / times[1]
    print(f"multi-reference, rotations, {SMALL} images: K = 1 {times[1]:.3f} s/iteration, K = 10 "
          f"{times[10]:.3f} s/iteration: {ratio:.2f}x  (target <= 6)  {'PASS' if ratio <= 6 else 'MISS'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--max-memory", default="4G")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", metavar="DIR", help="write (or reuse) the stacks in DIR and keep them")
    p.add_argument("--skip-cli", action="store_true", help="only the in-process comparisons")
    args = p.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cryocore-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        large, small = work / f"stack_{args.n}.mrcs", work / f"stack_{SMALL}.mrcs"
        t0 = time.perf_counter()
        write_stack(large, args.n)
        if not small.exists():
            with cryocore.io.open_stack(str(large)) as s:
                cryocore.io.write_mrc(str(small), s.read(0, SMALL), pixel_size_A=2.0)
        print(f"stacks ready in {time.perf_counter() - t0:.0f} s: {large} ({large.stat().st_size / 1e9:.1f} GB), "
              f"{small}")
        limit = cryocore.pipeline.config.parse_memory(args.max_memory)
        cli_rotations = None
        if not args.skip_cli:
            print(f"\ncryocore align, {args.iterations} iterations, --max-memory {args.max_memory}, "
                  f"{SIZE}x{SIZE} px, {os.cpu_count()} cores")
            print(f"{'':16}{'images':>9}{'img x it/s':>12}{'peak RssAnon':>14}{'cache':>10}{'wall s':>8}")
            for rotate in (False, True):
                rows = []
                for stack in (small, large):
                    r = run_cli(stack, work / "out", rotate, args.iterations, args.max_memory)
                    rows.append(r)
                    label = "rotations" if rotate else "translations"
                    print(f"{label:16}{r['n']:>9}{r['per_s']:>12.0f}{r['peak_anon'] / 2**30:>12.2f} G"
                          f"{r['cache_bytes'] / 2**30:>8.2f} G{r['wall_s']:>8.0f}")
                if rotate:
                    cli_rotations = rows[0]["per_s"]
                ratio = rows[0]["per_s"] / rows[1]["per_s"]
                over = max(r["peak_anon"] for r in rows) <= limit + (512 << 20)
                print(f"{'':16}cost per image, large / small: {ratio:.2f}x (target <= 1.5) "
                      f"{'PASS' if ratio <= 1.5 else 'MISS'}; peak RssAnon <= max_memory + 0.5 GB: "
                      f"{'PASS' if over else 'MISS'}")
        in_process(small, args.threads, args.iterations, cli_rotations)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
