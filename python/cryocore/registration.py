"""Translational registration of image stacks against references."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _core
from ._validate import (
    as_edge,
    as_frequency,
    as_images,
    as_pixel_size,
    as_positive_int,
    as_threads,
    describe,
)
from .ctf import CtfParameters

__all__ = ["Registration", "register", "correlation_maps"]


@dataclass(frozen=True)
class Registration:
    """Result of :func:`register`.

    Attributes
    ----------
    shifts : ndarray, shape (N, 2), float64
        Pose shift ``(dy, dx)`` of each image in pixels: the image is the
        reference moved by this amount (CONVENTIONS.md). For a single 2D
        input image the shape is ``(2,)``.
    scores : ndarray, shape (N,), float64
        Pearson correlation in [-1, 1] between the (filtered) reference and
        the image moved back by its shift. 0 for an image or reference with
        zero variance.
    reference_index : ndarray, shape (N,), int
        Index of the best-matching reference (all 0 for one reference).
    angles : ndarray, shape (N,), float64
        In-plane angle psi in degrees, in [0, 360): the image is the reference
        rotated by psi, then shifted (all 0 without ``rotate``).
    """

    shifts: np.ndarray
    scores: np.ndarray
    reference_index: np.ndarray
    angles: np.ndarray

    def __len__(self) -> int:
        return int(np.size(self.scores))


def _references(reference: object, shape: tuple[int, int]) -> np.ndarray:
    refs, _ = as_images(reference, "reference")
    if refs.shape[1:] != shape:
        raise ValueError(
            f"reference box {refs.shape[1:]} does not match the images' box {shape}; "
            f"got reference with {describe(np.asarray(reference))}"
        )
    if not np.isfinite(refs).all():
        raise ValueError("reference contains NaN or infinity; all pixel values must be finite")
    return refs


def _max_shift(max_shift: Optional[float], shape: tuple[int, int]) -> Optional[float]:
    if max_shift is None:
        return None
    try:
        m = float(max_shift)
    except (TypeError, ValueError):
        raise TypeError(f"max_shift must be a number of pixels or None, got {max_shift!r}") from None
    half = min(shape) / 2
    if not (0.0 <= m <= half):
        raise ValueError(
            f"max_shift must be between 0 and half the box ({half:g} px for a {shape} box), got {max_shift!r}"
        )
    return m


def _ctf_args(ctf: Any, pixel_size_A: Optional[float], n: int) -> dict:
    """The core's ctf= and pixel_size_A= arguments (empty without a CTF)."""
    if ctf is None:
        if pixel_size_A is not None:
            as_pixel_size(pixel_size_A)
        return {}
    params = CtfParameters.of(ctf, n)
    if pixel_size_A is None:
        raise ValueError("ctf needs pixel_size_A (Å per pixel)")
    return dict(ctf=params.array(), pixel_size_A=as_pixel_size(pixel_size_A))


