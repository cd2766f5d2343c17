"""Argument checks shared by the public functions.

Every public function converts its array arguments here, once, to C-contiguous
float32 (or float64 for poses), and raises ``TypeError``/``ValueError`` with
a message that names the argument, what it got and what it expects.
"""

from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

MIN_SIZE = 8
MAX_THREADS = 1024


def describe(a: np.ndarray) -> str:
    return f"shape {tuple(a.shape)} and dtype {a.dtype}"


def as_real_array(x: object, name: str) -> np.ndarray:
    """``x`` as an ndarray of a real numeric dtype (no copy if it already is one)."""
    a = np.asarray(x)
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        kind = "complex" if np.issubdtype(a.dtype, np.complexfloating) else str(a.dtype)
        raise TypeError(
            f"{name} must be a real numeric array (integer or float), got dtype {kind}"
            f" (shape {tuple(a.shape)})"
        )
    return a


def to_float32(a: np.ndarray, name: str) -> np.ndarray:
    """Contiguous float32 copy (or view); values beyond float32's range are an error, not inf."""
    if a.dtype == np.float32 and a.flags.c_contiguous:
        return a
    with np.errstate(over="raise", invalid="raise"):
        try:
            return np.ascontiguousarray(a, dtype=np.float32)
        except FloatingPointError:
            big = ~(np.abs(a) <= np.finfo(np.float32).max)  # also NaN
            where = ""
            if a.ndim == 3:
                where = f" (image {int(np.flatnonzero(big.reshape(len(a), -1).any(axis=1))[0])})"
            raise ValueError(
                f"{name}{where} holds NaN or values beyond the float32 range (|x| > 3.4e38); "
                "cryocore computes in float32"
            ) from None


def as_images(x: object, name: str = "images", *, allow_2d: bool = True) -> tuple[np.ndarray, bool]:
    """A stack ``(n, ny, nx)`` as contiguous float32, and whether a single 2D image was given.

    NaN/inf are checked by the compiled core, image by image (while it copies
    each image, or on each image's spectrum, which any non-finite pixel makes
    non-finite); a separate numpy pass would cost a third of a registration.
    """
    a = as_real_array(x, name)
    single = a.ndim == 2
    if single and allow_2d:
        a = a[None]
    if a.ndim != 3:
        expected = "a 2D image (ny, nx) or a 3D stack (n, ny, nx)" if allow_2d else "a 3D stack (n, ny, nx)"
        raise ValueError(f"{name} must be {expected}, got {describe(np.asarray(x))}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is an empty stack ({describe(a)}); at least one image is needed")
    if a.shape[1] < MIN_SIZE or a.shape[2] < MIN_SIZE:
        raise ValueError(
            f"{name}: each image must be at least {MIN_SIZE} x {MIN_SIZE} pixels, got {describe(a)}"
        )
    return to_float32(a, name), single


def as_image(x: object, name: str, *, float64: bool = False) -> np.ndarray:
    """One 2D image ``(ny, nx)`` as contiguous float32 (float64 with ``float64``), checked finite."""
    a = as_real_array(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2D image (ny, nx), got {describe(a)}")
    if a.shape[0] < MIN_SIZE or a.shape[1] < MIN_SIZE:
        raise ValueError(f"{name} must be at least {MIN_SIZE} x {MIN_SIZE} pixels, got {describe(a)}")
    a = np.ascontiguousarray(a, np.float64) if float64 else to_float32(a, name)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity; all pixel values must be finite")
    return a


def as_pairs(x: object, n: int, name: str) -> np.ndarray:
    """``(n, 2)`` finite float64 pairs such as shifts ``(dy, dx)``; ``(2,)`` is accepted when n == 1."""
    a = as_real_array(x, name).astype(np.float64, copy=False)
    if a.shape == (2,) and n == 1:
        a = a[None]
    if a.shape != (n, 2):
        raise ValueError(f"{name} must have shape ({n}, 2) for {n} images, got {describe(a)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.ascontiguousarray(a)


def as_weights(x: object, n: int, name: str = "weights") -> np.ndarray:
    a = as_real_array(x, name).astype(np.float64, copy=False)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) for {n} images, got {describe(a)}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return np.ascontiguousarray(a)


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def as_threads(threads: Optional[int]) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an integer or None, got {threads!r}")
    if not 1 <= int(threads) <= MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {MAX_THREADS} (or None for all cores), got {threads}")
    return int(threads)


def as_pixel_size(x: object, name: str = "pixel_size_A") -> float:
    """A pixel size: a finite positive number of Å."""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of Å, got {x!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number of Å, got {x!r}")
    return v


def as_edge(x: object, name: str = "filter_edge") -> float:
    """A filter edge width in cycles per pixel, in [0, 0.25]."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of cycles per pixel in [0, 0.25], got {x!r}")
    v = float(x)
    if not 0.0 <= v <= 0.25:
        raise ValueError(f"{name} must be in [0, 0.25] cycles per pixel, got {x!r}")
    return v


def as_frequency(x: Optional[float], name: str, *, upper: float = 0.5) -> Optional[float]:
    """A spatial frequency in cycles per pixel, in (0, upper], or None."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of cycles per pixel or None, got {x!r}") from None
    if not (0.0 < f <= upper):
        raise ValueError(f"{name} must be in (0, {upper}] cycles per pixel, got {x!r}")
    return f


def as_positive_int(x: object, name: str, *, low: int = 1, high: Optional[int] = None) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {x!r}")
    v = int(x)
    if v < low or (high is not None and v > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer in {rng}, got {v}")
    return v
