"""The alignment-and-averaging pipeline: half-sets, iterations, thresholds, FRC."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from . import _core
from ._validate import as_image, as_threads
from .frc import FRC, frc, frc_of_spectra
from .transforms import shift

__all__ = ["AlignResult", "align", "split_halves", "auto_threshold"]

HalfSplit = Union[str, np.ndarray]

# Largest cache of image spectra kept in memory between iterations (bytes).
MAX_SPECTRA_CACHE = 4 << 30
CACHE_BAND = 0.3  # cycles/px: the cached spectra are cropped to this band at first
CACHE_BAND_STEP = 0.05  # ... and re-cropped this much above the need when a search needs more
CHUNK = 1024  # images read and processed at a time
BAND_MARGIN = 0.1  # cycles/px summed above the search band while iterating
LOCAL_SHIFT_PX = 0.5  # local search for poses that moved less than this between two iterations
LOCAL_ANGLE_DEG = 1.0  # ... and turned less than this
ANGLE_TOLERANCE_DEG = 0.05  # RMS angle change below which rotations count as converged


# --------------------------------------------------------------------------- inputs
class _ArraySource:
    """Adapter giving an in-memory (or memory-mapped) array the stack interface."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a
        self.shape = tuple(int(v) for v in a.shape)
        self.pixel_size_A: Optional[float] = None
        self.image_names: Optional[list[str]] = None

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._a[start:stop], dtype=np.float32)


def _as_source(images: Any) -> Any:
    if hasattr(images, "read") and hasattr(images, "shape"):
        src = images
    else:
        a = np.asarray(images)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise TypeError(f"images must be a real numeric array (integer or float), got dtype {a.dtype}")
        if a.ndim != 3:
            raise ValueError(f"images must be a stack (n, ny, nx), got shape {a.shape}")
        src = _ArraySource(a)
    n, ny, nx = src.shape
    if n < 2:
        raise ValueError(f"images must hold at least 2 images to form two half-sets, got {n}")
    if ny < 8 or nx < 8:
        raise ValueError(f"images must be at least 8 x 8 pixels, got {ny} x {nx}")
    return src


