"""Applying poses to images."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._validate import as_images, as_pairs, as_threads

__all__ = ["shift"]


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
