"""Fourier ring correlation between two images (half-set averages)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._validate import as_image

__all__ = ["FRC", "frc", "soft_circular_mask"]


@dataclass(frozen=True)
class FRC:
    """Fourier ring correlation of two images.

    Attributes
    ----------
    frequencies : ndarray (R,)
        Ring centres in cycles per pixel (0 .. 0.5), ring width ``1/n`` for an
        ``n``-pixel box (the smaller side for a rectangular one).
    values : ndarray (R,)
        ``Re sum(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2)`` per ring.
    ssnr : ndarray (R,)
        Spectral SNR of the average of both images, ``2 FRC / (1 - FRC)``
        (clipped to >= 0), for half-set averages of independent noise.
    counts : ndarray (R,) int
        Fourier pixels per ring.
    pixel_size_A : float or None
    """

    frequencies: np.ndarray
    values: np.ndarray
    ssnr: np.ndarray
    counts: np.ndarray
    pixel_size_A: Optional[float] = None

    def crossing(self, level: float) -> float:
        """First frequency (cycles/px) where the FRC falls below ``level``.

        Linear interpolation between the last ring at or above ``level`` and the
        first below it, from the first non-zero ring on. Returns the highest
        ring frequency when the FRC never falls below ``level``, and 0 when it
        starts below it.
        """
        v, f = self.values, self.frequencies
        for i in range(1, len(v)):
            if v[i] < level:
                if i == 1 and v[0] < level:
                    return 0.0
                a, b = v[i - 1], v[i]
                t = (a - level) / (a - b) if a != b else 0.0
                return float(f[i - 1] + t * (f[i] - f[i - 1]))
        return float(f[-1])

    @property
    def resolution_0143(self) -> float:
        """Frequency (cycles/px) of the 0.143 crossing (half-set criterion)."""
        return self.crossing(0.143)

    @property
    def resolution_05(self) -> float:
        """Frequency (cycles/px) of the 0.5 crossing."""
        return self.crossing(0.5)

    def resolution_A(self, level: float = 0.143) -> Optional[float]:
        """Resolution in Å at the crossing of ``level`` (``pixel_size_A / k``), None without a pixel size."""
        if self.pixel_size_A is None:
            return None
        k = self.crossing(level)
        return float("inf") if k <= 0 else float(self.pixel_size_A / k)


def soft_circular_mask(shape: tuple[int, int], radius: float, edge: float = 4.0) -> np.ndarray:
    """1 inside ``radius`` px of the centre ``(ny//2, nx//2)``, a raised-cosine fall to 0 over ``edge`` px."""
    ny, nx = shape
    y = np.arange(ny) - ny // 2
    x = np.arange(nx) - nx // 2
    r = np.hypot(y[:, None], x[None, :])
    if edge <= 0:
        return (r <= radius).astype(np.float64)
    t = np.clip((r - radius) / edge, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


@functools.lru_cache(maxsize=16)
def _rings(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the half spectrum of an (ny, nx) image: the mask of entries on the rings
    0 .. min(ny, nx)//2, their ring numbers and weights, and the Fourier pixels per
    ring (cached per shape, read-only)."""
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f = np.hypot(fy, fx)
    n = min(ny, nx)
    ring = np.rint(f * n).astype(np.intp)
    # Columns other than 0 and Nyquist stand for two Fourier pixels (k and -k).
    w = np.full(fx.shape, 2.0)
    w[0, 0] = 1.0
    if nx % 2 == 0:
        w[0, -1] = 1.0
    w = np.broadcast_to(w, f.shape)
    n_rings = n // 2 + 1
    keep = ring < n_rings
    r = ring[keep]
    ww = w[keep]
    counts = np.bincount(r, weights=ww, minlength=n_rings).astype(np.int64)
    for x in (keep, r, ww, counts):
        x.setflags(write=False)
    return keep, r, ww, counts


def frc(
    a: np.ndarray,
    b: np.ndarray,
    *,
    mask_radius: Optional[float] = None,
    mask_edge: float = 4.0,
    pixel_size_A: Optional[float] = None,
) -> FRC:
    """Fourier ring correlation of two images of the same shape.

    Parameters
    ----------
    a, b : array (ny, nx)
    mask_radius : float, optional
        Multiply both images by a soft circular mask of this radius (pixels)
        first, with a raised-cosine edge of ``mask_edge`` pixels.
    pixel_size_A : float, optional
        Pixel size in Å, for :meth:`FRC.resolution_A`.
    """
    a = as_image(a, "a", float64=True)
    b = as_image(b, "b", float64=True)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if pixel_size_A is not None and not (np.isfinite(pixel_size_A) and pixel_size_A > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    ny, nx = a.shape
    if mask_radius is not None:
        if not mask_radius > 0:
            raise ValueError(f"mask_radius must be > 0 pixels, got {mask_radius!r}")
        m = soft_circular_mask(a.shape, float(mask_radius), mask_edge)
        a = a * m
        b = b * m
    return frc_of_spectra(np.fft.rfft2(a), np.fft.rfft2(b), (ny, nx), pixel_size_A=pixel_size_A)


def frc_of_spectra(
    fa: np.ndarray, fb: np.ndarray, shape: tuple[int, int], *, pixel_size_A: Optional[float] = None
) -> FRC:
    """:func:`frc` from the images' half spectra (``numpy.fft.rfft2`` layout,
    ``(ny, nx//2+1)``) and their real-space ``shape``, without masking. The
    FRC does not depend on the spectra's scales, so unnormalised sums will do.
    Stacks ``(..., ny, nx//2+1)`` give one FRC pooled over the stack: each
    ring's cross and power terms summed over all pairs (e.g. over classes)."""
    ny, nx = (int(v) for v in shape)
    if fa.shape[-2:] != (ny, nx // 2 + 1) or fb.shape != fa.shape:
        raise ValueError(f"spectra must have shape {(ny, nx // 2 + 1)} for images of shape {(ny, nx)}, "
                         f"got {fa.shape} and {fb.shape}")
    n = min(ny, nx)
    n_rings = n // 2 + 1
    keep, r, ww, counts = _rings(ny, nx)
    fa, fb = fa[..., keep], fb[..., keep]
    if fa.ndim > 1:  # pooled: ring numbers and weights repeat for every image of the stack
        k = fa.size // keep.sum()
        fa, fb = fa.reshape(-1), fb.reshape(-1)
        r, ww = np.tile(r, k), np.tile(ww, k)
    cross = np.bincount(r, weights=ww * (fa * np.conj(fb)).real, minlength=n_rings)
    pa = np.bincount(r, weights=ww * (fa.real**2 + fa.imag**2), minlength=n_rings)
    pb = np.bincount(r, weights=ww * (fb.real**2 + fb.imag**2), minlength=n_rings)
    denom = np.sqrt(pa * pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), 0.0)
        v = np.clip(values, -1.0, 0.999999)
        ssnr = np.maximum(2.0 * v / (1.0 - v), 0.0)
    freqs = np.arange(n_rings) / n
    return FRC(freqs, values, ssnr, counts.copy(), None if pixel_size_A is None else float(pixel_size_A))
