"""Chunks of the stack, the memory budget, and the cache of the images' spectra.

A run reads its stack a chunk of consecutive images at a time. Each chunk
knows the half-set and quarter of its images; the spectra cache keeps, per
chunk and half, the images' spectra cropped to the low frequencies the
searches read, so that a translational iteration needs no read and no FFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Chunk", "MemoryPlan", "make_chunks", "plan_memory", "search_band", "band_extent"]

CHUNK = 1024  # most images read and processed at a time
MIN_CHUNK = 64
CACHE_BAND = 0.3  # cycles/px: the cached spectra are cropped to this band at first
CACHE_BAND_STEP = 0.05  # ... and re-cropped this much above the need when a search needs more
BAND_MARGIN = 0.1  # cycles/px summed above the search band while iterating
ROTATION_BYTES = 0.4  # prepared rotations of one reference, per angle, per Fourier pixel (measured, float32 spectra)


@dataclass(frozen=True)
class Chunk:
    """Images ``start .. stop-1`` of the stack.

    half : (n,) int8, 1 or 2, each image's half-set
    quarter : (n,) int8, 0 or 1, each image's quarter within its half
    """

    index: int
    start: int
    stop: int
    half: np.ndarray
    quarter: np.ndarray

    def __len__(self) -> int:
        return self.stop - self.start

    def of_half(self, h: int) -> np.ndarray:
        """Positions (in the chunk) of the images of half ``h`` (0 or 1)."""
        return np.flatnonzero(self.half == h + 1)


def make_chunks(half: np.ndarray, size: int) -> list[Chunk]:
    """Chunks of ``size`` images; quarters alternate within each half in input order."""
    n = len(half)
    quarter = np.zeros(n, np.int8)
    for h in (1, 2):
        ix = np.flatnonzero(half == h)
        quarter[ix] = np.arange(len(ix)) % 2  # 0: quarter A (even positions), 1: quarter B
    return [Chunk(k, s, min(n, s + size), half[s : s + size], quarter[s : s + size])
            for k, s in enumerate(range(0, n, size))]


@dataclass(frozen=True)
class MemoryPlan:
    """How ``max_memory`` is spent: chunk size and what is left for the spectra cache."""

    max_memory: int
    chunk_size: int
    working_bytes: int  # buffers of one chunk, sums, prepared references
    cache_budget: int  # the rest: the spectra cache gets it if its spectra fit

    def describe(self) -> dict[str, int]:
        return dict(max_memory=self.max_memory, chunk_size=self.chunk_size, working_bytes=self.working_bytes,
                    cache_budget=self.cache_budget)


def plan_memory(max_memory: int, n: int, ny: int, nx: int, n_classes: int, rotate: bool,
                angular_step: float = 1.0, ctf: bool = False, read_bytes: int = 0) -> MemoryPlan:
    """Split ``max_memory`` (bytes) between the working buffers and the spectra cache.

    Working memory: the sums (a chunk's, its block's and the total: 2 halves x K classes x 2
    quarters of complex128 half spectra, with ``ctf`` and their float64 CTF^2 planes), the
    prepared references (with
    rotations: every angle of each reference, both halves), and per image of
    a chunk its pixels (float32), its spectrum (complex64) and the real-space
    sum's share, with ``ctf`` its CTF-filtered copy (float32), and ``read_bytes`` more
    that reading it costs (preprocessing: the input image and an intermediate). The chunk is as
    large as CHUNK images while that takes at most a quarter of what is left; the
    spectra cache may use the rest.
    """
    fourier = ny * (nx // 2 + 1)
    sums = 3 * (2 * n_classes * 2 * fourier * (16 + (8 if ctf else 0)))
    refs = 2 * n_classes * ny * nx * 8
    if rotate:
        refs += int(2 * n_classes * (360.0 / angular_step) * fourier * 8 * ROTATION_BYTES)
    fixed = sums + refs + (64 << 20)  # + the interpreter's and FFTW's own
    per_image = ny * nx * 4 * (2 if ctf else 1) + fourier * 8 * 2 + int(read_bytes)
    room = max(0, max_memory - fixed)
    chunk = int(min(CHUNK, max(MIN_CHUNK, room // 4 // max(per_image, 1))))
    chunk = min(chunk, max(n, 1))
    working = fixed + chunk * per_image
    if working > max_memory:
        raise ValueError(f"max_memory {max_memory / 2**20:.0f} MiB is too small for {n_classes} references of "
                         f"{ny} x {nx} px (needs at least {working / 2**20:.0f} MiB); raise max_memory")
    return MemoryPlan(int(max_memory), chunk, int(working), int(max_memory - working))


def search_band(ny: int, nx: int, lowpass: float) -> float:
    """Band (cycles/px, as the spectral sums keep it) holding every frequency
    that a search low-passed at ``lowpass`` reads, with BAND_MARGIN above it."""
    from .kernel import search_extent

    ky, kx = search_extent(ny, nx, lowpass)
    return float(min(0.5, max(lowpass + BAND_MARGIN, (ky + 0.5) / ny, (kx + 0.5) / nx)))


def band_extent(ny: int, nx: int, band: float) -> tuple[int, int]:
    """Largest |ky| and kx of the band that the spectral sums keep (ny//2, nx//2: all);
    for a search_band, all that its search reads too."""
    if band >= 0.5:
        return ny // 2, nx // 2
    return int(math.floor(band * ny)), min(nx // 2, int(math.floor(band * nx)))


def crop_for(ny: int, nx: int, ky: int, kx: int) -> Optional[tuple[int, int]]:
    """The crop holding |ky'| <= ky, kx' <= kx, or None when it would be (nearly) the whole spectrum."""
    if 2 * ky + 1 >= ny or kx + 1 >= nx // 2 + 1:
        return None
    return ky, kx


def holds(crop: Optional[tuple[int, int]], ky: int, kx: int) -> bool:
    """True when spectra cropped to ``crop`` (None: whole) hold |ky'| <= ky, kx' <= kx."""
    return crop is None or (ky <= crop[0] and kx <= crop[1])


def crop_bytes(n: int, ny: int, nx: int, crop: Optional[tuple[int, int]]) -> int:
    rows, cols = (ny, nx // 2 + 1) if crop is None else (2 * crop[0] + 1, crop[1] + 1)
    return n * rows * cols * 8
