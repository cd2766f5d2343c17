"""2D classification: :func:`classify` sorts a particle stack into K classes, reference-free.

The starting classes come from the data (:mod:`cryocore.pipeline.seeding`: a subset registered
image against image and clustered); then the multi-reference alignment of :func:`cryocore.align`
refines poses and classes in two independent half-sets, with CTF correction (the CTF kept intact
up to its first peak, as RELION's 2D classification option) at a coarse working pixel size.
Incoherent clusters of the starting subset (blobs, aggregates) become junk classes, refined
with the others so that junk has somewhere to go; their particles are rejected at the end.
Classes that empty out are re-seeded by splitting the largest class; at the end the classes are
sorted by size, the junk classes last. The result writes RELION's layout (``classes.mrcs``, ``model.star``,
``particles.star``) and a gallery.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ._validate import as_pixel_size, as_threads
from .alignment import _check_soft_assignment, _ctf_correction, _run_on, align
from .io.stack import as_source
from .pipeline.result import AlignResult
from .pipeline.seeding import seed_classes
from .preprocess import DEFAULTS as PREPROCESSING
from .preprocess import PreprocessedSource, Preprocessing, fourier_pad

__all__ = ["ClassResult", "classify"]

WORKING_BOX = 64  # px: "auto" bins larger boxes to about this for classification
SEED_RESOLUTION_A = 30.0  # the starting classes compare images at this resolution
CLASS_TOLERANCE = 0.005  # the iterations stop when at most this fraction changes class or acceptance
MIN_CLASS_FRACTION = 0.05  # a class with fewer accepted images than this x N / K has emptied: re-seeded


@dataclasses.dataclass
class ClassResult(AlignResult):
    """Result of :func:`classify`: an :class:`~cryocore.pipeline.result.AlignResult` whose K
    classes are sorted by size (class 1 the largest), with each class's estimated accuracies.

    Extra attributes
    ----------------
    accuracy_rotations_deg : (K,) the rotation that moves the particle's edge by half the
        class's FRC 0.143 resolution (degrees; RELION's rlnAccuracyRotations)
    accuracy_translations_A : (K,) a quarter of that resolution (Å; rlnAccuracyTranslationsAngst)
    junk_classes : list of the class numbers that hold junk (the last ones; their particles
        are rejected)
    """

    accuracy_rotations_deg: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    accuracy_translations_A: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    junk_classes: list = dataclasses.field(default_factory=list)

    def class_distribution(self) -> np.ndarray:
        """(K,) fraction of the accepted particles in each class."""
        counts = self.class_counts().astype(np.float64)
        return counts / max(counts.sum(), 1.0)

    def write(self, outdir: str, *, overwrite: bool = False, inputs: Sequence[str] = ()) -> dict:
        """Write the alignment's outputs plus ``model.star`` and ``gallery.png`` into ``outdir``."""
        from .output import write_classification

        return write_classification(self, outdir, overwrite=overwrite, inputs=inputs)


