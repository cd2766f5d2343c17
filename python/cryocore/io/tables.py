"""Per-particle results: RELION STAR and cryocore CSV writers and readers."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from .atomic import PathLike, _check_overwrite, atomic_write

CSV_COLUMNS = ["image_name", "dy_px", "dx_px", "psi_deg", "score", "accepted", "half", "class"]

# --------------------------------------------------------------------------
# The particle table
# --------------------------------------------------------------------------

# RELION's values for CTF and optics columns that a file leaves out (CONVENTIONS.md, CTF).
RELION_DEFAULTS = {
    "rlnVoltage": 200.0, "rlnSphericalAberration": 0.0, "rlnAmplitudeContrast": 0.0, "rlnDefocusAngle": 0.0,
    "rlnCtfBfactor": 0.0, "rlnCtfScalefactor": 1.0, "rlnPhaseShift": 0.0,
}


class ParticleTable:
    """The per-particle table of a stack: every input column, in input order.

    For a RELION STAR input, ``particles`` holds the file's particle table as
    read (CTF, micrograph, coordinate columns...) and ``optics`` its optics
    groups (RELION 3.1) or None (3.0, or not a STAR input). :meth:`column`
    gives one value per particle with the optics merged in: the particle's own
    value, else its optics group's, else a default. cryocore's STAR writer
    starts from this table, so columns that cryocore does not use survive.

    Attributes
    ----------
    particles : pandas.DataFrame, N rows (input order)
    optics : pandas.DataFrame or None
    source_dir : str or None
        The directory of the STAR file the table was read from: relative stack paths in
        ``rlnImageName`` are found there first (then in the working directory). A STAR file
        written elsewhere gets those paths rewritten relative to its own directory.
    """

    def __init__(self, particles: Any, optics: Any = None, source_dir: Optional[str] = None) -> None:
        self.particles = particles.reset_index(drop=True)
        self.optics = None if optics is None else optics.reset_index(drop=True)
        self.source_dir = None if source_dir is None else os.path.abspath(source_dir)
        if "rlnImageName" not in self.particles.columns:
            raise ValueError("a particle table needs an rlnImageName column")

    @classmethod
    def from_names(cls, image_names: Sequence[str]) -> "ParticleTable":
        """A table with only ``rlnImageName`` (``index@stack``) for inputs that are not STAR files."""
        import pandas as pd

        return cls(pd.DataFrame({"rlnImageName": [str(v) for v in image_names]}))

    def __len__(self) -> int:
        return len(self.particles)

    def __repr__(self) -> str:
        groups = 0 if self.optics is None else len(self.optics)
        return f"<ParticleTable: {len(self)} particles, {len(self.particles.columns)} columns, {groups} optics groups>"

    @property
    def image_names(self) -> list[str]:
        return [str(v) for v in self.particles["rlnImageName"].tolist()]

    @property
    def columns(self) -> list[str]:
        """Names of the particle columns and of the optics columns (each once)."""
        names = list(self.particles.columns)
        if self.optics is not None:
            names += [c for c in self.optics.columns if c not in names]
        return names

    def has(self, name: str) -> bool:
        """True when the particles or their optics groups give ``name``."""
        return name in self.columns

    def column(self, name: str, default: Optional[float] = None) -> np.ndarray:
        """One float64 value per particle: its own ``name``, else its optics
        group's, else ``default`` (RELION's default for CTF columns when
        ``default`` is None). KeyError when none of them gives a value."""
        n = len(self)
        out = np.full(n, np.nan)
        if name in self.particles.columns:
            out = _numeric(self.particles[name], name)
        if np.isnan(out).any() and self.optics is not None and name in self.optics.columns:
            out = np.where(np.isnan(out), self._optics_values(name), out)
        if np.isnan(out).any():
            fallback = RELION_DEFAULTS.get(name) if default is None else default
            if fallback is None:
                raise KeyError(f"no particle or optics group gives {name}")
            out = np.where(np.isnan(out), float(fallback), out)
        return out

    def _optics_values(self, name: str) -> np.ndarray:
        assert self.optics is not None
        values = _numeric(self.optics[name], name)
        if "rlnOpticsGroup" in self.particles.columns and "rlnOpticsGroup" in self.optics.columns:
            lookup = dict(zip(self.optics["rlnOpticsGroup"].astype(int), values))
            groups = self.particles["rlnOpticsGroup"].astype(int).to_numpy()
            missing = sorted(set(groups) - set(lookup))
            if missing:
                raise ValueError(f"particles use optics groups {missing} that are not in data_optics")
            return np.array([lookup[g] for g in groups], np.float64)
        if len(values) != 1:
            raise ValueError(f"{len(values)} optics groups but the particles have no rlnOpticsGroup column")
        return np.full(len(self), values[0])

    def subset(self, index: Any) -> "ParticleTable":
        """The table of the particles at ``index`` (integer array or boolean mask), same optics."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return ParticleTable(self.particles.iloc[idx], self.optics, self.source_dir)


