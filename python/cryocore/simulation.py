"""Seeded synthetic particle stacks with known poses (the report's data set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Simulation", "simulate", "make_template"]


@dataclass(frozen=True)
class Simulation:
    """A simulated stack and its ground truth (pose convention of CONVENTIONS.md).

    Attributes
    ----------
    images : ndarray (N, n, n) float32
        Noisy images: the template rotated by ``angles``, shifted by ``shifts``,
        blurred by a Gaussian PSF and with white Gaussian noise added.
    shifts : ndarray (N, 2) float64
        True ``(dy, dx)`` of each image, in pixels.
    angles : ndarray (N,) float64
        True in-plane angle ``psi`` in degrees, in [0, 360) (all 0 without rotation).
    template : ndarray (n, n) float32
        The noise-free, unblurred particle at the zero pose.
    psf_sigmas : ndarray (N,) float64
        Standard deviation of each image's Gaussian PSF, in pixels.
    noise_sigma : ndarray (N,) float64
        Standard deviation of each image's noise (0 when ``snr`` is infinite).
    snr : float
        Signal variance over noise variance of each image.
    """

    images: np.ndarray
    shifts: np.ndarray
    angles: np.ndarray
    template: np.ndarray
    psf_sigmas: np.ndarray
    noise_sigma: np.ndarray
    snr: float


# The particle, in units of the box size, drawn so that it has no rotational
# symmetry and no mirror symmetry: a ring with an uneven density around it,
# an off-centre core, an elongated bar, a small dense knob and an outer arm.
#   ring: radius, width, angular modulation (amp, phase) for k = 1, 2, 3
_RING = (0.22, 0.035, ((0.35, 0.6), (0.15, 2.0), (0.20, 1.0)))
#   Gaussians: (x, y, sigma_major, sigma_minor, angle_deg, amplitude)
_BLOBS = (
    (0.07, -0.05, 0.055, 0.040, 20.0, 1.1),
    (-0.10, 0.09, 0.11, 0.022, 35.0, 0.7),
    (-0.19, -0.16, 0.016, 0.016, 0.0, 1.4),
    (0.29, 0.11, 0.045, 0.022, -50.0, 0.9),
)


def _particle(u: np.ndarray, v: np.ndarray, size: int) -> np.ndarray:
    """Density of the particle at relative coordinates (u = x', v = y') in pixels."""
    s = float(size)
    r0, w, modes = _RING
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    mod = 1.0
    for k, (amp, ph) in enumerate(modes, start=1):
        mod = mod + amp * np.cos(k * theta - ph)
    out = mod * np.exp(-0.5 * ((r - r0 * s) / (w * s)) ** 2)
    for x0, y0, sa, sb, ang, amp in _BLOBS:
        c, sn = math.cos(math.radians(ang)), math.sin(math.radians(ang))
        du, dv = u - x0 * s, v - y0 * s
        a = (c * du + sn * dv) / (sa * s)
        b = (-sn * du + c * dv) / (sb * s)
        out = out + amp * np.exp(-0.5 * (a * a + b * b))
    return out


def _grid(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(ny, dtype=np.float64) - ny // 2
    x = np.arange(nx, dtype=np.float64) - nx // 2
    return y[:, None], x[None, :]


def make_template(size: int = 128) -> np.ndarray:
    """The noise-free particle at the zero pose, ``(size, size)`` float32."""
    y, x = _grid(size, size)
    return _particle(x + 0 * y, y + 0 * x, size).astype(np.float32)


def render(size: int, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The particle posed exactly (analytic, no interpolation): (N, size, size) float64.

    ``image(y', x') = R(Rot(-psi) (x' - dx, y' - dy))``: rotate by psi, then shift.
    """
    y, x = _grid(size, size)
    a = np.radians(np.asarray(angles, np.float64))[:, None, None]
    X = x[None] - np.asarray(shifts)[:, 1, None, None]
    Y = y[None] - np.asarray(shifts)[:, 0, None, None]
    c, s = np.cos(a), np.sin(a)
    return _particle(c * X + s * Y, -s * X + c * Y, size)


def _blur(images: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    ny, nx = images.shape[1:]
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f2 = (fy * fy + fx * fx)[None]
    otf = np.exp(-2.0 * np.pi**2 * sigmas[:, None, None] ** 2 * f2)
    return np.fft.irfft2(np.fft.rfft2(images) * otf, s=(ny, nx))


def simulate(
    n_images: int = 500,
    size: int = 128,
    snr: float = 0.1,
    max_shift: float = 10.0,
    rotate: bool = True,
    psf_sigma: tuple[float, float] = (0.5, 1.5),
    seed: Optional[int] = 0,
) -> Simulation:
    """Simulate noisy projections of a ring-shaped particle with known poses.

    Each image is the particle (see :func:`make_template`) rotated by a random
    angle in [0, 360) (``rotate=True``), shifted by ``(dy, dx)`` drawn
    uniformly in ``[-max_shift, max_shift]`` pixels (sub-pixel), blurred by a
    Gaussian PSF whose sigma is drawn uniformly from ``psf_sigma`` (pixels),
    and given white Gaussian noise whose variance is the image's signal
    variance divided by ``snr`` (``snr=inf``: no noise). The particle is
    evaluated analytically at each pose, so the ground truth is exact.

    Returns a :class:`Simulation`; the same ``seed`` gives the same stack.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(f"size must be an integer >= 32 pixels, got {size!r}")
    snr = float(snr)
    if not snr > 0:
        raise ValueError(f"snr must be > 0 (signal variance / noise variance; inf for no noise), got {snr!r}")
    max_shift = float(max_shift)
    if not 0 <= max_shift <= size / 4:
        raise ValueError(f"max_shift must be in [0, size/4 = {size / 4:g}] pixels, got {max_shift!r}")
    lo, hi = (float(v) for v in psf_sigma)
    if not 0 <= lo <= hi:
        raise ValueError(f"psf_sigma must be (low, high) with 0 <= low <= high pixels, got {psf_sigma!r}")

    rng = np.random.default_rng(seed)
    n = int(n_images)
    shifts = rng.uniform(-max_shift, max_shift, size=(n, 2))
    angles = rng.uniform(0.0, 360.0, size=n) if rotate else np.zeros(n)
    sigmas = rng.uniform(lo, hi, size=n)
    images = np.empty((n, size, size), np.float32)
    noise_sigma = np.zeros(n)
    chunk = max(1, (1 << 22) // (size * size))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        clean = _blur(render(size, angles[sl], shifts[sl]), sigmas[sl])
        if math.isfinite(snr):
            noise_sigma[sl] = np.sqrt(clean.var(axis=(1, 2)) / snr)
            clean += rng.standard_normal(clean.shape) * noise_sigma[sl, None, None]
        images[sl] = clean
    return Simulation(
        images=images,
        shifts=shifts,
        angles=angles,
        template=make_template(size),
        psf_sigmas=sigmas,
        noise_sigma=noise_sigma,
        snr=snr,
    )
