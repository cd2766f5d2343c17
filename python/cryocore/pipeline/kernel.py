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

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import _core
from ..ctf import CtfParameters
from .chunks import Chunk, band_extent, crop_for, holds
from .config import SearchOptions
from .sums import SpectralSums

__all__ = ["ChunkCtf", "ChunkData", "ChunkResult", "ClassWeights", "Pass", "chunk_spectra", "fit_pair",
           "register_image", "release_scratch", "search_chunk", "search_extent", "soft_weights", "sum_chunk",
           "sum_image"]

MIN_CLASS_WEIGHT = 0.01  # soft assignment: smaller weights of an image's classes are dropped (the rest renormalised)


@dataclass(frozen=True)
class Pass:
    """What every chunk of one iteration's search needs.

    refs : (2, K, ny, nx) float32, the references of each half
    lowpass : per half, the search's low-pass (cycles/px; 0.5: none)
    band : per half, the band (cycles/px) summed into the spectral sums
    crop : (ky, kx) the spectra of uncached images are cropped to (None: whole)
    search : the search options
    key : identifies the references (for the prepared rotational searches)
    ctf : with CTF correction, every image's CTF parameters and the pixel size: the kernel
          multiplies each image's spectrum by its CTF where it transforms it (a cached spectrum
          already holds CTF X)
    """

    refs: np.ndarray
    lowpass: tuple[float, float]
    band: tuple[float, float]
    crop: Optional[tuple[int, int]]
    search: SearchOptions
    key: tuple
    ctf: Optional["ChunkCtf"] = None

    @property
    def n_classes(self) -> int:
        return int(self.refs.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.refs.shape[2]), int(self.refs.shape[3])


@dataclass(frozen=True)
class ChunkData:
    """A chunk's images (n, ny, nx) float32 C-contiguous, as read (the core reads each half's
    through an index, without copying them), or its cached spectra per half (crop: their crop;
    with CTF correction, the spectra of CTF X)."""

    images: Optional[np.ndarray] = None
    spectra: Optional[list[np.ndarray]] = None
    crop: Optional[tuple[int, int]] = None