def _resolve_stack(stack: str, star_dir: str) -> Optional[str]:
    """The file a STAR file in ``star_dir`` means by the stack path ``stack`` (None: none exists):
    an absolute path; else relative to the STAR file's directory, then (RELION's own convention)
    to the working directory, its project directory."""
    if os.path.isabs(stack):
        return stack if os.path.isfile(stack) else None
    for candidate in (os.path.join(star_dir, stack), stack):
        if os.path.isfile(candidate):
            return candidate
    return None


def rebase_image_names(names: Sequence[str], from_dir: Optional[str], to_dir: str) -> list[str]:
    """``index@stack`` names, read from a STAR file in ``from_dir``, for a STAR file in ``to_dir``:
    a relative stack path that resolves in ``from_dir`` (:func:`_resolve_stack`) rewritten relative
    to ``to_dir``; other names as they are (absolute paths, paths relative to the working directory,
    missing files)."""
    if from_dir is None or os.path.abspath(from_dir) == os.path.abspath(to_dir):
        return [str(v) for v in names]
    out, done = [], {}
    for name in names:
        index, at, stack = str(name).strip().partition("@")
        if not at:
            index, stack = "", index
        if stack not in done:
            found = None if os.path.isabs(stack) else _resolve_stack(stack, from_dir)
            in_from_dir = found is not None and found != stack
            done[stack] = os.path.relpath(found, os.path.abspath(to_dir)) if found and in_from_dir else stack
        out.append(f"{index}{at}{done[stack]}")
    return out


def _numeric(col: Any, name: str) -> np.ndarray:
    try:
        return col.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"column {name} holds non-numeric values") from None



# --------------------------------------------------------------------------
# Reading STAR tables
# --------------------------------------------------------------------------


def _read_star_blocks(path: str) -> dict[str, Any]:
    import starfile

    if not os.path.exists(path):
        raise FileNotFoundError(f"STAR file {path!r} does not exist")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:
        raise ValueError(f"{path!r} is not a readable STAR file: {err}") from err
    return blocks


def _star_tables(path: str, blocks: dict[str, Any]) -> tuple[Any, Optional[Any]]:
    """(particles table, optics table or None) of a RELION 3.0 or 3.1 STAR file."""
    import pandas as pd

    tables = {}
    for name, block in blocks.items():
        if isinstance(block, dict):  # a one-row block written as key/value pairs
            block = pd.DataFrame({k: [v] for k, v in block.items()})
        tables[name] = block
    candidates = [n for n, t in tables.items() if "rlnImageName" in t.columns]
    if not candidates:
        found = "; ".join(f"data_{n}: {', '.join(map(str, t.columns[:8]))}" for n, t in tables.items())
        raise ValueError(
            f"STAR file {path!r} has no rlnImageName column, so it does not describe particle"
            f" images (found {found or 'no tables'}); expected a RELION particle file"
        )
    name = "particles" if "particles" in candidates else candidates[0]
    optics = tables.get("optics")
    return tables[name].reset_index(drop=True), optics


