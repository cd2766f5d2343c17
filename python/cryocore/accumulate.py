"""Running weighted sums of aligned images."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._validate import as_images, as_pairs, as_threads, as_weights

__all__ = ["Accumulator"]


class Accumulator:
    """Weighted running mean and variance of images moved onto a reference.

    Each :meth:`add` moves the images back by their pose shifts (as returned
    by :func:`cryocore.register`) and adds them, weighted, into running sums
    held in float64, in place: no shifted copy of the stack is made. Sums
    are reduced in a fixed order, so results do not depend on ``threads``.
    Two accumulators of the same shape merge with ``+`` (for example the
    partial sums of workers on a cluster).

    Parameters
    ----------
    shape : (ny, nx)
        Image box.

    Attributes
    ----------
    sum : ndarray (ny, nx) float64
        ``sum_i w_i a_i`` over the aligned images ``a_i``.
    sum_sq : ndarray (ny, nx) float64
        ``sum_i w_i a_i**2``.
    weight : float
        ``sum_i w_i``.
    count : int
        Number of images added (including those with weight 0).
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        try:
            ny, nx = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise TypeError(f"shape must be a pair of integers (ny, nx), got {shape!r}") from None
        if ny < 8 or nx < 8:
            raise ValueError(f"shape must be at least (8, 8), got {shape!r}")
        self.shape = (ny, nx)
        self.sum = np.zeros(self.shape, np.float64)
        self.sum_sq = np.zeros(self.shape, np.float64)
        self.weight = 0.0
        self.count = 0

    def add(
        self,
        images: np.ndarray,
        shifts: Optional[np.ndarray] = None,
        weights: Optional[np.ndarray] = None,
        *,
        angles: Optional[np.ndarray] = None,
        threads: Optional[int] = None,
    ) -> "Accumulator":
        """Add images, each moved back by its shift and weighted.

        Parameters
        ----------
        images : array (N, ny, nx) or (ny, nx)
        shifts : array (N, 2), optional
            Pose shifts ``(dy, dx)``; image i is moved by ``(-dy, -dx)`` before
            it is added. None adds the images as they are.
        weights : array (N,) or scalar, optional
            Non-negative weights (default 1).
        angles : array (N,), optional
            In-plane angles psi (degrees) of the poses. With angles, each image is
            brought back by its whole pose, ``a(x') = image(Rot(psi) x' + d)``, in
            one bicubic interpolation (see :func:`cryocore.transform`); without,
            shifts are applied exactly in Fourier space.

        Returns self, so calls can be chained.
        """
        imgs, _ = as_images(images, "images")
        if imgs.shape[1:] != self.shape:
            raise ValueError(f"images have box {imgs.shape[1:]}, the accumulator {self.shape}")
        n = imgs.shape[0]
        s = None if shifts is None else as_pairs(shifts, n, "shifts")
        w = None if weights is None else as_weights(weights, n)
        a = None
        if angles is not None:
            from .transforms import _angles

            a = _angles(angles, n)
        # Sums go into fresh arrays first so that a failure (NaN in image 57)
        # leaves the accumulator as it was.
        add_sum = np.zeros(self.shape, np.float64)
        add_sq = np.zeros(self.shape, np.float64)
        _core.accumulate(imgs, s, w, add_sum, add_sq, threads=as_threads(threads), angles=a)
        self.sum += add_sum
        self.sum_sq += add_sq
        self.weight += float(n if w is None else w.sum())
        self.count += n
        return self

    def mean(self) -> np.ndarray:
        """Weighted mean ``sum / weight`` (ny, nx) float64; zeros while the weight is 0."""
        if self.weight <= 0:
            return np.zeros(self.shape, np.float64)
        return self.sum / self.weight

    def variance(self) -> np.ndarray:
        """Weighted per-pixel variance ``sum_sq / weight - mean**2`` (population form, >= 0)."""
        if self.weight <= 0:
            return np.zeros(self.shape, np.float64)
        m = self.sum / self.weight
        return np.maximum(self.sum_sq / self.weight - m * m, 0.0)

    def __add__(self, other: "Accumulator") -> "Accumulator":
        if not isinstance(other, Accumulator):
            return NotImplemented
        if other.shape != self.shape:
            raise ValueError(f"cannot merge accumulators of shapes {self.shape} and {other.shape}")
        out = Accumulator(self.shape)
        out.sum = self.sum + other.sum
        out.sum_sq = self.sum_sq + other.sum_sq
        out.weight = self.weight + other.weight
        out.count = self.count + other.count
        return out

    def __repr__(self) -> str:
        return f"Accumulator(shape={self.shape}, count={self.count}, weight={self.weight:g})"
