"""Subset selection after a classification: the particles of the classes a user keeps."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["select"]


def select(run: Any, *, classes: Optional[Sequence[int]] = None, min_resolution_A: Optional[float] = None,
           min_particles: Optional[int] = None, output: Optional[str] = None, overwrite: bool = False) -> Any:
    """The accepted particles of chosen classes of a classification, as a particle table.

    Parameters
    ----------
    run : str
        A :func:`cryocore.classify` output directory (``particles.star`` and ``model.star``).
    classes : sequence of int, optional
        Class numbers (1..K) to keep; default: all.
    min_resolution_A : float, optional
        Keep only classes whose FRC 0.143 resolution (model.star) is this fine or finer (Å).
    min_particles : int, optional
        Keep only classes with at least this many accepted particles.
    output : str, optional
        Write the selection as a RELION 3.1 STAR file (every input column kept; image names
        point at the original stacks), ready for RELION, cryoSPARC or another cryocore run.

    Returns
    -------
    ParticleTable of the selected particles (input order), with ``.classes`` the kept class numbers.
    """
    from .io import read_particles_star, write_star_table
    from .io.tables import _read_star_blocks

    folder = Path(os.fspath(run))
    star, model = folder / "particles.star", folder / "model.star"
    for p in (star, model):
        if not p.is_file():
            raise ValueError(f"{folder} is not a classification output directory: {p.name} is missing")
    parts = read_particles_star(star)
    blocks = _read_star_blocks(str(model))
    if "model_classes" not in blocks:
        raise ValueError(f"{model} has no data_model_classes table")
    table = blocks["model_classes"]
    for col in ("rlnEstimatedResolution", "rlnCryocoreParticles"):
        if col not in table.columns:
            raise ValueError(f"{model} has no {col} column (is it a cryocore classification?)")
    k = len(table)
    keep = np.ones(k, bool)
    if classes is not None:
        wanted = sorted({int(c) for c in classes})
        bad = [c for c in wanted if not 1 <= c <= k]
        if bad:
            raise ValueError(f"classes {bad} are not in 1..{k}")
        keep[:] = False
        keep[np.asarray(wanted) - 1] = True
    if min_resolution_A is not None:
        if not (math.isfinite(float(min_resolution_A)) and float(min_resolution_A) > 0):
            raise ValueError(f"min_resolution_A must be a positive number of Å, got {min_resolution_A!r}")
        keep &= table["rlnEstimatedResolution"].to_numpy(np.float64) <= float(min_resolution_A)
    if min_particles is not None:
        keep &= table["rlnCryocoreParticles"].to_numpy(np.int64) >= int(min_particles)
    kept = np.flatnonzero(keep) + 1
    rows = np.flatnonzero(np.isin(parts["classes"], kept) & parts["accepted"])
    subset = parts["table"].subset(rows)
    subset.classes = kept
    if output is not None:
        write_star_table(output, subset, overwrite=overwrite)
    return subset
