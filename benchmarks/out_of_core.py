#!/usr/bin/env python
"""Stacks larger than memory: `cryocore align` and `cryocore classify` on a 400 000-image stack
(128 px float32: 26 GB on disk, more than this machine's 24 GB of memory) with --max-memory, and
the same commands on its first 100 000 images (which the page cache holds).

Writes the stack once (``--keep`` reuses it): ``-n`` images of 25 ribosome views with CTFs, SNR
0.05 and 10% junk (benchmarks/classify_scale.py's simulation) in MRC files of 50 000 images,
``particles.star`` (RELION) pointing into them, and ``particles_small.star`` with the first
``--small`` images (100 000). Each run goes through ``/usr/bin/time -v``; scale.py's RssAnonPeak
reads the run's RssAnon (anonymous resident memory, which the page cache of a memory-mapped
input does not count) every 20 ms. Prints, per run:
wall time, the RssAnon peak against --max-memory, time's maximum RSS (file pages included),
and the images/s of the iterations; then the ratio of the large run's to the small run's.

    python benchmarks/out_of_core.py --dir /data/ooc                 # n = 400 000, 5 iterations
    python benchmarks/out_of_core.py --dir /tmp/ooc -n 20000 --small 5000 --max-memory 512M
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(v) for v in f.read().split()]
    except OSError:
        return []


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; its wall time, RssAnon peak (sampled) and time's max RSS."""
    from scale import RssAnonPeak

    t0 = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v"] + cmd, stderr=subprocess.PIPE, text=True)
    mon = None
    while mon is None and proc.poll() is None:  # the run is time's child: sample it, not time
        kids = children(proc.pid)
        if kids:
            mon = RssAnonPeak(kids[0])
        else:
            time.sleep(0.005)
    _, err = proc.communicate()
    if mon is not None:
        mon.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    max_rss = next((int(line.split(":")[1]) * 1024 for line in err.splitlines()
                    if "Maximum resident set size" in line), 0)
    return dict(wall_s=wall, rss_anon_peak=mon.peak if mon is not None else 0, max_rss=max_rss,
                time_v=[line.strip() for line in err.splitlines() if ":" in line][-24:])


def iteration_rate(report: dict, n: int) -> float:
    """Images per second of the iterations (the last refinement's, for classify)."""
    iters = max((int(r["iteration"]) for r in report["history"]), default=0)
    return n * iters / max(report["timings_s"]["iterations_s"], 1e-9)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("-n", type=int, default=400_000)
    parser.add_argument("--small", type=int, default=100_000, help="images of the comparison run")
    parser.add_argument("--max-memory", default="4G")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="reuse a stack written before")
    parser.add_argument("--jobs", default="align,classify")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    star = folder / "particles.star"
    small = folder / "particles_small.star"
    if not (args.keep and star.exists()):
        from classify_scale import write_stack

        t0 = time.perf_counter()
        write_stack(folder, args.n, 25, per_file=50_000)
        print(f"stack written in {time.perf_counter() - t0:.0f} s", flush=True)
    if not (args.keep and small.exists()):
        import starfile

        blocks = starfile.read(star, always_dict=True)
        blocks["particles"] = blocks["particles"].iloc[: args.small]
        starfile.write(blocks, small, overwrite=True)
    size = sum(p.stat().st_size for p in folder.glob("particles*.mrcs"))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"stack: {args.n} images, {size / 1e9:.1f} GB on disk; memory {mem / 1e9:.1f} GB; "
          f"--max-memory {args.max_memory}", flush=True)
    from cryocore.pipeline.config import parse_memory

    limit = parse_memory(args.max_memory)
    rates: dict[tuple[str, int], float] = {}
    for job in args.jobs.split(","):
        for n, path in ((args.small, small), (args.n, star)):
            out = folder / f"{job}_{n}"
            cmd = [sys.executable, "-m", "cryocore", job, str(path), "-o", str(out), "--overwrite", "--quiet",
                   "--max-memory", args.max_memory, "--iterations", str(args.iterations)]
            if job == "classify":
                cmd += ["-k", str(args.k)]
            got = timed(cmd)
            report = json.loads((out / "report.json").read_text())
            rates[job, n] = iteration_rate(report, n)
            print(f"{job} {n}: {got['wall_s']:.0f} s wall; RssAnon peak {got['rss_anon_peak'] / 2**30:.2f} GiB "
                  f"(max_memory {limit / 2**30:.2f} GiB, + 0.5 GiB = {(limit + (1 << 29)) / 2**30:.2f}); "
                  f"time -v max RSS {got['max_rss'] / 2**30:.2f} GiB; iterations {rates[job, n]:.0f} images/s",
                  flush=True)
            for line in got["time_v"]:
                if any(k in line for k in ("Elapsed", "Maximum resident", "Major", "File system inputs")):
                    print(f"    {line}")
        print(f"{job}: images/s per iteration at {args.n} / at {args.small}: "
              f"{rates[job, args.n] / rates[job, args.small]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
