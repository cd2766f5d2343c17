"""MRC / MRCS stacks: memory-mapped reading with mrcfile, and the float32 writer."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Optional

import numpy as np

from .atomic import PathLike, _check_overwrite, atomic_write
from .stack import ParticleStack, _array_stack, _check_dtype

MRC_EXTENSIONS = (".mrc", ".mrcs")

# --------------------------------------------------------------------------
# MRC
# --------------------------------------------------------------------------

# mrcfile complaints that still leave a legacy (pre-MRC2014) file readable.
_LEGACY_MRC_WARNINGS = ("Map ID string not found", "Unrecognised machine stamp", "does not match the apparent byte order")


# Bytes per voxel of the MRC modes mrcfile reads (complex ones are refused later, with a clear message).
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


def _mrc_header_check(path: str, what: str) -> bool:
    """Cheap sanity check of an MRC header before mrcfile reads it; True if it has the 'MAP' id.

    Refuses headers whose extended-header size exceeds the file (mrcfile would
    allocate that many bytes first). A file without the 'MAP' id must describe
    its data exactly (valid mode, positive dimensions, file size = header +
    extended header + data) in one of the two byte orders.
    """
    from mrcfile.dtypes import HEADER_DTYPE

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(HEADER_DTYPE.itemsize)
    if len(raw) < HEADER_DTYPE.itemsize:
        raise ValueError(
            f"{what} is not a readable MRC file: it has {size} bytes, less than the {HEADER_DTYPE.itemsize}-byte header"
        )
    from mrcfile.utils import byte_order_from_machine_stamp

    has_id = raw[208:211] == b"MAP"
    try:
        orders = [byte_order_from_machine_stamp(np.frombuffer(raw, HEADER_DTYPE)[0]["machst"])]
    except ValueError:  # no recognised machine stamp: try both, as mrcfile's permissive mode does
        orders = ["<", ">"]
    explained = []
    for order in orders:
        h = np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order))[0]
        nx, ny, nz, mode, nsymbt = (int(h[k]) for k in ("nx", "ny", "nz", "mode", "nsymbt"))
        if 0 <= nsymbt <= size - HEADER_DTYPE.itemsize:
            if has_id:
                return True
            bpv = _MRC_MODE_BYTES.get(mode)
            if bpv and min(nx, ny, nz) > 0 and size == HEADER_DTYPE.itemsize + nsymbt + nx * ny * nz * bpv:
                return False
        explained.append(f"{order}: nx={nx} ny={ny} nz={nz} mode={mode} nsymbt={nsymbt}")
    reason = (
        "its extended header is larger than the file"
        if has_id
        else "it has no 'MAP' identifier and its header does not describe the file's"
        f" {size} bytes ({'; '.join(explained)})"
    )
    raise ValueError(f"{what} is not a readable MRC file: {reason}")


def _open_mrc(path: str, *, where: str = "") -> Any:
    """``mrcfile.mmap(path, mode='r')`` with errors turned into ValueError naming the file.

    A file without the ``MAP`` identifier (older MRC writers, e.g. the stack
    next to relion31.star) is accepted when it is otherwise consistent: a
    valid mode and exactly as many data bytes as the header describes.
    """
    import mrcfile

    what = f"{path!r}{where}"
    try:
        has_id = _mrc_header_check(path, what)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if has_id:
                mrc = mrcfile.mmap(path, mode="r")
            else:
                mrc = mrcfile.mmap(path, mode="r", permissive=True)
    except (ValueError, EOFError, OverflowError, TypeError, MemoryError) as err:
        if str(err).startswith(what):
            raise
        raise ValueError(f"{what} is not a readable MRC file: {err}") from err
    except OSError as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(f"{what} is not a readable MRC file: {err}") from err
    messages = [str(w.message) for w in caught]
    if not has_id:
        # Only the complaints expected of a legacy header are acceptable.
        problems = [m for m in messages if not any(s in m for s in _LEGACY_MRC_WARNINGS)]
        if mrc.data is None or problems:
            mrc.close()
            raise ValueError(f"{what} is not a readable MRC file: {'; '.join(problems) or 'no data block'}")
        messages = []
    for msg in messages:
        if "larger than expected" in msg:
            mrc.close()
            raise ValueError(
                f"{what}: {msg}; the header does not describe the file (corrupt header, or"
                " data appended after writing)"
            )
        warnings.warn(f"{what}: {msg}", RuntimeWarning, stacklevel=3)
    if mrc.data is None:  # pragma: no cover - strict mode always has data
        mrc.close()
        raise ValueError(f"{what} is not a readable MRC file (no data block)")
    return mrc


def _mrc_pixel_size(mrc: Any) -> Optional[float]:
    x = float(mrc.voxel_size.x)
    return x if math.isfinite(x) and x > 0 else None


def _mrc_images(mrc: Any, path: str, *, allow_volume: bool, where: str = "") -> np.ndarray:
    """The data of an open MRC file as (N, ny, nx), after dtype and volume checks."""
    data = mrc.data
    what = f"{path!r}{where}"
    _check_dtype(data.dtype, what)
    if data.ndim == 2:
        return data[None]
    if data.ndim != 3:
        raise ValueError(
            f"{what} holds {data.ndim}D data of shape {data.shape} (a stack of volumes?);"
            " expected a 2D image or a stack of 2D images"
        )
    if not allow_volume and mrc.is_volume():
        raise ValueError(
            f"{what} is a volume, not a stack of images: its header has space group"
            f" ispg={int(mrc.header.ispg)} (image stacks have 0) and {data.shape[0]} sections of"
            f" {data.shape[1]} x {data.shape[2]}. If it really is a stack of 2D particle"
            " images, name it .mrcs (or set ispg to 0)"
        )
    return data


def _open_mrc_stack(path: str) -> ParticleStack:
    mrc = _open_mrc(path)
    try:
        allow_volume = path.lower().endswith(".mrcs")
        data = _mrc_images(mrc, path, allow_volume=allow_volume)
        return _array_stack(path, data, _mrc_pixel_size(mrc), mrc.close)
    except BaseException:
        mrc.close()
        raise


def write_mrc(
    path: PathLike,
    image_or_stack: np.ndarray,
    pixel_size_A: Optional[float] = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write an image (ny, nx) or a stack (N, ny, nx) as a float32 MRC file, atomically.

    A 3D array is flagged as an image stack (space group 0), so it reads back
    as a stack whether the file is named ``.mrc`` or ``.mrcs``.

    Parameters
    ----------
    path : str or path-like
        Destination (conventionally ``.mrc`` for one image, ``.mrcs`` for a stack).
    image_or_stack : array, shape (ny, nx) or (N, ny, nx)
        Real numbers; stored as float32.
    pixel_size_A : float, optional
        Pixel size in Å, stored as the header's voxel size. Left 0 (unknown)
        when None.
    overwrite : bool
        Replace an existing file. Default False: an existing ``path`` raises
        FileExistsError.
    """
    from mrcfile.mrcinterpreter import MrcInterpreter

    p = _check_overwrite(path, overwrite)
    a = np.asarray(image_or_stack)
    _check_dtype(a.dtype, "image_or_stack")
    if a.ndim not in (2, 3):
        raise ValueError(f"image_or_stack must be 2D (ny, nx) or 3D (N, ny, nx), got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    apix = None
    if pixel_size_A is not None:
        apix = float(pixel_size_A)
        if not (math.isfinite(apix) and apix > 0):
            raise ValueError(f"pixel_size_A must be a positive number of Å, got {pixel_size_A!r}")
    with atomic_write(p, "wb") as f:
        mrc = MrcInterpreter()
        mrc._create_default_attributes()
        mrc._iostream = f
        mrc.set_data(a)
        if a.ndim == 3:
            mrc.set_image_stack()
        if apix is not None:
            mrc.voxel_size = apix
        mrc.flush()


