"""Does a change keep align()'s results? Runs align on fixed simulated stacks and either saves
the results (--save FILE) or compares them with saved ones (--compare FILE): accepted sets must
be identical, shifts within 1e-4 px and angles within 1e-3 degrees. FFTW plans with
"estimate" effort in both runs: measured plans are chosen by timing, so two processes may
round differently (at the 1e-3 px level after ten iterations at SNR 0.1).

    python benchmarks/check_unchanged.py --save /tmp/before.npz     # on the old code
    python benchmarks/check_unchanged.py --compare /tmp/before.npz  # on the new code
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import cryocore

CASES = {
    # name: (simulate kwargs, align kwargs)
    "translations": (dict(n_images=600, size=64, snr=0.1, max_shift=5, rotate=False, seed=1),
                     dict(rotate=False)),
    "translations_uncached": (dict(n_images=400, size=64, snr=0.2, max_shift=5, rotate=False, seed=2),
                              dict(rotate=False, cache_spectra=False)),
    "rotations": (dict(n_images=500, size=64, snr=0.1, max_shift=5, rotate=True, seed=3),
                  dict(rotate=True)),
    "junk": (dict(n_images=400, size=64, snr=0.3, max_shift=5, rotate=False, seed=4),
             dict(rotate=False, junk=80)),
    "reference_image": (dict(n_images=300, size=64, snr=0.3, max_shift=5, rotate=True, seed=5),
                        dict(rotate=True, reference=7)),
    "online": (dict(n_images=300, size=64, snr=0.3, max_shift=5, rotate=False, seed=6),
               dict(rotate=False, reference=7, mode="online")),
}


def run(name: str) -> dict:
    sim_kw, kw = CASES[name]
    kw = dict(kw)
    sim = cryocore.simulate(**sim_kw)
    images = sim.images
    junk = kw.pop("junk", 0)
    if junk:
        images = images.copy()
        images[:junk] = np.random.default_rng(9).standard_normal(images[:junk].shape).astype(np.float32)
    res = cryocore.align(images, progress=False, threads=2, **kw)
    return dict(shifts=res.shifts, angles=res.angles, accepted=res.accepted, scores=res.scores,
                average=res.average)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save")
    g.add_argument("--compare")
    args = p.parse_args()
    cryocore.set_planning("estimate")
    results = {f"{name}.{k}": v for name in CASES for k, v in run(name).items()}
    if args.save:
        np.savez(args.save, **results)
        print(f"saved {len(CASES)} cases to {args.save}")
        return 0
    before = np.load(args.compare)
    ok = True
    for name in CASES:
        acc = np.array_equal(before[f"{name}.accepted"], results[f"{name}.accepted"])
        ds = float(np.abs(before[f"{name}.shifts"] - results[f"{name}.shifts"]).max())
        da = np.abs((before[f"{name}.angles"] - results[f"{name}.angles"] + 180) % 360 - 180).max()
        avg0, avg1 = before[f"{name}.average"], results[f"{name}.average"]
        dv = float(np.abs(avg0 - avg1).max() / np.abs(avg0).max())
        good = acc and ds <= 1e-4 and da <= 1e-3
        ok &= good
        print(f"{name:24s} accepted sets identical: {acc}; max |shift diff| {ds:.2e} px; "
              f"max |angle diff| {da:.2e} deg; max average diff {dv:.1e} (relative)  {'OK' if good else 'CHANGED'}")
    print("unchanged" if ok else "CHANGED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
