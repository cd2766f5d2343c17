"""The public entry point of the alignment pipeline: :func:`align`.

It checks its arguments, gathers them into one :class:`~cryocore.pipeline.config.AlignConfig`
and hands the run to the pipeline (:mod:`cryocore.pipeline`): the iteration driver, or the
single online pass.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, TypeVar, Union

import numpy as np

from ._validate import as_image, as_pixel_size, as_threads
from .ctf import CtfParameters
from .io.stack import as_source
from .pipeline.config import AlignConfig, SearchOptions, default_max_memory, parse_memory
from .pipeline.driver import FinalSource, run_iterative
from .pipeline.distributed import as_executor
from .pipeline.executor import Executor
from .pipeline.kernel import ChunkCtf
from .pipeline.geometry import centre_of_mass_offset, rotate_vectors
from .pipeline.online import run_online
from .pipeline.result import AlignResult, in_input_units
from .preprocess import DEFAULTS as PREPROCESSING
from .preprocess import PreprocessedSource, Preprocessing, fourier_pad
from .pipeline.selection import HalfSplit, auto_threshold, split_halves

__all__ = ["AlignResult", "align", "split_halves", "auto_threshold", "centre_of_mass_offset", "rotate_vectors"]


def align(
    images: Any,
    reference: Union[None, int, np.ndarray] = None,
    *,
    rotate: bool = True,
    threshold: Union[str, float] = "auto",
    threshold_mad: float = 4.0,
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
    class_tolerance: float = 0.0,
    cache_spectra: Optional[bool] = None,
    local_search: bool = True,
    checkpoint: Optional[str] = None,
    resume: bool = False,
    max_memory: Union[None, int, str] = None,
    executor: Union[None, str, Executor, Any] = None,
    ctf: Any = "auto",
    ctf_intact_first_peak: bool = False,
    class_candidates: int = 0,
    soft_assignment: bool = False,
    normalize: bool = PREPROCESSING.normalize,
    particle_diameter_A: Optional[float] = PREPROCESSING.particle_diameter_A,
    invert_contrast: bool = PREPROCESSING.invert_contrast,
    hot_pixel_sigma: Optional[float] = PREPROCESSING.hot_pixel_sigma,
    target_pixel_size_A: Optional[float] = PREPROCESSING.target_pixel_size_A,
) -> AlignResult:
    """Align a particle stack and average it in two independent half-sets.

    Parameters
    ----------
    images : array (N, ny, nx), or a stack from :func:`cryocore.io.open_stack`
        Read chunk by chunk; memory-mapped inputs are never copied whole.
    reference : None, int, array (ny, nx) or array (K, ny, nx)
        ``None``: reference-free, each half starts from the sum of its own
        unaligned images. An ``int`` picks an image of the stack (low-passed
        to the first iteration's band). An array is used as given. K
        references (multi-reference alignment): every image is aligned against
        all K and assigned to the best-scoring one (its class); each half keeps
        K class averages that become the next references.
    rotate : bool
        Also search in-plane rotations (:func:`cryocore.register` with
        ``rotate=True``); the images are then averaged by one bicubic
        interpolation of their whole pose, and the spectra cache is not used.
    threshold : "auto" or float
        ``"auto"``: per half (and class), reject scores below ``median - threshold_mad *
        1.4826 * MAD`` (:func:`auto_threshold`). A float is a Pearson score (CONVENTIONS.md):
        images scoring below it are rejected.
    threshold_mad : float
        The ``"auto"`` threshold's number of robust deviations (default 4: about 0.003% of
        normally distributed good images rejected; 2.5: about 0.6%).
    iterations : int
        Most iterations (``mode="iterative"``); stops earlier when the RMS pose
        change of both halves is below ``tolerance_px`` and the accepted sets
        no longer change (with K references: or, given ``class_tolerance`` > 0, when at most
        that fraction of each half's images change class or acceptance in an iteration).
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
        they fit in ``max_memory``), so an iteration needs no forward FFT. Only
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

    max_memory : int or str, optional
        Bound on the memory cryocore allocates (bytes, or ``"4G"``, ``"512M"``):
        chunk buffers, sums, prepared references and the spectra cache stay
        under it; a memory-mapped input does not count. Default: a quarter of
        the machine's memory.
    executor : None, dask ``distributed.Client``, str or Executor
        Where the per-chunk work runs: this process (None, the default); the workers of a
        dask cluster, given as a ``Client``, a scheduler address (``"tcp://host:8786"``) or
        ``"local:N"`` (a LocalCluster of N worker processes made for the run). The workers
        read the images from the stack's files (a stack from :func:`cryocore.io.open_stack`),
        and the result is the same as in this process. Needs ``pip install cryocore[cluster]``.
    ctf : None, "auto", CtfParameters, ParticleTable or dict of arrays
        CTF correction (needs the pixel size): each image is compared and averaged
        multiplied by its own CTF, and the averages (references, half maps, classes)
        are Wiener-filtered per half and class with the spectral SNR of that half's
        two quarters (CONVENTIONS.md, CTF). ``"auto"`` (default): from the stack's
        STAR columns when it has ``rlnDefocusU`` (a RELION STAR input), else none. A
        dict holds per-image arrays (or scalars) named as :func:`cryocore.ctf`'s
        parameters. ``None``: no correction.
    ctf_intact_first_peak : bool
        In the iterations, treat each CTF as 1 up to its first peak (RELION's
        ``--ctf_intact_first_peak``): no correction, and no amplification, of the lowest
        frequencies (where images that are not particles, e.g. ice or carbon, hold most of
        their power). The final averages are fully corrected.
    class_candidates : int
        With rotations and K references: search each image fully against only this many of
        them, those whose power spectra's rotational correlation with the image's peaks
        highest (a pre-screen invariant to the image's pose; 0, the default: all K).
    soft_assignment : bool
        With rotations and K references: in each iteration's averages, each image counts in
        every class it was searched against (its ``class_candidates``), at its best pose there,
        weighted by its likelihood there (a Gaussian noise model over the search's band, as
        RELION's expectation step; weights under 0.01 dropped), instead of in its best class
        only (False, the default). The result (classes, poses, final averages) gives each
        image its best class, so that each class average is that of the particles listed in it.
    normalize, particle_diameter_A, invert_contrast, hot_pixel_sigma, target_pixel_size_A
        Preprocessing, applied to each chunk as it is read (:func:`cryocore.preprocess`;
        RELION's defaults: the background outside ``particle_diameter_A`` (default 0.75 of
        the box) normalised to zero mean and unit deviation, nothing else).
        ``target_pixel_size_A`` bins the images (Fourier cropping) to that coarser pixel
        size for the iterations, for speed; the final averages are made from the input's
        images at the last poses, so the results are in the input's units and resolution:
        shifts in input pixels, averages of the input's box, ``pixel_size_A`` the input's.

    Returns
    -------
    AlignResult
    """
    src = as_source(images)
    n, ny, nx = (int(v) for v in src.shape)
    _check_options(n, ny, nx, mode=mode, iterations=iterations, threshold=threshold, threshold_mad=threshold_mad,
                   class_tolerance=class_tolerance, class_candidates=class_candidates, rotate=rotate,
                   soft_assignment=soft_assignment)
    if pixel_size_A is None:
        pixel_size_A = getattr(src, "pixel_size_A", None)
    if pixel_size_A is not None:
        pixel_size_A = as_pixel_size(pixel_size_A)
    steps = Preprocessing(particle_diameter_A=particle_diameter_A, normalize=bool(normalize),
                          invert_contrast=bool(invert_contrast), hot_pixel_sigma=hot_pixel_sigma,
                          target_pixel_size_A=target_pixel_size_A)
    input_src, input_box, input_apix = src, (ny, nx), pixel_size_A
    if steps.active:
        src = PreprocessedSource(src, steps, pixel_size_A, as_threads(threads))
        pixel_size_A = src.pixel_size_A
    binning = (nx / src.shape[2], ny / src.shape[1])  # input px per working px, per axis (1: none)
    binned = binning != (1.0, 1.0)
    n, ny, nx = (int(v) for v in src.shape)
    _check_lengths(lowpass_A, pixel_size_A, max_shift, binning[0], (ny, nx))
    refs, described = _check_reference(reference, n, input_box)
    if binned and refs is not None and not isinstance(refs, int):
        refs = np.stack([src.bin_image(r) for r in np.reshape(refs, (-1,) + refs.shape[-2:])])  # type: ignore[attr-defined]
    corrector = _ctf_correction(ctf, src, n, pixel_size_A, as_threads(threads), bool(ctf_intact_first_peak))
    if mode == "online":
        _check_online(rotate, refs, corrector, binned)
    config = _config(rotate=rotate, upsample=upsample, max_shift=max_shift, local_search=local_search,
                     class_candidates=class_candidates, soft_assignment=soft_assignment, threshold=threshold,
                     threshold_mad=threshold_mad, iterations=iterations, tolerance_px=tolerance_px,
                     class_tolerance=class_tolerance, half_split=half_split, seed=seed, mode=mode,
                     pixel_size_A=pixel_size_A, lowpass_A=lowpass_A, mask_radius=mask_radius, threads=threads,
                     cache_spectra=cache_spectra, max_memory=max_memory, refs=refs, reference=described,
                     ctf=corrector is not None, ctf_intact_first_peak=ctf_intact_first_peak, binning=binning[0])
    half = split_halves(n, half_split, seed)
    show = _tqdm_progress if progress else _no_progress
    if mode == "online":
        result = run_online(src, half, config, refs, progress=show)
    else:
        final = None
        if binned or config.ctf_intact_first_peak:
            final = _final_source(input_src, steps, input_apix, input_box, ctf, config.threads)
        result = _run_on(executor, lambda runner: run_iterative(
            src, half, config, refs, progress=show, callback=callback, checkpoint=checkpoint, resume=resume,
            executor=runner, ctf=corrector, final=final))
    result.parameters["preprocessing"] = dict(dataclasses.asdict(steps), working_pixel_size_A=pixel_size_A,
                                              working_box=[ny, nx])
    if binned:
        result = in_input_units(result, binning[0])
    return result


def _config(*, rotate: Any, upsample: Any, max_shift: Any, local_search: Any, class_candidates: Any,
            soft_assignment: Any, threshold: Any, threshold_mad: Any, iterations: Any, tolerance_px: Any,
            class_tolerance: Any, half_split: Any, seed: Any, mode: str, pixel_size_A: Optional[float],
            lowpass_A: Any, mask_radius: Any, threads: Any, cache_spectra: Any, max_memory: Any, refs: Any,
            reference: str, ctf: bool, ctf_intact_first_peak: Any, binning: float) -> AlignConfig:
    """:func:`align`'s checked keyword arguments as its AlignConfig (lengths in working pixels:
    ``binning`` input px per working px)."""
    return AlignConfig(
        search=SearchOptions(rotate=bool(rotate), upsample=int(upsample),
                             max_shift=None if max_shift is None else float(max_shift) / binning,
                             local_search=bool(local_search), class_candidates=int(class_candidates),
                             soft_assignment=bool(soft_assignment)),
        threshold=threshold if isinstance(threshold, str) else float(threshold), threshold_mad=float(threshold_mad),
        iterations=int(iterations),
        tolerance_px=float(tolerance_px), class_tolerance=float(class_tolerance), half_split=half_split if isinstance(half_split, str) else "array",
        seed=seed, mode=mode, pixel_size_A=None if pixel_size_A is None else float(pixel_size_A),
        lowpass_A=None if lowpass_A is None else float(lowpass_A),
        mask_radius=None if mask_radius is None else float(mask_radius) / binning,
        threads=as_threads(threads), cache_spectra=(cache_spectra is None or bool(cache_spectra)) and mode == "iterative",
        max_memory=default_max_memory() if max_memory is None else parse_memory(max_memory),
        n_classes=1 if refs is None or np.ndim(refs) < 3 else int(refs.shape[0]), reference=reference,
        ctf=ctf, ctf_intact_first_peak=ctf and bool(ctf_intact_first_peak),
    )


R = TypeVar("R")


def _run_on(executor: Any, run: Callable[[Any], R]) -> R:
    """``run(executor)`` on the executor that ``executor`` names (:func:`as_executor`), which is
    closed afterwards when it was made here."""
    runner, done = as_executor(executor)
    try:
        return run(runner)
    finally:
        done()


def _check_online(rotate: Any, refs: Any, corrector: Any, binned: bool) -> None:
    """NotImplementedError for what mode="online" does not do."""
    if rotate:
        raise NotImplementedError("mode='online' aligns translations only; use mode='iterative' for rotate=True")
    if refs is not None and np.ndim(refs) == 3 and len(refs) > 1:
        raise NotImplementedError("mode='online' aligns against one reference; use mode='iterative' for K references")
    if corrector is not None:
        raise NotImplementedError("mode='online' has no CTF correction; use mode='iterative'")
    if binned:
        raise NotImplementedError("mode='online' does not bin; use mode='iterative' with target_pixel_size_A")


def _check_soft_assignment(soft_assignment: Any, rotate: Any) -> None:
    if soft_assignment and not rotate:
        raise ValueError("soft_assignment needs rotate=True (the soft class weights come from the rotational search)")


def _check_lengths(lowpass_A: Any, pixel_size_A: Optional[float], max_shift: Any, binning: float,
                   box: tuple[int, int]) -> None:
    """ValueError for a low-pass finer than Nyquist (or without a pixel size), or a max_shift
    outside half the working box (``binning`` input px per working px)."""
    if lowpass_A is not None:
        if pixel_size_A is None:
            raise ValueError("lowpass_A needs the pixel size: pass pixel_size_A (or a stack whose header has it)")
        if not float(lowpass_A) >= 2 * float(pixel_size_A):
            raise ValueError(f"lowpass_A must be at least twice the pixel size ({2 * float(pixel_size_A):g} Å), got {lowpass_A!r}")
    if max_shift is not None and not 0 <= float(max_shift) / binning <= min(box) / 2:
        raise ValueError(f"max_shift must be between 0 and half the box ({min(box) / 2 * binning:g} px), "
                         f"got {max_shift!r}")


def _check_options(n: int, ny: int, nx: int, *, mode: str, iterations: Any, threshold: Any, threshold_mad: Any,
                   class_tolerance: Any, class_candidates: Any, rotate: Any = True,
                   soft_assignment: Any = False) -> None:
    """ValueError/TypeError naming the first option of :func:`align` that is out of range."""
    _check_soft_assignment(soft_assignment, rotate)
    if n < 2:
        raise ValueError(f"images must hold at least 2 images to form two half-sets, got {n}")
    if ny < 8 or nx < 8:
        raise ValueError(f"images must be at least 8 x 8 pixels, got {ny} x {nx}")
    if mode not in ("iterative", "online"):
        raise ValueError(f"mode must be 'iterative' or 'online', got {mode!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if not (isinstance(class_tolerance, (int, float)) and 0.0 <= float(class_tolerance) < 1.0):
        raise ValueError(f"class_tolerance must be a fraction in [0, 1), got {class_tolerance!r}")
    if isinstance(class_candidates, bool) or not isinstance(class_candidates, (int, np.integer)) or class_candidates < 0:
        raise ValueError(f"class_candidates must be a non-negative integer, got {class_candidates!r}")
    if not (isinstance(threshold_mad, (int, float)) and not isinstance(threshold_mad, bool)
            and math.isfinite(float(threshold_mad)) and float(threshold_mad) > 0):
        raise ValueError(f"threshold_mad must be a positive number of deviations, got {threshold_mad!r}")
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


def _final_source(source: Any, steps: Preprocessing, pixel_size_A: Optional[float], box: tuple[int, int], ctf: Any,
                  threads: int) -> FinalSource:
    """Where the final averages come from when the iterations run on binned images or with the
    CTFs intact up to their first peak: the input's images (only the other preprocessing steps),
    fully CTF-corrected."""
    unbinned = dataclasses.replace(steps, target_pixel_size_A=None)
    fine = PreprocessedSource(source, unbinned, pixel_size_A, threads) if unbinned.active else source
    return FinalSource(fine, pixel_size_A, _ctf_correction(ctf, source, source.shape[0], pixel_size_A, threads),
                       lambda a: fourier_pad(a, box))


def _ctf_correction(ctf: Any, source: Any, n: int, pixel_size_A: Optional[float],
                    threads: int, intact_first_peak: bool = False) -> Optional[ChunkCtf]:
    """The CTF correction asked for (see :func:`align`), or None."""
    if ctf is None:
        return None
    if isinstance(ctf, str):
        if ctf != "auto":
            raise ValueError(f"ctf must be None, 'auto', CtfParameters, a ParticleTable or a dict, got {ctf!r}")
        table = getattr(source, "table", None)
        if table is None or not table.has("rlnDefocusU"):
            return None
        ctf = table
    params = CtfParameters.of(ctf, n)
    if pixel_size_A is None:
        raise ValueError("CTF correction needs the pixel size: pass pixel_size_A (or a stack whose header has it), "
                         "or turn it off (ctf=None, --no-ctf)")
    return ChunkCtf(params, float(pixel_size_A), threads, intact_first_peak)


def _check_reference(reference: Any, n: int, box: tuple[int, int]) -> tuple[Any, str]:
    """(the reference as the driver takes it, its description for the report)."""
    if reference is None:
        return None, "reference-free"
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        i = int(reference)
        if not -n <= i < n:
            raise ValueError(f"reference index {i} is out of range for {n} images")
        return i % n, f"image {i % n}"
    ref = np.asarray(reference)
    if ref.ndim == 3:
        if ref.shape[0] < 1 or ref.shape[1:] != box:
            raise ValueError(f"references (K, ny, nx) must have the images' box {box}, got {ref.shape}")
        refs = np.stack([as_image(r, "reference", float64=True) for r in ref])
        return refs, f"{len(refs)} references"
    ref = as_image(reference, "reference", float64=True).copy()  # never the caller's array
    if ref.shape != box:
        raise ValueError(f"reference must have the images' box {box}, got {ref.shape}")
    return ref, "array"


def _no_progress(it: Any, desc: str) -> Any:
    return it


def _tqdm_progress(it: Any, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)
