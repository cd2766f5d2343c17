"""Figures and animations of alignment runs: numpy arrays in, files out.

Every function here draws on its own :class:`matplotlib.figure.Figure` with an
Agg canvas (no pyplot, no global figure registry, no display needed), so the
functions are safe to call from several threads at once and leak nothing.
Every file is written through :func:`cryocore.io.atomic_write`: it appears
complete or not at all, so a failure part-way leaves an existing file as it
was and no partial file behind.

Functions
---------
save_image_png    one image (ny, nx), gray, robust contrast, optional scale bar
plot_convergence  mean score, accepted fraction and pose change per iteration
plot_frc          Fourier ring correlation with the 0.143 and 0.5 crossings
plot_scores       histogram of Pearson scores, accepted vs rejected
write_gif         animated GIF of averages (T, ny, nx), one frame per average
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from .io.atomic import PathLike, atomic_write

__all__ = ["plot_convergence", "plot_frc", "plot_scores", "save_image_png", "write_gif"]

# Colours: one per half-set and one per accepted / rejected (colour-blind safe pair).
_HALF_COLOURS = {1: "tab:blue", 2: "tab:orange"}
# Different markers and dashes too, so that equal curves of both halves stay visible.
_HALF_STYLES = {1: dict(marker="o", linestyle="-"), 2: dict(marker="s", linestyle="--")}
_ACCEPTED_COLOUR = "tab:blue"
_REJECTED_COLOUR = "tab:orange"
_DPI = 120
# Pose changes below this are drawn at this value on the log axis.
_POSE_FLOOR_PX = 1e-3


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _save_figure(fig: Figure, path: PathLike) -> None:
    """Render ``fig`` as PNG to ``path`` atomically."""
    FigureCanvasAgg(fig)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=_DPI)


def _real_array(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {a.dtype} (shape {a.shape})")
    return a.astype(np.float64, copy=False)


def _check_image(x: object, name: str = "image") -> np.ndarray:
    a = _real_array(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2D image (ny, nx), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity; all pixel values must be finite")
    return a


def _check_pixel_size(pixel_size_A: Optional[float]) -> Optional[float]:
    if pixel_size_A is None:
        return None
    try:
        p = float(pixel_size_A)
    except (TypeError, ValueError):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}") from None
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    return p


def _finite_float(x: object, name: str) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def _contrast_limits(a: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentiles of ``a``, widened when the image is (nearly) constant."""
    lo, hi = (float(v) for v in np.percentile(a, [1.0, 99.0]))
    if not hi > lo:
        lo, hi = float(a.min()), float(a.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _nice_length(target: float) -> float:
    """Largest 1, 2 or 5 times a power of ten not above ``target`` (> 0)."""
    exp = math.floor(math.log10(target))
    for m in (5.0, 2.0, 1.0):
        v = m * 10.0**exp
        if v <= target * (1 + 1e-9):
            return v
    return 10.0**exp


def _format_A(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} Å"
    if value >= 10:
        return f"{value:.1f} Å"
    return f"{value:.2f} Å"


# --------------------------------------------------------------------------
# Image
# --------------------------------------------------------------------------


def save_image_png(
    path: PathLike,
    image: np.ndarray,
    *,
    title: Optional[str] = None,
    pixel_size_A: Optional[float] = None,
) -> None:
    """Save one image as a gray-scale PNG figure.

    Parameters
    ----------
    path : str or path-like
        Output file (PNG); written atomically.
    image : array (ny, nx)
        Real, finite pixel values. Shown with ``origin="upper"`` (row 0 at the
        top, as in every cryo-EM viewer), one screen pixel block per image
        pixel, gray colour map, contrast from the 1st to the 99th percentile.
    title : str, optional
        Figure title.
    pixel_size_A : float, optional
        Pixel size in Å; when given, a scale bar of a round length (1, 2 or
        5 times a power of ten Å, at most a quarter of the image width) is drawn
        in the lower left corner.

    Raises
    ------
    ValueError
        If ``image`` is not 2D, is empty or contains NaN/inf, or if
        ``pixel_size_A`` is not a positive number.
    """
    a = _check_image(image)
    pix = _check_pixel_size(pixel_size_A)
    ny, nx = a.shape
    vmin, vmax = _contrast_limits(a)

    width_in = 4.5
    height_in = width_in * ny / nx + (0.35 if title else 0.05)
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(a, cmap="gray", origin="upper", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(str(title))
    if pix is not None:
        length_A = _nice_length(nx * pix / 4.0)
        length_px = length_A / pix
        x0 = 0.05 * nx - 0.5
        y0 = (ny - 0.5) - 0.07 * ny  # near the bottom: rows grow downwards
        outline = [patheffects.withStroke(linewidth=3, foreground="black")]
        ax.plot([x0, x0 + length_px], [y0, y0], color="white", linewidth=3,
                solid_capstyle="butt", path_effects=outline)
        ax.text(x0 + length_px / 2, y0 - 0.025 * ny, f"{length_A:g} Å", color="white",
                ha="center", va="bottom", fontsize=10, fontweight="bold", path_effects=outline)
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(ny - 0.5, -0.5)
    _save_figure(fig, path)


def save_gallery_png(path: PathLike, images: np.ndarray, labels: Sequence[str], *, columns: int = 10,
                     title: Optional[str] = None) -> None:
    """Save images (K, ny, nx) as a gallery PNG, row by row, each with its label below it
    (e.g. a class's number, particle count and resolution); each image has its own contrast
    (1st to 99th percentile). Written atomically."""
    a = np.asarray(images, np.float64)
    if a.ndim != 3 or len(a) == 0 or not np.isfinite(a).all():
        raise ValueError(f"images must be a finite stack (K, ny, nx), got shape {a.shape}")
    if len(labels) != len(a):
        raise ValueError(f"need one label per image: {len(a)} images, {len(labels)} labels")
    k = len(a)
    cols = max(1, min(int(columns), k))
    rows = int(math.ceil(k / cols))
    fig = Figure(figsize=(1.5 * cols, 1.75 * rows + (0.4 if title else 0.0)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= k:
            continue
        vmin, vmax = _contrast_limits(a[i])
        ax.imshow(a[i], cmap="gray", origin="upper", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(str(labels[i]), fontsize=7)
    if title:
        fig.suptitle(str(title))
    _save_figure(fig, path)


# --------------------------------------------------------------------------
# Convergence
# --------------------------------------------------------------------------

_HISTORY_KEYS = ("iteration", "half", "mean_score", "accepted", "total", "pose_change")


def _check_history(history: Sequence[Mapping[str, object]]) -> dict[int, np.ndarray]:
    """Per half, a (k, 5) array of iteration, mean_score, accepted fraction, pose_change, total, sorted."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise ValueError(f"history must be a list of dicts, got {type(history).__name__}")
    if len(history) == 0:
        raise ValueError("history is empty; at least one (iteration, half) entry is needed")
    rows: dict[int, list[tuple[float, ...]]] = {1: [], 2: []}
    seen: set[tuple[int, int]] = set()
    for i, h in enumerate(history):
        if not isinstance(h, Mapping):
            raise ValueError(f"history[{i}] must be a dict, got {type(h).__name__}")
        missing = [k for k in _HISTORY_KEYS if k not in h]
        if missing:
            raise ValueError(f"history[{i}] lacks the key(s) {missing}; each entry needs {list(_HISTORY_KEYS)}")
        it = _finite_float(h["iteration"], f"history[{i}]['iteration']")
        if it != int(it) or it < 1:
            raise ValueError(f"history[{i}]['iteration'] must be an integer >= 1, got {h['iteration']!r}")
        half = _finite_float(h["half"], f"history[{i}]['half']")
        if half not in (1.0, 2.0):
            raise ValueError(f"history[{i}]['half'] must be 1 or 2, got {h['half']!r}")
        key = (int(it), int(half))
        if key in seen:
            raise ValueError(f"history has two entries for iteration {key[0]}, half {key[1]}")
        seen.add(key)
        score = _finite_float(h["mean_score"], f"history[{i}]['mean_score']")
        total = _finite_float(h["total"], f"history[{i}]['total']")
        accepted = _finite_float(h["accepted"], f"history[{i}]['accepted']")
        if total < 1 or total != int(total):
            raise ValueError(f"history[{i}]['total'] must be an integer >= 1, got {h['total']!r}")
        if not (0 <= accepted <= total) or accepted != int(accepted):
            raise ValueError(
                f"history[{i}]['accepted'] must be an integer from 0 to total={int(total)}, got {h['accepted']!r}"
            )
        try:
            change = float(h["pose_change"])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"history[{i}]['pose_change'] must be a number or NaN, got {h['pose_change']!r}") from None
        if math.isinf(change) or change < 0:
            raise ValueError(f"history[{i}]['pose_change'] must be >= 0 px or NaN, got {h['pose_change']!r}")
        rows[key[1]].append((float(key[0]), score, accepted / total, change, total))
    out = {}
    for half, r in rows.items():
        if r:
            arr = np.array(sorted(r), dtype=np.float64)
            out[half] = arr
    return out


def _label_235(y: float, _pos: object = None) -> str:
    """Tick label for minor log ticks: the value at 2, 3 and 5 times a power of ten, else none."""
    if not y > 0:
        return ""
    m = y / 10.0 ** math.floor(math.log10(y) + 1e-9)
    return f"{y:g}" if any(abs(m - k) < 1e-6 for k in (2.0, 3.0, 5.0)) else ""


def plot_convergence(path: PathLike, history: Sequence[Mapping[str, object]]) -> None:
    """Plot how an iterative alignment converged, per half-set.

    Parameters
    ----------
    path : str or path-like
        Output file (PNG); written atomically.
    history : list of dict, length >= 1
        One entry per (iteration, half) with keys

        ``iteration`` int >= 1, ``half`` 1 or 2, ``mean_score`` float (mean
        Pearson score), ``accepted`` int and ``total`` int >= 1 (images kept
        of those scored), ``pose_change`` float >= 0 (RMS change of the
        shifts in px since the previous iteration; NaN where there is none,
        as in the first iteration).

    The figure has stacked panels sharing the iteration axis: mean score;
    accepted fraction; and, when any pose change is known, the pose change
    on a log axis (values below 0.001 px are drawn at 0.001 px). Each panel
    has one line per half, labelled 'half 1' / 'half 2'.

    Raises
    ------
    ValueError
        If ``history`` is empty, an entry lacks a key, holds a value out of
        range, or an (iteration, half) pair repeats.
    """
    per_half = _check_history(history)
    have_change = any(np.isfinite(a[:, 3]).any() for a in per_half.values())
    n_panels = 3 if have_change else 2
    fig = Figure(figsize=(6.0, 2.0 + 1.9 * n_panels), layout="constrained")
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    for half, a in per_half.items():
        style = dict(color=_HALF_COLOURS[half], markersize=5, label=f"half {half}", **_HALF_STYLES[half])
        if half == 2:
            style.update(markerfacecolor="none")
        axes[0].plot(a[:, 0], a[:, 1], **style)
        axes[1].plot(a[:, 0], a[:, 2], **style)
        if have_change:
            change = np.where(np.isfinite(a[:, 3]), np.maximum(a[:, 3], _POSE_FLOOR_PX), np.nan)
            axes[2].plot(a[:, 0], change, **style)
    axes[0].set_ylabel("mean score")
    axes[1].set_ylabel("accepted fraction")
    axes[1].set_ylim(-0.03, 1.05)
    if have_change:
        ax = axes[2]
        ax.set_yscale("log")
        ax.set_ylabel("pose change (px, RMS)")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        known = np.concatenate([a[:, 3][np.isfinite(a[:, 3])] for a in per_half.values()])
        known = np.maximum(known, _POSE_FLOOR_PX)
        # Label the 2, 3 and 5 minor ticks too when the data span less than two decades.
        if known.max() / known.min() < 100:
            ax.yaxis.set_minor_formatter(FuncFormatter(_label_235))
        ax.grid(True, which="minor", alpha=0.15)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("iteration")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    iterations = np.concatenate([a[:, 0] for a in per_half.values()])
    lo, hi = float(iterations.min()), float(iterations.max())
    axes[-1].set_xlim(lo - 0.3, hi + 0.3)
    fig.suptitle("Convergence")
    _save_figure(fig, path)


# --------------------------------------------------------------------------
# FRC
# --------------------------------------------------------------------------


def _resolution_ticks(pix: float, f_lo: float, f_hi: float, max_ticks: int = 8) -> list[float]:
    """Round resolutions (Å) whose frequencies ``pix / d`` lie in (f_lo, f_hi], spaced apart on the axis.

    Rounder values (1, 2, 5 x 10^k) are placed first, then 3 and 4, then
    1.5, 2.5, 6 and 8, each only where it keeps a clear gap to those placed.
    """
    tiers = ((1.0, 2.0, 5.0), (3.0, 4.0), (1.5, 2.5, 6.0, 8.0))
    min_gap = (f_hi - f_lo) / (max_ticks + 1)
    chosen: list[float] = []
    for tier in tiers:
        candidates = [m * 10.0**e for e in range(-2, 7) for m in tier]
        for d in sorted(candidates):  # from high frequency down
            f = pix / d
            if f_lo < f <= f_hi * (1 + 1e-9) and all(abs(f - pix / c) >= min_gap for c in chosen):
                chosen.append(d)
    return sorted(chosen, reverse=True)


def plot_frc(
    path: PathLike,
    frequencies: np.ndarray,
    values: np.ndarray,
    *,
    pixel_size_A: Optional[float] = None,
    resolution_0143: Optional[float] = None,
    resolution_05: Optional[float] = None,
) -> None:
    """Plot a Fourier ring correlation curve.

    Parameters
    ----------
    path : str or path-like
        Output file (PNG); written atomically.
    frequencies : array (R,), R >= 2
        Ring frequencies in cycles per pixel (>= 0, non-decreasing), as
        :attr:`cryocore.frc.FRC.frequencies`.
    values : array (R,)
        FRC per ring, as :attr:`cryocore.frc.FRC.values`.
    pixel_size_A : float, optional
        Pixel size in Å. When given, a top axis shows the resolution
        ``pixel_size_A / f`` in Å at round values, and the crossings are
        also given in Å.
    resolution_0143, resolution_05 : float, optional
        Frequencies (cycles/px) where the FRC crosses 0.143 and 0.5, as
        :attr:`cryocore.frc.FRC.resolution_0143` / ``resolution_05``; each is
        marked by a vertical line with its value in the legend. 0 means the
        FRC starts below the level (said in the legend, no line).

    The y axis spans -0.2 to 1.05, with dashed lines at 0.143 and 0.5.

    Raises
    ------
    ValueError
        If the arrays are not 1D of the same length >= 2, not finite,
        frequencies are negative or decreasing, or a crossing or the pixel
        size is out of range.
    """
    f = _real_array(frequencies, "frequencies")
    v = _real_array(values, "values")
    if f.ndim != 1 or v.ndim != 1:
        raise ValueError(f"frequencies and values must be 1D (R,), got shapes {f.shape} and {v.shape}")
    if f.shape != v.shape:
        raise ValueError(f"frequencies and values must have the same length, got {f.shape[0]} and {v.shape[0]}")
    if f.shape[0] < 2:
        raise ValueError(f"an FRC curve needs at least 2 rings, got {f.shape[0]}")
    if not (np.isfinite(f).all() and np.isfinite(v).all()):
        raise ValueError("frequencies and values must be finite (no NaN or infinity)")
    if (f < 0).any() or (np.diff(f) < 0).any():
        raise ValueError("frequencies must be >= 0 and non-decreasing (cycles per pixel)")
    if not f[-1] > f[0]:
        raise ValueError("frequencies must span a range (first and last are equal)")
    pix = _check_pixel_size(pixel_size_A)
    crossings = []
    for level, res, colour in ((0.143, resolution_0143, "tab:red"), (0.5, resolution_05, "tab:green")):
        if res is None:
            continue
        k = _finite_float(res, f"resolution_{str(level).replace('.', '')}")
        if k < 0:
            raise ValueError(f"the {level} crossing must be a frequency >= 0 cycles/px, got {res!r}")
        crossings.append((level, k, colour))

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(f, v, color="black", linewidth=1.5, marker=".", markersize=4, label="FRC")
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    f_hi = float(f[-1])
    for level, _, colour in ((0.143, None, "tab:red"), (0.5, None, "tab:green")):
        ax.axhline(level, color=colour, linestyle="--", linewidth=1.0, alpha=0.8)
        # Labelled at the left, where a decaying FRC is still high above the lines.
        ax.text(0.01, level + 0.015, f"{level:g}", color=colour, ha="left", va="bottom",
                transform=ax.get_yaxis_transform(), fontsize=9)
    for level, k, colour in crossings:
        if k <= 0:
            ax.plot([], [], color=colour, linestyle=":", label=f"FRC = {level:g}: below from the start")
            continue
        text = f"FRC = {level:g} at {k:.3f} cycles/px"
        if pix is not None:
            text += f" ({_format_A(pix / k)})"
        ax.axvline(k, color=colour, linestyle=":", linewidth=1.5, label=text)
    ax.set_xlim(0.0, f_hi)
    ax.set_ylim(-0.2, 1.05)
    ax.set_xlabel("spatial frequency (cycles/px)")
    ax.set_ylabel("FRC")
    ax.grid(True, alpha=0.3)
    # Lower left: below the 0.143 line at low frequency, where a decaying FRC never is.
    ax.legend(loc="lower left", fontsize=8)
    if pix is not None:
        top = ax.twiny()
        top.set_xlim(ax.get_xlim())
        ticks = _resolution_ticks(pix, 0.0, f_hi)
        top.xaxis.set_major_locator(FixedLocator([pix / d for d in ticks]))
        top.set_xticklabels([f"{d:g}" for d in ticks])
        top.set_xlabel(f"resolution (Å), pixel size {pix:g} Å")
        fig.suptitle("Fourier ring correlation")
    else:
        ax.set_title("Fourier ring correlation")
    _save_figure(fig, path)


# --------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------


def plot_scores(
    path: PathLike,
    scores: np.ndarray,
    *,
    accepted: np.ndarray,
    threshold: Optional[float] = None,
    half: Optional[np.ndarray] = None,
) -> None:
    """Histogram of Pearson scores, accepted and rejected images stacked in two colours.

    Parameters
    ----------
    path : str or path-like
        Output file (PNG); written atomically.
    scores : array (N,), N >= 1
        Finite scores (e.g. :attr:`cryocore.Registration.scores`).
    accepted : array (N,) of bool (or 0/1)
        Which images were kept.
    threshold : float, optional
        Score cut-off; drawn as a vertical dashed line labelled with its value.
    half : array (N,) of 1 or 2, optional
        Half-set of each image; when given, one panel per half (same bins).

    The title reads "kept K of N" over all images (and per half in the
    panel titles).

    Raises
    ------
    ValueError
        If the arrays are not 1D of the same length >= 1, scores are not
        finite, ``accepted`` is not boolean, or ``half`` holds values other
        than 1 and 2.
    """
    s = _real_array(scores, "scores")
    if s.ndim != 1:
        raise ValueError(f"scores must be 1D (N,), got shape {s.shape}")
    n = s.shape[0]
    if n == 0:
        raise ValueError("scores is empty; at least one score is needed")
    if not np.isfinite(s).all():
        raise ValueError("scores contains NaN or infinity")
    acc_in = np.asarray(accepted)
    if acc_in.shape != (n,):
        raise ValueError(f"accepted must have shape ({n},) like scores, got {acc_in.shape}")
    if acc_in.dtype != bool:
        if not (np.issubdtype(acc_in.dtype, np.number) and np.isin(acc_in, (0, 1)).all()):
            raise ValueError(f"accepted must be boolean (or 0/1), got dtype {acc_in.dtype}")
    acc = acc_in.astype(bool)
    thr = None if threshold is None else _finite_float(threshold, "threshold")
    halves: Optional[np.ndarray] = None
    if half is not None:
        h = np.asarray(half)
        if h.shape != (n,):
            raise ValueError(f"half must have shape ({n},) like scores, got {h.shape}")
        if not (np.issubdtype(h.dtype, np.number) and np.isin(h, (1, 2)).all()):
            raise ValueError("half must hold only 1 and 2")
        halves = h.astype(np.int64)

    lo, hi = float(s.min()), float(s.max())
    if thr is not None:
        lo, hi = min(lo, thr), max(hi, thr)
    if not hi > lo:
        lo, hi = lo - 0.01, hi + 0.01
    # Freedman-Diaconis bin width (at least 10, at most 80 bins over the range),
    # with the threshold on a bin edge so that no bar mixes the two sides.
    q75, q25 = np.percentile(s, [75.0, 25.0])
    width = 2.0 * (q75 - q25) / n ** (1.0 / 3.0)
    span = hi - lo
    width = float(np.clip(width, span / 80.0, span / 10.0)) if width > 0 else span / 20.0
    origin = lo if thr is None else thr
    k0 = math.floor((lo - origin) / width + 1e-9)
    k1 = math.ceil((hi - origin) / width - 1e-9)
    if k1 <= k0:
        k1 = k0 + 1
    bins = origin + width * np.arange(k0, k1 + 1)

    groups = [(None, np.ones(n, bool))] if halves is None else [(1, halves == 1), (2, halves == 2)]
    fig = Figure(figsize=(5.5 * len(groups), 4.0), layout="constrained")
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for ax, (which, sel) in zip(axes, groups):
        ka, kr = s[sel & acc], s[sel & ~acc]
        ax.hist([ka, kr], bins=bins, stacked=True, color=[_ACCEPTED_COLOUR, _REJECTED_COLOUR],
                label=[f"accepted ({ka.size})", f"rejected ({kr.size})"], edgecolor="white", linewidth=0.4)
        if thr is not None:
            ax.axvline(thr, color="black", linestyle="--", linewidth=1.2, label=f"threshold {thr:.3g}")
        ax.set_xlabel("Pearson score")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        if which is not None:
            ax.set_title(f"half {which}: kept {ka.size} of {int(sel.sum())}")
    axes[0].set_ylabel("images")
    fig.suptitle(f"Scores: kept {int(acc.sum())} of {n}")
    _save_figure(fig, path)


# --------------------------------------------------------------------------
# GIF
# --------------------------------------------------------------------------


def _default_font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)  # Pillow >= 10.1 (scalable when FreeType is present)
    except TypeError:
        return ImageFont.load_default()


def write_gif(
    path: PathLike,
    frames: np.ndarray,
    *,
    fps: float = 5,
    labels: Optional[Sequence[str]] = None,
    size: int = 256,
) -> None:
    """Write averages as an animated gray-scale GIF that loops forever.

    Parameters
    ----------
    path : str or path-like
        Output file (GIF); written atomically.
    frames : array (T, ny, nx), T >= 1
        Finite images, e.g. the average after each iteration. Each frame is
        scaled to its own 1st–99th percentile, then resized (bilinear) so its
        longer side is ``size`` pixels, keeping the aspect ratio.
    fps : float
        Frames per second, > 0 (GIF stores delays in 1/100 s, so at most
        about 50 plays at the stated rate).
    labels : sequence of T str, optional
        Text drawn on each frame (e.g. "iteration 3", "200 images") in the
        upper left corner, white on a black box, in Pillow's default font.
    size : int
        Longer side of the output frames in pixels, >= 16.

    Pillow merges consecutive frames that are identical pixel for pixel into
    one frame shown for their summed time; frames with different labels or
    content always stay separate.

    Raises
    ------
    ValueError
        If ``frames`` is not 3D or is empty, contains NaN/inf, ``labels``
        does not have T entries, or ``fps``/``size`` is out of range.
    """
    a = _real_array(frames, "frames")
    if a.ndim != 3:
        hint = "; for one image pass image[None]" if a.ndim == 2 else ""
        raise ValueError(f"frames must be a stack (T, ny, nx), got shape {a.shape}{hint}")
    if 0 in a.shape:
        raise ValueError(f"frames is empty (shape {a.shape}); at least one frame of at least 1 x 1 is needed")
    if not np.isfinite(a).all():
        bad = int(np.nonzero(~np.isfinite(a).all(axis=(1, 2)))[0][0])
        raise ValueError(f"frames contains NaN or infinity (first in frame {bad})")
    t, ny, nx = a.shape
    rate = _finite_float(fps, "fps")
    if not rate > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    try:
        side = int(size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an integer number of pixels, got {size!r}") from None
    if side != size or side < 16:
        raise ValueError(f"size must be an integer >= 16 pixels, got {size!r}")
    if labels is not None:
        if isinstance(labels, str) or len(labels) != t:
            raise ValueError(f"labels must be a sequence of {t} strings (one per frame), got {labels!r}")
        labels = [str(x) for x in labels]

    if ny >= nx:
        out_h, out_w = side, max(1, round(side * nx / ny))
    else:
        out_h, out_w = max(1, round(side * ny / nx)), side
    font = _default_font(max(10, side // 16))
    images = []
    for i in range(t):
        lo, hi = _contrast_limits(a[i])
        u8 = np.clip(np.rint((a[i] - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
        im = Image.fromarray(u8).resize((out_w, out_h), Image.Resampling.BILINEAR)
        if labels is not None and labels[i]:
            draw = ImageDraw.Draw(im)
            pad = max(2, side // 64)
            left, top, right, bottom = draw.textbbox((pad * 2, pad * 2), labels[i], font=font)
            draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=0)
            draw.text((pad * 2, pad * 2), labels[i], fill=255, font=font)
        images.append(im)
    duration = max(10, int(round(1000.0 / rate)))
    with atomic_write(path, "wb") as f:
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
