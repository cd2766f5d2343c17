#!/usr/bin/env python
"""2D classification against the truth (issue 12's must-show), on a held-out multi-view stack.

``-n`` images of ``--views`` distinct views of the 70S ribosome (tests/data/volumes) at 128 px and
2 Å/px, random in-plane rotations and shifts, per-image CTFs (defocus 0.8-2.5 µm), SNR 0.05, 10%
junk (pure noise and blob clusters), classified with ``cryocore.classify`` into K = views and
K = 2 x views classes. Prints, for each K: the adjusted Rand index of the classes and the views
over the non-junk particles, the purity, the correlation of each class average with its view
(after the best in-plane rotation and shift), the fraction of junk rejected or in classes of at
most 10% good particles, the time; then whether a second run (other thread count) gives the
same classes.

    python benchmarks/classify_accuracy.py            # n=2000, 10 views
    python benchmarks/classify_accuracy.py --report docs/benchmarks   # also classify_accuracy.md, .png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def adjusted_rand_index(a, b):
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    pairs = lambda x: x * (x - 1) / 2  # noqa: E731
    index, rows, cols = pairs(table).sum(), pairs(table.sum(1)).sum(), pairs(table.sum(0)).sum()
    expected = rows * cols / pairs(len(a))
    return (index - expected) / (0.5 * (rows + cols) - expected)


def machine_lines(args):
    import report

    return report.machine_lines(f"n={args.n} views={args.views} seed={args.seed} "
                                f"soft-assignment={args.soft_assignment} threads=2")


def write_report(args, machine, scores, same):
    """DIR/classify_accuracy.md and .png: per K, the agreement of the classes with the views (ARI,
    purity), the class averages against their views, the junk handled, the particles kept, the time."""
    import report

    header = (f"{args.n} images of {args.views} ribosome views, 128 px, 2 Å/px, CTFs, SNR 0.05, 10% junk; "
              f"cryocore.classify{' (soft assignment)' if args.soft_assignment else ''}, 2 threads")
    rows = [[str(k), f"{s['ari']:.3f}", f"{s['purity']:.3f}", f"{s['min_corr']:.3f} / {s['median_corr']:.3f}",
             f"{s['junk']:.3f}", f"{s['kept']:.3f}", f"{s['seconds']:.1f}"] for k, s in scores.items()]
    bars = [(f"K = {k}: {what}", s[key], True) for k, s in scores.items()
            for what, key in (("adjusted Rand index", "ari"), ("purity", "purity"),
                              ("min class average vs view", "min_corr"), ("junk handled", "junk"))]
    notes = [f"the same run with 1 thread instead of 2 gives the same classes: {same}",
             "no other classification program (RELION, cryoSPARC, EMAN2) is installed on this machine, so no "
             "peer is measured here"]
    md, png = report.write_report(
        args.report, "classify_accuracy", "2D classification against the truth", header,
        ["K", "ARI (non-junk)", "purity", "class average vs its view: min / median", "junk rejected or in junk classes",
         "good particles kept", "seconds"], rows, bars, "score (1 is perfect)", machine, notes)
    print(f"report: {md}, {png}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--soft-assignment", action="store_true", help="classify with soft_assignment=True")
    parser.add_argument("--report", default=None, metavar="DIR",
                        help="also write DIR/classify_accuracy.md (Markdown table) and DIR/classify_accuracy.png")
    args = parser.parse_args(argv)
    opts = dict(soft_assignment=args.soft_assignment)

    import cryocore
    from cryocore.simulation import project, view_rotations

    volume = np.load(ROOT / "tests" / "data" / "volumes" / "ribosome70S_65.npy")
    views = np.stack([project(volume, r, 128) for r in view_rotations(args.views, seed=args.seed)])
    views /= views.std(axis=(1, 2), keepdims=True)
    sim = cryocore.simulate(args.n, 128, snr=0.05, templates=views, ctf=True, pixel_size_A=2.0,
                            defocus_range_A=(8000, 25000), seed=args.seed + 1, junk_fraction=0.1)
    truth = np.asarray(sim.classes)
    good = truth > 0
    machine = machine_lines(args) if args.report else []  # before the run: the load of other processes
    runs, scores = {}, {}
    for k in (args.views, 2 * args.views):
        t0 = time.perf_counter()
        res = cryocore.classify(sim.images, k, ctf=sim.ctf, pixel_size_A=2.0, progress=False, threads=2, **opts)
        seconds = time.perf_counter() - t0
        runs[k] = res
        acc = res.accepted
        hits = sum(np.bincount(truth[good & acc & (res.classes == c)]).max() for c in np.unique(res.classes[good & acc]))
        members = {c: np.mean(good[acc & (res.classes == c)]) if np.any(acc & (res.classes == c)) else 0.0
                   for c in np.unique(res.classes)}
        junk = np.mean([not acc[i] or members[res.classes[i]] <= 0.1 for i in np.flatnonzero(~good)])
        corr = []
        for c in range(k):
            m = good & (res.classes == c + 1)
            if m.any():
                v = np.bincount(truth[m]).argmax()
                corr.append(float(cryocore.register(views[v - 1], res.class_averages[c], rotate=True).scores))
        scores[k] = dict(ari=adjusted_rand_index(res.classes[good], truth[good]), purity=hits / (good & acc).sum(),
                         min_corr=min(corr), median_corr=float(np.median(corr)), junk=junk,
                         kept=(good & acc).sum() / good.sum(), seconds=seconds)
        print(f"K = {k}: ARI {scores[k]['ari']:.3f} (non-junk), purity {scores[k]['purity']:.3f}, class average vs "
              f"its view: min {min(corr):.3f}, median {np.median(corr):.3f}; junk rejected or in junk classes "
              f"{junk:.3f} (junk classes {res.junk_classes}); good particles kept {scores[k]['kept']:.3f}; "
              f"{seconds:.1f} s")
    again = cryocore.classify(sim.images, args.views, ctf=sim.ctf, pixel_size_A=2.0, progress=False, threads=1, **opts)
    same = np.array_equal(again.classes, runs[args.views].classes)
    print(f"the same run with 1 thread instead of 2 gives the same classes: {same}")
    if args.report:
        write_report(args, machine, scores, same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
