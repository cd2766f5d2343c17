"""The iteration loop of :func:`cryocore.align`: passes over the chunks, thresholds,
new references, convergence, and the final half-set averages.

One iteration reads each chunk once (:func:`kernel.search_chunk`: search and
sums in the same read) and reads again only the chunks that hold images the
threshold rejects (:func:`kernel.sum_chunk` with weight -1). The partial sums
are added in chunk order.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import uuid
from typing import Any, Callable, Optional

import numpy as np

from ..frc import frc
from ..preprocess import PreprocessedSource
from ..transforms import shift
from .chunks import (CACHE_BAND, CACHE_BAND_STEP, Chunk, band_extent, crop_for, holds, make_chunks,
                     plan_memory, search_band)
from .config import AlignConfig
from .executor import Executor, LocalExecutor
from .geometry import (align_pair, centre_of_mass_of_spectrum, centre_of_mass_offset, combine, half_resolution,
                       lowpass_image, rotate_vectors, shift_spectrum)
from .kernel import ChunkCtf, ClassWeights, Pass, release_scratch
from .reading import StackReader
from .tasks import SearchBlock, SearchShared, SumBlock, SumShared, blocks_of, search_block, sum_block
from .result import AlignResult
from .selection import auto_threshold
from .state import AlignState, fingerprint, import_wisdom
from .sums import SpectralSums

__all__ = ["FinalSource", "run_iterative", "finish"]

LOCAL_SHIFT_PX = 0.5  # local search for poses that moved less than this between two iterations
LOCAL_ANGLE_DEG = 1.0  # ... and turned less than this
ANGLE_TOLERANCE_DEG = 0.05  # RMS angle change below which rotations count as converged

Progress = Callable[[Any, str], Any]


class _Stack:
    """The run's view of its input: chunks, the reader (and its spectra cache), the executor, the passes."""

    def __init__(self, source: Any, half: np.ndarray, config: AlignConfig, executor: Executor,
                 progress: Progress, ctf: Optional[ChunkCtf] = None, search: bool = True) -> None:
        self.source = source
        self.n, self.ny, self.nx = (int(v) for v in source.shape)
        self.config = config
        self.threads = executor.task_threads(config.threads)
        self.rotate = config.search.rotate
        self.K = config.n_classes
        # (a preprocessed read holds the input's images and an intermediate besides the result)
        read_bytes = 4 * (int(np.prod(source.input_shape[1:])) + self.ny * self.nx) \
            if isinstance(source, PreprocessedSource) else 0
        # (search=False: a stack only summed, without prepared rotated references)
        self.memory = plan_memory(config.max_memory, self.n, self.ny, self.nx, self.K, self.rotate and search,
                                  config.search.angular_step, ctf is not None, read_bytes)
        self.chunks = make_chunks(half, self.memory.chunk_size)
        self.executor = executor
        self.progress = progress
        # the spectra cache serves translations (a rotation needs the images); each process keeps
        # the spectra of the chunks it reads while they fit the budget, cropped to cache_crop
        self.caching = config.cache_spectra and not self.rotate
        self.cache_crop: Optional[tuple[int, int]] = None
        self.reader = StackReader.local(source, ctf, self.memory.cache_budget if self.caching else 0,
                                        other_processes=getattr(executor, "needs_files", False))
        self.ctf = ctf  # CTF correction: the kernel multiplies each image by its own CTF (CTF X)
        # the initial and final sums need quarters for the Wiener filter's SNR (CTF); without it,
        # one group per half sums in the order the pipeline always used
        self.final_quarters = ctf is not None
        self.phase_s: dict[str, float] = {}  # seconds spent per phase of the iterations

    def clock(self, phase: str, t0: float) -> float:
        """Add the time since t0 to ``phase``; returns now."""
        now = time.perf_counter()
        self.phase_s[phase] = self.phase_s.get(phase, 0.0) + now - t0
        return now

    # -- the spectra cache
    def use_cache(self, ky: int, kx: int) -> None:
        """Cache spectra cropped to hold |ky'| <= ky, kx' <= kx (each process fills its cache as
        its tasks read the chunks)."""
        if self.caching:
            self.cache_crop = crop_for(self.ny, self.nx, ky, kx)

    def ensure_cache(self, ky: int, kx: int) -> None:
        """Make the cache hold |ky'| <= ky, kx' <= kx, cropping it wider if needed."""
        if self.caching and not holds(self.cache_crop, ky, kx):
            self.use_cache(ky + math.ceil(CACHE_BAND_STEP * self.ny), kx + math.ceil(CACHE_BAND_STEP * self.nx))

    def close(self) -> None:
        """Forget this run's cache and stack in this process."""
        self.reader.release()

    # -- passes
    def search(self, p: Pass, prior_shifts: Optional[np.ndarray], prior_angles: Optional[np.ndarray],
               prior_classes: Optional[np.ndarray] = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, SpectralSums, Optional[list[ClassWeights]]]:
        """One search pass: poses, scores, classes (0-based) of every image, the sums (weight 1 each)
        and, with soft assignment, each chunk's class weights (else None)."""
        n = self.n
        shifts, angles, scores, classes = np.zeros((n, 2)), np.zeros(n), np.zeros(n), np.zeros(n, np.int32)
        total = SpectralSums.zeros(self.K, (self.ny, self.nx), ctf=self.ctf is not None)
        soft: list[Optional[ClassWeights]] = [None] * len(self.chunks)
        shared = SearchShared(self.reader, p, self.cache_crop if self.caching else False, self.threads)

        def cut(a: Optional[np.ndarray], group: list[Chunk]) -> Optional[np.ndarray]:
            return None if a is None else a[group[0].start : group[-1].stop]

        tasks = [SearchBlock(group, after, cut(prior_shifts, group), cut(prior_angles, group),
                             cut(prior_classes, group)) for group, after in blocks_of(self.chunks)]
        for results, sums in self.executor.map(search_block, tasks, shared):
            for r in results:
                c = self.chunks[r.index]
                sl = slice(c.start, c.stop)
                shifts[sl], angles[sl], scores[sl], classes[sl] = r.shifts, r.angles, r.scores, r.classes
                soft[r.index] = r.soft
            total += sums
        weights = None if soft[0] is None else [w for w in soft if w is not None]
        return shifts, angles, scores, classes, total, weights

    def sums(self, shifts: np.ndarray, angles: np.ndarray, classes: np.ndarray, weights: np.ndarray,
             band: tuple[float, float], rotate: bool, quarters: bool = True,
             soft: Optional[list[ClassWeights]] = None) -> SpectralSums:
        """Sums of the images with these poses and weights (only the chunks holding a non-zero weight
        are read); ``quarters=False``: all of a half's images in its first quarter's group; ``soft``
        (per chunk): each image in its classes by its class weights (soft assignment)."""
        total = SpectralSums.zeros(self.K, (self.ny, self.nx), ctf=self.ctf is not None)
        todo = [c if quarters else dataclasses.replace(c, quarter=np.zeros_like(c.quarter))
                for c in self.chunks if np.any(weights[c.start : c.stop] != 0)]
        if not todo:
            return total
        cached = self.caching and not rotate and holds(self.cache_crop, *band_extent(self.ny, self.nx, max(band)))
        shared = SumShared(self.reader, band, self.K, (self.ny, self.nx), rotate,
                           self.cache_crop if cached else False, self.threads)
        tasks = []
        for group, after in blocks_of(todo):
            sl = slice(group[0].start, group[-1].stop)
            tasks.append(SumBlock(group, after, shifts[sl], angles[sl], classes[sl], weights[sl],
                                  None if soft is None else [soft[c.index] for c in group]))
        for s in self.executor.map(sum_block, tasks, shared):
            total += s
        return total