# --------------------------------------------------------------------------- helpers
def split_halves(n: int, half_split: HalfSplit = "random", seed: Optional[int] = 0) -> np.ndarray:
    """Half-set label (1 or 2) of each of ``n`` images.

    ``"random"``: a seeded random permutation, sizes ``n // 2`` and ``n - n // 2``;
    ``"halves"``: the first ``n // 2`` images form half 1; ``"even-odd"``: even
    indices form half 1. An array of 1/2 labels is used as given.
    """
    if isinstance(half_split, str):
        if half_split == "random":
            half = np.full(n, 2, np.int8)
            half[np.random.default_rng(seed).permutation(n)[: n // 2]] = 1
        elif half_split == "halves":
            half = np.where(np.arange(n) < n // 2, 1, 2).astype(np.int8)
        elif half_split == "even-odd":
            half = np.where(np.arange(n) % 2 == 0, 1, 2).astype(np.int8)
        else:
            raise ValueError(f"half_split must be 'random', 'halves', 'even-odd' or an array of 1/2, got {half_split!r}")
    else:
        half = np.asarray(half_split)
        if half.shape != (n,) or not np.isin(half, (1, 2)).all():
            raise ValueError(f"half_split as an array must have shape ({n},) with values 1 and 2")
        half = half.astype(np.int8)
    if not ((half == 1).any() and (half == 2).any()):
        raise ValueError("both half-sets must hold at least one image")
    return half


def auto_threshold(scores: np.ndarray, k: float = 4.0) -> float:
    """Robust outlier threshold: ``median - k * 1.4826 * MAD`` of the scores.

    Images of one particle at one noise level give a narrow, roughly normal
    score distribution; junk (empty frames, contamination, another particle)
    scores lower. The median and the median absolute deviation are not moved
    by up to half of the images being junk, so the same rule works at SNR 1 and
    at SNR 0.02 (where good images score about 0.14 against a clean average).
    ``k = 4`` rejects about 0.003% of normally distributed good images.
    """
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return -1.0
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    return med - k * mad


@functools.lru_cache(maxsize=16)
def _lowpass_filter(ny: int, nx: int, cutoff: float, edge: float) -> np.ndarray:
    """Raised-cosine low-pass (cycles/px) on the half spectrum (ny, nx//2+1); read-only, cached."""
    f = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    t = np.clip((f - (cutoff - edge / 2)) / edge, 0.0, 1.0)
    h = np.cos(0.5 * np.pi * t) ** 2
    h.setflags(write=False)
    return h


def _lowpass_image(img: np.ndarray, cutoff: float, edge: float = 0.02) -> np.ndarray:
    """Raised-cosine low-pass (cycles/px) of one image, float64."""
    ny, nx = img.shape
    h = _lowpass_filter(int(ny), int(nx), float(cutoff), float(edge))
    return np.fft.irfft2(np.fft.rfft2(img) * h, s=(ny, nx))


def centre_of_mass_offset(img: np.ndarray, lowpass: float = 0.1) -> np.ndarray:
    """Offset ``(dy, dx)`` in px of the image's centre of mass from the box centre.

    The mass is the energy of the low-passed image after removing the mean
    of its border, so that it does not depend on the contrast's sign.
    """
    img = np.asarray(img, np.float64)
    return _centre_of_mass_of_spectrum(np.fft.rfft2(img), img.shape, lowpass)


def _centre_of_mass_of_spectrum(spec: np.ndarray, shape: tuple[int, int], lowpass: float = 0.1) -> np.ndarray:
    """centre_of_mass_offset of the image with half spectrum ``spec`` (rfft2 layout)."""
    ny, nx = shape
    a = np.fft.irfft2(spec * _lowpass_filter(int(ny), int(nx), float(lowpass), 0.02), s=(ny, nx))
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    w = (a - border.mean()) ** 2
    total = w.sum()
    if not total > 0:
        return np.zeros(2)
    ny, nx = a.shape
    y = np.arange(ny) - ny // 2
    x = np.arange(nx) - nx // 2
    return np.array([(w.sum(axis=1) * y).sum() / total, (w.sum(axis=0) * x).sum() / total])


# --------------------------------------------------------------------------- result
@dataclass
class AlignResult:
    """Result of :func:`align`. Poses refer to :attr:`average` (CONVENTIONS.md).

    Attributes
    ----------
    shifts : (N, 2) float64   pose shift ``(dy, dx)`` in px of every input image
    angles : (N,) float64     in-plane angle psi in degrees (0 without rotation)
    scores : (N,) float64     Pearson score against its half's final reference
    accepted : (N,) bool      kept in the average
    half : (N,) int8          half-set, 1 or 2
    average : (ny, nx) float32        combined average of both aligned halves
    half_averages : (2, ny, nx) float32  the two half averages, aligned to each other
    frc : FRC                  Fourier ring correlation of the half averages
    resolution : float         FRC 0.143 crossing, cycles/px
    resolution_A : float or None   the same in Å (needs ``pixel_size_A``)
    thresholds : (2,) float    score threshold used for each half in the last iteration
    history : list of dict     per iteration and half: mean_score, accepted, total,
                               pose_change (RMS px), threshold, lowpass, resolution
    frames : (T, ny, nx) float32   the combined average after each iteration
                                   (or every k images online): the build-up video
    pixel_size_A : float or None
    image_names : list of str or None   ``index@stack`` of each input image
    parameters : dict, timings : dict
    """

    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    accepted: np.ndarray
    half: np.ndarray
    average: np.ndarray
    half_averages: np.ndarray
    frc: FRC
    thresholds: np.ndarray
    history: list
    frames: np.ndarray
    pixel_size_A: Optional[float] = None
    image_names: Optional[list] = None
    parameters: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def resolution(self) -> float:
        return self.frc.resolution_0143

    @property
    def resolution_A(self) -> Optional[float]:
        return self.frc.resolution_A(0.143)

    def summary(self) -> str:
        n = len(self.scores)
        lines = [f"{int(self.accepted.sum())} of {n} images kept"]
        for h in (1, 2):
            m = self.half == h
            lines.append(f"  half {h}: {int(self.accepted[m].sum())} of {int(m.sum())} kept, threshold {self.thresholds[h - 1]:.3f}")
        res = f"FRC 0.143: {self.resolution:.3f} 1/px"
        if self.resolution_A is not None:
            res += f" ({self.resolution_A:.1f} Å)"
        lines.append(res)
        return "\n".join(lines)

    def write(self, outdir: str, *, overwrite: bool = False, inputs: Sequence[str] = ()) -> dict:
        """Write the averages, tables, plots and report into ``outdir``; returns {name: path}."""
        from .output import write_result

        return write_result(self, outdir, overwrite=overwrite, inputs=inputs)


# --------------------------------------------------------------------------- checkpoints
def _fingerprint(src: Any, half: np.ndarray, params: dict, tolerance_px: float, cap: float) -> str:
    """What a checkpoint must match to be resumed: the input's shape, a digest of
    its first and last images and of the half split, and every parameter that
    changes the result."""
    n = len(src)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(src.read(0, 1)).tobytes())
    h.update(np.ascontiguousarray(src.read(n - 1, n)).tobytes())
    h.update(half.tobytes())
    keep = {k: v for k, v in params.items() if k not in ("threads", "iterations")}
    keep.update(tolerance_px=tolerance_px, cap=cap, data=h.hexdigest())
    return json.dumps(keep, sort_keys=True, default=str)


def _save_checkpoint(path: str, fingerprint: str, st: dict) -> None:
    from .io import atomic_write

    arrays = dict(
        fingerprint=np.array(fingerprint), iteration=np.array(st["iteration"]),
        converged=np.array(st["converged"]), refs=np.stack(st["refs"]), lowpass=np.asarray(st["lowpass"]),
        shifts1=st["shifts"][0], shifts2=st["shifts"][1], scores1=st["scores"][0], scores2=st["scores"][1],
        angles1=st["angles"][0], angles2=st["angles"][1],
        accepted1=st["accepted"][0], accepted2=st["accepted"][1], thresholds=np.asarray(st["thresholds"]),
        history=np.array(json.dumps(st["history"])), frames=np.stack(st["frames"]),
        wisdom=np.frombuffer(_core.export_wisdom(), np.uint8),
    )
    prev = st.get("prev_pose", [None, None])
    arrays["has_prev"] = np.array(prev[0] is not None and prev[1] is not None)
    if arrays["has_prev"]:
        arrays.update(prev_shifts1=prev[0][0], prev_shifts2=prev[1][0], prev_angles1=prev[0][1],
                      prev_angles2=prev[1][1])
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _import_checkpoint_wisdom(path: str) -> None:
    try:
        with np.load(path, allow_pickle=False) as z:
            wisdom = z["wisdom"].tobytes() if "wisdom" in z.files else b""
    except Exception:
        return  # _load_checkpoint reports an unreadable file
    if wisdom:
        _core.clear_plan_cache()
        _core.import_wisdom(wisdom)


def _load_checkpoint(path: str, fingerprint: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as err:
        raise ValueError(f"checkpoint {path} cannot be read ({err}); remove it to start afresh") from None
    if str(d["fingerprint"]) != fingerprint:
        raise ValueError(f"checkpoint {path} was made for another input or other parameters; "
                         "remove it (or use another output directory) to start afresh")
    return dict(
        iteration=int(d["iteration"]), converged=bool(d["converged"]), refs=[d["refs"][0], d["refs"][1]],
        lowpass=[float(v) for v in d["lowpass"]], shifts=[d["shifts1"], d["shifts2"]],
        angles=[d["angles1"], d["angles2"]],
        scores=[d["scores1"], d["scores2"]], accepted=[d["accepted1"], d["accepted2"]],
        thresholds=np.array(d["thresholds"]), history=json.loads(str(d["history"])),
        frames=list(d["frames"]),
        prev_pose=([(d["prev_shifts1"], d["prev_angles1"]), (d["prev_shifts2"], d["prev_angles2"])]
                   if "has_prev" in d and bool(d["has_prev"]) else [None, None]),
    )


# --------------------------------------------------------------------------- engine
class _Halves:
    """Per-half data access: cached spectra when they fit in memory, chunked reads otherwise.

    The cache holds each image's spectrum cropped to the low frequencies that
    the iterations read (``_core.search_extent``): at first up to
    CACHE_BAND cycles/px, re-made wider (CACHE_BAND_STEP above the need) if
    the search's low-pass grows past it. Sums over the whole band (the final
    averages) are made from the images then, one forward FFT each.
    """

    def __init__(self, src: Any, half: np.ndarray, threads: int, cache: bool, progress: Any,
                 cache_limit: Optional[int] = None, need: tuple[int, int] = (0, 0)) -> None:
        self.src = src
        self.n, self.ny, self.nx = (int(v) for v in src.shape)
        self.half = half
        self.threads = threads
        self.index = [np.flatnonzero(half == h) for h in (1, 2)]
        self.spectra: Optional[list[np.ndarray]] = None
        self.extent: Optional[tuple[int, int]] = None  # (ky, kx) of a cropped cache; None: whole
        self.cache_limit = cache_limit  # bytes; None: no limit
        self._progress = progress
        if cache:
            ky = max(need[0], int(CACHE_BAND * self.ny))
            kx = max(need[1], int(CACHE_BAND * self.nx))
            self._fill((ky, kx))

    def _crop(self, ky: int, kx: int) -> Optional[tuple[int, int]]:
        """The crop for these extents, or None when it would be (nearly) the whole spectrum."""
        if 2 * ky + 1 >= self.ny or kx + 1 >= self.nx // 2 + 1:
            return None
        return ky, kx

    def _fill(self, want: tuple[int, int]) -> None:
        """(Re)make the cache holding at least |ky| <= want[0], kx <= want[1]."""
        self.spectra = None  # free the old cache first
        crop = self._crop(*want)
        rows, cols = (self.ny, self.nx // 2 + 1) if crop is None else (2 * crop[0] + 1, crop[1] + 1)
        if self.cache_limit is not None and self.n * rows * cols * 8 > self.cache_limit:
            self.extent = None
            return  # too large: chunked reads from now on
        self.extent = crop
        spectra = [np.empty((len(ix), rows, cols), np.complex64) for ix in self.index]
        pos = [0, 0]
        for start in self._progress(range(0, self.n, CHUNK), "FFT"):
            stop = min(self.n, start + CHUNK)
            chunk = self.src.read(start, stop)
            labels = self.half[start:stop]
            for h in (0, 1):
                sel = labels == h + 1
                k = int(sel.sum())
                if k:
                    _core.forward_stack(chunk, threads=self.threads, index=np.flatnonzero(sel),
                                        out=spectra[h][pos[h] : pos[h] + k], crop=crop)
                    pos[h] += k
        self.spectra = spectra

    def holds(self, ky: int, kx: int) -> bool:
        """True when the cache holds every |ky'| <= ky, kx' <= kx."""
        if self.spectra is None:
            return False
        return self.extent is None or (ky <= self.extent[0] and kx <= self.extent[1])

    def ensure(self, ky: int, kx: int) -> None:
        """Make the cache (when there is one) hold |ky'| <= ky, kx' <= kx, cropping it wider if needed."""
        if self.spectra is None or self.holds(ky, kx):
            return
        self._fill((ky + math.ceil(CACHE_BAND_STEP * self.ny), kx + math.ceil(CACHE_BAND_STEP * self.nx)))

    def register(self, h: int, ref: np.ndarray, rotate: bool = False,
                 prior: Optional[tuple[np.ndarray, np.ndarray]] = None,
                 **kw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shifts (n_h, 2), angles (n_h,) (0 without rotate) and scores of half h's images.

        ``prior`` (rotations): (angles (n_h,), shifts (n_h, 2)); where finite,
        an image is searched locally around that pose.
        """
        refs = np.ascontiguousarray(ref, np.float32)[None]
        if self.spectra is not None and not rotate:
            s, c, _ = _core.register_spectra(refs, self.spectra[h], self.nx, threads=self.threads, **kw)
            return s, np.zeros(len(c)), c
        shifts, angles, scores = [], [], []
        pos = 0
        # One rotational search for all chunks: the reference's rotations are made once.
        search = _core.RotationalSearch(refs, **kw) if rotate else None
        for chunk in self._chunks(h):
            k = len(chunk)
            if search is not None:
                pa = None if prior is None else prior[0][pos : pos + k]
                ps = None if prior is None else prior[1][pos : pos + k]
                s, a, c, _ = search.register(chunk, threads=self.threads, prior_angles=pa, prior_shifts=ps)
            else:
                s, c, _ = _core.register_stack(refs, chunk, threads=self.threads, **kw)
                a = np.zeros(len(c))
            shifts.append(s)
            angles.append(a)
            scores.append(c)
            pos += k
        return np.concatenate(shifts), np.concatenate(angles), np.concatenate(scores)

    def register_accumulate(self, h: int, ref: np.ndarray, groups: np.ndarray, band: float,
                            prior: Optional[np.ndarray] = None,
                            **kw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cached spectra only: register half h's images and, in the same pass,
        sum each image's band moved back by its new shift into its group
        (``groups`` (n_h,) int32 in {0, 1}). Returns shifts, scores and the
        group sums (2, ny, nx//2+1) complex128 (unnormalised spectra)."""
        assert self.spectra is not None
        refs = np.ascontiguousarray(ref, np.float32)[None]
        sums = np.zeros((2, self.ny, self.nx // 2 + 1), np.complex128)
        s, c, _ = _core.register_accumulate_spectra(refs, self.spectra[h], self.nx, groups, sums,
                                                    band=float(band), prior=prior, threads=self.threads, **kw)
        return s, c, sums

    def subtract(self, h: int, shifts: np.ndarray, weights: np.ndarray, band: float, sum_: np.ndarray) -> None:
        """Cached spectra only: sum_ -= the band of half h's images with weights (moved back)."""
        assert self.spectra is not None
        idx = np.flatnonzero(weights)
        if len(idx) == 0:
            return
        if 4 * len(idx) <= len(weights):  # few: pass just those (a small copy) rather than skip the rest
            _core.accumulate_spectra(self.spectra[h][idx], self.nx, shifts[idx], -weights[idx], sum_,
                                     threads=self.threads, band=float(band))
        else:
            _core.accumulate_spectra(self.spectra[h], self.nx, shifts, -weights, sum_, threads=self.threads,
                                     band=float(band))

    def spectrum_to_mean(self, sum_: np.ndarray, total: float) -> np.ndarray:
        """Real-space mean (ny, nx) from a summed half spectrum and the total weight."""
        if total <= 0:
            return np.zeros((self.ny, self.nx))
        return np.fft.irfft2(sum_, s=(self.ny, self.nx)) / total

    def average(self, h: int, shifts: np.ndarray, weights: np.ndarray, band: float = 0.5,
                angles: Optional[np.ndarray] = None) -> np.ndarray:
        """Weighted mean of half h's images moved back by their shifts, float64 (ny, nx).

        With cached spectra and ``band < 0.5`` only frequencies up to ``band``
        cycles/px (per axis) are summed: a low-passed average at a fraction of
        the cost, enough for the next reference.
        """
        total = float(weights.sum())
        if total <= 0:
            return np.zeros((self.ny, self.nx))
        if angles is None:
            acc = np.zeros((self.ny, self.nx // 2 + 1), np.complex128)
            if self.holds(*_band_extent(self.ny, self.nx, band)):
                _core.accumulate_spectra(self.spectra[h], self.nx, shifts, weights, acc,  # type: ignore[index]
                                         threads=self.threads, band=float(band))
            else:  # from the images: one forward FFT each, summed in Fourier space
                pos = 0
                for chunk, sel in self._read_chunks(h):  # the chunk as read: no copy of this half's images
                    k = len(sel)
                    _core.accumulate_images_spectra(chunk, shifts[pos : pos + k], weights[pos : pos + k], acc,
                                                    threads=self.threads, band=float(band), index=sel)
                    pos += k
            return self.spectrum_to_mean(acc, total)
        acc_r = np.zeros((self.ny, self.nx))
        pos = 0
        for chunk in self._chunks(h):
            k = len(chunk)
            _core.accumulate(chunk, shifts[pos : pos + k], weights[pos : pos + k], acc_r, None,
                             threads=self.threads, angles=None if angles is None else angles[pos : pos + k])
            pos += k
        if band < 0.5:  # the same band as accumulate_spectra keeps
            spec = np.fft.rfft2(acc_r)
            ky = np.abs(np.fft.fftfreq(self.ny) * self.ny)
            kx = np.arange(self.nx // 2 + 1)
            keep = (ky[:, None] <= np.floor(band * self.ny)) & (kx[None, :] <= np.floor(band * self.nx))
            acc_r = np.fft.irfft2(spec * keep, s=(self.ny, self.nx))
        return acc_r / total

    def _read_chunks(self, h: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(chunk of the input as read, indices of half h's images in it), in input order."""
        for start in range(0, self.n, CHUNK):
            stop = min(self.n, start + CHUNK)
            sel = np.flatnonzero(self.half[start:stop] == h + 1)
            if len(sel):
                yield self.src.read(start, stop), sel

    def _chunks(self, h: int) -> Iterator[np.ndarray]:
        """Half h's images, in input order, a chunk of the input at a time."""
        for chunk, sel in self._read_chunks(h):
            yield np.ascontiguousarray(chunk[sel])


def _noop_progress(it, desc):  # type: ignore[no-untyped-def]
    return it


def _tqdm_progress(it, desc):  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)


def _search_band(ny: int, nx: int, lowpass: float) -> float:
    """Band (cycles/px, as accumulate_spectra keeps it) holding every frequency
    that a search low-passed at ``lowpass`` reads, with BAND_MARGIN above it."""
    ky, kx = _core.search_extent(ny, nx, lowpass=lowpass if lowpass < 0.5 else None)
    return float(min(0.5, max(lowpass + BAND_MARGIN, (ky + 0.5) / ny, (kx + 0.5) / nx)))


def _band_extent(ny: int, nx: int, band: float) -> tuple[int, int]:
    """Largest |ky| and kx of the band that the spectral sums keep (ny//2, nx//2: all);
    for a _search_band, all that its search reads too."""
    if band >= 0.5:
        return ny // 2, nx // 2
    return int(math.floor(band * ny)), min(nx // 2, int(math.floor(band * nx)))


def _initial_references(src: Any, halves: _Halves, reference: Any, lowpass: float) -> list[np.ndarray]:
    ny, nx = halves.ny, halves.nx
    if reference is None:
        refs = []
        # The first search is low-passed at `lowpass`: the sums need only the
        # band it reads (and the recentring, at 0.1 cycles/px, less).
        band = _search_band(ny, nx, lowpass)
        for h in (0, 1):
            # Sum of the unaligned images of this half only (gold standard).
            ones = np.ones(len(halves.index[h]))
            refs.append(halves.average(h, np.zeros((len(ones), 2)), ones, band))
        return refs
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        i = int(reference)
        if not -halves.n <= i < halves.n:
            raise ValueError(f"reference index {i} is out of range for {halves.n} images")
        i %= halves.n
        img = src.read(i, i + 1)[0].astype(np.float64)
        if not np.isfinite(img).all():
            raise ValueError(f"reference image {i} contains NaN or infinity")
        r = _lowpass_image(img, lowpass)
        return [r, r.copy()]
    ref = as_image(reference, "reference", float64=True).copy()  # never the caller's array
    if ref.shape != (ny, nx):
        raise ValueError(f"reference must have the images' box {(ny, nx)}, got {ref.shape}")
    return [ref, ref.copy()]


def _shift_spectrum(spec: np.ndarray, d: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
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


def _half_resolution(qa: np.ndarray, qb: np.ndarray, mask_radius: Optional[float],
                     shape: Optional[tuple[int, int]] = None) -> float:
    """FRC 0.143 crossing (cycles/px) expected for a half, from two quarter averages
    (images; or, with ``shape``, their half spectra, in any scale).

    The quarter-set FRC is corrected to the twice larger half set with the
    Rosenthal-Henderson relation ``FRC' = 2 FRC / (1 + FRC)``.
    """
    if shape is not None and mask_radius is not None:
        qa, qb = np.fft.irfft2(qa, s=shape), np.fft.irfft2(qb, s=shape)
        shape = None
    q = frc(qa, qb, mask_radius=mask_radius) if shape is None else frc_of_spectra(qa, qb, shape)
    v = np.clip(q.values, -0.99, 1.0)
    corrected = FRC(q.frequencies, 2 * v / (1 + v), q.ssnr, q.counts)
    return corrected.resolution_0143


def align(
    images: Any,
    reference: Union[None, int, np.ndarray] = None,
    *,
    rotate: bool = True,
    threshold: Union[str, float] = "auto",
    iterations: int = 10,
    half_split: HalfSplit = "random",
    seed: Optional[int] = 0,
    mode: str = "iterative",
    pixel_size_A: Optional[float] = None,
    lowpass_A: Optional[float] = None,
    max_shift: Optional[float] = None,
    threads: Optional[int] = None,
    progress: bool = True,
    callback: Optional[Callable[[dict], None]] = None,
    upsample: int = 20,
    mask_radius: Optional[float] = None,
    tolerance_px: float = 0.01,
    cache_spectra: Optional[bool] = None,
    local_search: bool = True,
    checkpoint: Optional[str] = None,
    resume: bool = False,
) -> AlignResult:
    """Align a particle stack and average it in two independent half-sets.

    Parameters
    ----------
    images : array (N, ny, nx), or a stack from :func:`cryocore.io.open_stack`
        Read chunk by chunk; memory-mapped inputs are never copied whole.
    reference : None, int or array (ny, nx)
        ``None``: reference-free, each half starts from the sum of its own
        unaligned images. An ``int`` picks an image of the stack (low-passed
        to the first iteration's band). An array is used as given.
    rotate : bool
        Also search in-plane rotations (:func:`cryocore.register` with
        ``rotate=True``); the images are then averaged by one bicubic
        interpolation of their whole pose, and the spectra cache is not used.
    threshold : "auto" or float
        ``"auto"``: per half, reject scores below ``median - 4 * 1.4826 * MAD``
        (:func:`auto_threshold`). A float is a Pearson score (CONVENTIONS.md):
        images scoring below it are rejected.
    iterations : int
        Most iterations (``mode="iterative"``); stops earlier when the RMS pose
        change of both halves is below ``tolerance_px`` and the accepted sets
        no longer change.
    half_split : "random", "halves", "even-odd" or an array of 1/2 labels
    seed : int, for the random half split.
    mode : "iterative" or "online"
        ``"online"``: one pass, image after image, against the running
        weighted average of the half (the original report's method).
    pixel_size_A : float, optional
        Å per pixel (default: from the stack when it has one).
    lowpass_A : float, optional
        Never use frequencies finer than this resolution (Å; needs a pixel size).
    max_shift : float, optional
        Search radius in pixels.
    threads : int, optional (default: all cores)
    progress : bool
        tqdm progress bars.
    callback : callable(dict), optional
        Called after every iteration with that iteration's history rows and
        the current half averages (keys ``iteration``, ``rows``, ``half_averages``).
    upsample : int
        Sub-pixel refinement factor of the shift search.
    mask_radius : float, optional
        Soft circular mask radius (px) for the FRC.
    cache_spectra : bool, optional
        Keep the images' spectra in memory between iterations (default: when
        they take at most 4 GiB), so an iteration needs no forward FFT. Only
        the low frequencies that the searches read are kept (at first up to
        0.3 cycles/px, about a third of the whole spectra; cropped wider if
        the resolution grows past it); the final averages, over the whole
        band, take one more forward FFT of each image.
    local_search : bool
        An image accepted in the previous iteration whose pose has settled
        (moved less than 0.5 px and 1 degree between the two iterations
        before) is searched around its last pose instead of globally: its
        shift by sub-pixel grids moved at most 2.4 px per axis, its angle
        (``rotate=True``) by one-degree steps, at most 16 (translations
        only: with the spectra cache). The others are searched globally.
        ``False``: the global search every iteration (slower).
    checkpoint : str, optional
        File (``.npz``) where the state is saved, atomically, after every
        iteration: poses, scores, references, low-pass, history.
    resume : bool
        Continue from ``checkpoint`` when it exists (same input and
        parameters, else ValueError). The result is the same as that of an
        uninterrupted run.

    Returns
    -------
    AlignResult
    """
    t_start = time.perf_counter()
    src = _as_source(images)
    n, ny, nx = (int(v) for v in src.shape)
    if mode not in ("iterative", "online"):
        raise ValueError(f"mode must be 'iterative' or 'online', got {mode!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if isinstance(threshold, str):
        if threshold != "auto":
            raise ValueError(f"threshold must be 'auto' or a number in [-1, 1], got {threshold!r}")
    else:
        try:
            thr_value = float(threshold)
        except (TypeError, ValueError):
            raise TypeError(f"threshold must be 'auto' or a number, got {threshold!r}") from None
        if not -1.0 <= thr_value <= 1.0:
            raise ValueError(f"threshold is a Pearson score and must be in [-1, 1], got {threshold!r}")
    if pixel_size_A is None:
        pixel_size_A = getattr(src, "pixel_size_A", None)
    if pixel_size_A is not None and not (math.isfinite(float(pixel_size_A)) and float(pixel_size_A) > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    cap = 0.5
    if lowpass_A is not None:
        if pixel_size_A is None:
            raise ValueError("lowpass_A needs the pixel size: pass pixel_size_A (or a stack whose header has it)")
        if not float(lowpass_A) >= 2 * float(pixel_size_A):
            raise ValueError(f"lowpass_A must be at least twice the pixel size ({2 * float(pixel_size_A):g} Å), got {lowpass_A!r}")
        cap = float(pixel_size_A) / float(lowpass_A)
    if max_shift is not None and not 0 <= float(max_shift) <= min(ny, nx) / 2:
        raise ValueError(f"max_shift must be between 0 and half the box ({min(ny, nx) / 2:g} px), got {max_shift!r}")
    nthreads = as_threads(threads)
    half = split_halves(n, half_split, seed)
    show = _tqdm_progress if progress else _noop_progress
    # Auto: cache while the (cropped) spectra take at most MAX_SPECTRA_CACHE.
    cache_limit = MAX_SPECTRA_CACHE if cache_spectra is None else None
    if cache_spectra is None:
        cache_spectra = True
    first_lowpass = min(cap, 0.1)
    params = dict(
        n_images=n, box=[ny, nx], rotate=rotate, threshold=threshold, iterations=iterations,
        half_split=half_split if isinstance(half_split, str) else "array", seed=seed, mode=mode,
        pixel_size_A=pixel_size_A, lowpass_A=lowpass_A, max_shift=max_shift, threads=nthreads,
        upsample=upsample, mask_radius=mask_radius, cache_spectra=bool(cache_spectra) and mode == "iterative",
        local_search=bool(local_search),
        reference=("reference-free" if reference is None else (f"image {int(reference)}" if isinstance(reference, (int, np.integer)) else "array")),
    )
    reg_kw: dict[str, Any] = dict(upsample=int(upsample), max_shift=None if max_shift is None else float(max_shift))

    if mode == "online":
        if rotate:
            raise NotImplementedError("mode='online' aligns translations only; use mode='iterative' for rotate=True")
        return _align_online(src, half, reference, threshold, pixel_size_A, cap, nthreads, show, params, reg_kw, mask_radius, t_start)

    if checkpoint is not None and resume and os.path.exists(checkpoint):
        # Plan the FFTs exactly as the interrupted process did (same rounding).
        _import_checkpoint_wisdom(checkpoint)
    t0 = time.perf_counter()
    # The spectra cache serves translations only (a rotation needs the images).
    first_need = _band_extent(ny, nx, _search_band(ny, nx, first_lowpass))
    halves = _Halves(src, half, nthreads, bool(cache_spectra) and not rotate, show, cache_limit, first_need)
    timings = {"fft_cache_s": time.perf_counter() - t0}
    refs = _initial_references(src, halves, reference, first_lowpass)
    # Recentre the starting references; poses found against them refer to the recentred frame.
    refs = [shift(r, -centre_of_mass_offset(r), threads=1) for r in refs]

    shifts = [np.zeros((len(ix), 2)) for ix in halves.index]
    angles = [np.zeros(len(ix)) for ix in halves.index]
    scores = [np.zeros(len(ix)) for ix in halves.index]
    accepted = [np.ones(len(ix), bool) for ix in halves.index]
    thresholds = np.zeros(2)
    history: list[dict] = []
    frames: list[np.ndarray] = []
    # Each half sets its own next low-pass from the FRC of two quarter
    # averages inside it (corrected to the half size), so that nothing of one
    # half, not even a resolution estimate, reaches the other before the end.
    lowpass = [first_lowpass, first_lowpass]
    quarter = [np.arange(len(ix)) % 2 == 0 for ix in halves.index]
    groups = [np.where(q, 0, 1).astype(np.int32) for q in quarter]
    prev_pose: list[Optional[tuple[np.ndarray, np.ndarray]]] = [None, None]  # poses of the iteration before
    avgs: list[np.ndarray] = refs
    fingerprint = _fingerprint(src, half, params, tolerance_px, cap)
    done, converged = 0, False
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        st = _load_checkpoint(checkpoint, fingerprint)
        done, converged = st["iteration"], st["converged"]
        refs = avgs = st["refs"]
        lowpass, shifts, scores, accepted = st["lowpass"], st["shifts"], st["scores"], st["accepted"]
        angles = st["angles"]
        thresholds, history, frames = st["thresholds"], st["history"], st["frames"]
        prev_pose = st["prev_pose"]
    t_iter = time.perf_counter()
    todo = [] if converged else range(done + 1, iterations + 1)
    for it in progress_iter(todo, progress):
        rows = []
        new_avgs = []
        for h in (0, 1):
            lp = lowpass[h]
            lp_kw = dict(lowpass=lp if lp < 0.5 else None, **reg_kw)
            # References need only the band being searched; a margin above it
            # lets the quarter FRC see the resolution improve.
            band = _search_band(ny, nx, lp)
            # The spectra cache must hold what this search and band read.
            halves.ensure(*_band_extent(ny, nx, band))
            # With cached spectra (translations), each quarter's band is summed
            # in the same pass as the registration, over all images; the
            # rejected ones are taken out afterwards. Worth it while few are
            # rejected (judged by the previous iteration).
            fused = halves.spectra is not None and not rotate and float(np.mean(~accepted[h])) <= 0.25
            # Local search: an image accepted last time whose pose has settled
            # (moved less than LOCAL_SHIFT_PX and LOCAL_ANGLE_DEG between the
            # last two iterations) is searched around its last pose; the
            # others globally. (Early references are blurred, rotationally
            # above all: poses found against them are not yet to be trusted.)
            prior_shifts = prior_angles = None  # NaN: search globally
            before = prev_pose[h]
            if local_search and before is not None:
                dshift = np.hypot(*(shifts[h] - before[0]).T)
                dpsi = np.abs((angles[h] - before[1] + 180.0) % 360.0 - 180.0)
                settled = accepted[h] & (dshift < LOCAL_SHIFT_PX) & (dpsi < LOCAL_ANGLE_DEG)
                prior_shifts = np.where(settled[:, None], shifts[h], np.nan)
                prior_angles = np.where(settled, angles[h], np.nan)
            if fused:
                s, c, sums = halves.register_accumulate(h, refs[h], groups[h], band, prior=prior_shifts, **lp_kw)
                a = np.zeros(len(c))
            else:
                prior = None
                if rotate and prior_angles is not None and prior_shifts is not None:
                    prior = (prior_angles, prior_shifts)
                s, a, c = halves.register(h, refs[h], rotate, prior=prior, **lp_kw)
            thr = auto_threshold(c) if threshold == "auto" else float(threshold)
            acc = c >= thr
            if not acc.any():
                raise ValueError(
                    f"no image of half {h + 1} scored at or above the threshold {thr:.3f} in iteration {it} "
                    f"(best score {c.max():.3f}); lower the threshold or use threshold='auto'"
                )
            wa = (acc & quarter[h]).astype(np.float64)
            wb = (acc & ~quarter[h]).astype(np.float64)
            # The quarters' sums as half spectra (unnormalised).
            if fused:
                halves.subtract(h, s, (~acc & quarter[h]).astype(np.float64), band, sums[0])
                halves.subtract(h, s, (~acc & ~quarter[h]).astype(np.float64), band, sums[1])
                qa, qb = sums[0], sums[1]
            else:
                rot = a if rotate else None
                qa = np.fft.rfft2(halves.average(h, s, wa, band, rot) * wa.sum())
                qb = np.fft.rfft2(halves.average(h, s, wb, band, rot) * wb.sum())
            mean = (qa + qb) / (wa.sum() + wb.sum())
            # Keep the average centred in the box: move it and re-express the poses.
            com = _centre_of_mass_of_spectrum(mean, (ny, nx))
            avg = np.fft.irfft2(_shift_spectrum(mean, -com, (ny, nx)), s=(ny, nx))
            s = s + rotate_vectors(np.broadcast_to(com, s.shape), a)
            change = float(np.sqrt(np.mean(np.sum((s - shifts[h]) ** 2, axis=1)))) if it > 1 else float("nan")
            dpsi = (a - angles[h] + 180.0) % 360.0 - 180.0
            angle_change = float(np.sqrt(np.mean(dpsi**2))) if it > 1 else float("nan")
            changed_set = int((acc != accepted[h]).sum())
            prev_pose[h] = (shifts[h], angles[h]) if it > 1 else None
            shifts[h], angles[h], scores[h], accepted[h], thresholds[h] = s, a, c, acc, thr
            new_avgs.append(avg)
            own = _half_resolution(qa, qb, mask_radius, (ny, nx))
            lowpass[h] = min(cap, float(min(0.5, max(first_lowpass, own + 0.02))))
            rows.append(dict(iteration=it, half=h + 1, mean_score=float(c.mean()), median_score=float(np.median(c)),
                             accepted=int(acc.sum()), total=int(len(c)), pose_change=change,
                             angle_change=angle_change, accepted_changes=changed_set, threshold=float(thr),
                             lowpass=float(lp), half_resolution=own))
        a1, a2, _, _ = _align_pair(new_avgs[0], new_avgs[1], nthreads, rotate)
        fr = frc(a1, a2, mask_radius=mask_radius, pixel_size_A=pixel_size_A)
        for r in rows:
            r["resolution"] = fr.resolution_0143
        history.extend(rows)
        frames.append(_combine(a1, a2, rows[0]["accepted"], rows[1]["accepted"]).astype(np.float32))
        avgs = new_avgs
        refs = new_avgs
        converged = it > 1 and all(
            r["pose_change"] < tolerance_px and r["accepted_changes"] == 0
            and (not rotate or r["angle_change"] < ANGLE_TOLERANCE_DEG) for r in rows
        )
        if checkpoint is not None:
            _save_checkpoint(checkpoint, fingerprint, dict(
                iteration=it, converged=converged, refs=refs, lowpass=lowpass, shifts=shifts, angles=angles,
                scores=scores, prev_pose=prev_pose,
                accepted=accepted, thresholds=thresholds, history=history, frames=frames))
        if callback is not None:
            callback(dict(iteration=it, rows=rows, half_averages=np.stack([a1, a2])))
        if converged:
            break
    timings["iterations_s"] = time.perf_counter() - t_iter

    # Final: full-band half averages at the last poses; half 2's average
    # aligned onto half 1's, and half 2's poses composed with that shift.
    t0 = time.perf_counter()
    avgs = [halves.average(h, shifts[h], accepted[h].astype(np.float64), 0.5, angles[h] if rotate else None)
            for h in (0, 1)]
    timings["final_average_s"] = time.perf_counter() - t0
    a1, a2, psi21, t21 = _align_pair(avgs[0], avgs[1], nthreads, rotate)
    # half 2 = (half 1 rotated by psi21, shifted by t21): compose the poses
    shifts[1] = shifts[1] + rotate_vectors(np.broadcast_to(t21, shifts[1].shape), angles[1])
    angles[1] = (angles[1] + psi21) % 360.0
    return _finish(n, ny, nx, half, halves.index, shifts, scores, accepted, thresholds, a1, a2, history, frames,
                   pixel_size_A, mask_radius, src, params, timings, t_start, angles)


def progress_iter(it, progress):  # type: ignore[no-untyped-def]
    return _tqdm_progress(it, "iterations") if progress else it


def rotate_vectors(v: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``Rot(psi) v`` for (dy, dx) vectors (N, 2) and angles (N,) in degrees (pose convention)."""
    a = np.radians(np.asarray(angles, np.float64))
    c, s = np.cos(a), np.sin(a)
    dy, dx = v[:, 0], v[:, 1]
    return np.stack([s * dx + c * dy, c * dx - s * dy], axis=1)


def _align_pair(a1: np.ndarray, a2: np.ndarray, threads: int,
                rotate: bool = False) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Bring ``a2`` onto ``a1``: returns (a1, a2 moved, psi, t) with ``a2 = a1 rotated by psi, moved by t``."""
    r1 = np.ascontiguousarray(a1, np.float32)[None]
    r2 = np.ascontiguousarray(a2, np.float32)[None]
    if rotate:
        s, a, _, _ = _core.register_rotate(r1, r2, angular_step=0.5, upsample=50, threads=threads)
        psi, t = float(a[0]), s[0]
        moved = _core.transform_stack(r2, np.array([psi]), np.array([t]), inverse=True, threads=1)[0]
        return np.asarray(a1, np.float64), moved.astype(np.float64), psi, t
    s, _, _ = _core.register_stack(r1, r2, upsample=50, threads=1)
    t = s[0]
    return np.asarray(a1, np.float64), shift(a2, -t, threads=1).astype(np.float64), 0.0, t


def _combine(a1: np.ndarray, a2: np.ndarray, n1: int, n2: int) -> np.ndarray:
    tot = n1 + n2
    return (n1 * a1 + n2 * a2) / tot if tot else 0.5 * (a1 + a2)


def _finish(n, ny, nx, half, index, shifts, scores, accepted, thresholds, a1, a2, history, frames,
            pixel_size_A, mask_radius, src, params, timings, t_start, angles=None) -> AlignResult:  # type: ignore[no-untyped-def]
    all_shifts = np.zeros((n, 2))
    all_angles = np.zeros(n)
    all_scores = np.zeros(n)
    all_acc = np.zeros(n, bool)
    for h in (0, 1):
        all_shifts[index[h]] = shifts[h]
        if angles is not None:
            all_angles[index[h]] = angles[h]
        all_scores[index[h]] = scores[h]
        all_acc[index[h]] = accepted[h]
    n1, n2 = int(accepted[0].sum()), int(accepted[1].sum())
    fr = frc(a1, a2, mask_radius=mask_radius, pixel_size_A=pixel_size_A)
    timings["total_s"] = time.perf_counter() - t_start
    return AlignResult(
        shifts=all_shifts,
        angles=all_angles,
        scores=all_scores,
        accepted=all_acc,
        half=half.copy(),
        average=_combine(a1, a2, n1, n2).astype(np.float32),
        half_averages=np.stack([a1, a2]).astype(np.float32),
        frc=fr,
        thresholds=thresholds,
        history=history,
        frames=np.stack(frames).astype(np.float32) if frames else np.zeros((0, ny, nx), np.float32),
        pixel_size_A=None if pixel_size_A is None else float(pixel_size_A),
        image_names=getattr(src, "image_names", None),
        parameters=params,
        timings=timings,
    )


def _align_online(src, half, reference, threshold, pixel_size_A, cap, threads, show, params, reg_kw, mask_radius, t_start):  # type: ignore[no-untyped-def]
    """The report's single pass: each image against the running weighted average of its half."""
    n, ny, nx = (int(v) for v in src.shape)
    index = [np.flatnonzero(half == h) for h in (1, 2)]
    if reference is None:
        raise ValueError("mode='online' needs a starting reference: an image index or an array")
    first_lowpass = min(cap, 0.1)
    tmp = _Halves(src, half, threads, False, _noop_progress)
    refs = _initial_references(src, tmp, reference, first_lowpass)
    sums = [r.copy() for r in refs]  # the starting reference counts as one image of weight 1
    weights = [1.0, 1.0]
    shifts = [np.zeros((len(ix), 2)) for ix in index]
    scores = [np.zeros(len(ix)) for ix in index]
    accepted = [np.zeros(len(ix), bool) for ix in index]
    fixed = None if threshold == "auto" else float(threshold)
    history: list[dict] = []
    frames = []
    every = max(1, n // 40)
    pos = [0, 0]
    t0 = time.perf_counter()
    for i in show(range(n), "images"):
        h = int(half[i]) - 1
        img = src.read(i, i + 1)
        ref = (sums[h] / weights[h]).astype(np.float32)
        s, c, _ = _core.register_stack(ref[None], img, lowpass=first_lowpass, threads=1, **reg_kw)
        k = pos[h]
        pos[h] += 1
        shifts[h][k], scores[h][k] = s[0], c[0]
        seen = scores[h][: k + 1]
        thr = auto_threshold(seen) if fixed is None else fixed
        if fixed is None and k < 10:
            thr = -1.0  # too few scores for a robust rule yet
        if c[0] >= thr and c[0] > 0:
            w = float(c[0])
            add = np.zeros((ny, nx))
            _core.accumulate(img, s, np.array([w]), add, None, threads=1)
            sums[h] += add
            weights[h] += w
            accepted[h][k] = True
        if (i + 1) % every == 0 or i == n - 1:
            frames.append(_combine(sums[0] / weights[0], sums[1] / weights[1], 1, 1))
            for hh in (0, 1):
                m = pos[hh]
                history.append(dict(iteration=i + 1, half=hh + 1, mean_score=float(scores[hh][:m].mean()) if m else 0.0,
                                    accepted=int(accepted[hh][:m].sum()), total=m, pose_change=float("nan"),
                                    threshold=float(thr), lowpass=float(first_lowpass)))
    thresholds = np.array([auto_threshold(scores[0]) if fixed is None else fixed,
                           auto_threshold(scores[1]) if fixed is None else fixed])
    timings = {"online_s": time.perf_counter() - t0}
    a1, a2, _, t21 = _align_pair(sums[0] / weights[0], sums[1] / weights[1], threads)
    shifts[1] = shifts[1] + t21
    return _finish(n, ny, nx, half, index, shifts, scores, accepted, thresholds, a1, a2, history, frames,
                   pixel_size_A, mask_radius, src, params, timings, t_start)
