# Type stubs for the compiled core (cpp/bindings/). Private: use the cryocore package.
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

__version__: str
fftw_version: str
fftw_bundled: bool
compiler: str
build_options: str
hot_loops: str

class SearchSettings:
    """How a translational search runs (also the rotational search's shift search): upsample (sub-pixel factor), max_shift (px), lowpass/highpass/edge (cycles/px, raised-cosine band-pass of both image and reference), phase (phase correlation for the peak), crop (inverse FFT on the low-passed block), coarse (integer peak on the correlation band-limited to 0.125 cycles/px)."""

    def __init__(
        self,
        upsample: int = 20,
        max_shift: Optional[float] = None,
        lowpass: Optional[float] = None,
        highpass: Optional[float] = None,
        edge: float = 0.02,
        phase: bool = False,
        crop: bool = True,
        coarse: bool = True,
    ) -> None: ...
    @property
    def upsample(self) -> int: ...
    @property
    def max_shift(self) -> Optional[float]: ...
    @property
    def lowpass(self) -> Optional[float]: ...
    @property
    def highpass(self) -> Optional[float]: ...
    @property
    def edge(self) -> float: ...
    @property
    def phase(self) -> bool: ...
    @property
    def crop(self) -> bool: ...
    @property
    def coarse(self) -> bool: ...