def given_references(source: Any, reference: Any, lowpass: float) -> np.ndarray:
    """(2, K, ny, nx) float64 references as given: an int, that image of ``source``, low-passed;
    an array (ny, nx) or (K, ny, nx), as it is; the same for both halves."""
    ny, nx = (int(v) for v in source.shape[1:])
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        i = int(reference) % int(source.shape[0])
        img = source.read(i, i + 1)[0].astype(np.float64)
        if not np.isfinite(img).all():
            raise ValueError(f"reference image {i} contains NaN or infinity")
        return np.broadcast_to(lowpass_image(img, lowpass), (2, 1, ny, nx)).copy()
    ref = reference if reference.ndim == 3 else reference[None]
    return np.broadcast_to(ref, (2,) + ref.shape).copy()


def initial_references(stack: _Stack, reference: Any, lowpass: float) -> np.ndarray:
    """(2, K, ny, nx) float64 starting references, each recentred on its centre of mass.

    None: per half, the sum of its own unaligned images (over the band the first
    search reads); else :func:`given_references`.
    """
    ny, nx = stack.ny, stack.nx
    if reference is None:
        n = stack.n
        band = search_band(ny, nx, lowpass)
        sums = stack.sums(np.zeros((n, 2)), np.zeros(n), np.zeros(n, np.int32), np.ones(n), (band, band), False,
                          quarters=stack.final_quarters)
        refs = np.fft.irfft2(sums.mean_spectra(), s=(ny, nx))
    else:
        refs = given_references(stack.source, reference, lowpass)
    for h in (0, 1):
        for k in range(refs.shape[1]):
            refs[h, k] = shift(refs[h, k], -centre_of_mass_offset(refs[h, k]), threads=1)
    return refs


