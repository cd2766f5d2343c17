"""cryocore: fast, trustworthy alignment and averaging of 2D cryo-EM particle images.

The engine is a C++ core on single-precision FFTW (``cryocore._core``); this
package is its public API. Poses follow one convention everywhere (see the
README): an image is the reference rotated by ``psi`` and then shifted by
``(dy, dx)``; ``register`` returns that pose, averaging applies its inverse.

Main entry points
-----------------
align           the pipeline: half-sets, iterations, thresholds, FRC, outputs
classify        2D classification into K classes, reference-free (select: keep chosen classes)
register        shifts and Pearson scores of images against references
correlation_maps  normalised cross-correlation maps
shift           exact Fourier-space sub-pixel shifts
rotate, transform  in-plane rotations and whole poses (bicubic)
Accumulator     in-place weighted running mean / variance of aligned images
frc             Fourier ring correlation of two images
ctf             the microscope's CTF in RELION's convention (CtfParameters: per particle)
preprocess      normalisation, contrast inversion, hot pixels, binning (RELION's extraction steps)
simulate        seeded synthetic stacks with ground truth
io.open_stack   MRC/MRCS, .npy, TIFF, image folders and RELION STAR files
set_planning, export_wisdom, import_wisdom, forget_wisdom   FFTW planning
"""

from __future__ import annotations

from . import _core, io
from .accumulate import Accumulator
from .ctf import CtfParameters, ctf, wiener_average
from .alignment import AlignResult, align
from .classification import ClassResult, classify
from .class_selection import select
from .frc import FRC, frc
from .preprocess import preprocess
from .fftw import export_wisdom, forget_wisdom, get_planning, import_wisdom, set_planning
from .build_info import build_config, show_config
from .registration import Registration, correlation_maps, register
from .simulation import Simulation, make_template, simulate
from .transforms import rotate, shift, transform

__version__: str = getattr(_core, "__version__", "0+unknown")
fftw_version: str = _core.fftw_version

__all__ = [
    "Accumulator",
    "AlignResult",
    "ClassResult",
    "classify",
    "select",
    "CtfParameters",
    "ctf",
    "wiener_average",
    "preprocess",
    "FRC",
    "align",
    "frc",
    "io",
    "Registration",
    "Simulation",
    "correlation_maps",
    "export_wisdom",
    "forget_wisdom",
    "get_planning",
    "import_wisdom",
    "make_template",
    "register",
    "set_planning",
    "rotate",
    "shift",
    "transform",
    "simulate",
    "__version__",
    "fftw_version",
    "build_config",
    "show_config",
]
