"""Reading particle stacks and writing results: MRC, NumPy, TIFF, PNG, RELION STAR, CSV.

Modules: ``stack`` (ParticleStack, the array adapter), ``mrc``, ``images`` (NumPy, TIFF,
image folders), ``star`` (STAR inputs), ``tables`` (ParticleTable; STAR and CSV outputs),
``atomic`` (the one atomic writer).

Reading
-------
:func:`open_stack` opens a stack of 2D particle images lazily and returns a
:class:`ParticleStack`; the pipeline then reads it chunk by chunk with
:meth:`ParticleStack.read`. Supported inputs:

* ``.mrc`` / ``.mrcs``: memory-mapped with :mod:`mrcfile`. A 2D ``.mrc`` is one
  image; a 3D ``.mrc`` must be flagged as an image stack in its header (space
  group 0); a ``.mrc`` whose header says it is a volume is refused. A 3D
  ``.mrcs`` is always a stack, whatever its header says. The pixel size is the
  header's ``voxel_size.x`` (Å) when it is > 0.
* ``.npy``: memory-mapped, 2D (one image) or 3D.
* ``.tif`` / ``.tiff``: one 2D image or a multi-page stack (one image per page).
* a directory of ``.png`` / ``.tif`` / ``.tiff`` images, one image per file,
  sorted by file name, all of the same shape.
* ``.star``: a RELION particle file, 3.1 layout (``data_optics`` +
  ``data_particles``) or 3.0 layout (one table). ``rlnImageName`` entries are
  ``index@stack`` (index 1-based, stack path relative to the STAR file's
  directory, or absolute); images of many stacks are gathered per chunk.

RGB(A) images are converted to luminance ``0.299 R + 0.587 G + 0.114 B``.
Images are returned as float32, whatever the file's data type.

Writing
-------
Every writer goes through :func:`atomic_write`: the file appears complete or
not at all, and an existing file is replaced only when the new one is fully
written. Writers refuse to overwrite an existing file unless
``overwrite=True``.

* :func:`write_mrc`: an image or stack as float32 MRC with the pixel size.
* :func:`write_particles_star` / :func:`read_particles_star`: per-particle
  poses in RELION 3.1 layout, with RELION's sign conventions (see
  CONVENTIONS.md, "RELION's pose columns").
* :func:`write_particles_csv` / :func:`read_particles_csv`: the same in
  cryocore's own convention.

Errors are :class:`FileNotFoundError` for missing files and
:class:`ValueError` for anything unreadable, each naming the file and what
was expected.
"""

from __future__ import annotations

import os

from .atomic import PathLike, atomic_write
from .images import TIFF_EXTENSIONS, _open_image_dir, _open_npy, _open_tiff
from .mrc import MRC_EXTENSIONS, _open_mrc_stack, write_mrc
from .stack import ArraySource, ParticleStack, StackSource, as_source
from .star import _open_star
from .tables import (ParticleTable, read_particles_csv, read_particles_star, write_model_star, write_particles_csv,
                     write_particles_star, write_star_table)

__all__ = [
    "ArraySource",
    "ParticleStack",
    "ParticleTable",
    "StackSource",
    "as_source",
    "atomic_write",
    "open_stack",
    "read_particles_csv",
    "read_particles_star",
    "write_model_star",
    "write_mrc",
    "write_particles_csv",
    "write_particles_star",
    "write_star_table",
]

SUPPORTED = ".mrc, .mrcs, .npy, .tif, .tiff, .star, or a directory of .png/.tif/.tiff images"


def open_stack(path: PathLike) -> ParticleStack:
    """Open a stack of 2D particle images for chunked reading.

    Parameters
    ----------
    path : str or path-like
        ``.mrc``, ``.mrcs``, ``.npy``, ``.tif``, ``.tiff``, ``.star``, or a
        directory of ``.png`` / ``.tif`` / ``.tiff`` images (see the module
        docstring for the rules of each).

    Returns
    -------
    ParticleStack
        ``.shape`` (N, ny, nx); ``.read(start, stop)`` gives float32 images.
        Use it as a context manager, or call ``close()``.

    Raises
    ------
    FileNotFoundError
        ``path``, or a stack referenced by a STAR file, does not exist.
    ValueError
        Unknown extension; truncated or corrupt file; a volume given as
        ``.mrc``; an empty stack; images smaller than 8 x 8; complex or
        non-numeric data; a STAR file without ``rlnImageName`` or with an
        index beyond its stack's size.
    """
    given = os.fspath(path)
    if not isinstance(given, str):
        given = os.fsdecode(given)
    if not os.path.exists(given):
        raise FileNotFoundError(f"particle stack {given!r} does not exist (expected {SUPPORTED})")
    if os.path.isdir(given):
        return _open_image_dir(given)
    ext = os.path.splitext(given)[1].lower()
    if ext in MRC_EXTENSIONS:
        return _open_mrc_stack(given)
    if ext == ".npy":
        return _open_npy(given)
    if ext in TIFF_EXTENSIONS:
        return _open_tiff(given)
    if ext == ".star":
        return _open_star(given)
    raise ValueError(f"{given!r}: unknown file type {ext or '(no extension)'!r}; expected {SUPPORTED}")
