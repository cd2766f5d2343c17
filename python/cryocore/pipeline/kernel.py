"""The per-chunk kernel: the only pipeline module that calls the C++ core.

Two pure functions of a chunk and what one pass needs (no state kept between
calls but a cache of prepared rotational searches, keyed by the pass):

* :func:`search_chunk` registers each image of the chunk against the K
  references of its half (shift, angle, best class, score) and, in the same
  read, adds every image, moved back by its new pose, to the sums of its
  group (half, class, quarter);
* :func:`sum_chunk` adds images with given poses and weights to the sums
  (rejected images with weight -1, the final whole-band averages with 1).

With the spectra cache (translations) a chunk is its images' cached spectra;
otherwise its images, each transformed at most once per call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import _core
from .chunks import Chunk, band_extent
from .config import SearchOptions
from .sums import SpectralSums

__all__ = ["ChunkData", "ChunkResult", "Pass", "search_chunk", "sum_chunk"]


@dataclass(frozen=True)
class Pass:
    """What every chunk of one iteration's search needs.

    refs : (2, K, ny, nx) float32, the references of each half
    lowpass : per half, the search's low-pass (cycles/px; 0.5: none)
    band : per half, the band (cycles/px) summed into the spectral sums
    crop : (ky, kx) the spectra of uncached images are cropped to (None: whole)
    search : the search options
    key : identifies the references (for the prepared rotational searches)
    """

    refs: np.ndarray
    lowpass: tuple[float, float]
    band: tuple[float, float]
    crop: Optional[tuple[int, int]]
    search: SearchOptions
    key: tuple

    @property
    def n_classes(self) -> int:
        return int(self.refs.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.refs.shape[2]), int(self.refs.shape[3])


@dataclass(frozen=True)
class ChunkData:
    """A chunk's images (n, ny, nx) float32 C-contiguous, as read (the core reads each half's
    through an index, without copying them), or its cached spectra per half (crop: their crop)."""

    images: Optional[np.ndarray] = None
    spectra: Optional[list[np.ndarray]] = None
    crop: Optional[tuple[int, int]] = None


@dataclass
class ChunkResult:
    """Per image of the chunk (input order): pose, score and class (0-based); and the sums."""

    index: int
    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    sums: SpectralSums


_prepared: dict[tuple, object] = {}
_prepared_lock = threading.Lock()


def _rotational_search(p: Pass, h: int) -> "_core.RotationalSearch":
    """The rotational search of half h's references, made once per pass (and process)."""
    key = (p.key, h)
    with _prepared_lock:
        search = _prepared.get(key)
        if search is None:
            for old in [k for k in _prepared if k[0] != p.key]:
                del _prepared[old]  # an earlier pass's: no longer needed
            search = _core.RotationalSearch(np.ascontiguousarray(p.refs[h]), **p.search.rotation_kwargs(p.lowpass[h]))
            _prepared[key] = search
    return search  # type: ignore[return-value]


