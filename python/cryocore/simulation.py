"""Seeded synthetic particle stacks with known poses (the report's data set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .ctf import CtfParameters

__all__ = ["Simulation", "simulate", "make_template", "project", "view_rotations"]


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
        The noise-free, unblurred particle at the zero pose (with ``templates``:
        the first of them).
    psf_sigmas : ndarray (N,) float64
        Standard deviation of each image's Gaussian PSF, in pixels.
    noise_sigma : ndarray (N,) float64
        Standard deviation of each image's noise (0 when ``snr`` is infinite).
    snr : float
        Signal variance over noise variance of each image.
    classes : ndarray (N,) int, optional
        With ``templates``: which template (1..K) each image shows; 0 for junk (``junk_fraction``).
    templates : ndarray (K, n, n) float32, optional
        The templates given to :func:`simulate`.
    ctf : CtfParameters, optional
        With ``ctf=True``: each image's CTF parameters (RELION's units).
    pixel_size_A : float
        Å per pixel (what the CTF was computed with).
    """

    images: np.ndarray
    shifts: np.ndarray
    angles: np.ndarray
    template: np.ndarray
    psf_sigmas: np.ndarray
    noise_sigma: np.ndarray
    snr: float
    classes: Optional[np.ndarray] = None
    templates: Optional[np.ndarray] = None
    ctf: Optional[CtfParameters] = None
    pixel_size_A: float = 1.0


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


def make_views(k: int, size: int = 128, seed: Optional[int] = 0) -> np.ndarray:
    """K distinct, asymmetric synthetic particles (K, size, size) float32, unit standard deviation:
    each a cluster of 14 Gaussian blobs of random sizes and weights within a third of the box
    (licence-free stand-ins for views of a molecule, for demos and tests of classification)."""
    rng = np.random.default_rng(seed)
    y, x = _grid(size, size)
    out = np.zeros((int(k), size, size))
    for i in range(int(k)):
        for _ in range(14):
            r = 0.3 * size * np.sqrt(rng.uniform())
            t = rng.uniform(0.0, 2.0 * np.pi)
            w = rng.uniform(0.025, 0.06) * size
            out[i] += rng.uniform(0.5, 1.0) * np.exp(-((x - r * np.cos(t)) ** 2 + (y - r * np.sin(t)) ** 2) / (2 * w * w))
        out[i] /= out[i].std()
    return out.astype(np.float32)


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


def pose_images(template: np.ndarray, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """A sampled template posed by bilinear interpolation: (N, ny, nx) float64 (zero outside).

    ``image(y', x') = T(Rot(-psi) (x' - dx, y' - dy))``: rotate by psi, then shift,
    about the centre (ny // 2, nx // 2). Written with numpy alone, so that the
    simulated poses do not rely on cryocore's own transforms.
    """
    t = np.asarray(template, np.float64)
    ny, nx = t.shape
    y, x = _grid(ny, nx)
    a = np.radians(np.asarray(angles, np.float64))[:, None, None]
    X = x[None] - np.asarray(shifts)[:, 1, None, None]
    Y = y[None] - np.asarray(shifts)[:, 0, None, None]
    c, s = np.cos(a), np.sin(a)
    u = c * X + s * Y + nx // 2  # source column
    v = -s * X + c * Y + ny // 2  # source row
    u0, v0 = np.floor(u).astype(np.intp), np.floor(v).astype(np.intp)
    fu, fv = u - u0, v - v0
    padded = np.zeros((ny + 2, nx + 2))
    padded[1:-1, 1:-1] = t

    def at(r: np.ndarray, q: np.ndarray) -> np.ndarray:
        return padded[np.clip(r + 1, 0, ny + 1), np.clip(q + 1, 0, nx + 1)]

    return ((1 - fv) * ((1 - fu) * at(v0, u0) + fu * at(v0, u0 + 1))
            + fv * ((1 - fu) * at(v0 + 1, u0) + fu * at(v0 + 1, u0 + 1)))


def view_rotations(n: int, seed: Optional[int] = 0) -> np.ndarray:
    """``n`` rotation matrices (n, 3, 3) whose viewing directions (third rows) spread
    evenly over a hemisphere (a Fibonacci lattice), each with a seeded random spin:
    distinct views of a molecule for :func:`project`."""
    rng = np.random.default_rng(seed)
    k = np.arange(n) + 0.5
    z = 1.0 - k / n  # a hemisphere: a view and its opposite are mirror images
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    d = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], axis=1)
    out = np.empty((n, 3, 3))
    for i in range(n):
        a = np.cross(d[i], [0.0, 0.0, 1.0] if abs(d[i, 2]) < 0.9 else [1.0, 0.0, 0.0])
        a /= np.linalg.norm(a)
        b = np.cross(d[i], a)
        spin = rng.uniform(0, 2 * math.pi)
        a, b = math.cos(spin) * a + math.sin(spin) * b, -math.sin(spin) * a + math.cos(spin) * b
        out[i] = np.stack([a, b, d[i]])
    return out