def register_stack(
    references: npt.ArrayLike,
    images: npt.ArrayLike,
    settings: SearchSettings = ...,
    threads: int = 1,
    ctf: Optional[npt.ArrayLike] = None,
    pixel_size_A: Optional[float] = None,
    intact_first_peak: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """Registers images (n, ny, nx) against references (k, ny, nx). Returns (shifts (n, 2) float64 (dy, dx), scores (n,) float64, best reference (n,) int32). ctf (n, 9) and pixel_size_A: each image multiplied by its CTF first (intact_first_peak: 1 before the CTF's first peak)."""

def register_rotate(
    references: npt.ArrayLike,
    images: npt.ArrayLike,
    settings: SearchSettings = ...,
    angular_step: float = 1.0,
    threads: int = 1,
    prior_angles: Optional[npt.ArrayLike] = None,
    prior_shifts: Optional[npt.ArrayLike] = None,
    ctf: Optional[npt.ArrayLike] = None,
    pixel_size_A: Optional[float] = None,
    intact_first_peak: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """Rotational + translational registration against references (k, ny, nx). Returns (shifts (n, 2), angles (n,) degrees in [0, 360), scores (n,), best reference (n,)). prior_angles (n,) and prior_shifts (n, 2), one reference: where finite, a local search from that pose."""

class RotationalSearch:
    """register_rotate with its references prepared once, for many stacks (chunks): the reference's rotations are made on first use and kept."""

    def __init__(
        self,
        references: npt.ArrayLike,
        settings: SearchSettings = ...,
        angular_step: float = 1.0,
    ) -> None: ...
    def register(
        self,
        images: npt.ArrayLike,
        threads: int = 1,
        prior_angles: Optional[npt.ArrayLike] = None,
        prior_shifts: Optional[npt.ArrayLike] = None,
        index: Optional[npt.ArrayLike] = None,
        ctf: Optional[npt.ArrayLike] = None,
        pixel_size_A: Optional[float] = None,
        filtered: Optional[npt.NDArray[np.float32]] = None,
        intact_first_peak: bool = False,
        candidates: int = 0,
        prior_classes: Optional[npt.ArrayLike] = None,
        per_class: bool = False,
    ) -> tuple[Any, ...]:
        """(shifts (n, 2), angles (n,), scores (n,), best reference (n,)) of images against the prepared references: the same as register_rotate with the same arguments; with index, of images[index] only (no copy). per_class=True: a fifth item (shifts (n, C, 2), angles (n, C), scores (n, C), classes (n, C)), each searched class's refined pose (unused slots: class -1, score NaN)."""

def register_spectra(
    references: npt.ArrayLike,
    spectra: npt.ArrayLike,
    nx: int,
    settings: SearchSettings = ...,
    threads: int = 1,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """register_stack from cached half spectra (n, ny, nx//2+1) made by forward_stack."""

def register_accumulate_spectra(
    references: npt.ArrayLike,
    spectra: npt.ArrayLike,
    nx: int,
    groups: npt.ArrayLike,
    sums: npt.NDArray[np.complex128],
    band: float = 0.5,
    prior: Optional[npt.ArrayLike] = None,
    class_stride: int = 0,
    settings: SearchSettings = ...,
    threads: int = 1,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """register_spectra, and in the same pass each image's band (accumulate_spectra, moved back by its new shift, weight 1) added to sums[groups[i] + best[i] * class_stride] in place (groups[i] < 0: none): with class_stride > 0 the sum depends on the best reference (multi-reference alignment). prior (n, 2): where finite, a local search from that shift instead of the full one."""

def forward_stack(
    images: npt.ArrayLike,
    threads: int = 1,
    index: Optional[npt.ArrayLike] = None,
    out: Optional[npt.NDArray[np.complex64]] = None,
    crop: Optional[tuple[int, int]] = None,
    ctf: Optional[npt.ArrayLike] = None,
    pixel_size_A: Optional[float] = None,
    intact_first_peak: bool = False,
) -> npt.NDArray[np.complex64]:
    """Half spectra (n, ny, nx//2+1) complex64 of a stack (unnormalised r2c); with index, of images[index] only; with out, written into that array (returned); with crop=(ky, kx), only |ky| <= ky, kx <= kx: (n, 2*ky+1, kx+1), rows 0..ky then -ky..-1."""

def search_extent(
    ny: int,
    nx: int,
    settings: SearchSettings = ...,
    band: float = 0.0,
) -> tuple[int, int]:
    """(ky, kx): the largest |ky| and kx of an image spectrum that register_spectra reads (ny//2, nx//2: all), and with band > 0 register_accumulate_spectra too: what a cropped spectra cache must hold."""

def accumulate_images_spectra(
    images: npt.ArrayLike,
    shifts: Optional[npt.ArrayLike],
    weights: Optional[npt.ArrayLike],
    sum: npt.NDArray[np.complex128],
    threads: int = 1,
    band: float = 0.5,
    index: Optional[npt.ArrayLike] = None,
) -> None:
    """accumulate_spectra from the images (n, ny, nx), each transformed on the fly: the same sums as forward_stack + accumulate_spectra without storing the spectra; with index, of images[index] (shifts and weights per index entry)."""

def accumulate_spectra(
    spectra: npt.ArrayLike,
    nx: int,
    shifts: Optional[npt.ArrayLike],
    weights: Optional[npt.ArrayLike],
    sum: npt.NDArray[np.complex128],
    threads: int = 1,
    band: float = 0.5,
) -> None:
    """Adds half spectra (whole, or cropped by forward_stack(crop=...)) moved back by their shifts, weighted, into sum (ny, nx//2+1) complex128 in place; band < 0.5 cycles/px adds only the rows and columns within it."""

def correlation_maps(
    reference: npt.ArrayLike,
    images: npt.ArrayLike,
    lowpass: Optional[float] = None,
    highpass: Optional[float] = None,
    edge: float = 0.02,
    phase: bool = False,
    threads: int = 1,
) -> npt.NDArray[np.float32]:
    """Normalised circular cross-correlation maps (n, ny, nx), unshifted layout."""

def shift_stack(images: npt.ArrayLike, shifts: npt.ArrayLike, threads: int = 1) -> npt.NDArray[np.float32]:
    """Moves each image by its (dy, dx) shift (pose convention), in Fourier space."""

def ctf_planes(
    params: npt.ArrayLike,
    ny: int,
    nx: int,
    pixel_size_A: float,
    angles: Optional[npt.ArrayLike] = None,
    squared: bool = False,
    threads: int = 1,
    intact_first_peak: bool = False,
) -> npt.NDArray[np.float32]:
    """Each particle's CTF (params (n, 9), RELION's units) on the half spectrum (n, ny, nx//2+1) float32, turned into the reference frame by angles (psi, degrees); squared: CTF^2."""

def ctf_filter(
    images: npt.ArrayLike,
    params: npt.ArrayLike,
    pixel_size_A: float,
    threads: int = 1,
    index: Optional[npt.ArrayLike] = None,
    intact_first_peak: bool = False,
) -> npt.NDArray[np.float32]:
    """Each image (n, ny, nx) filtered by its own CTF (params (n, 9)), computed on the fly: the inverse FFT of CTF_i F_i; with index, images[index] (one row of params per index entry)."""

def accumulate_ctf2(
    params: npt.ArrayLike,
    weights: npt.ArrayLike,
    groups: npt.ArrayLike,
    out: npt.NDArray[np.float64],
    nx: int,
    pixel_size_A: float,
    band: float = 0.5,
    angles: Optional[npt.ArrayLike] = None,
    threads: int = 1,
    intact_first_peak: bool = False,
) -> None:
    """Adds weights[i] * CTF_i^2 (turned by angles[i]) to out[groups[i]] (n_groups, ny, nx//2+1) float64 in place, within the band (cycles/px per axis); group < 0 or weight 0 skips a particle."""

def normalize_stack(
    images: npt.ArrayLike,
    radius_px: float,
    invert: bool = False,
    hot_sigma: Optional[float] = None,
    normalize: bool = True,
    threads: int = 1,
    index: Optional[npt.ArrayLike] = None,
) -> npt.NDArray[np.float32]:
    """RELION's real-space preprocessing of each image: inversion, hot pixels beyond hot_sigma background deviations set to the background mean, the background (farther than radius_px from (ny/2, nx/2)) to zero mean and unit deviation. float32 (n, ny, nx)."""

def fourier_crop(
    images: npt.ArrayLike,
    ny: int,
    nx: int,
    threads: int = 1,
    index: Optional[npt.ArrayLike] = None,
) -> npt.NDArray[np.float32]:
    """Images (n, ny0, nx0) resampled to (ny, nx) by cutting their spectra (binning); an even crop's Nyquist row and column gather both frequencies they stand for. float32 (n, ny, nx)."""

def transform_stack(
    images: npt.ArrayLike,
    angles: npt.ArrayLike,
    shifts: Optional[npt.ArrayLike] = None,
    inverse: bool = False,
    threads: int = 1,
) -> npt.NDArray[np.float32]:
    """Applies poses (rotate by angles in degrees, then shift) by bicubic interpolation; inverse=True brings images back onto their reference."""

def accumulate(
    images: npt.ArrayLike,
    shifts: Optional[npt.ArrayLike],
    weights: Optional[npt.ArrayLike],
    sum: npt.NDArray[np.float64],
    sumsq: Optional[npt.NDArray[np.float64]],
    threads: int = 1,
    angles: Optional[npt.ArrayLike] = None,
    index: Optional[npt.ArrayLike] = None,
) -> None:
    """Adds images moved back by their shifts, weighted, into sum (and sumsq) in place; with index, images[index] only (no copy). A zero weight skips its image unread."""

def set_planning_effort(effort: int) -> None:
    """Sets FFTW's planning effort: 0 estimate, 1 measure, 2 patient, 3 exhaustive."""

def planning_effort() -> int:
    """The current FFTW planning effort (0..3)."""

def export_wisdom() -> bytes:
    """FFTW's accumulated wisdom (single precision) as bytes."""

def import_wisdom(wisdom: bytes) -> bool:
    """Adds wisdom from export_wisdom(); returns False if FFTW rejects it."""

def forget_wisdom() -> None:
    """Discards FFTW's wisdom."""

def clear_plan_cache() -> None:
    """Drops cryocore's cached FFTW plans."""

def plan_cache_size() -> int:
    """Number of cached plan pairs."""