def run_iterative(source: Any, half: np.ndarray, config: AlignConfig, reference: Any, *, progress: Progress,
                  callback: Optional[Callable[[dict], None]] = None, checkpoint: Optional[str] = None,
                  resume: bool = False, executor: Optional[Executor] = None,
                  ctf: Optional[ChunkCtf] = None, final: Optional["FinalSource"] = None) -> AlignResult:
    """Iterative reference-based (or reference-free) alignment of both halves; see :func:`cryocore.align`.
    With ``ctf``, images are compared and averaged CTF-corrected (Wiener averages per half and class).
    With ``final``, the iterations run on ``source`` (binned) and the final averages are made from
    ``final.source`` (the same particles, a finer pixel), the poses scaled to it."""
    executor = executor or LocalExecutor()
    opened: list[_Stack] = []

    def make(*args: Any, **kwargs: Any) -> _Stack:
        opened.append(_Stack(*args, **kwargs))
        return opened[-1]

    try:
        t_start = time.perf_counter()
        stack = make(source, half, config, executor, progress, ctf)
        n, ny, nx = stack.n, stack.ny, stack.nx
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            import_wisdom(checkpoint)
        t0 = time.perf_counter()
        first = config.first_lowpass
        ky, kx = band_extent(ny, nx, search_band(ny, nx, first))
        stack.use_cache(max(ky, int(CACHE_BAND * ny)), max(kx, int(CACHE_BAND * nx)))
        timings: dict[str, Any] = {"memory": stack.memory.describe()}
        refs = initial_references(stack, reference, first)
        fp = fingerprint(source, half, config.fingerprint(), refs)
        st = AlignState.start(refs, n, first)
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            st = AlignState.load(checkpoint, fp)
        t_iter = time.perf_counter()
        todo = [] if st.converged else range(st.iteration + 1, config.iterations + 1)
        for it in (progress(todo, "iterations") if len(todo) else todo):
            rows, class_halves = _iterate(stack, st, it)
            if checkpoint is not None:
                t0 = time.perf_counter()
                st.save(checkpoint, fp)
                stack.clock("checkpoint_s", t0)
            if callback is not None:
                callback(dict(iteration=it, rows=rows, half_averages=class_halves[0], class_half_averages=class_halves))
            if st.converged:
                break
        timings["iterations_s"] = time.perf_counter() - t_iter
        timings["iteration_phases_s"] = dict(stack.phase_s)
        timings["cache_bytes"] = stack.reader.cached_bytes()  # (this process's; a dask worker keeps its own)
        # Final: whole-band half averages at the last poses (of the finer source, with one).
        t0 = time.perf_counter()
        refs = st.refs
        if final is not None:
            f = final.source.shape[2] / nx  # finer px per working px
            config = dataclasses.replace(config, pixel_size_A=final.pixel_size_A,
                                         mask_radius=None if config.mask_radius is None else config.mask_radius * f)
            st = dataclasses.replace(st, shifts=st.shifts * f)
            stack.close()
            source, stack = final.source, make(final.source, half, config, executor, progress,
                                               final.ctf, search=False)
            ny, nx = stack.ny, stack.nx
            refs = final.pad(st.refs.reshape((-1,) + st.refs.shape[2:])).reshape(st.refs.shape[:2] + (ny, nx))
        sums = stack.sums(st.shifts, st.angles, st.classes, st.accepted.astype(np.float64), (0.5, 0.5), stack.rotate,
                          quarters=stack.final_quarters)
        avgs = np.fft.irfft2(sums.mean_spectra(), s=(ny, nx))
        empty = sums.counts().sum(axis=2) == 0
        avgs[empty] = refs[empty]  # a class without images keeps its reference
        timings["final_average_s"] = time.perf_counter() - t0
        return finish(source, half, config, st, avgs, timings, t_start)
    finally:  # (also after an error or Ctrl-C) this run's caches, stacks, prepared searches, scratch
        for s in opened:
            s.close()
        release_scratch()