def project(volume: np.ndarray, rotation: np.ndarray, size: Optional[int] = None) -> np.ndarray:
    """Projection (size, size) float64 of a cubic ``volume`` (z, y, x) along the third row of
    ``rotation`` (3, 3): the line integral over ``w`` of ``V(u a + v b + w d)`` about the
    volume's centre, by trilinear interpolation; ``size`` defaults to the volume's."""
    vol = np.asarray(volume, np.float64)
    n = vol.shape[0]
    if vol.shape != (n, n, n):
        raise ValueError(f"volume must be a cube (n, n, n), got {vol.shape}")
    size = n if size is None else int(size)
    c = n // 2
    u = np.arange(size) - size // 2
    w = np.arange(n) - c
    a, b, d = np.asarray(rotation, np.float64)
    # points (v, u, w) -> xyz = u a + v b + w d, then volume index (z, y, x)
    pts = (u[None, :, None, None] * a + u[:, None, None, None] * b + w[None, None, :, None] * d) + c
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    x0, y0, z0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp), np.floor(z).astype(np.intp)
    fx, fy, fz = x - x0, y - y0, z - z0
    padded = np.zeros((n + 2, n + 2, n + 2))
    padded[1:-1, 1:-1, 1:-1] = vol
    out = np.zeros(x.shape)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                wgt = (fz if dz else 1 - fz) * (fy if dy else 1 - fy) * (fx if dx else 1 - fx)
                zz = np.clip(z0 + dz + 1, 0, n + 1)
                yy = np.clip(y0 + dy + 1, 0, n + 1)
                xx = np.clip(x0 + dx + 1, 0, n + 1)
                out += wgt * padded[zz, yy, xx]
    return out.sum(axis=2)


