"""Per-image preprocessing, RELION's steps: background normalisation, contrast inversion, hot
pixels, Fourier cropping (binning) to a coarser pixel size."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ._validate import as_images

__all__ = ["background_mask", "binned_shape", "preprocess"]


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


def preprocess(images: Any, *, pixel_size_A: float, particle_diameter_A: Optional[float] = None,
               normalize: bool = True, invert_contrast: bool = False, hot_pixel_sigma: Optional[float] = 5.0,
               target_pixel_size_A: Optional[float] = None) -> tuple[np.ndarray, float]:
    """Prepare particle images the way RELION's extraction does.

    Steps, in this order, each switchable:

    * ``target_pixel_size_A``: Fourier cropping to a coarser pixel size (binning; the box
      shrinks to :func:`binned_shape`, the spectrum is cut, nothing is interpolated);
    * ``invert_contrast``: multiply by -1 (for black particles, i.e. raw micrograph contrast;
      RELION extracts white particles);
    * ``hot_pixel_sigma``: pixels beyond that many standard deviations of the image's
      background are set to the background mean (``None``: kept);
    * ``normalize``: the background (outside a circle of ``particle_diameter_A`` / 2) gets
      zero mean and unit standard deviation.

    Parameters
    ----------
    images : array (N, ny, nx) or (ny, nx)
    pixel_size_A : float
        Å per pixel of the input.
    particle_diameter_A : float, optional
        Diameter of the particle (Å); the background is outside it. Default: 0.75 of the box.

    Returns
    -------
    (images (N, ny', nx') float32, pixel size in Å of the output)
    """
    imgs, single = as_images(images, "images")
    apix = float(pixel_size_A)
    if not (math.isfinite(apix) and apix > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    out = np.asarray(imgs, np.float64)
    bad = ~np.isfinite(out).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"image {int(np.argmax(bad))} contains NaN or infinity; all pixel values must be finite")
    out_apix = apix
    if target_pixel_size_A is not None:
        t = float(target_pixel_size_A)
        if not (math.isfinite(t) and t >= apix):
            raise ValueError(f"target_pixel_size_A must be at least the pixel size ({apix:g} Å), got {target_pixel_size_A!r}")
        shape = binned_shape(out.shape[1:], apix, t)
        out = _fourier_crop(out, shape)
        out_apix = apix * imgs.shape[2] / shape[1]
    if invert_contrast:
        out = -out
    ny, nx = out.shape[1:]
    radius_A = 0.75 * min(ny, nx) * out_apix / 2 if particle_diameter_A is None else float(particle_diameter_A) / 2
    if not (math.isfinite(radius_A) and radius_A > 0):
        raise ValueError(f"particle_diameter_A must be a positive number of Å, got {particle_diameter_A!r}")
    bg = background_mask((ny, nx), radius_A / out_apix)
    if bg.sum() < 10:
        raise ValueError(f"particle_diameter_A {2 * radius_A:g} Å leaves no background in a box of "
                         f"{ny} x {nx} px at {out_apix:g} Å/px")
    mean = out[:, bg].mean(axis=1)[:, None, None]
    std = out[:, bg].std(axis=1)[:, None, None]
    if hot_pixel_sigma is not None:
        k = float(hot_pixel_sigma)
        if not k > 0:
            raise ValueError(f"hot_pixel_sigma must be > 0 (or None), got {hot_pixel_sigma!r}")
        hot = np.abs(out - mean) > k * np.where(std > 0, std, np.inf)
        out = np.where(hot, mean, out)
        mean = out[:, bg].mean(axis=1)[:, None, None]
        std = out[:, bg].std(axis=1)[:, None, None]
    if normalize:
        out = (out - mean) / np.where(std > 0, std, 1.0)
    result = out.astype(np.float32)
    return (result[0] if single else result), out_apix


def _fourier_crop(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Images (N, ny, nx) resampled to ``shape`` by cutting their spectra (band-limited binning)."""
    n, ny, nx = images.shape
    my, mx = shape
    if (my, mx) == (ny, nx):
        return images
    f = np.fft.rfft2(images)
    rows = np.r_[0 : (my + 1) // 2, ny - my // 2 : ny]  # frequencies |ky| < my/2 (and -my/2)
    g = f[:, rows, : mx // 2 + 1].copy()
    if mx % 2 == 0:  # the new Nyquist column stands for both +mx/2 and -mx/2
        g[:, :, mx // 2] = g[:, :, mx // 2].real
    return np.fft.irfft2(g, s=(my, mx)) * (my * mx) / (ny * nx)
