#!/usr/bin/env python
"""Two installs of cryocore side by side (e.g. the wheel with its bundled FFTW against a build on
the system's FFTW): `register` at 128 px (upsample=1, and with a low-pass) and `shift` (a full r2c
and c2r per image, the call nearest to a pure FFT measurement) in each install's interpreter,
alternated, the best of ``--repeats`` rounds per install; prints images/s and the ratio. The stack
(2 000 images, seed 3) is simulated once, by the first install, into a temporary directory as
.npy files, and every round of both installs loads it from there.

    python benchmarks/compare_builds.py build/wheel/test-venv/bin/python .venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile

SIMULATE = r"""
import os, sys, numpy as np, cryocore
sim = cryocore.simulate(2000, 128, snr=0.1, max_shift=8, rotate=False, seed=3)
np.save(os.path.join(sys.argv[1], "images.npy"), sim.images)
np.save(os.path.join(sys.argv[1], "template.npy"), sim.template)
"""

SNIPPET = r"""
import json, os, sys, time, numpy as np, cryocore
c = cryocore.build_config()
images = np.load(os.path.join(sys.argv[1], "images.npy"))
template = np.load(os.path.join(sys.argv[1], "template.npy"))
out = {"fftw": f"{c['fftw_version']} {'+'.join(c['fftw_simd'])} {'bundled' if c['fftw_bundled'] else 'system'}"}
shifts = np.full((len(images), 2), 0.3)
calls = {"register upsample=1": lambda im: cryocore.register(template, im, threads=2, upsample=1),
         "register upsample=1, lowpass=0.25": lambda im: cryocore.register(template, im, threads=2, upsample=1,
                                                                            lowpass=0.25),
         "shift (a full r2c and c2r per image)": lambda im: cryocore.shift(im, shifts[:len(im)], threads=2)}
for name, call in calls.items():
    call(images[:200])  # plans made, caches warm
    t0 = time.perf_counter()
    call(images)
    out[name] = len(images) / (time.perf_counter() - t0)
print(json.dumps(out))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first", help="python of the first install (e.g. the wheel's venv)")
    parser.add_argument("second", help="python of the second install")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    # absolute: each install runs from / so that neither imports the source tree
    args.first, args.second = (os.path.abspath(p) if os.sep in p else shutil.which(p) or p
                               for p in (args.first, args.second))
    best: dict[str, dict] = {args.first: {}, args.second: {}}
    labels = {}
    with tempfile.TemporaryDirectory(prefix="cryocore-builds-") as data:
        subprocess.run([args.first, "-c", SIMULATE, data], check=True, cwd="/")
        for _ in range(args.repeats):
            for py in (args.first, args.second):
                got = json.loads(subprocess.run([py, "-c", SNIPPET, data], capture_output=True, text=True,
                                                check=True, cwd="/").stdout.strip().splitlines()[-1])
                labels[py] = got.pop("fftw")
                for k, v in got.items():
                    best[py][k] = max(best[py].get(k, 0.0), v)
    for k in best[args.first]:
        a, b = best[args.first][k], best[args.second][k]
        print(f"{k}, 128 px, 2 threads: {labels[args.first]}: {a:,.0f} images/s; "
              f"{labels[args.second]}: {b:,.0f} images/s; ratio {a / b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