def classify(
    images: Any,
    k: int = 50,
    *,
    iterations: int = 20,
    rotate: bool = True,
    ctf: Any = "auto",
    pixel_size_A: Optional[float] = None,
    target_pixel_size_A: Union[str, None, float] = "auto",
    threshold: Union[str, float] = "auto",
    threshold_mad: float = 2.5,
    seed: Optional[int] = 0,
    threads: Optional[int] = None,
    max_memory: Union[None, int, str] = None,
    progress: bool = True,
    callback: Optional[Callable[[dict], None]] = None,
    per_class: int = 30,
    junk_classes: bool = True,
    candidates: int = 5,
    soft_assignment: bool = False,
    checkpoint: Optional[str] = None,
    resume: bool = False,
    normalize: bool = PREPROCESSING.normalize,
    particle_diameter_A: Optional[float] = PREPROCESSING.particle_diameter_A,
    invert_contrast: bool = PREPROCESSING.invert_contrast,
    hot_pixel_sigma: Optional[float] = PREPROCESSING.hot_pixel_sigma,
    executor: Any = None,
) -> ClassResult:
    """Sort a particle stack into ``k`` 2D classes, reference-free.

    Parameters
    ----------
    images : array (N, ny, nx), or a stack from :func:`cryocore.io.open_stack`
    k : int
        Number of classes (2 .. N / 10).
    iterations : int
        Most iterations of the multi-reference alignment; it stops earlier when at most 0.5%
        of each half's images change class or acceptance in an iteration.
    rotate : bool
        Search in-plane rotations (default). Mirror images are different classes.
    ctf : "auto", None, CtfParameters, ParticleTable or dict
        As :func:`cryocore.align`; CTFs are kept intact up to their first peak (no
        amplification of the lowest frequencies, where junk holds its power).
    pixel_size_A : float, optional
        Å per pixel (default: the stack's).
    target_pixel_size_A : "auto", None or float
        Classify binned images at this pixel size (Fourier cropping): "auto" bins boxes larger
        than 64 px to about 64 px (needs the pixel size); None: the input's. Results come back
        in the input's box and pixels.
    threshold : "auto" or float, threshold_mad : float
        Per half and class, as :func:`cryocore.align`; ``"auto"`` rejects scores below
        ``median - 2.5 x 1.4826 x MAD`` by default, stricter than align's 4, so that junk is
        rejected before it can draw a class to itself.
    seed : int
        Seeds the starting subset, its clustering and the half split: the same seed gives the
        same classes (for any thread count).
    per_class : int
        Images per class in the starting subset (at most 1200 in all).
    candidates : int
        Each image gets the full search against only this many classes, those whose power
        spectra's rotational correlation with the image's peaks highest (0: all classes).
    soft_assignment : bool
        Score-weighted assignment, as :func:`cryocore.align` (needs ``rotate``): in the
        iterations each image counts in each of its candidate classes by its likelihood there;
        the result gives each image its best class (default: hard assignment, best class only).
    junk_classes : bool
        Keep incoherent clusters of the starting subset (whose members agree only at low
        resolution: blobs, aggregates, ice) as junk classes next to the K, whose particles are
        rejected at the end (default).
    checkpoint : str, optional
        A ``.npz`` path: the starting classes and each refinement's state are saved beside it
        (``<checkpoint>-seeds.npz``, ``-run1.npz``, ``-run2.npz``), atomically, as they are made.
    resume : bool
        Continue from the checkpoint files that exist (the same input and options); the result
        is the same as that of an uninterrupted run.
    threads, max_memory, progress, callback, executor, normalize, particle_diameter_A,
    invert_contrast, hot_pixel_sigma
        As :func:`cryocore.align`.

    Returns
    -------
    ClassResult
        ``classes`` (N,) 1..K sorted by size, ``class_averages`` (K, ny, nx), per-class FRC,
        poses and scores of every image.
    """
    t_start = time.perf_counter()
    src = as_source(images)
    n, ny, nx = (int(v) for v in src.shape)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= int(k) <= max(2, n // 10):
        raise ValueError(f"k must be an integer from 2 to N / 10 = {max(2, n // 10)} for {n} images, got {k!r}")
    k = int(k)
    _check_soft_assignment(soft_assignment, rotate)
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 3:
        raise ValueError(f"per_class must be an integer >= 3, got {per_class!r}")
    apix = pixel_size_A if pixel_size_A is not None else getattr(src, "pixel_size_A", None)
    apix = None if apix is None else as_pixel_size(apix)
    work_apix = _working_pixel_size(target_pixel_size_A, apix, max(ny, nx))
    nt = as_threads(threads)
    steps = Preprocessing(particle_diameter_A=particle_diameter_A, normalize=bool(normalize),
                          invert_contrast=bool(invert_contrast), hot_pixel_sigma=hot_pixel_sigma,
                          target_pixel_size_A=work_apix)
    working = PreprocessedSource(src, steps, apix, nt) if steps.active else src
    work_px = working.pixel_size_A if steps.active else apix  # (the working images' pixel size)
    corrector = _ctf_correction(ctf, src, n, work_px, nt, intact_first_peak=True)
    # the starting classes compare images at SEED_RESOLUTION_A (0.12 cycles/px without a pixel size)
    lowpass = min(0.25, work_px / SEED_RESOLUTION_A) if work_px else 0.12

    def images_of(index: np.ndarray) -> np.ndarray:
        return np.stack([working.read(int(i), int(i) + 1)[0] for i in index])

    t0 = time.perf_counter()
    stem = None if checkpoint is None else str(checkpoint).removesuffix(".npz")
    key = dict(n=n, box=[ny, nx], k=k, seed=seed, per_class=per_class, junk=bool(junk_classes), rotate=bool(rotate),
               lowpass=lowpass, ctf=corrector is not None)
    seeds = _starting_classes(None if stem is None else f"{stem}-seeds.npz", key, resume, lambda: seed_classes(
        images_of, n, k, rotate=rotate, lowpass=lowpass, threads=nt, seed=seed, per_class=per_class, ctf=corrector,
        junk=bool(junk_classes)))
    seeding_s = time.perf_counter() - t0
    kw = dict(rotate=rotate, threshold=threshold, threshold_mad=threshold_mad, iterations=iterations,
              class_candidates=int(candidates), soft_assignment=bool(soft_assignment),
              class_tolerance=CLASS_TOLERANCE, seed=seed, pixel_size_A=apix,
              threads=nt, progress=progress, callback=callback, max_memory=max_memory,
              ctf=ctf, ctf_intact_first_peak=True, normalize=normalize, particle_diameter_A=particle_diameter_A,
              invert_contrast=invert_contrast, hot_pixel_sigma=hot_pixel_sigma, target_pixel_size_A=work_apix)
    def runs(i: int) -> dict:
        return {} if stem is None else dict(checkpoint=f"{stem}-run{i}.npz", resume=bool(resume))

    def refine(runner: Any) -> tuple[AlignResult, float, list[int]]:
        """The refinement from the starting classes and, when classes emptied, a second one."""
        t0 = time.perf_counter()
        result = align(src, _to_input_box(seeds.refs, (ny, nx)), executor=runner, **kw, **runs(1))
        first_run_s = time.perf_counter() - t0
        small = np.flatnonzero(result.class_counts()[:k] < MIN_CLASS_FRACTION * n / k)
        if len(small):  # split the largest classes into the ones that emptied, then refine again
            refs = _reseed(result, k, small, images_of, rotate, lowpass, nt, seed, per_class, corrector, (ny, nx))
            result = align(src, refs, executor=runner, **dict(kw, iterations=max(2, iterations // 4)), **runs(2))
        return result, first_run_s, [int(c) + 1 for c in small]

    result, first_run_s, reseeded = _run_on(executor, refine)  # (one cluster for both refinements)
    timings = dict(result.timings, seeding_s=seeding_s, first_run_s=first_run_s, total_s=time.perf_counter() - t_start)
    params = dict(result.parameters, k=k, per_class=per_class, seed_subset=int(len(seeds.subset)),
                  reseeded_classes=reseeded, seed_lowpass_per_px=lowpass)
    return _sorted(result, k, timings, dict(params, junk_classes=seeds.n_junk))


def _starting_classes(path: Optional[str], key: dict, resume: bool, make: Callable[[], Any]) -> Any:
    """The starting classes saved at ``path`` by an interrupted run (with ``resume``), else
    ``make()``'s, saved there (when given)."""
    seeds = _load_seeds(path, key) if path is not None and resume else None
    if seeds is None:
        seeds = make()
        if path is not None:
            _save_seeds(path, key, seeds)
    return seeds


def _save_seeds(path: str, key: dict, seeds: Any) -> None:
    import json

    from .io import atomic_write

    with atomic_write(path, "wb") as f:
        np.savez(f, refs=seeds.refs, subset=seeds.subset, labels=seeds.labels, n_junk=np.array(seeds.n_junk),
                 key=np.array(json.dumps(key)))


def _load_seeds(path: str, key: dict) -> Any:
    """The starting classes saved by an interrupted run with the same input and options (None if
    there are none); ValueError for another run's."""
    import json
    import os

    from .pipeline.seeding import Seeds

    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        if json.loads(str(z["key"])) != json.loads(json.dumps(key)):
            raise ValueError(f"{path} holds the starting classes of another classification (other input or options); "
                             "start afresh without resuming")
        return Seeds(z["refs"], z["subset"], z["labels"], int(z["n_junk"]))


def _working_pixel_size(target: Union[str, None, float], apix: Optional[float], box: int) -> Optional[float]:
    if target is None:
        return None
    if isinstance(target, str):
        if target != "auto":
            raise ValueError(f"target_pixel_size_A must be 'auto', None or a number of Å, got {target!r}")
        if apix is None or box <= WORKING_BOX:
            return None
        return apix * box / WORKING_BOX
    return as_pixel_size(target, "target_pixel_size_A")


def _to_input_box(refs: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """References (K, wy, wx) of the working box as images of the input's box (Fourier padding:
    align crops them back exactly)."""
    return refs if refs.shape[1:] == box else fourier_pad(refs, box)


def _reseed(result: AlignResult, k: int, small: np.ndarray, images_of: Callable[[np.ndarray], np.ndarray], rotate: bool,
            lowpass: float, threads: int, seed: Optional[int], per_class: int, ctf: Any,
            box: tuple[int, int]) -> np.ndarray:
    """The class averages with each class in ``small`` (0-based) replaced by one half of a split
    of the largest class (whose other half replaces it): its members clustered in two as the
    starting classes are."""
    refs = result.class_averages.astype(np.float64).copy()
    counts = result.class_counts().astype(np.float64)
    counts[k:] = 0.0  # (junk classes are never split)
    for j in small:
        big = int(np.argmax(counts))
        members = np.flatnonzero((result.classes == big + 1) & result.accepted)
        if len(members) < 6:  # (too few to split in two)
            continue
        sub_ctf = None if ctf is None else dataclasses.replace(ctf, params=ctf.params.take(members))
        two = seed_classes(lambda idx: images_of(members[idx]), len(members), 2, rotate=rotate, lowpass=lowpass,
                           threads=threads, seed=seed, per_class=per_class, ctf=sub_ctf, junk=False)
        refs[big], refs[j] = _to_input_box(two.refs, box)
        counts[big] = counts[j] = counts[big] / 2
    return refs


def _sorted(result: AlignResult, k: int, timings: dict, parameters: dict) -> ClassResult:
    """The result with its K classes renumbered by size (1: the largest), the junk classes after
    them (their particles rejected), and the classes' accuracies."""
    counts = result.class_counts()
    order = np.concatenate([np.argsort(-counts[:k], kind="stable"), np.arange(k, len(counts))])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    frcs = [result.class_frcs[i] for i in order]
    res_A = np.array([f.resolution_A(0.143) or math.nan for f in frcs], np.float64)
    radius_A = 0.5 * min(result.class_averages.shape[1:]) * (result.pixel_size_A or 1.0) * 0.75
    rot = np.degrees(np.arctan2(0.5 * res_A, radius_A))
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(AlignResult)}
    classes = (rank[result.classes - 1] + 1).astype(np.int32)
    fields.update(classes=classes, accepted=result.accepted & (classes <= k),
                  class_averages=result.class_averages[order], class_half_averages=result.class_half_averages[order],
                  class_frcs=frcs, thresholds=result.thresholds[:, order], timings=timings, parameters=parameters)
    return ClassResult(**fields, accuracy_rotations_deg=rot, accuracy_translations_A=0.25 * res_A,
                       junk_classes=list(range(k + 1, len(order) + 1)))