@dataclasses.dataclass(frozen=True)
class FinalSource:
    """Where a binned run's final averages come from: ``source`` (N, ny, nx) the same particles at
    the finer pixel size ``pixel_size_A``, ``ctf`` their CTF correction at that pixel size (or
    None), ``pad`` resampling (M, ny', nx') working images to the finer box."""

    source: Any
    pixel_size_A: Optional[float]
    ctf: Optional[ChunkCtf]
    pad: Callable[[np.ndarray], np.ndarray]


def _iterate(stack: _Stack, st: AlignState, it: int) -> tuple[list[dict], np.ndarray]:
    """One iteration: search, threshold, new references; updates ``st`` in place."""
    config, ny, nx = stack.config, stack.ny, stack.nx
    half = np.concatenate([c.half for c in stack.chunks])
    band = tuple(search_band(ny, nx, float(lp)) for lp in st.lowpass)
    need = [band_extent(ny, nx, b) for b in band]
    ky, kx = max(e[0] for e in need), max(e[1] for e in need)
    stack.ensure_cache(ky, kx)
    prior_shifts, prior_angles = _priors(stack, st)
    p = Pass(refs=st.refs.astype(np.float32), lowpass=(float(st.lowpass[0]), float(st.lowpass[1])),
             band=(band[0], band[1]), crop=crop_for(ny, nx, ky, kx), search=config.search, key=(uuid.uuid4().hex,),
             ctf=stack.ctf)
    t0 = time.perf_counter()
    # (soft assignment: every image against its candidate classes, none searched locally in one class)
    s, a, c, cls, sums, soft = stack.search(p, prior_shifts, prior_angles,
                                            None if config.search.soft_assignment else st.classes)
    t0 = stack.clock("search_s", t0)
    thresholds, acc = _thresholds(config, half, c, cls, stack.K, it)
    if (~acc).any():  # the rejected images come out of the sums again
        sums += stack.sums(s, a, cls, -(~acc).astype(np.float64), p.band, stack.rotate, soft=soft)
    t0 = stack.clock("subtract_s", t0)
    new_refs, com = _new_references(sums, st.refs)
    s = s + rotate_vectors(com[half - 1, cls], a)  # the poses follow the recentred references
    rows = _history_rows(stack, st, it, half, sums, s, a, c, cls, acc, thresholds)
    t0 = stack.clock("references_s", t0)
    class_halves = _half_to_half(stack, st, rows, new_refs, sums.counts())
    stack.clock("half_to_half_s", t0)
    st.prev_shifts, st.prev_angles = (st.shifts, st.angles) if it > 1 else (None, None)
    st.converged = it > 1 and (all(
        r["pose_change"] < config.tolerance_px and r["accepted_changes"] == 0 and r.get("class_changes", 0) == 0
        and (not stack.rotate or r["angle_change"] < ANGLE_TOLERANCE_DEG) for r in rows) or (
        stack.K > 1 and config.class_tolerance > 0 and all(
            max(r["class_changes"], r["accepted_changes"]) <= config.class_tolerance * r["total"] for r in rows)))
    st.shifts, st.angles, st.scores, st.accepted, st.classes = s, a, c, acc, cls
    st.thresholds, st.refs, st.iteration = thresholds, new_refs, it
    return rows, class_halves