def search_chunk(chunk: Chunk, data: ChunkData, p: Pass, prior_shifts: Optional[np.ndarray],
                 prior_angles: Optional[np.ndarray], threads: int) -> ChunkResult:
    """Register the chunk's images against their half's references and sum them (weight 1).

    prior_shifts (n, 2), prior_angles (n,): where finite, the image is searched
    locally around that pose (one reference only).
    """
    n = len(chunk)
    ny, nx = p.shape
    K = p.n_classes
    shifts, angles = np.zeros((n, 2)), np.zeros(n)
    scores, classes = np.zeros(n), np.zeros(n, np.int32)
    sums = SpectralSums.zeros(K, (ny, nx))
    for h in (0, 1):
        sel = chunk.of_half(h)
        if len(sel) == 0:
            continue
        refs = np.ascontiguousarray(p.refs[h])
        ps = None if prior_shifts is None or K > 1 else np.ascontiguousarray(prior_shifts[sel])
        if p.search.rotate:
            assert data.images is not None
            pa = None if prior_angles is None or K > 1 else np.ascontiguousarray(prior_angles[sel])
            s, a, c, best = _rotational_search(p, h).register(
                data.images, threads=threads, prior_angles=pa, prior_shifts=None if pa is None else ps, index=sel)
            shifts[sel], angles[sel], scores[sel], classes[sel] = s, a, c, best
            sums += sum_chunk(chunk, data, shifts, angles, classes, (chunk.half == h + 1).astype(np.float64),
                              p.band, K, (ny, nx), True, threads)
            continue
        spectra = _spectra(data, h, sel, p.crop, threads)
        groups = chunk.quarter[sel].astype(np.int32)
        flat = sums.spectra[h].reshape(K * 2, ny, nx // 2 + 1)  # a view: (class, quarter) groups
        s, c, best = _core.register_accumulate_spectra(
            refs, spectra, nx, groups, flat, band=float(p.band[h]), prior=ps, class_stride=2, threads=threads,
            **p.search.core_kwargs(p.lowpass[h]))
        shifts[sel], scores[sel], classes[sel] = s, c, best
        np.add.at(sums.weights[h, :, :, 0, 0], (best, groups), 1.0)
    return ChunkResult(chunk.index, shifts, angles, scores, classes, sums)


def sum_chunk(chunk: Chunk, data: ChunkData, shifts: np.ndarray, angles: np.ndarray, classes: np.ndarray,
              weights: np.ndarray, band: tuple[float, float], n_classes: int, shape: tuple[int, int],
              rotate: bool, threads: int) -> SpectralSums:
    """Sums of the chunk's images moved back by their poses, ``weights`` (n,) each (0: left out),
    per group (half, class, quarter), over ``band`` (per half, cycles/px)."""
    ny, nx = shape
    sums = SpectralSums.zeros(n_classes, shape)
    for h in (0, 1):
        sel = chunk.of_half(h)
        w_half = weights[sel].astype(np.float64)
        if not w_half.any():
            continue
        s_half = np.ascontiguousarray(shifts[sel])
        for k in np.unique(classes[sel][w_half != 0]):
            for q in (0, 1):
                # the group's weights over all the half's images (the others 0: skipped by the core)
                w = np.where((classes[sel] == k) & (chunk.quarter[sel] == q), w_half, 0.0)
                if not w.any():
                    continue
                out = sums.spectra[h, k, q]
                if rotate:
                    assert data.images is not None
                    _add_real_space(out, data.images, sel, s_half, angles[sel], w, band[h], threads)
                elif data.spectra is not None and _holds(data.crop, ny, nx, band[h]):
                    idx = np.flatnonzero(w)
                    if 4 * len(idx) <= len(w):  # few: pass just those (a small copy) rather than skip the rest
                        _core.accumulate_spectra(data.spectra[h][idx], nx, s_half[idx], w[idx], out,
                                                 threads=threads, band=float(band[h]))
                    else:
                        _core.accumulate_spectra(data.spectra[h], nx, s_half, w, out, threads=threads,
                                                 band=float(band[h]))
                else:
                    assert data.images is not None
                    _core.accumulate_images_spectra(data.images, s_half, w, out, threads=threads, band=float(band[h]),
                                                    index=sel)
                sums.weights[h, k, q] += w.sum()
    return sums


def _spectra(data: ChunkData, h: int, sel: np.ndarray, crop: Optional[tuple[int, int]], threads: int) -> np.ndarray:
    """The cropped spectra of half h's images of the chunk: cached, or made now (one FFT each)."""
    if data.spectra is not None:
        return data.spectra[h]
    assert data.images is not None
    return _core.forward_stack(data.images, threads=threads, index=sel, crop=crop)


def _holds(crop: Optional[tuple[int, int]], ny: int, nx: int, band: float) -> bool:
    if crop is None:
        return True
    ky, kx = band_extent(ny, nx, band)
    return ky <= crop[0] and kx <= crop[1]


def _add_real_space(out: np.ndarray, images: np.ndarray, index: np.ndarray, shifts: np.ndarray, angles: np.ndarray,
                    weights: np.ndarray, band: float, threads: int) -> None:
    """Rotations: images[index] moved back by their whole pose (bicubic) and summed in real
    space, then transformed once and added to ``out`` within the band."""
    ny, nx = images.shape[1:]
    acc = np.zeros((ny, nx))
    _core.accumulate(images, shifts, weights, acc, None, threads=threads, angles=np.ascontiguousarray(angles),
                     index=index)
    spec = np.fft.rfft2(acc)
    keep = _band_mask(ny, nx, band)
    out += spec if keep is None else spec * keep


def _band_mask(ny: int, nx: int, band: float) -> Optional[np.ndarray]:
    """The rows and columns accumulate_spectra keeps for this band (None: all)."""
    if band >= 0.5:
        return None
    ky = np.abs(np.fft.fftfreq(ny) * ny)
    kx = np.arange(nx // 2 + 1)
    return (ky[:, None] <= np.floor(band * ny)) & (kx[None, :] <= np.floor(band * nx))

