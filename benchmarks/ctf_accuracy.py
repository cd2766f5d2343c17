#!/usr/bin/env python
"""CTF-corrected alignment against the truth, on a held-out ribosome stack (issue 11's must-show).

The stack: ``-n`` images of one view of the 70S ribosome (compare_ctf.ribosome_view), 128 x 128
at 2 Å/px, random in-plane rotations and shifts (up to 10 px), each filtered by its own CTF
(300 kV, Cs 2.7 mm, Q0 0.1, defocus 0.8-2.5 µm, 200 Å astigmatism, B 50 Å^2), white noise at
SNR 0.05. Measured, each against the true view (the average fitted onto it first):

  uncorrected      cryocore.align(images, pixel_size_A=2, ctf=None)
  CTF-corrected    cryocore.align(images, pixel_size_A=2, ctf=params)   (the default for STAR input)
  true poses       cryocore.wiener_average(images, params, 2, true shifts and angles)

their FRC 0.5 with the true view (Å), the aligned runs' median angle and shift errors, and the
CTF run's half-set FRC around the first CTF zeros. Then the search itself: the poses found by
registering the images against the true view (a) multiplied by their CTFs (cryocore's way:
the reference times each image's CTF, RELION's) and (b) phase-flipped (sign(CTF) X, here in
numpy), with the cost of each.

    python benchmarks/ctf_accuracy.py                  # n=1000
    python benchmarks/ctf_accuracy.py --plot frc.png   # and the FRC curves
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_ctf import ribosome_view  # noqa: E402
from report import angle_error  # noqa: E402

APIX = 2.0


def fit_onto(view, image):
    """``image`` turned and moved onto ``view`` (the fitted pose), and that pose's angle."""
    import cryocore

    f = cryocore.register(view, image, rotate=True, upsample=50)
    return cryocore.transform(image, f.angles, f.shifts, inverse=True), float(f.angles)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=str, default=None)
    args = parser.parse_args(argv)

    import cryocore

    view = ribosome_view(128)
    sim = cryocore.simulate(n_images=args.n, size=128, snr=0.05, templates=view[None], ctf=True, pixel_size_A=APIX,
                            defocus_range_A=(8000.0, 25000.0), astigmatism_A=200.0, bfactor_A2=50.0, seed=args.seed)
    kw = dict(pixel_size_A=APIX, threads=args.threads, progress=False)
    runs = {}
    for name, ctf in (("uncorrected", None), ("CTF-corrected", sim.ctf)):
        t0 = time.perf_counter()
        res = cryocore.align(sim.images, ctf=ctf, **kw)
        seconds = time.perf_counter() - t0
        aligned, psi = fit_onto(view, res.average)
        truth_frc = cryocore.frc(aligned, view)
        err = angle_error((res.angles + psi) % 360.0, sim.angles)[res.accepted]
        runs[name] = dict(res=res, frc=truth_frc, angle=float(np.median(err)), seconds=seconds)
    truth = cryocore.wiener_average(sim.images, sim.ctf, APIX, shifts=sim.shifts, angles=sim.angles)
    truth_frc = cryocore.frc(fit_onto(view, truth)[0], view)
    print(f"{args.n} images, 128 px, {APIX} Å/px, SNR 0.05, defocus 0.8-2.5 µm\n")
    print(f"{'average':<16} {'FRC 0.5 vs truth':>18} {'median angle err':>18} {'accepted':>9} {'time':>7}")
    for name, r in runs.items():
        f = r["frc"].resolution_05
        print(f"{name:<16} {APIX / f:>15.1f} Å {r['angle']:>15.3f} deg {int(r['res'].accepted.sum()):>9} "
              f"{r['seconds']:>6.1f}s")
    print(f"{'true poses':<16} {APIX / truth_frc.resolution_05:>15.1f} Å")
    corrected, plain = runs["CTF-corrected"]["frc"].resolution_05, runs["uncorrected"]["frc"].resolution_05
    print(f"\nCTF-corrected / true poses (frequency): {corrected / truth_frc.resolution_05:.3f} (must be >= 0.9)")
    print(f"CTF-corrected / uncorrected (frequency): {corrected / plain:.2f} (must be >= 2)")
    half = runs["CTF-corrected"]["res"].frc
    band = (half.frequencies > 0.06) & (half.frequencies < 0.2)
    plain_half = runs["uncorrected"]["res"].frc
    print(f"half-set FRC between 0.06 and 0.2 cycles/px (the first CTF zeros): min {half.values[band].min():.3f} "
          f"(uncorrected: {plain_half.values[band].min():.3f})")

    # the search itself: reference x CTF (cryocore's) against phase-flipped images
    flips = np.sign(np.stack([sim.ctf.image(i, (128, 128), APIX) for i in range(args.n)]))
    print("\nregistration against the true view (rotations and shifts):")
    for name, fn in (
        ("reference x CTF", lambda: cryocore.register(view, sim.images, rotate=True, threads=args.threads,
                                                       ctf=sim.ctf, pixel_size_A=APIX)),
        ("phase-flipped", lambda: cryocore.register(view, np.fft.irfft2(np.fft.rfft2(sim.images) * flips, s=(128, 128)),
                                                     rotate=True, threads=args.threads)),
        ("no CTF", lambda: cryocore.register(view, sim.images, rotate=True, threads=args.threads)),
    ):
        t0 = time.perf_counter()
        r = fn()
        dt = time.perf_counter() - t0
        print(f"  {name:<16} median angle error {np.median(angle_error(r.angles, sim.angles)):.3f} deg, "
              f"median shift error {np.median(np.hypot(*(r.shifts - sim.shifts).T)):.3f} px, "
              f"wrong by > 5 deg: {int((angle_error(r.angles, sim.angles) > 5).sum())}, {dt:.2f} s")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for name, r in runs.items():
            a1.plot(r["frc"].frequencies / APIX, r["frc"].values, label=f"{name} align")
        a1.plot(truth_frc.frequencies / APIX, truth_frc.values, "k--", label="true poses, Wiener")
        a1.set(title="FRC of the average with the true view", xlabel="spatial frequency (1/Å)", ylabel="FRC")
        for name, r in runs.items():
            a2.plot(r["res"].frc.frequencies / APIX, r["res"].frc.values, label=name)
        a2.set(title="half-set FRC", xlabel="spatial frequency (1/Å)")
        for ax in (a1, a2):
            ax.axhline(0.5, color="grey", lw=0.5)
            ax.axhline(0.143, color="grey", lw=0.5, ls=":")
            ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