def _star_pixel_sizes(path: str, particles: Any, optics: Optional[Any]) -> np.ndarray:
    """Per-particle pixel size in Å (NaN where the file does not say)."""
    n = len(particles)
    apix = np.full(n, np.nan)
    if optics is not None and "rlnImagePixelSize" in optics.columns:
        sizes = optics["rlnImagePixelSize"].to_numpy(dtype=np.float64)
        if "rlnOpticsGroup" in particles.columns and "rlnOpticsGroup" in optics.columns:
            lookup = dict(zip(optics["rlnOpticsGroup"].astype(int), sizes))
            groups = particles["rlnOpticsGroup"].astype(int).to_numpy()
            missing = sorted(set(groups) - set(lookup))
            if missing:
                raise ValueError(
                    f"STAR file {path!r}: particles use optics groups {missing} that are not in data_optics"
                )
            apix = np.array([lookup[g] for g in groups], dtype=np.float64)
        elif len(sizes) == 1:
            apix[:] = sizes[0]
        else:
            raise ValueError(
                f"STAR file {path!r} has {len(sizes)} optics groups but its particles have no rlnOpticsGroup column"
            )
    elif "rlnImagePixelSize" in particles.columns:
        apix = particles["rlnImagePixelSize"].to_numpy(dtype=np.float64)
    elif "rlnDetectorPixelSize" in particles.columns and "rlnMagnification" in particles.columns:
        det = particles["rlnDetectorPixelSize"].to_numpy(dtype=np.float64)
        mag = particles["rlnMagnification"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            apix = np.where(mag > 0, det * 1e4 / mag, np.nan)
    apix = np.where(np.isfinite(apix) & (apix > 0), apix, np.nan)
    return apix


def _common_pixel_size(path: str, apix: np.ndarray) -> Optional[float]:
    known = apix[np.isfinite(apix)]
    if known.size == 0:
        return None
    lo, hi = float(known.min()), float(known.max())
    if hi - lo > 1e-6 * hi:
        raise ValueError(
            f"STAR file {path!r} mixes pixel sizes from {lo:g} to {hi:g} Å; cryocore needs one pixel size"
            " for all particles (split the file by optics group)"
        )
    if known.size != apix.size:
        raise ValueError(f"STAR file {path!r} gives a pixel size for some particles but not for others")
    return float(known[0])


# --------------------------------------------------------------------------
# Per-particle results: STAR and CSV
# --------------------------------------------------------------------------


@dataclass
class _Poses:
    image_names: list[str]
    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    accepted: np.ndarray
    half: np.ndarray


def _check_poses(
    image_names: Sequence[str],
    shifts: Any,
    angles: Any,
    scores: Any,
    accepted: Any,
    half: Any,
) -> _Poses:
    if isinstance(image_names, (str, bytes)):
        raise TypeError("image_names must be a sequence of strings, one per particle, not a single string")
    names = [str(v) for v in image_names]
    n = len(names)
    if n == 0:
        raise ValueError("no particles to write: image_names is empty")
    bad = [v for v in names if not v or any(c.isspace() for c in v)]
    if bad:
        raise ValueError(f"image names must be non-empty and contain no whitespace, got {bad[0]!r}")

    def real(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
        a = np.asarray(x)
        if a.dtype == bool:
            a = a.astype(np.float64)
        if a.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
        a = a.astype(np.float64)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for {n} particles, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinity")
        return a

    s = real(shifts, "shifts", (n, 2))
    ang = real(angles, "angles", (n,))
    sc = real(scores, "scores", (n,))
    acc = real(accepted, "accepted", (n,))
    if not np.isin(acc, (0, 1)).all():
        raise ValueError("accepted must be booleans (or 0/1), one per particle")
    h = real(half, "half", (n,))
    if not np.isin(h, (1, 2)).all():
        raise ValueError(f"half must be 1 or 2 for every particle (RELION's rlnRandomSubset), got values {np.unique(h)[:6]}")
    return _Poses(names, s, ang, sc, acc.astype(bool), h.astype(np.int64))


def _fmt(x: float) -> str:
    """Shortest text that reads back as exactly the same float64."""
    return repr(float(x))


def _angle_mod(a: np.ndarray) -> np.ndarray:
    out = np.mod(a, 360.0)
    return np.where(out >= 360.0, 0.0, out)  # np.mod(-1e-20, 360) rounds to 360


def write_particles_star(
    path: PathLike,
    *,
    image_names: Sequence[str],
    shifts: np.ndarray,
    angles: np.ndarray,
    scores: np.ndarray,
    accepted: np.ndarray,
    half: np.ndarray,
    pixel_size_A: Optional[float],
    image_size: Union[int, Sequence[int]],
    classes: Optional[np.ndarray] = None,
    table: Optional[ParticleTable] = None,
    overwrite: bool = False,
) -> None:
    """Write per-particle poses as a RELION 3.1 particle STAR file, atomically.

    ``data_particles`` has one row per particle, in input order, rejected
    ones included. With ``table`` (the input's :class:`ParticleTable`), every
    input column comes first, values unchanged (CTF, micrograph, coordinates...),
    and its optics groups form ``data_optics``; without it ``data_optics`` has one
    group (rlnOpticsGroup 1, 'opticsGroup1', rlnImagePixelSize, rlnImageSize,
    rlnImageDimensionality 2). cryocore's own columns are set (replacing the
    input's): rlnImageName, rlnOpticsGroup (kept when given),
    rlnOriginXAngst = -dx * pixel_size_A, rlnOriginYAngst = -dy * pixel_size_A
    (and rlnOriginX/Y in px when the input had them), rlnAngleRot = rlnAngleTilt
    = 0 unless the input gives them, rlnAnglePsi = (-psi) mod 360,
    rlnRandomSubset, rlnClassNumber, rlnCryocoreScore, rlnCryocoreAccepted
    (1/0), rlnMaxValueProbDistribution = clip(score, 0, 1). Numbers are
    written with enough digits to read back exactly.

    Parameters
    ----------
    path : str or path-like
    image_names : sequence of N str
        ``index@stack`` references (``ParticleStack.image_names``).
    shifts : array (N, 2)
        ``(dy, dx)`` in pixels, cryocore's pose convention.
    angles : array (N,)
        ``psi`` in degrees, cryocore's pose convention.
    scores : array (N,)
        Pearson scores.
    accepted : array (N,) of bool
        Whether each particle went into the average.
    half : array (N,) of int
        Half-set, 1 or 2.
    pixel_size_A : float or None
        Pixel size in Å. **None writes 1.0** (so origins in Å equal pixels).
    image_size : int or (ny, nx)
        Box size in pixels; RELION boxes are square, so a pair must have ny == nx.
    classes : array (N,) of int, optional
        Class of each particle, 1..K (default: all 1).
    table : ParticleTable, optional
        The input's table (N rows): its columns are kept.
    overwrite : bool
        Replace an existing file (default: FileExistsError).
    """
    import pandas as pd

    p = _check_overwrite(path, overwrite)
    poses = _check_poses(image_names, shifts, angles, scores, accepted, half)
    n = len(poses.image_names)
    cls = np.ones(n, np.int64) if classes is None else _check_classes(classes, n)
    apix = 1.0 if pixel_size_A is None else float(pixel_size_A)
    if not (math.isfinite(apix) and apix > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å or None, got {pixel_size_A!r}")
    box = _square_box(image_size)
    if table is not None and len(table) != n:
        raise ValueError(f"table has {len(table)} particles but {n} poses are given")

    if table is not None:
        particles = _exact_columns(table.particles)
        optics = None if table.optics is None else _exact_columns(table.optics)
    else:
        particles, optics = pd.DataFrame(index=range(n)), None
    if optics is None:
        optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"]})
    for name, value in (("rlnImagePixelSize", _fmt(apix)), ("rlnImageSize", box), ("rlnImageDimensionality", 2)):
        if name not in optics.columns:
            optics[name] = value
    dy, dx = poses.shifts[:, 0], poses.shifts[:, 1]
    ours: dict[str, Any] = {"rlnImageName": rebase_image_names(
        poses.image_names, None if table is None else table.source_dir, os.path.dirname(os.path.abspath(p)))}
    if "rlnOpticsGroup" not in particles.columns:
        ours["rlnOpticsGroup"] = np.full(n, int(optics["rlnOpticsGroup"].iloc[0]), np.int64)
    ours["rlnOriginXAngst"] = [_fmt(v) for v in -dx * apix]
    ours["rlnOriginYAngst"] = [_fmt(v) for v in -dy * apix]
    if "rlnOriginX" in particles.columns or "rlnOriginY" in particles.columns:  # RELION 3.0 offsets, px
        ours["rlnOriginX"] = [_fmt(v) for v in -dx]
        ours["rlnOriginY"] = [_fmt(v) for v in -dy]
    for name in ("rlnAngleRot", "rlnAngleTilt"):
        if name not in particles.columns:
            ours[name] = [_fmt(0.0)] * n
    ours.update({
        "rlnAnglePsi": [_fmt(v) for v in _angle_mod(-poses.angles)],
        "rlnRandomSubset": poses.half,
        "rlnClassNumber": cls,
        "rlnCryocoreScore": [_fmt(v) for v in poses.scores],
        "rlnCryocoreAccepted": poses.accepted.astype(np.int64),
        "rlnMaxValueProbDistribution": [_fmt(v) for v in np.clip(poses.scores, 0.0, 1.0)],
    })
    for name, values in ours.items():
        particles[name] = values
    _write_star(p, {"optics": optics, "particles": particles})


def _write_star(path: str, blocks: dict) -> None:
    """STAR tables (name -> DataFrame) written atomically, each marked with RELION 3.1's version
    comment."""
    from starfile.writer import StarWriter

    text = StarWriter(blocks).to_string()
    for name in blocks:
        text = text.replace(f"data_{name}\n", f"# version 30001\n\ndata_{name}\n", 1)
    with atomic_write(path, "w", newline="\n") as f:
        f.write(text)


def write_star_table(path: PathLike, table: ParticleTable, *, overwrite: bool = False) -> None:
    """Write a particle table as a RELION 3.1 STAR file (``data_optics`` when it has optics groups,
    ``data_particles``), every column and value as they are, atomically."""

    p = _check_overwrite(path, overwrite)
    blocks = {"particles": _exact_columns(table.particles)}
    blocks["particles"]["rlnImageName"] = rebase_image_names(table.image_names, table.source_dir,
                                                             os.path.dirname(os.path.abspath(p)))
    if table.optics is not None:
        blocks = {"optics": _exact_columns(table.optics), **blocks}
    _write_star(p, blocks)


def write_model_star(path: PathLike, *, classes_file: str, distribution: np.ndarray, accuracy_rotations_deg: np.ndarray,
                     accuracy_translations_A: np.ndarray, resolution_A: np.ndarray, particles: np.ndarray,
                     overwrite: bool = False) -> None:
    """Write RELION's ``model.star`` class table, atomically: ``data_model_classes`` with one row per
    class k (1..K): rlnReferenceImage ``k@classes_file``, rlnClassDistribution (fraction of the
    accepted particles), rlnAccuracyRotations (degrees), rlnAccuracyTranslationsAngst,
    rlnEstimatedResolution (Å, the class's half-set FRC 0.143; 999 when unknown, as RELION writes
    for an empty class) and rlnCryocoreParticles (accepted particles)."""
    import pandas as pd

    p = _check_overwrite(path, overwrite)
    k = len(distribution)
    res = np.where(np.isfinite(resolution_A), resolution_A, 999.0)
    table = pd.DataFrame({
        "rlnReferenceImage": [f"{i + 1:06d}@{classes_file}" for i in range(k)],
        "rlnClassDistribution": [_fmt(v) for v in distribution],
        "rlnAccuracyRotations": [_fmt(v) for v in np.where(np.isfinite(accuracy_rotations_deg),
                                                          accuracy_rotations_deg, 999.0)],
        "rlnAccuracyTranslationsAngst": [_fmt(v) for v in np.where(np.isfinite(accuracy_translations_A),
                                                                  accuracy_translations_A, 999.0)],
        "rlnEstimatedResolution": [_fmt(v) for v in res],
        "rlnCryocoreParticles": np.asarray(particles, np.int64),
    })
    general = pd.DataFrame({"rlnNrClasses": [k], "rlnReferenceDimensionality": [2]})
    _write_star(p, {"model_general": general, "model_classes": table})


def _exact_columns(df: Any) -> Any:
    """A copy whose float columns are text that reads back as exactly the same float64."""
    out = df.copy().reset_index(drop=True)
    for name in out.columns:
        if out[name].dtype.kind == "f":
            out[name] = [_fmt(v) for v in out[name].to_numpy()]
    return out


def _square_box(image_size: Union[int, Sequence[int]]) -> int:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        box = int(image_size)
    else:
        try:
            sy, sx = (int(v) for v in image_size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(f"image_size must be an int or a pair (ny, nx), got {image_size!r}") from None
        if sy != sx:
            raise ValueError(
                f"RELION STAR files describe square boxes; got image_size {sy} x {sx}"
                " (write the results as CSV with write_particles_csv instead)"
            )
        box = sy
    if box < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size!r}")
    return box


def _check_classes(classes: Any, n: int) -> np.ndarray:
    c = np.asarray(classes)
    if c.shape != (n,) or c.dtype.kind not in "iu" or (c < 1).any():
        raise ValueError(f"classes must be {n} integers >= 1 (RELION's rlnClassNumber), got shape {c.shape}")
    return c.astype(np.int64)


def read_particles_star(path: PathLike) -> dict[str, Any]:
    """Per-particle poses of a RELION particle STAR file, in cryocore's convention.

    Reads files written by :func:`write_particles_star` exactly, and RELION
    3.0 / 3.1 particle files: offsets from ``rlnOriginXAngst`` /
    ``rlnOriginYAngst`` (Å, divided by each particle's pixel size) or, in
    older files, ``rlnOriginX`` / ``rlnOriginY`` (pixels). Only the in-plane
    angle ``rlnAnglePsi`` is read: ``rlnAngleRot`` / ``rlnAngleTilt`` are
    ignored (cryocore's poses are 2D; its own files have them at 0).

    Returns
    -------
    dict with
        image_names : list of N str, verbatim rlnImageName entries.
        shifts : ndarray (N, 2) float64, ``(dy, dx)`` in pixels:
            ``dx = -rlnOriginX`` (px), ``dy = -rlnOriginY``.
        angles : ndarray (N,) float64, ``psi = (-rlnAnglePsi) mod 360`` degrees.
        scores : ndarray (N,) float64, rlnCryocoreScore (NaN if absent).
        accepted : ndarray (N,) bool, rlnCryocoreAccepted (all True if absent).
        half : ndarray (N,) int64, rlnRandomSubset (0 if absent).
        classes : ndarray (N,) int64, rlnClassNumber (1 if absent).
        pixel_size_A : float or None (from data_optics, or the 3.0 columns).
        table : ParticleTable, every column of the file.
    """
    p = os.fspath(path)
    particles, optics = _star_tables(p, _read_star_blocks(p))
    n = len(particles)
    apix_each = _star_pixel_sizes(p, particles, optics)
    apix = _common_pixel_size(p, apix_each) if n else None

    def col(name: str, default: float) -> np.ndarray:
        if name not in particles.columns:
            return np.full(n, default, dtype=np.float64)
        try:
            return particles[name].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"STAR file {p!r}: column {name} holds non-numeric values") from None

    cols = set(particles.columns)
    if {"rlnOriginXAngst", "rlnOriginYAngst"} & cols:
        if not np.isfinite(apix_each).all():
            raise ValueError(
                f"STAR file {p!r} gives offsets in Å (rlnOriginXAngst/YAngst) but no pixel size"
                " (rlnImagePixelSize in data_optics) to convert them to pixels"
            )
        ox = col("rlnOriginXAngst", 0.0) / apix_each
        oy = col("rlnOriginYAngst", 0.0) / apix_each
    else:
        ox = col("rlnOriginX", 0.0)
        oy = col("rlnOriginY", 0.0)
    shifts = np.stack([-oy, -ox], axis=1) + 0.0  # + 0.0: no negative zeros
    angles = _angle_mod(-col("rlnAnglePsi", 0.0)) + 0.0
    accepted = col("rlnCryocoreAccepted", 1.0) != 0
    half = col("rlnRandomSubset", 0.0).astype(np.int64)
    return {
        "image_names": [str(v) for v in particles["rlnImageName"].tolist()],
        "shifts": shifts,
        "angles": angles,
        "scores": col("rlnCryocoreScore", np.nan),
        "accepted": accepted,
        "half": half,
        "classes": col("rlnClassNumber", 1.0).astype(np.int64),
        "pixel_size_A": apix,
        "table": ParticleTable(particles, optics, os.path.dirname(os.path.abspath(os.fspath(path)))),
    }


def write_particles_csv(
    path: PathLike,
    *,
    image_names: Sequence[str],
    shifts: np.ndarray,
    angles: np.ndarray,
    scores: np.ndarray,
    accepted: np.ndarray,
    half: np.ndarray,
    classes: Optional[np.ndarray] = None,
    overwrite: bool = False,
) -> None:
    """Write per-particle poses as CSV in cryocore's own convention, atomically.

    Columns: ``image_name, dy_px, dx_px, psi_deg, score, accepted, half, class``:
    one row per particle in input order; shifts in pixels and ``psi`` in
    degrees exactly as cryocore reports them (no RELION sign flips),
    ``accepted`` 1/0, ``half`` 1/2, ``class`` 1..K. Arguments as for
    :func:`write_particles_star`.
    """
    p = _check_overwrite(path, overwrite)
    poses = _check_poses(image_names, shifts, angles, scores, accepted, half)
    n = len(poses.image_names)
    cls = np.ones(n, np.int64) if classes is None else _check_classes(classes, n)
    angles_out = _angle_mod(poses.angles)
    with atomic_write(p, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for i, name in enumerate(poses.image_names):
            w.writerow([
                name, _fmt(poses.shifts[i, 0]), _fmt(poses.shifts[i, 1]), _fmt(angles_out[i]),
                _fmt(poses.scores[i]), int(poses.accepted[i]), int(poses.half[i]), int(cls[i]),
            ])


def read_particles_csv(path: PathLike) -> dict[str, Any]:
    """Read a file written by :func:`write_particles_csv`.

    Returns
    -------
    dict with image_names (list of N str), shifts (N, 2) ``(dy, dx)`` px,
    angles (N,) degrees, scores (N,), accepted (N,) bool, half (N,) int64,
    classes (N,) int64 (all 1 in files written before classes existed).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"CSV file {p!r} does not exist")
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] not in (CSV_COLUMNS, CSV_COLUMNS[:-1]):
        raise ValueError(f"{p!r} is not a cryocore particle CSV: expected the header {','.join(CSV_COLUMNS)}")
    body = rows[1:]
    try:
        return {
            "image_names": [r[0] for r in body],
            "shifts": np.array([[float(r[1]), float(r[2])] for r in body], np.float64).reshape(-1, 2),
            "angles": np.array([float(r[3]) for r in body], np.float64),
            "scores": np.array([float(r[4]) for r in body], np.float64),
            "accepted": np.array([int(r[5]) != 0 for r in body], bool),
            "half": np.array([int(r[6]) for r in body], np.int64),
            "classes": np.array([int(r[7]) if len(rows[0]) > 7 else 1 for r in body], np.int64),
        }
    except (IndexError, ValueError) as err:
        raise ValueError(f"{p!r}: malformed row in particle CSV ({err})") from err