@dataclass(frozen=True)
class ChunkCtf:
    """CTF correction: the CTF parameters of all N images and the pixel size (Å). The core
    computes each image's CTF on the fly from its row of parameters (no CTF image is stored)."""

    params: CtfParameters
    pixel_size_A: float
    threads: int = 1
    intact_first_peak: bool = False  # 1 before each CTF's first peak (RELION's --ctf_intact_first_peak)
    rows: np.ndarray = field(init=False, repr=False)  # (N, 9) float64: the core's parameter rows

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", self.params.array())

    def filter(self, chunk: Chunk, images: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The chunk's images at ``index`` (positions in the chunk) each filtered by its own CTF
        (CTF X): (len(index), ny, nx) float32."""
        idx = np.asarray(index, np.int64)
        return _core.ctf_filter(images, self.rows[chunk.start + idx], self.pixel_size_A, threads=self.threads,
                                index=idx, intact_first_peak=self.intact_first_peak)

    def core_args(self, chunk: Chunk, index: np.ndarray) -> dict:
        """The core's ``ctf=``, ``pixel_size_A=`` arguments for the chunk's images at ``index``."""
        return dict(ctf=self.rows[chunk.start + np.asarray(index)], pixel_size_A=self.pixel_size_A,
                    intact_first_peak=self.intact_first_peak)

    def add_squares(self, sums: SpectralSums, chunk: Chunk, h: int, sel: np.ndarray, classes: np.ndarray,
                    angles: Optional[np.ndarray], weights: np.ndarray, band: float = 0.5) -> None:
        """Add weight x CTF^2 (turned into the reference frame by the angles) of half h's images
        at positions ``sel`` of the chunk to their groups' weight planes, within ``band``."""
        assert sums.ctf2 is not None
        K = sums.ctf2.shape[1]
        flat = sums.ctf2[h].reshape((K * 2,) + sums.ctf2.shape[3:])  # a view: (class, quarter) groups
        groups = (2 * np.asarray(classes, np.int32) + chunk.quarter[sel]).astype(np.int32)
        _core.accumulate_ctf2(self.rows[chunk.start + sel], np.asarray(weights, np.float64), groups, flat,
                              sums.shape[1], self.pixel_size_A, band=float(band),
                              angles=None if angles is None else np.ascontiguousarray(angles, np.float64),
                              threads=self.threads, intact_first_peak=self.intact_first_peak)

    def add_all_squares(self, sums: SpectralSums, chunk: Chunk, h: int) -> None:
        """One class, no rotation: add the CTF^2 of all half h's images of the chunk to their quarters'
        weight planes; these sums are made once per chunk and process and then reused (the
        membership of the groups does not change; rejected images are taken out by the caller)."""
        assert sums.ctf2 is not None
        sel = chunk.of_half(h)
        digest = hashlib.sha1(np.concatenate([self.rows[chunk.start + sel].ravel(),
                                              chunk.quarter[sel].astype(np.float64)]).tobytes()).hexdigest()
        key = (digest, self.pixel_size_A, self.intact_first_peak, sums.shape)
        with _prepared_lock:
            planes = _ctf_squares.get(key)
        if planes is None:
            one = SpectralSums.zeros(1, sums.shape, ctf=True)
            self.add_squares(one, chunk, h, sel, np.zeros(len(sel), np.int32), None, np.ones(len(sel)))
            planes = one.ctf2[h, 0]  # type: ignore[index]
            with _prepared_lock:
                if sum(v.nbytes for v in _ctf_squares.values()) + planes.nbytes > CTF_SQUARES_BYTES:
                    _ctf_squares.clear()  # (a new run, or a very large stack: made again)
                _ctf_squares[key] = planes
        sums.ctf2[h, 0] += planes


# Sums of CTF^2 per chunk, half and quarter, made once (add_all_squares), at most this many bytes
# (within the 64 MB that the memory plan sets aside; 128 px: ~240 chunks' worth).
_ctf_squares: dict[tuple, np.ndarray] = {}
CTF_SQUARES_BYTES = 32 << 20


@dataclass(frozen=True)
class ClassWeights:
    """Soft assignment of n images: the classes each was searched against (n, C) (0-based; -1:
    none), its weight in each (n, C) (summing to 1 over its classes) and its pose in each:
    shifts (n, C, 2) px, angles (n, C) degrees."""

    classes: np.ndarray
    weights: np.ndarray
    shifts: np.ndarray
    angles: np.ndarray

    @classmethod
    def empty(cls, n: int, c: int) -> "ClassWeights":
        return cls(np.full((n, c), -1, np.int32), np.zeros((n, c)), np.zeros((n, c, 2)), np.zeros((n, c)))

    def entries(self, rows: np.ndarray, weights: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (image, class) pairs of the images at ``rows``, each image's weight (len(rows),) times
        its class weights, without the pairs of weight 0: (rows (m,), shifts (m, 2), angles (m,),
        classes (m,), weights (m,))."""
        w = weights[:, None] * self.weights[rows]
        i, j = np.nonzero((w != 0) & (self.classes[rows] >= 0))
        r = rows[i]
        return r, self.shifts[r, j], self.angles[r, j], self.classes[r, j], w[i, j]


def soft_weights(scores: np.ndarray, classes: np.ndarray, shape: tuple[int, int], lowpass: float) -> np.ndarray:
    """Each image's weight in each class it was searched against (n, C), from its best score
    there (n, C): proportional to the profile likelihood of a Gaussian model (the class
    reference, scaled, plus white noise of fitted level) over the M independent real Fourier
    samples of the search's band, (1 - c^2)^(-M/2) for correlation c > 0 (c <= 0: 1). Weights
    under MIN_CLASS_WEIGHT are dropped and the rest renormalised; the classes < 0 get 0."""
    ny, nx = shape
    f2 = np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.fftfreq(nx)[None, :] ** 2
    m = float(np.count_nonzero((f2 > 0) & (f2 <= min(lowpass, 0.5) ** 2)))
    c = np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0 - 1e-9)
    loglik = np.where(classes >= 0, -0.5 * m * np.log1p(-c * c), -np.inf)
    w = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    w[w < MIN_CLASS_WEIGHT] = 0.0
    return w / w.sum(axis=1, keepdims=True)


@dataclass
class ChunkResult:
    """Per image of the chunk (input order): pose, score and class (0-based) (with soft
    assignment, those of its best class, and its weights in all); and the sums."""

    index: int
    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    sums: SpectralSums
    soft: Optional[ClassWeights] = None


_prepared: dict[tuple, object] = {}
_prepared_lock = threading.Lock()
_scratch: dict[int, np.ndarray] = {}  # per thread: _buffer's array


def _buffer(n: int, ny: int, nx: int) -> np.ndarray:
    """A float32 (n, ny, nx) scratch array of this thread, kept from chunk to chunk until
    :func:`release_scratch` (the memory plan counts it: a fresh one per chunk would cost a page
    fault per 4 KiB each time)."""
    key = threading.get_ident()
    with _prepared_lock:
        buf = _scratch.get(key)
        if buf is None or buf.shape[1:] != (ny, nx) or len(buf) < n:
            buf = _scratch[key] = np.empty((n, ny, nx), np.float32)
    return buf[:n]


def release_scratch() -> None:
    """Free the per-thread scratch arrays and the prepared searches (the end of a run)."""
    with _prepared_lock:
        _scratch.clear()
        _prepared.clear()


def _rotational_search(p: Pass, h: int) -> "_core.RotationalSearch":
    """The rotational search of half h's references, made once per pass (and process)."""
    key = (p.key, h)
    with _prepared_lock:
        search = _prepared.get(key)
        if search is None:
            for old in [k for k in _prepared if k[0] != p.key]:
                del _prepared[old]  # an earlier pass's: no longer needed
            search = _core.RotationalSearch(np.ascontiguousarray(p.refs[h]), _settings(p.search, p.lowpass[h]),
                                            angular_step=float(p.search.angular_step))
            _prepared[key] = search
    return search  # type: ignore[return-value]


def search_chunk(chunk: Chunk, data: ChunkData, p: Pass, prior_shifts: Optional[np.ndarray],
                 prior_angles: Optional[np.ndarray], threads: int,
                 prior_classes: Optional[np.ndarray] = None) -> ChunkResult:
    """Register the chunk's images against their half's references and sum them (weight 1).

    prior_shifts (n, 2), prior_angles (n,): where finite, the image is searched
    locally around that pose (one reference; with rotations and K references, against its
    ``prior_classes`` (n,) (0-based) class only).
    """
    n = len(chunk)
    ny, nx = p.shape
    K = p.n_classes
    shifts, angles = np.zeros((n, 2)), np.zeros(n)
    scores, classes = np.zeros(n), np.zeros(n, np.int32)
    sums = SpectralSums.zeros(K, (ny, nx), ctf=p.ctf is not None)
    soft = p.search.soft_assignment and p.search.rotate and K > 1
    weights: Optional[ClassWeights] = None  # (soft: made from the search's first per-class poses)
    for h in (0, 1):
        sel = chunk.of_half(h)
        if len(sel) == 0:
            continue
        refs = np.ascontiguousarray(p.refs[h])
        ps = None if prior_shifts is None or K > 1 else np.ascontiguousarray(prior_shifts[sel])
        if p.search.rotate:
            assert data.images is not None
            local = prior_angles is not None and prior_shifts is not None and (K == 1 or prior_classes is not None)
            pa = np.ascontiguousarray(prior_angles[sel]) if local else None  # type: ignore[index]
            ps = np.ascontiguousarray(prior_shifts[sel]) if local else None  # type: ignore[index]
            pc = None if not local or K == 1 else np.ascontiguousarray(prior_classes[sel], np.int32)  # type: ignore[index]
            kw: dict = {}
            if p.ctf is not None:  # the search multiplies by the CTFs and hands back CTF X for the sums
                kw = dict(p.ctf.core_args(chunk, sel), filtered=_buffer(len(sel), ny, nx))
            out = _rotational_search(p, h).register(
                data.images, threads=threads, prior_angles=pa, prior_shifts=ps, index=sel,
                candidates=int(p.search.class_candidates), prior_classes=pc, per_class=soft, **kw)
            s, a, c, best = out[:4]
            shifts[sel], angles[sel], scores[sel], classes[sel] = s, a, c, best
            pos, w = np.arange(len(sel)), np.ones(len(sel))  # what is summed: each image in its best class
            if soft:  # ... or in every class it was searched against, by its weight there
                ps_, pa_, pc_, pk_ = out[4]
                if weights is None:
                    weights = ClassWeights.empty(n, pk_.shape[1])
                weights.classes[sel], weights.shifts[sel], weights.angles[sel] = pk_, ps_, pa_
                weights.weights[sel] = soft_weights(pc_, pk_, p.shape, p.lowpass[h])
                pos, s, a, best, w = weights.entries(sel, w)
                pos = np.searchsorted(sel, pos)
            images, index = (kw["filtered"], pos) if kw else (data.images, sel[pos])
            _add_half(sums, h, images, index, s, a, best, chunk.quarter[sel[pos]], w, p.band[h], True, threads)
            if p.ctf is not None:
                p.ctf.add_squares(sums, chunk, h, sel[pos], best, a, w, p.band[h])
            continue
        spectra = _spectra(data, chunk, h, sel, p.crop, threads, p.ctf)
        groups = chunk.quarter[sel].astype(np.int32)
        flat = sums.spectra[h].reshape(K * 2, ny, nx // 2 + 1)  # a view: (class, quarter) groups
        s, c, best = _core.register_accumulate_spectra(
            refs, spectra, nx, groups, flat, band=float(p.band[h]), prior=ps, class_stride=2,
            settings=_settings(p.search, p.lowpass[h]), threads=threads)
        shifts[sel], scores[sel], classes[sel] = s, c, best
        np.add.at(sums.weights[h, :, :, 0, 0], (best, groups), 1.0)
        if p.ctf is not None and K == 1:
            p.ctf.add_all_squares(sums, chunk, h)
        elif p.ctf is not None:
            p.ctf.add_squares(sums, chunk, h, sel, best, None, np.ones(len(sel)), p.band[h])
    return ChunkResult(chunk.index, shifts, angles, scores, classes, sums, weights)


def sum_chunk(chunk: Chunk, data: ChunkData, shifts: np.ndarray, angles: np.ndarray, classes: np.ndarray,
              weights: np.ndarray, band: tuple[float, float], n_classes: int, shape: tuple[int, int],
              rotate: bool, threads: int, ctf: Optional[ChunkCtf] = None,
              soft: Optional[ClassWeights] = None) -> SpectralSums:
    """Sums of the chunk's images moved back by their poses, ``weights`` (n,) each (0: left out),
    per group (half, class, quarter), over ``band`` (per half, cycles/px). With ``ctf``, of CTF X
    (images read are filtered now, cached spectra already hold it) and their CTF^2 weight planes.
    With ``soft`` (the chunk's rows; rotations), each image in each of its classes, at its pose
    there, times its weight there (the per-image poses and classes are not used)."""
    sums = SpectralSums.zeros(n_classes, shape, ctf=ctf is not None)
    for h in (0, 1):
        sel = chunk.of_half(h)
        if not weights[sel].any():
            continue
        if soft is not None:
            _sum_soft(sums, chunk, data, h, soft.entries(sel, weights[sel]), band[h], threads, ctf)
            continue
        images, index = data.images, sel
        spectra = None if data.spectra is None else (data.spectra[h], data.crop)
        if images is not None and ctf is not None:
            sel = sel[weights[sel] != 0]  # only the images used are filtered: CTF X of each
            if rotate:  # in real space (one FFT pair each)
                images, index = ctf.filter(chunk, images, sel), np.arange(len(sel))
            else:  # the band of its spectrum (one FFT each)
                crop = crop_for(*shape, *band_extent(*shape, band[h]))
                images, spectra = None, (_spectra(data, chunk, h, sel, crop, threads, ctf), crop)
        _add_half(sums, h, images, index, shifts[sel], angles[sel], classes[sel], chunk.quarter[sel],
                  weights[sel].astype(np.float64), band[h], rotate, threads, spectra)
        if ctf is not None:
            ctf.add_squares(sums, chunk, h, sel, classes[sel], angles[sel] if rotate else None, weights[sel], band[h])
    return sums


def _sum_soft(sums: SpectralSums, chunk: Chunk, data: ChunkData, h: int,
              entries: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], band: float, threads: int,
              ctf: Optional[ChunkCtf]) -> None:
    """Add the (image, class) entries of half h (:meth:`ClassWeights.entries`) to the sums (rotations)."""
    rows, s, a, k, w = entries
    images, index = data.images, rows
    assert images is not None
    if ctf is not None:  # each image used filtered once, whatever the number of its classes
        used = np.unique(rows)
        images, index = ctf.filter(chunk, images, used), np.searchsorted(used, rows)
    _add_half(sums, h, images, index, s, a, k, chunk.quarter[rows], w, band, True, threads)
    if ctf is not None:
        ctf.add_squares(sums, chunk, h, rows, k, a, w, band)


def _add_half(sums: SpectralSums, h: int, images: Optional[np.ndarray], index: np.ndarray, shifts: np.ndarray,
              angles: np.ndarray, classes: np.ndarray, quarters: np.ndarray, weights: np.ndarray, band: float,
              rotate: bool, threads: int, spectra: Optional[tuple[np.ndarray, Optional[tuple[int, int]]]] = None
              ) -> None:
    """Add images[index] (or, when they hold the band, the half's cached spectra: all of them, in
    order) moved back by their poses, times their weights, to half h's (class, quarter) groups;
    the per-image arrays are per index entry."""
    ny, nx = sums.shape
    s = np.ascontiguousarray(shifts, np.float64)
    for k in np.unique(classes[weights != 0]):
        for q in (0, 1):
            # the group's weights over all the entries (the others 0: skipped by the core)
            w = np.where((classes == k) & (quarters == q), weights, 0.0)
            if not w.any():
                continue
            out = sums.spectra[h, k, q]
            if rotate:
                assert images is not None
                _add_real_space(out, images, index, s, angles, w, band, threads)
            elif spectra is not None and holds(spectra[1], *band_extent(ny, nx, band)):
                idx = np.flatnonzero(w)
                if 4 * len(idx) <= len(w):  # few: pass just those (a small copy) rather than skip the rest
                    _core.accumulate_spectra(spectra[0][idx], nx, s[idx], w[idx], out, threads=threads, band=float(band))
                else:
                    _core.accumulate_spectra(spectra[0], nx, s, w, out, threads=threads, band=float(band))
            else:
                assert images is not None
                _core.accumulate_images_spectra(images, s, w, out, threads=threads, band=float(band), index=index)
            sums.weights[h, k, q] += w.sum()


def _settings(search: SearchOptions, lowpass: float) -> "_core.SearchSettings":
    return _core.SearchSettings(**search.settings(lowpass))


def search_extent(ny: int, nx: int, lowpass: float) -> tuple[int, int]:
    """Largest |ky| and kx of an image's spectrum that a translational search low-passed at
    ``lowpass`` (cycles/px; 0.5: none) reads."""
    return _core.search_extent(ny, nx, _settings(SearchOptions(), lowpass))


def chunk_spectra(chunk: Chunk, images: np.ndarray, crop: Optional[tuple[int, int]], threads: int,
                  ctf: Optional[ChunkCtf] = None, rows: Optional[np.ndarray] = None) -> list[np.ndarray]:
    """The chunk's images' half spectra per half, cropped to ``crop`` (with ``ctf``, of CTF X): what
    the spectra cache keeps. With ``rows`` (positions in the chunk), only those images are
    transformed and the others' spectra are zero (for a pass that reads only those)."""
    data = ChunkData(images=images)
    if rows is None:
        return [_spectra(data, chunk, h, chunk.of_half(h), crop, threads, ctf) for h in (0, 1)]
    out = []
    for h in (0, 1):
        sel = chunk.of_half(h)
        used = np.isin(sel, rows)
        part = _spectra(data, chunk, h, sel[used], crop, threads, ctf)
        full = np.zeros((len(sel),) + part.shape[1:], part.dtype)
        full[used] = part
        out.append(full)
    return out


def fit_pair(a1: np.ndarray, a2: np.ndarray, threads: int, rotate: bool,
             angular_step: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The pose (psi, t) of ``a2`` relative to ``a1`` (``a2`` = ``a1`` rotated by psi, moved by t)
    and ``a2`` moved back onto ``a1`` (float32)."""
    r1 = np.ascontiguousarray(a1, np.float32)[None]
    r2 = np.ascontiguousarray(a2, np.float32)[None]
    fine = _core.SearchSettings(upsample=50)
    if rotate:
        s, a, _, _ = _core.register_rotate(r1, r2, fine, angular_step=angular_step, threads=threads)
        psi, t = float(a[0]), s[0]
        return psi, t, _core.transform_stack(r2, np.array([psi]), np.array([t]), inverse=True, threads=1)[0]
    s, _, _ = _core.register_stack(r1, r2, fine, threads=1)
    return 0.0, s[0], _core.shift_stack(r2, -s[:1], threads=1)[0]


def register_image(ref: np.ndarray, image: np.ndarray, search: SearchOptions,
                   lowpass: float) -> tuple[np.ndarray, float]:
    """Shift (2,) and score of one image (1, ny, nx) against one reference (ny, nx) (the online pass)."""
    s, c, _ = _core.register_stack(np.ascontiguousarray(ref, np.float32)[None], image, _settings(search, lowpass),
                                   threads=1)
    return s[0], float(c[0])


def sum_image(image: np.ndarray, shift: np.ndarray, weight: float, out: np.ndarray) -> None:
    """Add one image (1, ny, nx) moved back by ``shift``, times ``weight``, to ``out`` (ny, nx) float64."""
    _core.accumulate(image, np.asarray(shift, np.float64)[None], np.array([weight]), out, None, threads=1)


def _spectra(data: ChunkData, chunk: Chunk, h: int, sel: np.ndarray, crop: Optional[tuple[int, int]], threads: int,
             ctf: Optional[ChunkCtf]) -> np.ndarray:
    """The cropped spectra of half h's images of the chunk: cached, or made now (one FFT each,
    times the CTF with ``ctf``, on the kept frequencies only)."""
    if data.spectra is not None:
        return data.spectra[h]
    assert data.images is not None
    kw = {} if ctf is None else ctf.core_args(chunk, sel)
    return _core.forward_stack(data.images, threads=threads, index=sel, crop=crop, **kw)


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
    ky_max, kx_max = band_extent(ny, nx, band)
    rows = np.arange(ny)
    ky = np.minimum(rows, ny - rows)  # |signed frequency| of each row, an integer
    return (ky[:, None] <= ky_max) & (np.arange(nx // 2 + 1)[None, :] <= kx_max)


def pairwise_poses(images: np.ndarray, lowpass: float, rotate: bool, threads: int,
                   ctf: Optional[tuple[np.ndarray, float, bool]] = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every image (m, ny, nx) registered against every other, low-passed at ``lowpass``
    (cycles/px), at a coarse sampling (1 px and 5 degrees): scores (m, m) (row i: the images
    against image i), angles (m, m), shifts (m, m, 2), and the images as compared, float32 (with
    ``ctf`` = (rows (m, 9), pixel size, intact first peak): each multiplied by its CTF)."""
    imgs = np.ascontiguousarray(images, np.float32)
    if ctf is not None:
        imgs = _core.ctf_filter(imgs, ctf[0], ctf[1], threads=threads, intact_first_peak=ctf[2])
    m = len(imgs)
    scores, angles, shifts = np.zeros((m, m)), np.zeros((m, m)), np.zeros((m, m, 2))
    settings = _core.SearchSettings(upsample=1, lowpass=float(lowpass))
    for i in range(m):
        ref = imgs[i : i + 1]
        if rotate:
            s, a, c, _ = _core.register_rotate(ref, imgs, settings, angular_step=5.0, threads=threads)
            angles[i] = a
        else:
            s, c, _ = _core.register_stack(ref, imgs, settings, threads=threads)
        scores[i], shifts[i] = c, s
    return scores, angles, shifts, imgs


def move_back(images: np.ndarray, angles: np.ndarray, shifts: np.ndarray, threads: int) -> np.ndarray:
    """Images (n, ny, nx) moved back by their poses (bicubic; angles in degrees), float32."""
    return _core.transform_stack(np.ascontiguousarray(images, np.float32), np.ascontiguousarray(angles, np.float64),
                                 np.ascontiguousarray(shifts, np.float64), inverse=True, threads=threads)
