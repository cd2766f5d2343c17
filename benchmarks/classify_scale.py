#!/usr/bin/env python
"""2D classification at scale: a stack on disk into K classes, from the input file to all outputs.

Writes (once; ``--keep`` reuses it) ``-n`` images of ``--views`` views of the 70S ribosome
(tests/data/volumes, projected along distinct directions) at 128 px and 2 Å/px, random
in-plane rotations and shifts, per-image CTFs (defocus 0.8-2.5 µm), SNR 0.05 and 10% junk, as
an MRC stack with a RELION 3.1 STAR file (CTF columns), in chunks (memory stays bounded);
then times ``cryocore classify particles.star -k K`` end to end, reads the phases from
``report.json`` and scores the classes against the truth (purity, junk).

    python benchmarks/classify_scale.py --dir /tmp/cls100k            # n=100 000, K=50
    python benchmarks/classify_scale.py --dir /tmp/cls10k -n 10000 -k 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_stack(folder: Path, n: int, views: int, chunk: int = 5000, per_file: int = 0) -> None:
    """Simulate the stack chunk by chunk into MRC files of ``per_file`` images each (0: one file)
    and write particles.star (pointing into them) and truth.npy."""
    import mrcfile
    import pandas as pd

    import cryocore
    from cryocore.simulation import project, view_rotations

    volume = np.load(ROOT / "tests" / "data" / "volumes" / "ribosome70S_65.npy")
    templates = np.stack([project(volume, r, 128) for r in view_rotations(views, seed=0)])
    templates /= templates.std(axis=(1, 2), keepdims=True)
    folder.mkdir(parents=True, exist_ok=True)
    truth = np.zeros(n, np.int64)
    rows = []
    per_file = per_file or n
    for first in range(0, n, per_file):
        m_n = min(per_file, n - first)
        name = "particles.mrcs" if per_file >= n else f"particles_{first // per_file:03d}.mrcs"
        with mrcfile.new_mmap(folder / name, shape=(m_n, 128, 128), mrc_mode=2, overwrite=True) as m:
            m.voxel_size = 2.0
            for start in range(first, first + m_n, chunk):
                k = min(chunk, first + m_n - start)
                sim = cryocore.simulate(k, 128, snr=0.05, templates=templates, ctf=True, pixel_size_A=2.0,
                                        defocus_range_A=(8000, 25000), seed=1000 + start, junk_fraction=0.1)
                m.data[start - first : start - first + k] = sim.images
                truth[start : start + k] = sim.classes
                cols = sim.ctf.star_columns()
                rows.append(pd.DataFrame({"rlnImageName": [f"{i - first + 1:06d}@{name}" for i in range(start, start + k)],
                                          "rlnOpticsGroup": 1, **{c: cols[c] for c in ("rlnDefocusU", "rlnDefocusV",
                                                                                      "rlnDefocusAngle")}}))
                print(f"  simulated {start + k} / {n}", flush=True)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnVoltage": [300.0],
                           "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1],
                           "rlnImagePixelSize": [2.0], "rlnImageSize": [128], "rlnImageDimensionality": [2]})
    cryocore.io.write_star_table(folder / "particles.star", cryocore.io.ParticleTable(pd.concat(rows), optics),
                                 overwrite=True)
    np.save(folder / "truth.npy", truth)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, help="where the stack and the outputs go")
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--views", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="reuse a stack written before")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    if not (args.keep and (folder / "particles.star").exists()):
        t0 = time.perf_counter()
        write_stack(folder, args.n, args.views)
        print(f"stack written in {time.perf_counter() - t0:.0f} s")
    out = folder / f"classes_k{args.k}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cryocore", "classify", str(folder / "particles.star"), "-o", str(out),
                    "-k", str(args.k), "--overwrite", "--quiet"], check=True)
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    t = report["timings_s"]
    print(f"classify: {args.n} images, K={args.k}, {wall:.0f} s from the input file to all outputs "
          f"({args.n / wall:.0f} images/s)")
    reseeded = report["parameters"].get("reseeded_classes", [])
    print(f"  phases: starting classes {t.get('seeding_s', 0):.0f} s, first run {t.get('first_run_s', 0):.0f} s"
          + (f", re-seeding {len(reseeded)} classes and a second run "
             f"{t.get('total_s', 0) - t.get('first_run_s', 0) - t.get('seeding_s', 0):.0f} s" if reseeded else "")
          + f" (its iterations {t.get('iterations_s', 0):.0f} s, final averages {t.get('final_average_s', 0):.0f} s), "
          f"reading, writing the outputs and start-up {wall - t.get('total_s', 0):.0f} s")
    import starfile

    parts = starfile.read(out / "particles.star", always_dict=True)["particles"]
    truth = np.load(folder / "truth.npy")
    cls = parts["rlnClassNumber"].to_numpy()
    acc = parts["rlnCryocoreAccepted"].to_numpy() == 1
    good = truth > 0
    hits = sum(np.bincount(truth[good & acc & (cls == c)]).max() for c in np.unique(cls[good & acc]))
    junk = ~good
    members_good = {c: np.mean(good[acc & (cls == c)]) if np.any(acc & (cls == c)) else 0.0 for c in np.unique(cls)}
    handled = np.mean([not acc[i] or members_good[cls[i]] <= 0.1 for i in np.flatnonzero(junk)])
    print(f"  purity {hits / (good & acc).sum():.3f} (accepted good particles), good particles kept "
          f"{(good & acc).sum() / good.sum():.3f}, junk rejected or in junk classes {handled:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
