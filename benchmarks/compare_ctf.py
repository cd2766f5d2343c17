#!/usr/bin/env python
"""What CTF correction costs: CTF-aware against CTF-free registration and alignment, in one run.

On one stack of views of the 70S ribosome (tests/data/volumes/ribosome70S_65.npy, one view,
upsampled to ``--size``), each image rotated and shifted at random and filtered by its own CTF
(300 kV, Cs 2.7 mm, Q0 0.1, defocus 0.8-2.5 µm, 200 Å astigmatism, 2 Å/px), white noise at SNR
``--snr``, the same images are timed (best of ``--repeat``) with and without their CTFs:

  register translations   cryocore.register(template, images)             vs ... ctf=, pixel_size_A=
  register rotations      cryocore.register(template, images, rotate=True) vs ... ctf=, pixel_size_A=
  align translations      cryocore.align(images, rotate=False, iterations=N) vs ... ctf=
  align rotations         cryocore.align(images, rotate=True, iterations=N)  vs ... ctf=

For align, the N iterations (``timings["iterations_s"]``: searches, sums, thresholds, new
references) and the whole run (with the spectra cache's fill, the starting references and the
final averages), first with both runs limited to the same resolution (``--lowpass-A``, 14 Å: the
same work but for the CTF), then each at its own (the CTF-corrected run reaches a finer
resolution, so its searches and sums read more of each spectrum, and the spectra cache may be
widened: more work, not a cost of the CTF). The align runs use tolerance 0 so that both run all N
iterations; the spectra cache is on, as by default, for translations. Prints each ratio and, for the rotational search, the median angle
and shift errors with and without the CTF.

    python benchmarks/compare_ctf.py            # n=4000, size=128
    python benchmarks/compare_ctf.py --quick    # n=600
    python benchmarks/compare_ctf.py --report docs/benchmarks   # also compare_ctf.md, .png
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ribosome_view(size):
    """One projection of the 70S map (65 voxels, one per pixel) in a ``size`` box, unit standard
    deviation (as tests/conftest.ribosome_views)."""
    from cryocore.simulation import project, view_rotations

    volume = np.load(ROOT / "tests" / "data" / "volumes" / "ribosome70S_65.npy")
    view = project(volume, view_rotations(1, seed=0)[0], size)
    return view / view.std()


def ribosome_stack(n, size, snr, seed):
    """(template, Simulation) of one ribosome view, CTF-modulated, with known poses."""
    import cryocore

    view = ribosome_view(size)
    sim = cryocore.simulate(n_images=n, size=size, snr=snr, templates=view[None], ctf=True, pixel_size_A=2.0,
                            defocus_range_A=(8000.0, 25000.0), seed=seed)
    return view, sim


def best_of(repeat, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def machine_lines(args):
    import report

    return report.machine_lines(f"n={args.n} size={args.size} snr={args.snr} iterations={args.iterations} "
                                f"lowpass-A={args.lowpass_A} repeat={args.repeat} threads={args.threads}")


def write_report(args, machine, rows, errors):
    """DIR/compare_ctf.md and .png: seconds without and with the CTFs and their ratio, per row; the
    rotational search's errors without and with the CTFs under the table."""
    import report

    header = (f"{args.n} ribosome images {args.size}x{args.size}, 2 Å/px, defocus 0.8-2.5 µm, SNR {args.snr}, "
              f"{args.threads} threads; best of {args.repeat}")
    table = [[name, f"{plain:.3f}", f"{corrected:.3f}", f"{corrected / plain:.2f}"] for name, plain, corrected in rows]
    notes = [f"register rotations, {name}: median angle error {angle:.3f}°, median shift error {shift:.3f} px"
             for name, (angle, shift) in errors.items()]
    md, png = report.write_report(
        args.report, "compare_ctf", "What CTF correction costs: CTF-aware against CTF-free runs", header,
        ["what", "no CTF (s)", "with CTFs (s)", "ratio"], table,
        [(name, corrected / plain, True) for name, plain, corrected in rows], "time with CTFs / time without",
        machine, notes)
    print(f"report: {md}, {png}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=4000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--snr", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--lowpass-A", type=float, default=14.0,
                        help="the align runs' resolution limit for the like-for-like rows (Å)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", default=None, metavar="DIR",
                        help="also write DIR/compare_ctf.md (Markdown table) and DIR/compare_ctf.png (chart)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 600, 2

    import cryocore
    from report import angle_error

    machine = machine_lines(args) if args.report else []  # before the run: the load of other processes
    template, sim = ribosome_stack(args.n, args.size, args.snr, seed=1)
    ctf = dict(ctf=sim.ctf, pixel_size_A=2.0)
    t = args.threads
    rows = []

    def row(name, plain, corrected):
        rows.append((name, plain, corrected))
        print(f"{name:<24} no CTF {plain:8.3f} s   CTF {corrected:8.3f} s   ratio {corrected / plain:5.2f}", flush=True)

    few = dict(ctf=sim.ctf.take(slice(0, 64)), pixel_size_A=2.0)
    cryocore.register(template, sim.images[:64], threads=t, **few)  # plans made once, outside the timings
    cryocore.register(template, sim.images[:64], rotate=True, threads=t, **few)
    a, _ = best_of(args.repeat, lambda: cryocore.register(template, sim.images, threads=t))
    b, _ = best_of(args.repeat, lambda: cryocore.register(template, sim.images, threads=t, **ctf))
    row("register translations", a, b)
    a, plain = best_of(args.repeat, lambda: cryocore.register(template, sim.images, rotate=True, threads=t))
    b, corrected = best_of(args.repeat, lambda: cryocore.register(template, sim.images, rotate=True, threads=t, **ctf))
    row("register rotations", a, b)
    errors = {name: (np.median(angle_error(r.angles, sim.angles)), np.median(np.hypot(*(r.shifts - sim.shifts).T)))
              for name, r in (("no CTF", plain), ("CTF", corrected))}
    for name, (angle, shift) in errors.items():
        print(f"  rotations, {name:<7} median angle error {angle:.3f} deg, median shift error {shift:.3f} px")
    kw = dict(iterations=args.iterations, tolerance_px=0.0, threads=t, progress=False, pixel_size_A=2.0)
    for rotate in (False, True):
        what = "rotations" if rotate else "translations"
        for lowpass in (args.lowpass_A, None):
            runs = {}
            for name, c in (("plain", None), ("ctf", sim.ctf)):
                results = [cryocore.align(sim.images, rotate=rotate, ctf=c, lowpass_A=lowpass, **kw)
                           for _ in range(args.repeat)]
                runs[name] = (min(r.timings["iterations_s"] for r in results),
                              min(r.timings["total_s"] for r in results))
            band = f"lowpass {lowpass:g} A" if lowpass else "own band"
            row(f"align {what}, {band}: {args.iterations} iterations", runs["plain"][0], runs["ctf"][0])
            row(f"align {what}, {band}: whole run", runs["plain"][1], runs["ctf"][1])
    worst = max(c / p for name, p, c in rows if "whole run" not in name and "own band" not in name)
    print(f"worst ratio of registrations and of iterations at the same band {worst:.2f} (target <= 1.3)")
    if args.report:
        write_report(args, machine, rows, errors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