def _priors(stack: _Stack, st: AlignState) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Local search: an image accepted last time whose pose has settled (moved less than
    LOCAL_SHIFT_PX and LOCAL_ANGLE_DEG between the last two iterations) is searched around its
    last pose (NaN: globally). Early references are blurred, rotationally above all: poses found
    against them are not yet to be trusted. Translations: only with the spectra cache."""
    if not (stack.config.search.local_search and st.prev_shifts is not None and st.prev_angles is not None
            and (stack.rotate or stack.caching)):
        return None, None
    dshift = np.hypot(*(st.shifts - st.prev_shifts).T)
    dpsi = np.abs((st.angles - st.prev_angles + 180.0) % 360.0 - 180.0)
    settled = st.accepted & (dshift < LOCAL_SHIFT_PX) & (dpsi < LOCAL_ANGLE_DEG)
    return np.where(settled[:, None], st.shifts, np.nan), np.where(settled, st.angles, np.nan)


def _thresholds(config: AlignConfig, half: np.ndarray, scores: np.ndarray, classes: np.ndarray, K: int,
                it: int) -> tuple[np.ndarray, np.ndarray]:
    """(2, K) score thresholds per half and class, and which images pass them."""
    thresholds = np.full((2, K), -1.0)
    acc = np.zeros(len(scores), bool)
    for h in (0, 1):
        for k in range(K):
            m = (half == h + 1) & (classes == k)
            if m.any():
                thresholds[h, k] = auto_threshold(scores[m], config.threshold_mad) if config.threshold == "auto" else float(config.threshold)
                acc[m] = scores[m] >= thresholds[h, k]
        if not acc[half == h + 1].any():
            raise ValueError(
                f"no image of half {h + 1} scored at or above the threshold {thresholds[h].min():.3f} in iteration "
                f"{it} (best score {scores[half == h + 1].max():.3f}); lower the threshold or use threshold='auto'")
    return thresholds, acc


def _new_references(sums: SpectralSums, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each class's mean, recentred on its centre of mass ((2, K, ny, nx)), and that centre
    ((2, K, 2) px); a class without images keeps its reference."""
    ny, nx = sums.shape
    means, counts = sums.mean_spectra(), sums.counts()
    new_refs = refs.copy()
    com = np.zeros(refs.shape[:2] + (2,))
    for h in (0, 1):
        for k in range(refs.shape[1]):
            if counts[h, k].sum() > 0:
                com[h, k] = centre_of_mass_of_spectrum(means[h, k], (ny, nx))
                new_refs[h, k] = np.fft.irfft2(shift_spectrum(means[h, k], -com[h, k], (ny, nx)), s=(ny, nx))
    return new_refs, com


def _history_rows(stack: _Stack, st: AlignState, it: int, half: np.ndarray, sums: SpectralSums, s: np.ndarray,
                  a: np.ndarray, c: np.ndarray, cls: np.ndarray, acc: np.ndarray,
                  thresholds: np.ndarray) -> list[dict]:
    """One history row per half; sets each half's next low-pass from its quarter sums' FRC."""
    config, K = stack.config, stack.K
    rows = []
    for h in (0, 1):
        m = half == h + 1
        change = float(np.sqrt(np.mean(np.sum((s[m] - st.shifts[m]) ** 2, axis=1)))) if it > 1 else float("nan")
        dpsi = (a[m] - st.angles[m] + 180.0) % 360.0 - 180.0
        angle_change = float(np.sqrt(np.mean(dpsi**2))) if it > 1 else float("nan")
        qa, qb = sums.quarter_spectra(h)
        own = half_resolution(qa[0] if K == 1 else qa, qb[0] if K == 1 else qb, sums.shape, config.mask_radius)
        row = dict(iteration=it, half=h + 1, mean_score=float(c[m].mean()), median_score=float(np.median(c[m])),
                   accepted=int(acc[m].sum()), total=int(m.sum()), pose_change=change, angle_change=angle_change,
                   accepted_changes=int((acc[m] != st.accepted[m]).sum()),
                   threshold=float(thresholds[h, 0]) if K == 1 else float(np.mean(thresholds[h])),
                   lowpass=float(st.lowpass[h]), half_resolution=own)
        if K > 1:
            row.update(class_changes=int((cls[m] != st.classes[m]).sum()) if it > 1 else int(m.sum()),
                       class_counts=np.bincount(cls[m & acc], minlength=K).tolist())
        rows.append(row)
        st.lowpass[h] = min(config.cap, float(min(0.5, max(config.first_lowpass, own + 0.02))))
    return rows