def register(
    reference: np.ndarray,
    images: np.ndarray,
    *,
    upsample: int = 20,
    max_shift: Optional[float] = None,
    lowpass: Optional[float] = None,
    highpass: Optional[float] = None,
    filter_edge: float = 0.02,
    phase_correlation: bool = False,
    full_search: bool = False,
    rotate: bool = False,
    angular_step: Optional[float] = None,
    threads: Optional[int] = None,
    ctf: Any = None,
    pixel_size_A: Optional[float] = None,
) -> Registration:
    """Find the shift of each image relative to a reference.

    The score surface is the normalised cross-correlation (the Pearson
    correlation of the reference with the image moved back by a trial shift,
    both with their mean removed and the same band-pass applied). Its integer
    maximum is refined to sub-pixel precision: ``upsample=1`` fits a 2D
    quadratic to the 3x3 neighbourhood; ``upsample > 1`` evaluates the exact
    band-limited correlation on local grids down to ``1/upsample`` pixel
    (matrix-multiply DFT, Guizar-Sicairos et al. 2008) and fits the last grid.

    Parameters
    ----------
    reference : array, shape (ny, nx) or (K, ny, nx)
        One reference, or K references (each image gets the best one).
    images : array, shape (N, ny, nx) or (ny, nx)
        Any real dtype; converted to float32 once.
    upsample : int
        Sub-pixel refinement factor, 1..1000.
    max_shift : float, optional
        Search radius in pixels (at most half the box); default: whole box.
    lowpass, highpass : float, optional
        Band-pass cut-offs in cycles per pixel (0 < f <= 0.5), raised-cosine
        edges of width ``filter_edge``. With a low-pass, the inverse FFT runs
        on the cropped spectrum (faster) and the peak is refined at full
        resolution.
    phase_correlation : bool
        Search the peak on the whitened (phase) correlation; scores are still
        Pearson correlations at the found shift.
    full_search : bool
        By default the integer peak is searched on the correlation
        band-limited to 0.125 cycles/px (a small inverse FFT: 32x32 for 128
        px; used when it is at most 3/4 of the map per axis) and then refined
        on the full-resolution (or low-passed) correlation (grids of 1/4 px
        down to 1/upsample px, moved until they are centred on its local
        maximum). ``True`` searches the full-size (or cropped) map instead
        (slower; differs only when the correlation has a higher peak away
        from the band-limited one, e.g. on pure noise).
    rotate : bool
        Also find the in-plane angle. Candidate angles come from the
        rotational correlation of the power spectra on polar rings (which
        does not depend on the shift), each with its 180-degree twin; a
        search low-passed to 0.1 cycles/px scores them; the best is refined
        at full resolution against the reference pre-rotated every
        ``angular_step`` degrees (bicubic), stepped to a better neighbouring
        rotation while there is one, and the angle is refined by a parabola
        through the neighbours' scores.
    angular_step : float, optional
        Degrees between the pre-rotated references of the fine stage
        (default 1; 0.05 .. 10). Memory: 360 / angular_step spectra.
    threads : int, optional
        Worker threads (default: all available cores). Results do not depend
        on it.
    ctf : CtfParameters, ParticleTable or dict of per-image arrays, optional
        Each image's CTF (RELION's convention, :func:`cryocore.ctf`; needs
        ``pixel_size_A``). Each image's spectrum is multiplied by its CTF, computed
        on the fly on the frequencies the search reads, and compared with the
        reference: the cross-correlation of the image with the reference
        multiplied by the image's CTF (RELION's way), scored as the Pearson
        correlation of ``CTF X`` with the reference.
    pixel_size_A : float, optional
        Å per pixel (with ``ctf``).

    Returns
    -------
    Registration
        ``.shifts`` (N, 2) ``(dy, dx)`` in the pose convention, ``.scores`` (N,),
        ``.reference_index`` (N,), ``.angles`` (N,) degrees.
    """
    imgs, single = as_images(images, "images")
    shape = (int(imgs.shape[1]), int(imgs.shape[2]))
    refs = _references(reference, shape)
    up = as_positive_int(upsample, "upsample", low=1, high=1000)
    ms = _max_shift(max_shift, shape)
    lp = as_frequency(lowpass, "lowpass")
    hp = as_frequency(highpass, "highpass")
    if hp is not None and hp >= 0.5:
        raise ValueError(f"highpass must be below 0.5 cycles per pixel, got {highpass!r}")
    ctf_args = _ctf_args(ctf, pixel_size_A, len(imgs))
    if rotate:
        step = 1.0 if angular_step is None else float(angular_step)
        if not 0.05 <= step <= 10.0:
            raise ValueError(f"angular_step must be between 0.05 and 10 degrees, got {angular_step!r}")
        if phase_correlation:
            raise ValueError("phase_correlation is not available with rotate=True")
        settings = _core.SearchSettings(upsample=up, max_shift=ms, lowpass=lp, highpass=hp, edge=as_edge(filter_edge),
                                        coarse=not bool(full_search))
        shifts, angles, scores, best = _core.register_rotate(refs, imgs, settings, angular_step=step,
                                                             threads=as_threads(threads), **ctf_args)
    else:
        settings = _core.SearchSettings(upsample=up, max_shift=ms, lowpass=lp, highpass=hp, edge=as_edge(filter_edge),
                                        phase=bool(phase_correlation), crop=True, coarse=not bool(full_search))
        shifts, scores, best = _core.register_stack(refs, imgs, settings, threads=as_threads(threads), **ctf_args)
        angles = np.zeros(len(scores))
    best = best.astype(np.intp)
    if single:
        return Registration(shifts[0], scores[0], best[0], angles[0])
    return Registration(shifts, scores, best, angles)


def correlation_maps(
    reference: np.ndarray,
    images: np.ndarray,
    *,
    lowpass: Optional[float] = None,
    highpass: Optional[float] = None,
    filter_edge: float = 0.02,
    phase_correlation: bool = False,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Normalised circular cross-correlation maps, shape (N, ny, nx) float32.

    ``maps[i, y, x]`` is the Pearson correlation of the reference with image
    ``i`` moved back by the shift ``(y, x)``, with indices wrapping like
    ``numpy.fft`` (index ``ny - 1`` is a shift of -1; use
    ``numpy.fft.fftshift`` to put zero shift at ``(ny // 2, nx // 2)``).
    """
    imgs, single = as_images(images, "images")
    shape = (int(imgs.shape[1]), int(imgs.shape[2]))
    refs = _references(reference, shape)
    if refs.shape[0] != 1:
        raise ValueError(f"correlation_maps takes one reference (ny, nx), got {refs.shape[0]}")
    maps = _core.correlation_maps(
        refs[0],
        imgs,
        lowpass=as_frequency(lowpass, "lowpass"),
        highpass=as_frequency(highpass, "highpass"),
        edge=as_edge(filter_edge),
        phase=bool(phase_correlation),
        threads=as_threads(threads),
    )
    return maps[0] if single else maps


