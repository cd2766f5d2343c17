"""Image geometry on spectra and poses: low-pass, centre of mass, phase ramps,
composing poses, bringing one average onto another."""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..frc import FRC, frc_of_spectra, soft_circular_mask

__all__ = ["centre_of_mass_offset", "rotate_vectors", "align_pair", "shift_spectrum", "half_resolution"]


@functools.lru_cache(maxsize=16)
def lowpass_filter(ny: int, nx: int, cutoff: float, edge: float) -> np.ndarray:
    """Raised-cosine low-pass (cycles/px) on the half spectrum (ny, nx//2+1); read-only, cached."""
    f = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    t = np.clip((f - (cutoff - edge / 2)) / edge, 0.0, 1.0)
    h = np.cos(0.5 * np.pi * t) ** 2
    h.setflags(write=False)
    return h


def lowpass_image(img: np.ndarray, cutoff: float, edge: float = 0.02) -> np.ndarray:
    """Raised-cosine low-pass (cycles/px) of one image, float64."""
    ny, nx = img.shape
    h = lowpass_filter(int(ny), int(nx), float(cutoff), float(edge))
    return np.fft.irfft2(np.fft.rfft2(img) * h, s=(ny, nx))


def centre_of_mass_offset(img: np.ndarray, lowpass: float = 0.1) -> np.ndarray:
    """Offset ``(dy, dx)`` in px of the image's centre of mass from the box centre.

    The mass is the energy of the low-passed image after removing the mean
    of its border, so that it does not depend on the contrast's sign.
    """
    img = np.asarray(img, np.float64)
    return centre_of_mass_of_spectrum(np.fft.rfft2(img), img.shape, lowpass)


def centre_of_mass_of_spectrum(spec: np.ndarray, shape: tuple[int, int], lowpass: float = 0.1) -> np.ndarray:
    """centre_of_mass_offset of the image with half spectrum ``spec`` (rfft2 layout)."""
    ny, nx = shape
    a = np.fft.irfft2(spec * lowpass_filter(int(ny), int(nx), float(lowpass), 0.02), s=(ny, nx))
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    w = (a - border.mean()) ** 2
    total = w.sum()
    if not total > 0:
        return np.zeros(2)
    ny, nx = a.shape
    y = np.arange(ny) - ny // 2
    x = np.arange(nx) - nx // 2
    return np.array([(w.sum(axis=1) * y).sum() / total, (w.sum(axis=0) * x).sum() / total])



def shift_spectrum(spec: np.ndarray, d: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Half spectrum (rfft2 layout) of the image moved by ``d = (dy, dx)`` px, in
    float64 (the phase ramp and Nyquist convention of :func:`cryocore.shift`)."""
    ny, nx = shape
    ey = np.exp(-2j * np.pi * np.fft.fftfreq(ny) * d[0])
    ex = np.exp(-2j * np.pi * np.fft.rfftfreq(nx) * d[1])
    if ny % 2 == 0:
        ey[ny // 2] = np.cos(np.pi * d[0])
    if nx % 2 == 0:
        ex[nx // 2] = np.cos(np.pi * d[1])
    return spec * ey[:, None] * ex[None, :]


def half_resolution(qa: np.ndarray, qb: np.ndarray, shape: tuple[int, int], mask_radius: Optional[float]) -> float:
    """FRC 0.143 crossing (cycles/px) expected for a half, from the half spectra of its two
    quarter averages, in any scale: (ny, nx//2+1), or (K, ny, nx//2+1) for K classes, whose
    rings are pooled (sums of the cross and power terms over the classes).

    The quarter-set FRC is corrected to the twice larger half set with the
    Rosenthal-Henderson relation ``FRC' = 2 FRC / (1 + FRC)``.
    """
    if mask_radius is not None:
        m = soft_circular_mask(shape, float(mask_radius))
        qa = np.fft.rfft2(np.fft.irfft2(qa, s=shape) * m)
        qb = np.fft.rfft2(np.fft.irfft2(qb, s=shape) * m)
    q = frc_of_spectra(qa, qb, shape)
    v = np.clip(q.values, -0.99, 1.0)
    corrected = FRC(q.frequencies, 2 * v / (1 + v), q.ssnr, q.counts)
    return corrected.resolution_0143


def rotate_vectors(v: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``Rot(psi) v`` for (dy, dx) vectors (N, 2) and angles (N,) in degrees (pose convention)."""
    a = np.radians(np.asarray(angles, np.float64))
    c, s = np.cos(a), np.sin(a)
    dy, dx = v[:, 0], v[:, 1]
    return np.stack([s * dx + c * dy, c * dx - s * dy], axis=1)


def align_pair(a1: np.ndarray, a2: np.ndarray, threads: int, rotate: bool = False,
               angular_step: float = 0.5) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Bring ``a2`` onto ``a1``: returns (a1, a2 moved, psi, t) with ``a2 = a1 rotated by psi, moved by t``."""
    from .kernel import fit_pair

    psi, t, moved = fit_pair(a1, a2, threads, rotate, angular_step)
    return np.asarray(a1, np.float64), moved.astype(np.float64), psi, t


def combine(a1: np.ndarray, a2: np.ndarray, n1: int, n2: int) -> np.ndarray:
    tot = n1 + n2
    return (n1 * a1 + n2 * a2) / tot if tot else 0.5 * (a1 + a2)