def _blur(images: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    ny, nx = images.shape[1:]
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f2 = (fy * fy + fx * fx)[None]
    otf = np.exp(-2.0 * np.pi**2 * sigmas[:, None, None] ** 2 * f2)
    return np.fft.irfft2(np.fft.rfft2(images) * otf, s=(ny, nx))


def _draw_ctfs(rng: np.random.Generator, n: int, defocus_range_A: tuple[float, float], astigmatism_A: float,
               bfactor_A2: float) -> CtfParameters:
    """n CTFs: defocus U uniform in the range, V up to ``astigmatism_A`` less, random astigmatism angle."""
    lo_d, hi_d = (float(v) for v in defocus_range_A)
    if not (0 < lo_d <= hi_d and math.isfinite(hi_d)):
        raise ValueError(f"defocus_range_A must be (low, high) with 0 < low <= high Å, got {defocus_range_A!r}")
    du = rng.uniform(lo_d, hi_d, n)
    return CtfParameters.from_arrays(n, dict(
        defocus_u_A=du, defocus_v_A=du - rng.uniform(0.0, float(astigmatism_A), n),
        defocus_angle_deg=rng.uniform(0.0, 180.0, n), bfactor_A2=float(bfactor_A2)))


def _add_junk(images: np.ndarray, classes: np.ndarray, noise_sigma: np.ndarray, fraction: float, snr: float,
              rng: np.random.Generator) -> None:
    """Replace ``fraction`` of the images, in place, by junk of class 0: every other one pure noise,
    the others a cluster of 3-7 Gaussian blobs (ice, aggregates) as strong as a particle, both at
    the images' noise level."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"junk_fraction must be in [0, 1), got {fraction!r}")
    n, size = images.shape[0], images.shape[1]
    picked = np.sort(rng.choice(n, int(round(fraction * n)), replace=False))
    y, x = np.mgrid[:size, :size]
    for j, i in enumerate(picked):
        sigma = float(noise_sigma[i])
        strength = sigma * math.sqrt(snr) if sigma > 0 else float(images[i].std())
        junk = np.zeros((size, size))
        if j % 2:
            for _ in range(int(rng.integers(3, 8))):
                cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2)
                r = rng.uniform(0.02, 0.08) * size
                junk += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
            junk *= strength / max(float(junk.std()), 1e-12)
        images[i] = junk + rng.standard_normal((size, size)) * sigma
        classes[i] = 0


def simulate(
    n_images: int = 500,
    size: int = 128,
    snr: float = 0.1,
    max_shift: float = 10.0,
    rotate: bool = True,
    psf_sigma: tuple[float, float] = (0.5, 1.5),
    seed: Optional[int] = 0,
    templates: Optional[np.ndarray] = None,
    ctf: bool = False,
    defocus_range_A: tuple[float, float] = (8000.0, 25000.0),
    astigmatism_A: float = 200.0,
    bfactor_A2: float = 0.0,
    pixel_size_A: float = 1.0,
    junk_fraction: float = 0.0,
) -> Simulation:
    """Simulate noisy projections of a ring-shaped particle with known poses.

    Each image is the particle (see :func:`make_template`) rotated by a random
    angle in [0, 360) (``rotate=True``), shifted by ``(dy, dx)`` drawn
    uniformly in ``[-max_shift, max_shift]`` pixels (sub-pixel), blurred by a
    Gaussian PSF whose sigma is drawn uniformly from ``psf_sigma`` (pixels),
    and given white Gaussian noise whose variance is the image's signal
    variance divided by ``snr`` (``snr=inf``: no noise). The particle is
    evaluated analytically at each pose, so the ground truth is exact.

    ``templates`` (K, size, size): images of K particles instead, each image
    showing a template drawn at random (``Simulation.classes``, 1..K), posed
    by bilinear interpolation (:func:`pose_images`).

    ``junk_fraction``: that fraction of the images replaced by junk (``Simulation.classes`` 0):
    every other one pure noise, the others clusters of Gaussian blobs, at the same noise level.

    ``ctf=True``: instead of the Gaussian PSF, each posed image is filtered by
    its CTF (RELION's convention, :func:`cryocore.ctf`; 300 kV, Cs 2.7 mm,
    Q0 0.1) at ``pixel_size_A``: defocus U drawn uniformly from
    ``defocus_range_A`` (Å), V up to ``astigmatism_A`` less, astigmatism angle
    uniform in [0, 180), B-factor ``bfactor_A2``; ``Simulation.ctf`` holds them.

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

    if templates is not None:
        templates = np.asarray(templates, np.float64)
        if templates.ndim != 3 or templates.shape[1:] != (size, size) or not np.isfinite(templates).all():
            raise ValueError(f"templates must be finite images (K, {size}, {size}), got shape {templates.shape}")
    pixel_size_A = float(pixel_size_A)
    if not (math.isfinite(pixel_size_A) and pixel_size_A > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    rng = np.random.default_rng(seed)
    n = int(n_images)
    classes = None if templates is None else rng.integers(1, len(templates) + 1, size=n)
    params = _draw_ctfs(rng, n, defocus_range_A, astigmatism_A, bfactor_A2) if ctf else None
    shifts = rng.uniform(-max_shift, max_shift, size=(n, 2))
    angles = rng.uniform(0.0, 360.0, size=n) if rotate else np.zeros(n)
    sigmas = rng.uniform(lo, hi, size=n)
    images = np.empty((n, size, size), np.float32)
    noise_sigma = np.zeros(n)
    chunk = max(1, (1 << 22) // (size * size))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        if templates is None or classes is None:
            posed = render(size, angles[sl], shifts[sl])
        else:
            posed = np.empty((sl.stop - sl.start, size, size))
            for k in np.unique(classes[sl]):
                m = classes[sl] == k
                posed[m] = pose_images(templates[k - 1], angles[sl][m], shifts[sl][m])
        if params is None:
            clean = _blur(posed, sigmas[sl])
        else:
            spec = np.fft.rfft2(posed)
            for j, i in enumerate(range(sl.start, sl.stop)):
                spec[j] *= params.image(i, (size, size), pixel_size_A)
            clean = np.fft.irfft2(spec, s=(size, size))
        if math.isfinite(snr):
            noise_sigma[sl] = np.sqrt(clean.var(axis=(1, 2)) / snr)
            clean += rng.standard_normal(clean.shape) * noise_sigma[sl, None, None]
        images[sl] = clean
    if junk_fraction:
        if classes is None:
            classes = np.ones(n, np.int64)
        _add_junk(images, classes, noise_sigma, float(junk_fraction), snr, rng)
    return Simulation(
        images=images,
        shifts=shifts,
        angles=angles,
        template=make_template(size) if templates is None else templates[0].astype(np.float32),
        psf_sigmas=sigmas,
        noise_sigma=noise_sigma,
        snr=snr,
        classes=classes,
        templates=None if templates is None else templates.astype(np.float32),
        ctf=params,
        pixel_size_A=pixel_size_A,
    )
