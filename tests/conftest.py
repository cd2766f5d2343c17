"""Shared helpers for the cryocore test suite.

Everything here is an independent float64 numpy reference implementation of
what the compiled core computes, written from CONVENTIONS.md and the filter
formula in cpp/filters.cpp, so that the tests compare cryocore against
something that does not share its code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import cryocore

# Image boxes used throughout: even, odd, rectangular (both orientations,
# one of them with odd and even sides mixed).
SIZES = [(64, 64), (65, 65), (48, 80), (81, 50)]
SIZE_IDS = ["64x64", "65x65", "48x80", "81x50"]
DTYPES = [np.float32, np.float64, np.int16, np.uint8]


# --------------------------------------------------------------------------
# Random inputs
# --------------------------------------------------------------------------


def smooth_image(
    rng: np.random.Generator,
    shape: tuple[int, int],
    sigma_f: float = 0.08,
    n: Optional[int] = None,
) -> np.ndarray:
    """Band-limited random image(s), float64, zero mean and unit variance.

    White Gaussian noise multiplied in Fourier space by the Gaussian
    ``exp(-f^2 / (2 sigma_f^2))`` (f in cycles per pixel). With the default
    ``sigma_f = 0.08`` the Nyquist content is ~1e-9 of the peak, so shifts of
    these images are exactly invertible even for even sizes.
    """
    ny, nx = shape
    lead = () if n is None else (n,)
    noise = rng.standard_normal(lead + (ny, nx))
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    g = np.exp(-(fy**2 + fx**2) / (2.0 * sigma_f**2))
    out = np.fft.ifft2(np.fft.fft2(noise) * g).real
    out -= out.mean(axis=(-2, -1), keepdims=True)
    out /= out.std(axis=(-2, -1), keepdims=True)
    return out


def to_dtype(img: np.ndarray, dtype) -> np.ndarray:
    """Cast a float image to ``dtype``; integer types are rescaled to use their range.

    Returns the cast array; compare against ``cast.astype(np.float64)``.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return img.astype(dtype)
    lo, hi = float(img.min()), float(img.max())
    if dtype == np.uint8:
        scaled = (img - lo) / (hi - lo) * 250.0 + 2.0
    else:  # int16: signed, use a good part of the range
        scaled = img / max(abs(lo), abs(hi)) * 20000.0
    return np.round(scaled).astype(dtype)


# --------------------------------------------------------------------------
# Filters, shifts and correlation in numpy (float64)
# --------------------------------------------------------------------------


def _smooth_step(f: np.ndarray, a: float, w: float) -> np.ndarray:
    """Raised-cosine step of cpp/filters.cpp: 0 below a - w/2, 1 above a + w/2."""
    if w <= 0.0:
        return (f >= a).astype(np.float64)
    t = np.clip((f - (a - 0.5 * w)) / w, 0.0, 1.0)
    return np.sin(0.5 * np.pi * t) ** 2


def radial_frequency(shape: tuple[int, int]) -> np.ndarray:
    """|k| in cycles per pixel on the full (unshifted) spectrum."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    return np.sqrt(fy**2 + fx**2)


def bandpass(
    shape: tuple[int, int],
    lowpass: Optional[float] = None,
    highpass: Optional[float] = None,
    edge: float = 0.02,
) -> np.ndarray:
    """Amplitude H of cryocore's raised-cosine band-pass on the full spectrum."""
    f = radial_frequency(shape)
    h = np.ones(shape)
    if lowpass is not None:
        h *= 1.0 - _smooth_step(f, lowpass, edge)
    if highpass is not None:
        h *= _smooth_step(f, highpass, edge)
    return h