def _half_to_half(stack: _Stack, st: AlignState, rows: list[dict], refs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each class's half averages brought together (K, 2, ny, nx): the iteration's resolution (into
    ``rows``) and its frame (into ``st.frames``)."""
    config, K = stack.config, stack.K
    class_halves = np.zeros((K, 2, stack.ny, stack.nx))
    res = np.zeros(K)
    frame = []
    for k in range(K):
        # (for the history and the frames only: a coarser angular step than the final one)
        a1, a2, _, _ = align_pair(refs[0, k], refs[1, k], config.threads, stack.rotate, angular_step=1.0)
        class_halves[k] = a1, a2
        res[k] = frc(a1, a2, mask_radius=config.mask_radius, pixel_size_A=config.pixel_size_A).resolution_0143
        frame.append(combine(a1, a2, int(counts[0, k].sum()), int(counts[1, k].sum())))
    for r in rows:
        r["resolution"] = float(res[0] if K == 1 else np.median(res[counts.sum(axis=(0, 2)) > 0]))
    st.history.extend(rows)
    st.frames.append(tile(np.array(frame)).astype(np.float32))
    return class_halves


def tile(images: np.ndarray) -> np.ndarray:
    """(K, ny, nx) -> one image: the K images on a grid of ceil(sqrt(K)) columns (K = 1: the image)."""
    K, ny, nx = images.shape
    if K == 1:
        return images[0]
    cols = int(math.ceil(math.sqrt(K)))
    rows = int(math.ceil(K / cols))
    out = np.zeros((rows * ny, cols * nx), images.dtype)
    for k in range(K):
        r, c = divmod(k, cols)
        out[r * ny : (r + 1) * ny, c * nx : (c + 1) * nx] = images[k]
    return out


def finish(source: Any, half: np.ndarray, config: AlignConfig, st: AlignState, avgs: np.ndarray,
           timings: dict, t_start: float) -> AlignResult:
    """The result: per class, half 2's average aligned onto half 1's and half 2's poses composed
    with that move; FRC and count-weighted combination of the two halves."""
    n = len(half)
    K, ny, nx = avgs.shape[1], avgs.shape[2], avgs.shape[3]
    shifts, angles = st.shifts.copy(), st.angles.copy()
    class_halves = np.zeros((K, 2, ny, nx))
    class_avgs = np.zeros((K, ny, nx))
    frcs = []
    for k in range(K):
        in1 = (half == 1) & (st.classes == k) & st.accepted
        in2 = (half == 2) & (st.classes == k) & st.accepted
        a1, a2, psi21, t21 = align_pair(avgs[0, k], avgs[1, k], config.threads, config.search.rotate)
        # half 2 = (half 1 rotated by psi21, shifted by t21): compose the poses of half 2's images of class k
        m = (half == 2) & (st.classes == k)
        shifts[m] = shifts[m] + rotate_vectors(np.broadcast_to(t21, shifts[m].shape), angles[m])
        angles[m] = (angles[m] + psi21) % 360.0
        class_halves[k] = a1, a2
        class_avgs[k] = combine(a1, a2, int(in1.sum()), int(in2.sum()))
        frcs.append(frc(a1, a2, mask_radius=config.mask_radius, pixel_size_A=config.pixel_size_A))
    timings["total_s"] = time.perf_counter() - t_start
    table = getattr(source, "table", None)
    return AlignResult(
        shifts=shifts, angles=angles, scores=st.scores.copy(), accepted=st.accepted.copy(), half=half.copy(),
        classes=(st.classes + 1).astype(np.int32), class_averages=class_avgs.astype(np.float32),
        class_half_averages=class_halves.astype(np.float32), class_frcs=frcs, thresholds=st.thresholds.copy(),
        history=st.history,
        frames=np.stack(st.frames).astype(np.float32) if st.frames else np.zeros((0, ny, nx), np.float32),
        pixel_size_A=config.pixel_size_A, image_names=getattr(source, "image_names", None), table=table,
        parameters=dict(config.parameters(), n_images=n, box=[ny, nx]), timings=timings)
