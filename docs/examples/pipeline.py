#!/usr/bin/env python
"""Embedding cryocore in a larger pipeline: a RELION particle STAR file in, a STAR file of the
good particles with their poses out.

1. classify the particles into K classes (CTF-corrected; junk set apart);
2. select the classes worth keeping (not junk, at least 5% of the particles, optionally finer
   than a resolution), written as a STAR file pointing at the original stacks;
3. align the selection against the kept class averages (K references, two half-sets);
4. write RELION's files back and plot the classes and the final averages.

    python docs/examples/pipeline.py particles.star work/ -k 10
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np

import cryocore
from cryocore.io import open_stack
from cryocore.plot import save_gallery_png


def run(star: str, outdir: str, k: int = 10, *, min_fraction: float = 0.05, min_resolution_A: Optional[float] = None,
        threads: Optional[int] = None, progress: bool = False) -> dict:
    """The four steps; returns what each produced (paths, kept classes, counts)."""
    out = Path(outdir)
    # 1. classification
    with open_stack(star) as stack:
        classes = cryocore.classify(stack, k, threads=threads, progress=progress)
    classes.write(str(out / "classes"), overwrite=True, inputs=[star])
    # 2. selection: the classes that are not junk and hold enough particles
    share = classes.class_distribution()
    good = [c for c in range(1, classes.n_classes + 1) if c not in classes.junk_classes and share[c - 1] >= min_fraction]
    selected = cryocore.select(out / "classes", classes=good, min_resolution_A=min_resolution_A,
                               output=str(out / "good.star"), overwrite=True)
    # 3. alignment of the selection against the kept class averages
    refs = classes.class_averages[np.asarray(selected.classes) - 1]
    with open_stack(str(out / "good.star")) as stack:
        aligned = cryocore.align(stack, refs, threads=threads, progress=progress)
    paths = aligned.write(str(out / "aligned"), overwrite=True, inputs=[str(out / "good.star")])
    # 4. plots: the kept classes' final averages with their counts and resolutions
    counts = aligned.class_counts()
    labels = [f"class {c}: {int(n)}, {f.resolution_A(0.143) or 0:.0f} Å"
              for c, n, f in zip(selected.classes, counts, aligned.class_frcs)]
    save_gallery_png(out / "kept_classes.png", aligned.class_averages, labels)
    return dict(kept_classes=list(selected.classes), selected=len(selected), accepted=int(aligned.accepted.sum()),
                particles_star=paths.get("particles.star"), gallery=str(out / "kept_classes.png"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("star", help="a RELION particle STAR file")
    parser.add_argument("outdir")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--min-resolution-A", type=float, default=None)
    args = parser.parse_args(argv)
    summary = run(args.star, args.outdir, args.k, min_resolution_A=args.min_resolution_A, progress=True)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
