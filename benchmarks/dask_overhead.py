#!/usr/bin/env python
"""dask.distributed against the single process, on the same stack on disk.

Runs ``cryocore.align`` (rotations, then translations) and ``cryocore.classify`` (K = 50) on a
STAR stack once in this process (2 threads) and once on a LocalCluster of 2 worker processes
(1 thread each: the same 2 cores), and prints the time ratio, whether the results are the same
(accepted sets, classes, poses, averages), and the bytes that travelled between this process and
the cluster per iteration (the shared references and reader, the tasks, the results), as
dask's sizeof counts them.

    python benchmarks/dask_overhead.py --star /work/ooc/particles_small.star     # 100 000 images, written by out_of_core.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def compare(name, here, there, t_here, t_there, ex, passes):
    from report import angle_error

    same = (np.array_equal(here.accepted, there.accepted) and np.array_equal(here.classes, there.classes))
    dshift = float(np.abs(here.shifts - there.shifts).max())
    dpsi = float(angle_error(here.angles, there.angles).max())
    davg = float(np.abs(here.class_averages - there.class_averages).max() / np.abs(here.class_averages).max())
    iters = max(int(r["iteration"]) for r in there.history)
    print(f"{name}: single process {t_here:.1f} s, LocalCluster(2 workers) {t_there:.1f} s, ratio "
          f"{t_there / t_here:.2f}; same accepted sets and classes {same}, poses within {dshift:.1e} px and "
          f"{dpsi:.1e} deg, averages within {davg:.1e} relative; per iteration sent {ex.sent_bytes / iters / 1e6:.1f} MB, "
          f"received {ex.received_bytes / iters / 1e6:.1f} MB ({passes})", flush=True)


def here_and_there(name, run, client, passes):
    """``run(threads=2)`` in this process, then ``run(executor=DaskExecutor(client))`` on the cluster,
    each timed; prints the comparison (``compare``)."""
    from cryocore.pipeline.distributed import DaskExecutor

    t0 = time.perf_counter()
    here = run(threads=2)
    t_here = time.perf_counter() - t0
    ex = DaskExecutor(client)
    t0 = time.perf_counter()
    there = run(executor=ex)
    t_there = time.perf_counter() - t0
    ex.forget()
    compare(name, here, there, t_here, t_there, ex, passes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--star", required=True)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--max-memory", default="4G")
    parser.add_argument("--skip-classify", action="store_true")
    args = parser.parse_args(argv)

    import distributed

    import cryocore
    from cryocore.io import open_stack

    kw = dict(iterations=args.iterations, progress=False, max_memory=args.max_memory, tolerance_px=0)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        with open_stack(args.star) as s:
            print(f"{args.star}: {len(s)} images of {s.shape[1]} px", flush=True)
            for rotate in (True, False):
                here_and_there(f"align rotate={rotate}",
                               lambda rotate=rotate, **how: cryocore.align(s, rotate=rotate, **kw, **how),
                               client, "search and rejection passes")
            if not args.skip_classify:
                here_and_there("classify K=50",
                               lambda **how: cryocore.classify(s, 50, iterations=args.iterations, progress=False,
                                                               max_memory=args.max_memory, **how),
                               client, "the binned iterations' passes and the final pass at 128 px")
    finally:
        client.close()
        cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