def fourier_shift(img: np.ndarray, shift, *, nyquist_cos: bool = True) -> np.ndarray:
    """Move ``img`` (ny, nx) by the pose shift (dy, dx): out[y, x] = img[y - dy, x - dx].

    Phase ramp ``exp(-2 pi i (ky dy / ny + kx dx / nx))`` on the full spectrum.
    For an even axis the Nyquist frequency has no sign; its factor is
    ``cos(pi d)`` (the Hermitian choice cryocore documents), which keeps the
    result real.
    """
    img = np.asarray(img, dtype=np.float64)
    ny, nx = img.shape
    dy, dx = (float(v) for v in shift)

    def axis(n: int, d: float) -> np.ndarray:
        k = np.fft.fftfreq(n) * n
        ph = np.exp(-2j * np.pi * k * d / n)
        if nyquist_cos and n % 2 == 0:
            ph[n // 2] = np.cos(np.pi * d)
        return ph

    F = np.fft.fft2(img) * axis(ny, dy)[:, None] * axis(nx, dx)[None, :]
    out = np.fft.ifft2(F)
    return out.real


def correlation_map(
    reference: np.ndarray,
    image: np.ndarray,
    lowpass: Optional[float] = None,
    highpass: Optional[float] = None,
    edge: float = 0.02,
) -> np.ndarray:
    """Normalised (Pearson) circular cross-correlation map, float64, numpy.fft layout.

    ``map[y, x]`` is the Pearson correlation between the filtered reference and
    the filtered image moved back by (y, x), i.e. ``image[(. + y), (. + x)]``.
    Means are removed by dropping the DC term; the band-pass H is applied to
    both images, hence H^2 in the product. Parseval turns the real-space
    Pearson sum into ``N * ifft2(F_I conj(F_R) H^2) / sqrt(sum|H F_I|^2 sum|H F_R|^2)``
    over the full spectrum.
    """
    r = np.asarray(reference, np.float64)
    a = np.asarray(image, np.float64)
    shape = r.shape
    h = bandpass(shape, lowpass, highpass, edge) if (lowpass or highpass) else np.ones(shape)
    fr = np.fft.fft2(r) * h
    fi = np.fft.fft2(a) * h
    fr[0, 0] = 0.0
    fi[0, 0] = 0.0
    er = np.sum(np.abs(fr) ** 2)
    ei = np.sum(np.abs(fi) ** 2)
    if er <= 0 or ei <= 0:
        return np.zeros(shape)
    return r.size * np.fft.ifft2(fi * np.conj(fr)).real / np.sqrt(er * ei)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Plain real-space Pearson correlation of two arrays (float64)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|."""
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(np.asarray(actual, np.float64) - expected)) / np.max(np.abs(expected)))


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


# Set CRYOCORE_TEST_SEED to run the whole suite on other random inputs.
_SALT = int(os.environ.get("CRYOCORE_TEST_SEED", "20240611"))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's node id: fresh per test, reproducible."""
    codes = np.frombuffer(request.node.nodeid.encode(), dtype=np.uint8).astype(np.uint64)
    weighted = int((codes * np.arange(1, codes.size + 1, dtype=np.uint64)).sum())
    return np.random.default_rng([weighted, len(request.node.nodeid), _SALT])


@pytest.fixture
def restore_planning():
    """Put FFTW's planning effort back to what it was after the test."""
    before = cryocore.get_planning()
    yield
    cryocore.set_planning(before)


DATA = Path(__file__).parent / "data"


def ribosome_views(n_views: int, size: int, seed: int = 0) -> np.ndarray:
    """``n_views`` distinct projections (n_views, size, size) of the 70S ribosome map
    (tests/data/volumes), each scaled to unit standard deviation."""
    from cryocore.simulation import project, view_rotations

    vol = np.load(DATA / "volumes" / "ribosome70S_65.npy")
    views = np.stack([project(vol, r, size) for r in view_rotations(n_views, seed=seed)])
    return views / views.std(axis=(1, 2), keepdims=True)


def purity(classes: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the good particles (truth > 0: their view) in the majority view of their class."""
    good = truth > 0
    hits = sum(np.bincount(truth[good & (classes == c)]).max() for c in np.unique(classes[good]))
    return hits / good.sum()
