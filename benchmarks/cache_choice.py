#!/usr/bin/env python
"""What the spectra cache buys when not everything fits: `align` (translations) on a stack on disk
with the cache holding all, about half, or none of the stack's cropped spectra (the first chunks
in file order are the ones kept):

  all         max_memory="16G" (everything fits)
  about half  max_memory = the "all" run's working bytes + half of its cache bytes
  none        cache_spectra=False (max_memory stays "16G": the cache is switched off, not starved)

Prints each run's cache bytes, the fraction of the images cached, the images/s of its
iterations, and (but for "all", which is the first run) its wall time.

    python benchmarks/cache_choice.py --stack /work/ooc/particles_small.star   # written by out_of_core.py
"""

from __future__ import annotations

import argparse
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args(argv)

    import cryocore
    from cryocore.io import open_stack

    with open_stack(args.stack) as s:
        n = len(s)
        kw = dict(rotate=False, iterations=args.iterations, tolerance_px=0, progress=False, threads=2, ctf=None)
        full = cryocore.align(s, max_memory="16G", **kw)
        per_image = full.timings["cache_bytes"] / n
        fixed = full.timings["memory"]["working_bytes"]
        runs = [("all", "16G"), ("about half", int(fixed + 0.5 * per_image * n)), ("none", None)]
        for label, mem in runs:
            t0 = time.perf_counter()
            r = full if label == "all" else cryocore.align(
                s, max_memory=mem if mem is not None else "16G", cache_spectra=mem is not None, **kw)
            wall = time.perf_counter() - t0
            iters = max(int(h["iteration"]) for h in r.history)
            rate = n * iters / r.timings["iterations_s"]
            print(f"cache {label}: {r.timings['cache_bytes'] / 2**20:.0f} MiB "
                  f"({r.timings['cache_bytes'] / per_image / n:.2f} of the images), iterations {rate:.0f} images/s"
                  + ("" if label == "all" else f", {wall:.0f} s"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
