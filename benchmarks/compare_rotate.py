#!/usr/bin/env python
"""Rotational + translational registration: cryocore against a pyfftw brute-force search.

On one simulated stack (``cryocore.simulate(n, size, snr, max_shift=10,
rotate=True, seed=0)``), registered against the template, in one process:

  cryocore rotate      ``cryocore.register(template, images, rotate=True)``
  cryocore translate   ``cryocore.register(template, images)`` (translation only,
                       for the throughput ratio; its angles are wrong, of course)
  pyfftw brute force   the reference rotated every 2 degrees (180 references,
                       bicubic), one batched FFT correlation per angle with FFTW
                       plans made once (FFTW_MEASURE, float32, threads), argmax
                       over angles and shifts, parabolic sub-pixel shift; timed on
                       ``--brute-subset`` images and scaled

    python benchmarks/compare_rotate.py           # n=2000, size=128
    python benchmarks/compare_rotate.py --quick   # n=200
    python benchmarks/compare_rotate.py --report docs/benchmarks   # also compare_rotate.md, .png
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def brute_force(template, images, threads, step=2.0, chunk=16):
    import pyfftw

    import cryocore

    n, ny, nx = images.shape
    angles = np.arange(0.0, 360.0, step)
    refs = cryocore.transform(np.repeat(template[None], len(angles), 0), angles)
    R = np.conj(np.fft.rfft2(refs - refs.mean(axis=(1, 2), keepdims=True))).astype(np.complex64)
    a = pyfftw.empty_aligned((chunk, ny, nx), "float32")
    F = pyfftw.empty_aligned((chunk, ny, nx // 2 + 1), "complex64")
    C = pyfftw.empty_aligned((len(angles), ny, nx // 2 + 1), "complex64")
    m = pyfftw.empty_aligned((len(angles), ny, nx), "float32")
    fwd = pyfftw.FFTW(a, F, axes=(1, 2), threads=threads, flags=("FFTW_MEASURE",))
    inv = pyfftw.FFTW(C, m, axes=(1, 2), direction="FFTW_BACKWARD", threads=threads, flags=("FFTW_MEASURE",))
    out_a = np.zeros(n)
    out_s = np.zeros((n, 2))
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        a[:k] = images[start:start + k]
        fwd()
        for i in range(k):
            np.multiply(F[i], R, out=C)
            inv()
            flat = m.reshape(len(angles), -1)
            best = int(np.argmax(flat.max(axis=1)))
            iy, ix = np.unravel_index(int(flat[best].argmax()), (ny, nx))
            mb = m[best]

            def par(l, c, r):
                d = l - 2 * c + r
                return 0.5 * (l - r) / d if d < 0 else 0.0

            oy = par(mb[(iy - 1) % ny, ix], mb[iy, ix], mb[(iy + 1) % ny, ix])
            ox = par(mb[iy, (ix - 1) % nx], mb[iy, ix], mb[iy, (ix + 1) % nx])
            out_a[start + i] = angles[best]
            out_s[start + i] = (iy - ny if iy > ny // 2 else iy) + oy, (ix - nx if ix > nx // 2 else ix) + ox
    return out_s, out_a, time.perf_counter() - t0


def machine_lines(args) -> list[str]:
    import report

    return report.machine_lines(f"n={args.n} size={args.size} snr={args.snr} threads={args.threads} "
                                f"repeats={args.repeats} brute-subset={args.brute_subset}")


def write_report(args, machine, methods, brute_rate, subset_error) -> None:
    """DIR/compare_rotate.md and .png: images/s, angle and shift errors of each method."""
    import report

    header = (f"{args.n} images {args.size}x{args.size}, SNR {args.snr}, rotations and shifts at random, "
              f"{args.threads} threads; median of {args.repeats} repeats (brute force: once)")
    rows, bars = [], []
    for label, rate, err, dshift in methods:
        acc = ["–", "–", "–"] if err is None else [
            f"{np.median(err):.2f}", f"{100 * np.mean(err > 5):.1f}", f"{np.median(np.hypot(*dshift.T)):.3f}"]
        rows.append([label, f"{rate:,.0f}", *acc, f"{rate / brute_rate:.1f}×"])
        bars.append((label + ("" if err is None else f"  (median angle error {np.median(err):.2f}°)"), rate,
                     label.startswith("cryocore")))
    notes = [f"cryocore's errors are over all {args.n} images, the brute force's over the first {args.brute_subset}; "
             f"cryocore's median angle error on those: {subset_error:.2f}°"]
    md, png = report.write_report(
        args.report, "compare_rotate", "Rotational + translational registration against a brute-force search",
        header, ["method", "images/s", "median angle error (°)", "angle error > 5° (%)", "median shift error (px)",
                 "vs brute force"], rows, bars, "images/s",
        machine, notes)
    print(f"  report: {md}, {png}")


def main(argv=None) -> int:
    import cryocore
    from report import angle_error

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--snr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--brute-subset", type=int, default=100)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write DIR/compare_rotate.md (Markdown table) and DIR/compare_rotate.png (chart)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.brute_subset = 200, 1, 20
    machine = machine_lines(args)  # before the run: the load average it reports is that of other processes
    print("\n".join(machine))
    sim = cryocore.simulate(args.n, args.size, snr=args.snr, max_shift=10, rotate=True, seed=0)
    t, imgs = sim.template, sim.images
    cryocore.register(t, imgs[:8], rotate=True, threads=args.threads)  # plans
    cryocore.register(t, imgs[:8], threads=args.threads)
    tr, tt = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        reg = cryocore.register(t, imgs, rotate=True, threads=args.threads)
        tr.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cryocore.register(t, imgs, threads=args.threads)
        tt.append(time.perf_counter() - t0)
    rot, trans = statistics.median(tr), statistics.median(tt)
    err = angle_error(reg.angles, sim.angles)
    k = args.brute_subset
    bs, ba, bt = brute_force(t, imgs[:k], args.threads)
    berr = angle_error(ba, sim.angles[:k])
    rot_rate, trans_rate, brute_rate = args.n / rot, args.n / trans, k / bt
    print(f"\n{args.n} images {args.size}x{args.size}, SNR {args.snr}, threads {args.threads}")
    print(f"  cryocore rotate     {rot_rate:9.0f} images/s  angle error median {np.median(err):.2f} deg, "
          f"> 5 deg {100 * np.mean(err > 5):.1f}%, on the first {k}: median {np.median(err[:k]):.2f}, "
          f"shift error median {np.median(np.hypot(*(reg.shifts - sim.shifts).T)):.3f} px")
    print(f"  cryocore translate  {trans_rate:9.0f} images/s")
    print(f"  pyfftw brute force  {brute_rate:9.0f} images/s  angle error median {np.median(berr):.2f} deg, "
          f"> 5 deg {100 * np.mean(berr > 5):.1f}% ({k} images, 2 degree steps)")
    if args.report:
        write_report(args, machine, [("cryocore register(rotate=True)", rot_rate, err, reg.shifts - sim.shifts),
                            ("cryocore register (translations only)", trans_rate, None, None),
                            (f"pyfftw brute force, 2° steps [{k} images]", brute_rate, berr,
                             bs - sim.shifts[:k])], brute_rate, float(np.median(err[:k])))
    print("\ntargets (printed, not asserted)")
    print(f"  {'PASS' if rot_rate >= 10 * brute_rate else 'MISS'}  rotate >= 10x brute force: {rot_rate / brute_rate:.1f}x")
    print(f"  {'PASS' if np.median(err[:k]) <= np.median(berr) else 'MISS'}  angular accuracy >= brute force "
          f"(median on the same {k}): {np.median(err[:k]):.2f} vs {np.median(berr):.2f} deg")
    print(f"  {'PASS' if rot_rate >= 0.25 * trans_rate else 'MISS'}  rotate >= 1/4 of translation-only: "
          f"{rot_rate / trans_rate:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
