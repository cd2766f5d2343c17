"""Applying poses to images."""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _core
from ._validate import as_images, as_pairs, as_real_array, as_threads

__all__ = ["shift", "rotate", "transform"]


def shift(images: np.ndarray, shifts: np.ndarray, *, threads: Optional[int] = None) -> np.ndarray:
    """Move images by sub-pixel shifts, exactly, in Fourier space.

    ``out[i](y, x) = images[i](y - dy_i, x - dx_i)``: a positive shift moves the
    content to larger indices (the pose convention). Interpolation is
    band-limited (a phase ramp on the spectrum), so the shift is circular. For
    even sizes the Nyquist row/column has no sign and is multiplied by
    ``cos(pi d)`` (so that the result stays real): ``shift(shift(a, s), -s)``
    returns ``a`` up to float32 rounding for odd sizes, and for even sizes
    when ``a`` has no content at the Nyquist frequency.

    Parameters
    ----------
    images : array, shape (N, ny, nx) or (ny, nx)
    shifts : array, shape (N, 2) or (2,)
        ``(dy, dx)`` in pixels.

    Returns
    -------
    ndarray, float32, the shape of ``images``.
    """
    imgs, single = as_images(images, "images")
    s = as_pairs(shifts, imgs.shape[0], "shifts")
    out = _core.shift_stack(imgs, s, threads=as_threads(threads))
    return out[0] if single else out


def _angles(angles: object, n: int) -> np.ndarray:
    a = as_real_array(angles, "angles").astype(np.float64, copy=False)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"angles must have shape ({n},) for {n} images (degrees), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("angles contains NaN or infinity")
    return np.ascontiguousarray(a)


def transform(
    images: npt.ArrayLike,
    angles: npt.ArrayLike,
    shifts: Optional[npt.ArrayLike] = None,
    *,
    inverse: bool = False,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Apply poses: rotate each image by ``angles`` (degrees) about its centre, then shift it.

    The forward model of CONVENTIONS.md, ``out(x') = in(Rot(-psi) (x' - d))`` with
    ``x'`` relative to the centre ``(ny // 2, nx // 2)``; a positive angle turns
    the x axis towards the y axis (counter-clockwise with ``origin="lower"``).
    ``inverse=True`` applies the inverse pose, ``out(x') = in(Rot(psi) x' + d)``,
    which brings images made by the forward pose back onto their reference.
    One Keys bicubic interpolation (a = -0.5); samples from outside the box are 0.

    Parameters
    ----------
    images : array (N, ny, nx) or (ny, nx)
    angles : array (N,) or scalar, degrees
    shifts : array (N, 2) or (2,), optional
        ``(dy, dx)`` in pixels.

    Returns
    -------
    ndarray float32, the shape of ``images``.
    """
    imgs, single = as_images(images, "images")
    n = imgs.shape[0]
    a = _angles(angles, n)
    s = None if shifts is None else as_pairs(shifts, n, "shifts")
    out = _core.transform_stack(imgs, a, s, inverse=bool(inverse), threads=as_threads(threads))
    return out[0] if single else out


def rotate(images: npt.ArrayLike, angles: npt.ArrayLike, *, threads: Optional[int] = None) -> np.ndarray:
    """Rotate images by ``angles`` (degrees) about their centre ``(ny // 2, nx // 2)``.

    ``transform(images, angles)``: a positive angle turns x towards y; for an odd
    box, 90 degrees is ``numpy.rot90(image, k=-1)`` exactly.
    """
    return transform(images, angles, None, threads=threads)
