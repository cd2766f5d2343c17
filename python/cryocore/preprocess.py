"""Per-image preprocessing, RELION's steps: background normalisation, contrast inversion, hot
pixels, Fourier cropping (binning) to a coarser pixel size.

:func:`preprocess` applies them to an array; :class:`PreprocessedSource` applies them to a stack
chunk by chunk as the pipeline reads it (``cryocore.align``'s preprocessing arguments)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _core
from ._validate import as_images, as_threads
from .io.stack import read_rows

__all__ = ["PreprocessedSource", "Preprocessing", "background_mask", "binned_shape", "preprocess"]


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing steps and their settings (see :func:`preprocess`); the defaults are
    RELION's extraction's: normalisation on, the rest off."""

    particle_diameter_A: Optional[float] = None
    normalize: bool = True
    invert_contrast: bool = False
    hot_pixel_sigma: Optional[float] = None
    target_pixel_size_A: Optional[float] = None

    @property
    def active(self) -> bool:
        return bool(self.normalize or self.invert_contrast or self.hot_pixel_sigma is not None
                    or self.target_pixel_size_A is not None)

    def needs_pixel_size(self) -> bool:
        return self.particle_diameter_A is not None or self.target_pixel_size_A is not None


DEFAULTS = Preprocessing()


def background_mask(shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """(ny, nx) bool: the pixels farther than ``radius_px`` from the box centre (ny // 2, nx // 2)."""
    ny, nx = shape
    y = np.arange(ny)[:, None] - ny // 2
    x = np.arange(nx)[None, :] - nx // 2
    return np.hypot(y, x) > radius_px


def binned_shape(shape: tuple[int, int], pixel_size_A: float, target_pixel_size_A: float) -> tuple[int, int]:
    """The even box (ny', nx') that Fourier cropping to ``target_pixel_size_A`` gives (RELION's
    binning keeps even boxes): each side scaled by pixel_size_A / target_pixel_size_A."""
    f = float(pixel_size_A) / float(target_pixel_size_A)
    return tuple(max(8, 2 * int(round(n * f / 2))) for n in shape)  # type: ignore[return-value]


def preprocess(images: Any, *, pixel_size_A: float, particle_diameter_A: Optional[float] = DEFAULTS.particle_diameter_A,
               normalize: bool = DEFAULTS.normalize, invert_contrast: bool = DEFAULTS.invert_contrast,
               hot_pixel_sigma: Optional[float] = DEFAULTS.hot_pixel_sigma,
               target_pixel_size_A: Optional[float] = DEFAULTS.target_pixel_size_A,
               threads: Optional[int] = None) -> tuple[np.ndarray, float]:
    """Prepare particle images the way RELION's extraction does.

    Steps, in this order, each switchable:

    * ``target_pixel_size_A``: Fourier cropping to a coarser pixel size (binning; the box
      shrinks to :func:`binned_shape`, the spectrum is cut, nothing is interpolated);
    * ``invert_contrast``: multiply by -1 (for black particles, i.e. raw micrograph contrast;
      RELION extracts white particles);
    * ``hot_pixel_sigma``: pixels beyond that many standard deviations of the image's
      background are set to the background mean (``None``, the default: kept; RELION's
      dust removal, off by default there too; 5 is a usual setting);
    * ``normalize``: the background (outside a circle of ``particle_diameter_A`` / 2) gets
      zero mean and unit standard deviation.

    Parameters
    ----------
    images : array (N, ny, nx) or (ny, nx)
    pixel_size_A : float
        Å per pixel of the input.
    particle_diameter_A : float, optional
        Diameter of the particle (Å); the background is outside it. Default: 0.75 of the box.
    threads : int, optional
        Worker threads of the real-space steps (default: all cores).

    Returns
    -------
    (images (N, ny', nx') float32, pixel size in Å of the output)
    """
    imgs, single = as_images(images, "images")
    apix = float(pixel_size_A)
    if not (math.isfinite(apix) and apix > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    out, out_apix = imgs, apix
    if target_pixel_size_A is not None:
        t = float(target_pixel_size_A)
        if not (math.isfinite(t) and t >= apix):
            raise ValueError(f"target_pixel_size_A must be at least the pixel size ({apix:g} Å), got {target_pixel_size_A!r}")
        shape = binned_shape(imgs.shape[1:], apix, t)
        out = _core.fourier_crop(imgs, shape[0], shape[1], threads=as_threads(threads))
        out_apix = apix * imgs.shape[2] / shape[1]
    ny, nx = out.shape[1:]
    radius_A = 0.75 * min(ny, nx) * out_apix / 2 if particle_diameter_A is None else float(particle_diameter_A) / 2
    if not (math.isfinite(radius_A) and radius_A > 0):
        raise ValueError(f"particle_diameter_A must be a positive number of Å, got {particle_diameter_A!r}")
    if background_mask((ny, nx), radius_A / out_apix).sum() < 10:
        raise ValueError(f"particle_diameter_A {2 * radius_A:g} Å leaves no background in a box of "
                         f"{ny} x {nx} px at {out_apix:g} Å/px")
    if hot_pixel_sigma is not None and not float(hot_pixel_sigma) > 0:
        raise ValueError(f"hot_pixel_sigma must be > 0 (or None), got {hot_pixel_sigma!r}")
    # the real-space steps, in the core (statistics in double precision, threads)
    result = _core.normalize_stack(out, radius_A / out_apix, invert=bool(invert_contrast),
                                   hot_sigma=None if hot_pixel_sigma is None else float(hot_pixel_sigma),
                                   normalize=bool(normalize), threads=as_threads(threads))
    return (result[0] if single else result), out_apix


class PreprocessedSource:
    """A stack source (``shape``, ``read``) whose images are preprocessed as they are read, chunk
    by chunk (each read costs the steps again; nothing is stored). ``shape`` and
    ``pixel_size_A`` are the output's (binned when ``steps.target_pixel_size_A`` is set);
    ``input_shape`` and ``input_pixel_size_A`` the input's."""

    def __init__(self, source: Any, steps: Preprocessing, pixel_size_A: Optional[float], threads: int = 1) -> None:
        if pixel_size_A is None and steps.needs_pixel_size():
            raise ValueError("particle_diameter_A and target_pixel_size_A need the pixel size: pass pixel_size_A "
                             "(or a stack whose header has it)")
        self.source = source
        self.steps = steps
        self.input_shape = tuple(int(v) for v in source.shape)
        self.input_pixel_size_A = pixel_size_A
        self.threads = threads
        # validate once, on a first image, and learn the output's box and pixel size
        first, apix = self._run(source.read(0, 1))
        self.shape = (self.input_shape[0],) + tuple(int(v) for v in first.shape[1:])
        self.pixel_size_A = None if pixel_size_A is None else apix
        self.table = getattr(source, "table", None)
        self.image_names = getattr(source, "image_names", None)

    def _run(self, images: np.ndarray) -> tuple[np.ndarray, float]:
        s = self.steps
        return preprocess(images, pixel_size_A=1.0 if self.input_pixel_size_A is None else self.input_pixel_size_A,
                          particle_diameter_A=s.particle_diameter_A, normalize=s.normalize,
                          invert_contrast=s.invert_contrast, hot_pixel_sigma=s.hot_pixel_sigma,
                          target_pixel_size_A=s.target_pixel_size_A, threads=self.threads)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int, rows: Optional[np.ndarray] = None) -> np.ndarray:
        """Images start..stop-1, preprocessed: float32 (stop - start, ny', nx'); with ``rows``
        (positions in start..stop-1), only those are preprocessed (the others are zero)."""
        if rows is None:
            out = self._run(getattr(self.source, "read_view", self.source.read)(start, stop))[0]  # (no copy where mapped)
            self.release(start, stop)
            return out
        out = np.zeros((stop - start,) + self.shape[1:], np.float32)
        if len(rows):  # only those rows are read
            r = np.sort(np.asarray(rows, np.int64))
            out[r] = self._run(read_rows(self.source, start, r))[0]
        return out

    def prefetch(self, start: int, stop: int) -> None:
        """The input's :meth:`~cryocore.io.ParticleStack.prefetch` (where it has one)."""
        if hasattr(self.source, "prefetch"):
            self.source.prefetch(start, stop)

    def release(self, start: int, stop: int) -> None:
        """The input's :meth:`~cryocore.io.ParticleStack.release` (where it has one)."""
        if hasattr(self.source, "release"):
            self.source.release(start, stop)

    def bin_image(self, image: np.ndarray) -> np.ndarray:
        """One image (ny, nx) of the input's box (e.g. a reference) resampled to the output's box
        (no other step)."""
        return _core.fourier_crop(np.asarray(image, np.float32)[None], self.shape[1], self.shape[2])[0].astype(np.float64)


def fourier_pad(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Images (N, ny, nx) resampled to a larger ``shape`` by zero-padding their spectra: the inverse
    of Fourier cropping (``_core.fourier_crop`` of the result gives the images again); the spectrum's Nyquist
    row and column of an even box are split between the two frequencies they stand for."""
    n, ny, nx = images.shape
    my, mx = shape
    if (my, mx) == (ny, nx):
        return np.asarray(images, np.float64)
    f = np.fft.rfft2(images)
    g = np.zeros((n, my, mx // 2 + 1), np.complex128)
    if nx % 2 == 0:
        f[:, :, nx // 2] *= 0.5  # +nx/2 here, -nx/2 by the half spectrum's symmetry
    low = (ny + 1) // 2  # rows 0..low-1 are the non-negative frequencies
    g[:, :low, : nx // 2 + 1] = f[:, :low]
    g[:, my - (ny - low) :, : nx // 2 + 1] = f[:, low:]
    if ny % 2 == 0:  # the Nyquist row -ny/2 also stands for +ny/2
        g[:, low, : nx // 2 + 1] = 0.5 * f[:, low]
        g[:, my - ny // 2, : nx // 2 + 1] *= 0.5
    return np.fft.irfft2(g, s=(my, mx)) * (my * mx) / (ny * nx)
