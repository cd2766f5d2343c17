"""Reading particle stacks and writing results: MRC, NumPy, TIFF, PNG, RELION STAR, CSV.

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

import collections
import contextlib
import csv
import math
import operator
import os
import secrets
import threading
import warnings
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from ._validate import MIN_SIZE

__all__ = [
    "ParticleStack",
    "atomic_write",
    "open_stack",
    "read_particles_csv",
    "read_particles_star",
    "write_mrc",
    "write_particles_csv",
    "write_particles_star",
]

PathLike = Union[str, "os.PathLike[str]"]

MRC_EXTENSIONS = (".mrc", ".mrcs")
TIFF_EXTENSIONS = (".tif", ".tiff")
IMAGE_DIR_EXTENSIONS = (".png",) + TIFF_EXTENSIONS
SUPPORTED = ".mrc, .mrcs, .npy, .tif, .tiff, .star, or a directory of .png/.tif/.tiff images"

# Most stacks a STAR-file stack keeps memory-mapped at once (each holds a file descriptor).
MAX_OPEN_STACKS = 64

LUMINANCE = np.array([0.299, 0.587, 0.114])

CSV_COLUMNS = ["image_name", "dy_px", "dx_px", "psi_deg", "score", "accepted", "half"]


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Write a file all at once: the new content appears at ``path`` only on success.

    The ``with`` body writes to a temporary file in the same directory as
    ``path`` (named ``.<name>.<random>.partial``). When the body finishes
    without an exception the file is flushed, ``fsync``-ed and moved onto
    ``path`` with :func:`os.replace` (atomic on POSIX and Windows), and the
    directory is ``fsync``-ed where the platform allows. If the body raises,
    the temporary file is removed, any existing file at ``path`` is left
    untouched, and the exception propagates.

    Parameters
    ----------
    path : str or path-like
        Destination. Its directory must exist.
    mode : {"wb", "w", "wt"}
        Binary or text mode of the file object handed to the body.
    **open_kwargs
        Passed to :func:`open` (for example ``encoding="utf-8"`` or
        ``newline=""`` in text mode). Text mode defaults to UTF-8.

    Yields
    ------
    file object open for writing.
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_write mode must be 'wb', 'w' or 'wt', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a directory")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.partial")
    # O_EXCL: never clobber anything; 0o666 lets the umask set the usual permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make a rename durable (POSIX); silently skipped where directories cannot be opened."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _check_overwrite(path: PathLike, overwrite: bool) -> str:
    p = os.fspath(path)
    if os.path.exists(p) and not overwrite:
        raise FileExistsError(f"{p!r} already exists; pass overwrite=True to replace it")
    return p


# --------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------


def _check_dtype(dtype: np.dtype, what: str) -> None:
    """Refuse data that are not real numbers (complex, bool, object, structured, strings)."""
    if dtype.kind in "iuf" and dtype.fields is None:
        return
    if dtype.kind == "c":
        raise ValueError(
            f"{what} holds complex data (dtype {dtype}); particle images must be real numbers"
        )
    raise ValueError(
        f"{what} holds non-numeric data (dtype {dtype}); particle images must be"
        " real numbers (integer or float)"
    )


def _check_geometry(n: int, ny: int, nx: int, what: str) -> None:
    if n == 0:
        raise ValueError(f"{what} is an empty stack (0 images of {ny} x {nx}); at least one image is needed")
    if ny < MIN_SIZE or nx < MIN_SIZE:
        raise ValueError(
            f"{what} has images of {ny} x {nx} pixels; at least {MIN_SIZE} x {MIN_SIZE} are needed"
        )


def _to_gray(a: np.ndarray, what: str) -> np.ndarray:
    """(..., ny, nx) or (..., ny, nx, 3|4) RGB(A) -> (..., ny, nx) float (luminance for RGB)."""
    if a.ndim >= 3 and a.shape[-1] in (3, 4):
        return a[..., :3].astype(np.float64) @ LUMINANCE
    if a.ndim >= 3 and a.shape[-1] == 2:  # gray + alpha
        return a[..., 0]
    return a


def _index_name_width(n: int) -> int:
    return max(6, len(str(n)))


def _check_range(start: int, stop: int, n: int) -> tuple[int, int]:
    try:
        start_i, stop_i = operator.index(start), operator.index(stop)
    except TypeError:
        raise TypeError(f"start and stop must be integers, got {start!r} and {stop!r}") from None
    if not 0 <= start_i <= stop_i <= n:
        raise ValueError(f"read({start_i}, {stop_i}) is out of range: need 0 <= start <= stop <= {n}")
    return start_i, stop_i


# --------------------------------------------------------------------------
# ParticleStack
# --------------------------------------------------------------------------


class ParticleStack:
    """A lazily read stack of N 2D particle images. Create with :func:`open_stack`.

    Attributes
    ----------
    path : str
        The path as given to :func:`open_stack`.
    shape : (N, ny, nx)
        Number of images and image box in pixels.
    pixel_size_A : float or None
        Pixel size in Å, when the file says.
    image_names : list of N str
        RELION ``index@stack`` references (1-based index) to each image in its
        original file, using the path as given; for a STAR input, the file's
        own ``rlnImageName`` entries verbatim.
    dtype : numpy.dtype
        Data type stored in the file (images are always returned as float32).
    """

    def __init__(
        self,
        *,
        path: str,
        shape: tuple[int, int, int],
        pixel_size_A: Optional[float],
        image_names: list[str],
        dtype: np.dtype,
        reader: Callable[[int, int], np.ndarray],
        closer: Callable[[], None],
    ) -> None:
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.pixel_size_A = None if pixel_size_A is None else float(pixel_size_A)
        self.image_names = image_names
        self.dtype = np.dtype(dtype)
        self._reader = reader
        self._closer = closer
        self._closed = False

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        apix = "unknown" if self.pixel_size_A is None else f"{self.pixel_size_A:g} A"
        state = ", closed" if self._closed else ""
        return f"<ParticleStack {self.path!r}: {self.shape[0]} x {self.shape[1]} x {self.shape[2]}, pixel {apix}{state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images ``start`` to ``stop - 1`` (0-based), reading only those from disk.

        Returns
        -------
        ndarray, float32, C-contiguous, shape (stop - start, ny, nx); a fresh
        array that stays valid after :meth:`close`.
        """
        if self._closed:
            raise ValueError(f"stack {self.path!r} is closed")
        start, stop = _check_range(start, stop, self.shape[0])
        if start == stop:
            return np.empty((0,) + self.shape[1:], np.float32)
        out = np.ascontiguousarray(self._reader(start, stop), dtype=np.float32)
        if out.shape != (stop - start,) + self.shape[1:]:  # pragma: no cover - internal invariant
            raise RuntimeError(f"internal error reading {self.path!r}: got shape {out.shape}")
        return out

    def read_all(self) -> np.ndarray:
        """All images: float32 ndarray, shape (N, ny, nx)."""
        return self.read(0, self.shape[0])

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, images)`` for consecutive chunks of at most ``chunk_size`` images."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        for start in range(0, self.shape[0], int(chunk_size)):
            yield start, self.read(start, min(start + int(chunk_size), self.shape[0]))

    def close(self) -> None:
        """Release the file handles (memory maps). Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._closer()

    def __enter__(self) -> "ParticleStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


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


def _array_stack(
    path: str,
    arr: np.ndarray,
    pixel_size_A: Optional[float],
    closer: Callable[[], None],
) -> ParticleStack:
    """A ParticleStack over an array-like (memory map) of shape (N, ny, nx)."""
    n, ny, nx = arr.shape
    _check_geometry(n, ny, nx, repr(path))
    width = _index_name_width(n)
    names = [f"{i:0{width}d}@{path}" for i in range(1, n + 1)]
    held = [arr]  # dropped on close, so the memory map can be released

    def reader(start: int, stop: int) -> np.ndarray:
        return np.array(held[0][start:stop], dtype=np.float32)

    def close() -> None:
        held.clear()
        closer()

    return ParticleStack(
        path=path, shape=(n, ny, nx), pixel_size_A=pixel_size_A, image_names=names,
        dtype=arr.dtype, reader=reader, closer=close,
    )


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


# --------------------------------------------------------------------------
# NumPy, TIFF, image directories
# --------------------------------------------------------------------------


def _open_npy(path: str) -> ParticleStack:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path!r} is not a readable .npy array of real numbers: {err}") from err
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of .npy gives an array
        raise ValueError(f"{path!r} does not hold a single array")
    _check_dtype(arr.dtype, repr(path))
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{path!r} holds an array of shape {arr.shape}; expected (ny, nx) or (N, ny, nx)")
    return _array_stack(path, arr, None, lambda: None)


def _tiff_series_layout(series: Any, path: str) -> tuple[int, tuple[int, ...], bool]:
    """(number of images, shape of one image as stored, RGB?) of a tifffile series."""
    shape, axes = tuple(series.shape), series.axes
    rgb = axes.endswith("S") and shape[-1] in (2, 3, 4)
    img_shape = shape[:-1] if rgb else shape
    if len(img_shape) == 2:
        n = 1
    elif len(img_shape) == 3:
        n = img_shape[0]
    else:
        raise ValueError(
            f"{path!r} holds images of shape {shape} (axes {axes}); expected a 2D image or a"
            " stack of 2D images, one per page"
        )
    per_image = tuple(shape[-3:]) if rgb else tuple(shape[-2:])
    return n, per_image, rgb


def _open_tiff(path: str) -> ParticleStack:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as err:
        raise ValueError(f"{path!r} is not a readable TIFF file: {err}") from err
    try:
        if not tif.series:
            raise ValueError(f"{path!r} contains no images")
        layouts = [_tiff_series_layout(s, path) for s in tif.series]
        for s in tif.series:
            _check_dtype(np.dtype(s.dtype), repr(path))
        n = sum(lay[0] for lay in layouts)
        per_image, rgb = layouts[0][1], layouts[0][2]
        dtype = np.dtype(tif.series[0].dtype)
        if len(tif.series) > 1:
            # e.g. pages written one at a time: fine if every page is one image of the same shape
            same = all(lay[1:] == (per_image, rgb) for lay in layouts) and all(
                np.dtype(s.dtype) == dtype and len(s.pages) == lay[0] for s, lay in zip(tif.series, layouts)
            )
            if not same:
                shapes = ", ".join(f"{s.shape} {s.dtype}" for s in tif.series[:4])
                raise ValueError(
                    f"{path!r} holds {len(tif.series)} image series of different shapes or types"
                    f" ({shapes}); expected pages that all hold one image of the same shape"
                )
        ny, nx = per_image[:2]
        _check_geometry(n, ny, nx, repr(path))
        series = tif.series[0]
        pages = [pg for s in tif.series for pg in s.pages] if len(tif.series) > 1 else None
        paged = len(series.pages) == n
        cache: dict[str, np.ndarray] = {}
        lock = threading.Lock()

        def reader(start: int, stop: int) -> np.ndarray:
            with lock:
                if pages is not None:
                    raw = np.stack([np.asarray(pages[i].asarray()) for i in range(start, stop)])  # type: ignore[union-attr]
                elif paged:
                    raw = tif.asarray(key=list(range(start, stop)), series=0)
                else:  # e.g. one page holding the whole stack: read once
                    if "all" not in cache:
                        cache["all"] = np.asarray(series.asarray()).reshape((n,) + per_image)
                    raw = cache["all"][start:stop]
                raw = np.asarray(raw).reshape((stop - start,) + per_image)
            return _to_gray(raw, repr(path)) if rgb else raw

        width = _index_name_width(n)
        return ParticleStack(
            path=path, shape=(n, ny, nx), pixel_size_A=None,
            image_names=[f"{i:0{width}d}@{path}" for i in range(1, n + 1)],
            dtype=dtype, reader=reader, closer=tif.close,
        )
    except BaseException:
        tif.close()
        raise


def _read_image_file(path: str) -> np.ndarray:
    """One 2D grayscale image from a .png/.tif/.tiff file (RGB -> luminance)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in TIFF_EXTENSIONS:
        import tifffile

        try:
            a = np.asarray(tifffile.imread(path))
        except Exception as err:
            raise ValueError(f"{path!r} is not a readable TIFF image: {err}") from err
    else:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX", "RGBa", "La"):
                    im = im.convert("RGBA" if "A" in im.mode or "a" in im.mode else "RGB")  # type: ignore[assignment]
                a = np.asarray(im)
        except Exception as err:
            raise ValueError(f"{path!r} is not a readable image: {err}") from err
    if a.dtype == bool:
        a = a.astype(np.uint8)
    _check_dtype(a.dtype, repr(path))
    a = _to_gray(a, repr(path))
    if a.ndim != 2:
        raise ValueError(f"{path!r} holds data of shape {a.shape}; expected one 2D (grayscale or RGB) image per file")
    return a


def _open_image_dir(path: str) -> ParticleStack:
    files = sorted(
        f for f in os.listdir(path)
        if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_DIR_EXTENSIONS
        and os.path.isfile(os.path.join(path, f))
    )
    if not files:
        raise ValueError(f"directory {path!r} contains no .png, .tif or .tiff images (an empty stack)")
    paths = [os.path.join(path, f) for f in files]
    first = _read_image_file(paths[0])
    ny, nx = first.shape
    for p in paths[1:]:
        shape = _image_file_shape(p)
        if shape != (ny, nx):
            raise ValueError(
                f"image {p!r} is {shape[0]} x {shape[1]} but {paths[0]!r} is {ny} x {nx};"
                f" all images in directory {path!r} must have the same shape"
            )
    _check_geometry(len(paths), ny, nx, f"directory {path!r}")
    width = _index_name_width(1)

    def reader(start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, ny, nx), np.float32)
        for k, p in enumerate(paths[start:stop]):
            img = _read_image_file(p)
            if img.shape != (ny, nx):
                raise ValueError(f"image {p!r} changed shape to {img.shape} since the stack was opened")
            out[k] = img
        return out

    return ParticleStack(
        path=path, shape=(len(paths), ny, nx), pixel_size_A=None,
        image_names=[f"{1:0{width}d}@{p}" for p in paths],
        dtype=first.dtype, reader=reader, closer=lambda: None,
    )


def _image_file_shape(path: str) -> tuple[int, ...]:
    """(ny, nx) of an image file, from its header where possible."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        from PIL import Image

        try:
            with Image.open(path) as im:
                return (im.size[1], im.size[0])
        except Exception as err:
            raise ValueError(f"{path!r} is not a readable image: {err}") from err
    return _read_image_file(path).shape


# --------------------------------------------------------------------------
# RELION STAR files
# --------------------------------------------------------------------------


def _read_star_blocks(path: str) -> dict[str, Any]:
    import starfile

    if not os.path.exists(path):
        raise FileNotFoundError(f"STAR file {path!r} does not exist")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:
        raise ValueError(f"{path!r} is not a readable STAR file: {err}") from err
    return blocks


def _star_tables(path: str, blocks: dict[str, Any]) -> tuple[Any, Optional[Any]]:
    """(particles table, optics table or None) of a RELION 3.0 or 3.1 STAR file."""
    import pandas as pd

    tables = {}
    for name, block in blocks.items():
        if isinstance(block, dict):  # a one-row block written as key/value pairs
            block = pd.DataFrame({k: [v] for k, v in block.items()})
        tables[name] = block
    candidates = [n for n, t in tables.items() if "rlnImageName" in t.columns]
    if not candidates:
        found = "; ".join(f"data_{n}: {', '.join(map(str, t.columns[:8]))}" for n, t in tables.items())
        raise ValueError(
            f"STAR file {path!r} has no rlnImageName column, so it does not describe particle"
            f" images (found {found or 'no tables'}); expected a RELION particle file"
        )
    name = "particles" if "particles" in candidates else candidates[0]
    optics = tables.get("optics")
    return tables[name].reset_index(drop=True), optics


def _star_pixel_sizes(path: str, particles: Any, optics: Optional[Any]) -> np.ndarray:
    """Per-particle pixel size in Å (NaN where the file does not say)."""
    n = len(particles)
    apix = np.full(n, np.nan)
    if optics is not None and "rlnImagePixelSize" in optics.columns:
        sizes = optics["rlnImagePixelSize"].to_numpy(dtype=np.float64)
        if "rlnOpticsGroup" in particles.columns and "rlnOpticsGroup" in optics.columns:
            lookup = dict(zip(optics["rlnOpticsGroup"].astype(int), sizes))
            groups = particles["rlnOpticsGroup"].astype(int).to_numpy()
            missing = sorted(set(groups) - set(lookup))
            if missing:
                raise ValueError(
                    f"STAR file {path!r}: particles use optics groups {missing} that are not in data_optics"
                )
            apix = np.array([lookup[g] for g in groups], dtype=np.float64)
        elif len(sizes) == 1:
            apix[:] = sizes[0]
        else:
            raise ValueError(
                f"STAR file {path!r} has {len(sizes)} optics groups but its particles have no rlnOpticsGroup column"
            )
    elif "rlnImagePixelSize" in particles.columns:
        apix = particles["rlnImagePixelSize"].to_numpy(dtype=np.float64)
    elif "rlnDetectorPixelSize" in particles.columns and "rlnMagnification" in particles.columns:
        det = particles["rlnDetectorPixelSize"].to_numpy(dtype=np.float64)
        mag = particles["rlnMagnification"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            apix = np.where(mag > 0, det * 1e4 / mag, np.nan)
    apix = np.where(np.isfinite(apix) & (apix > 0), apix, np.nan)
    return apix


def _common_pixel_size(path: str, apix: np.ndarray) -> Optional[float]:
    known = apix[np.isfinite(apix)]
    if known.size == 0:
        return None
    lo, hi = float(known.min()), float(known.max())
    if hi - lo > 1e-6 * hi:
        raise ValueError(
            f"STAR file {path!r} mixes pixel sizes from {lo:g} to {hi:g} Å; cryocore needs one pixel size"
            " for all particles (split the file by optics group)"
        )
    if known.size != apix.size:
        raise ValueError(f"STAR file {path!r} gives a pixel size for some particles but not for others")
    return float(known[0])


def _parse_image_name(entry: str, star_path: str, row: int) -> tuple[int, str]:
    """``'000012@Extract/x.mrcs'`` -> (12, 'Extract/x.mrcs'); a name without '@' is image 1 of its file."""
    entry = str(entry).strip()
    if "@" in entry:
        idx_s, stack = entry.split("@", 1)
        try:
            idx = int(idx_s)
        except ValueError:
            raise ValueError(
                f"STAR file {star_path!r}, particle {row + 1}: rlnImageName {entry!r} is not of the form index@stack"
            ) from None
    else:
        idx, stack = 0, entry  # 0: the whole file, which must hold a single image
    if not stack:
        raise ValueError(f"STAR file {star_path!r}, particle {row + 1}: rlnImageName {entry!r} names no stack")
    if "@" in entry and idx < 1:
        raise ValueError(
            f"STAR file {star_path!r}, particle {row + 1}: rlnImageName {entry!r} has index {idx};"
            " indices are 1-based"
        )
    return idx, stack


def _resolve_stack(stack: str, star_dir: str) -> Optional[str]:
    if os.path.isabs(stack):
        return stack if os.path.isfile(stack) else None
    candidate = os.path.join(star_dir, stack)
    if os.path.isfile(candidate):
        return candidate
    # RELION itself resolves paths from its project directory (the working directory).
    if os.path.isfile(stack):
        return stack
    return None


class _MrcCache:
    """Memory-mapped MRC stacks, opened on demand, at most MAX_OPEN_STACKS at once."""

    def __init__(self, where: str) -> None:
        self._open: "collections.OrderedDict[str, tuple[Any, np.ndarray]]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._where = where

    def get(self, path: str) -> np.ndarray:
        with self._lock:
            hit = self._open.get(path)
            if hit is not None:
                self._open.move_to_end(path)
                return hit[1]
            mrc = _open_mrc(path, where=self._where)
            try:
                data = _mrc_images(mrc, path, allow_volume=True, where=self._where)
            except BaseException:
                mrc.close()
                raise
            self._open[path] = (mrc, data)
            while len(self._open) > MAX_OPEN_STACKS:
                _, (old, _) = self._open.popitem(last=False)
                old.close()
            return data

    def close(self) -> None:
        with self._lock:
            while self._open:
                _, (mrc, _) = self._open.popitem()
                mrc.close()


def _open_star(path: str) -> ParticleStack:
    particles, optics = _star_tables(path, _read_star_blocks(path))
    n = len(particles)
    if n == 0:
        raise ValueError(f"STAR file {path!r} lists no particles (an empty stack)")
    names = [str(v) for v in particles["rlnImageName"].tolist()]
    apix = _common_pixel_size(path, _star_pixel_sizes(path, particles, optics))
    star_dir = os.path.dirname(path)
    where = f" (referenced by STAR file {path!r})"

    # Resolve every stack up front so that a missing file fails now, not mid-run.
    resolved: dict[str, str] = {}
    stack_of = np.empty(n, dtype=np.int64)
    index_of = np.empty(n, dtype=np.int64)
    stack_list: list[str] = []
    stack_ids: dict[str, int] = {}
    for row, entry in enumerate(names):
        idx, stack = _parse_image_name(entry, path, row)
        if stack not in resolved:
            found = _resolve_stack(stack, star_dir)
            if found is None:
                tried = stack if os.path.isabs(stack) else os.path.join(star_dir, stack)
                raise FileNotFoundError(
                    f"stack {stack!r} (rlnImageName {entry!r}, particle {row + 1} of STAR file {path!r})"
                    f" does not exist: looked for {tried!r}"
                    + ("" if os.path.isabs(stack) else " and relative to the working directory")
                )
            resolved[stack] = found
        real = resolved[stack]
        if real not in stack_ids:
            stack_ids[real] = len(stack_list)
            stack_list.append(real)
        stack_of[row] = stack_ids[real]
        index_of[row] = idx - 1  # -1: a whole single-image file

    cache = _MrcCache(where)
    try:
        box: Optional[tuple[int, int]] = None
        dtype = np.dtype(np.float32)
        for k, real in enumerate(stack_list):
            data = cache.get(real)
            sn, sy, sx = data.shape
            if box is None:
                box, dtype = (sy, sx), data.dtype
            elif (sy, sx) != box:
                raise ValueError(
                    f"stack {real!r}{where} holds {sy} x {sx} images but other stacks hold"
                    f" {box[0]} x {box[1]}; all particles must have the same box"
                )
            rows = np.nonzero(stack_of == k)[0]
            in_stack = np.asarray(index_of[rows])
            whole: np.ndarray = np.asarray(in_stack < 0)
            if whole.any():
                if sn != 1:
                    r = int(rows[np.argmax(whole)])
                    raise ValueError(
                        f"STAR file {path!r}, particle {r + 1}: rlnImageName {names[r]!r} has no index@"
                        f" but {real!r} holds {sn} images"
                    )
                index_of[rows[whole]] = 0
            bad = index_of[rows] >= sn
            if bad.any():
                r = int(rows[np.argmax(bad)])
                raise ValueError(
                    f"STAR file {path!r}, particle {r + 1}: rlnImageName {names[r]!r} asks for image"
                    f" {index_of[r] + 1} but stack {real!r} holds only {sn} images"
                )
        assert box is not None
        _check_geometry(n, box[0], box[1], f"STAR file {path!r}")
    except BaseException:
        cache.close()
        raise

    def reader(start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, box[0], box[1]), np.float32)
        sid = stack_of[start:stop]
        idx = index_of[start:stop]
        for k in np.unique(sid):
            sel = np.nonzero(sid == k)[0]
            data = cache.get(stack_list[int(k)])
            wanted = idx[sel]
            if wanted.size > 1 and np.all(np.diff(wanted) == 1):
                out[sel] = data[wanted[0]: wanted[-1] + 1]  # contiguous run: one slice
            else:
                out[sel] = data[wanted]
        return out

    return ParticleStack(
        path=path, shape=(n, box[0], box[1]), pixel_size_A=apix, image_names=names,
        dtype=dtype, reader=reader, closer=cache.close,
    )


# --------------------------------------------------------------------------
# Per-particle results: STAR and CSV
# --------------------------------------------------------------------------


@dataclass
class _Poses:
    image_names: list[str]
    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    accepted: np.ndarray
    half: np.ndarray


def _check_poses(
    image_names: Sequence[str],
    shifts: Any,
    angles: Any,
    scores: Any,
    accepted: Any,
    half: Any,
) -> _Poses:
    if isinstance(image_names, (str, bytes)):
        raise TypeError("image_names must be a sequence of strings, one per particle, not a single string")
    names = [str(v) for v in image_names]
    n = len(names)
    if n == 0:
        raise ValueError("no particles to write: image_names is empty")
    bad = [v for v in names if not v or any(c.isspace() for c in v)]
    if bad:
        raise ValueError(f"image names must be non-empty and contain no whitespace, got {bad[0]!r}")

    def real(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
        a = np.asarray(x)
        if a.dtype == bool:
            a = a.astype(np.float64)
        if a.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
        a = a.astype(np.float64)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for {n} particles, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinity")
        return a

    s = real(shifts, "shifts", (n, 2))
    ang = real(angles, "angles", (n,))
    sc = real(scores, "scores", (n,))
    acc = real(accepted, "accepted", (n,))
    if not np.isin(acc, (0, 1)).all():
        raise ValueError("accepted must be booleans (or 0/1), one per particle")
    h = real(half, "half", (n,))
    if not np.isin(h, (1, 2)).all():
        raise ValueError(f"half must be 1 or 2 for every particle (RELION's rlnRandomSubset), got values {np.unique(h)[:6]}")
    return _Poses(names, s, ang, sc, acc.astype(bool), h.astype(np.int64))


def _fmt(x: float) -> str:
    """Shortest text that reads back as exactly the same float64."""
    return repr(float(x))


def _angle_mod(a: np.ndarray) -> np.ndarray:
    out = np.mod(a, 360.0)
    return np.where(out >= 360.0, 0.0, out)  # np.mod(-1e-20, 360) rounds to 360


def write_particles_star(
    path: PathLike,
    *,
    image_names: Sequence[str],
    shifts: np.ndarray,
    angles: np.ndarray,
    scores: np.ndarray,
    accepted: np.ndarray,
    half: np.ndarray,
    pixel_size_A: Optional[float],
    image_size: Union[int, Sequence[int]],
    overwrite: bool = False,
) -> None:
    """Write per-particle poses as a RELION 3.1 particle STAR file, atomically.

    ``data_optics`` has one group (rlnOpticsGroup 1, 'opticsGroup1',
    rlnImagePixelSize, rlnImageSize, rlnImageDimensionality 2).
    ``data_particles`` has one row per particle, in input order, rejected
    ones included: rlnImageName, rlnOpticsGroup = 1,
    rlnOriginXAngst = -dx * pixel_size_A, rlnOriginYAngst = -dy * pixel_size_A,
    rlnAngleRot = rlnAngleTilt = 0, rlnAnglePsi = (-psi) mod 360,
    rlnRandomSubset, rlnClassNumber = 1, rlnCryocoreScore,
    rlnCryocoreAccepted (1/0), rlnMaxValueProbDistribution = clip(score, 0, 1).
    Numbers are written with enough digits to read back exactly.

    Parameters
    ----------
    path : str or path-like
    image_names : sequence of N str
        ``index@stack`` references (``ParticleStack.image_names``).
    shifts : array (N, 2)
        ``(dy, dx)`` in pixels, cryocore's pose convention.
    angles : array (N,)
        ``psi`` in degrees, cryocore's pose convention.
    scores : array (N,)
        Pearson scores.
    accepted : array (N,) of bool
        Whether each particle went into the average.
    half : array (N,) of int
        Half-set, 1 or 2.
    pixel_size_A : float or None
        Pixel size in Å. **None writes 1.0** (so origins in Å equal pixels).
    image_size : int or (ny, nx)
        Box size in pixels; RELION boxes are square, so a pair must have ny == nx.
    overwrite : bool
        Replace an existing file (default: FileExistsError).
    """
    import pandas as pd
    from starfile.writer import StarWriter

    p = _check_overwrite(path, overwrite)
    poses = _check_poses(image_names, shifts, angles, scores, accepted, half)
    apix = 1.0 if pixel_size_A is None else float(pixel_size_A)
    if not (math.isfinite(apix) and apix > 0):
        raise ValueError(f"pixel_size_A must be a positive number of Å or None, got {pixel_size_A!r}")
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        box = int(image_size)
    else:
        try:
            sy, sx = (int(v) for v in image_size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(f"image_size must be an int or a pair (ny, nx), got {image_size!r}") from None
        if sy != sx:
            raise ValueError(
                f"RELION STAR files describe square boxes; got image_size {sy} x {sx}"
                " (write the results as CSV with write_particles_csv instead)"
            )
        box = sy
    if box < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size!r}")

    n = len(poses.image_names)
    optics = pd.DataFrame({
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnImagePixelSize": [_fmt(apix)],
        "rlnImageSize": [box],
        "rlnImageDimensionality": [2],
    })
    dy, dx = poses.shifts[:, 0], poses.shifts[:, 1]
    particles = pd.DataFrame({
        "rlnImageName": poses.image_names,
        "rlnOpticsGroup": np.ones(n, np.int64),
        "rlnOriginXAngst": [_fmt(v) for v in -dx * apix],
        "rlnOriginYAngst": [_fmt(v) for v in -dy * apix],
        "rlnAngleRot": [_fmt(0.0)] * n,
        "rlnAngleTilt": [_fmt(0.0)] * n,
        "rlnAnglePsi": [_fmt(v) for v in _angle_mod(-poses.angles)],
        "rlnRandomSubset": poses.half,
        "rlnClassNumber": np.ones(n, np.int64),
        "rlnCryocoreScore": [_fmt(v) for v in poses.scores],
        "rlnCryocoreAccepted": poses.accepted.astype(np.int64),
        "rlnMaxValueProbDistribution": [_fmt(v) for v in np.clip(poses.scores, 0.0, 1.0)],
    })
    text = StarWriter({"optics": optics, "particles": particles}).to_string()
    # RELION 3.1 marks its tables with a version comment; add it before each table.
    text = text.replace("data_optics\n", "# version 30001\n\ndata_optics\n", 1)
    text = text.replace("data_particles\n", "# version 30001\n\ndata_particles\n", 1)
    with atomic_write(p, "w", newline="\n") as f:
        f.write(text)


def read_particles_star(path: PathLike) -> dict[str, Any]:
    """Per-particle poses of a RELION particle STAR file, in cryocore's convention.

    Reads files written by :func:`write_particles_star` exactly, and RELION
    3.0 / 3.1 particle files: offsets from ``rlnOriginXAngst`` /
    ``rlnOriginYAngst`` (Å, divided by each particle's pixel size) or, in
    older files, ``rlnOriginX`` / ``rlnOriginY`` (pixels). Only the in-plane
    angle ``rlnAnglePsi`` is read: ``rlnAngleRot`` / ``rlnAngleTilt`` are
    ignored (cryocore's poses are 2D; its own files have them at 0).

    Returns
    -------
    dict with
        image_names : list of N str, verbatim rlnImageName entries.
        shifts : ndarray (N, 2) float64, ``(dy, dx)`` in pixels:
            ``dx = -rlnOriginX`` (px), ``dy = -rlnOriginY``.
        angles : ndarray (N,) float64, ``psi = (-rlnAnglePsi) mod 360`` degrees.
        scores : ndarray (N,) float64, rlnCryocoreScore (NaN if absent).
        accepted : ndarray (N,) bool, rlnCryocoreAccepted (all True if absent).
        half : ndarray (N,) int64, rlnRandomSubset (0 if absent).
        pixel_size_A : float or None (from data_optics, or the 3.0 columns).
    """
    p = os.fspath(path)
    particles, optics = _star_tables(p, _read_star_blocks(p))
    n = len(particles)
    apix_each = _star_pixel_sizes(p, particles, optics)
    apix = _common_pixel_size(p, apix_each) if n else None

    def col(name: str, default: float) -> np.ndarray:
        if name not in particles.columns:
            return np.full(n, default, dtype=np.float64)
        try:
            return particles[name].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"STAR file {p!r}: column {name} holds non-numeric values") from None

    cols = set(particles.columns)
    if {"rlnOriginXAngst", "rlnOriginYAngst"} & cols:
        if not np.isfinite(apix_each).all():
            raise ValueError(
                f"STAR file {p!r} gives offsets in Å (rlnOriginXAngst/YAngst) but no pixel size"
                " (rlnImagePixelSize in data_optics) to convert them to pixels"
            )
        ox = col("rlnOriginXAngst", 0.0) / apix_each
        oy = col("rlnOriginYAngst", 0.0) / apix_each
    else:
        ox = col("rlnOriginX", 0.0)
        oy = col("rlnOriginY", 0.0)
    shifts = np.stack([-oy, -ox], axis=1) + 0.0  # + 0.0: no negative zeros
    angles = _angle_mod(-col("rlnAnglePsi", 0.0)) + 0.0
    accepted = col("rlnCryocoreAccepted", 1.0) != 0
    half = col("rlnRandomSubset", 0.0).astype(np.int64)
    return {
        "image_names": [str(v) for v in particles["rlnImageName"].tolist()],
        "shifts": shifts,
        "angles": angles,
        "scores": col("rlnCryocoreScore", np.nan),
        "accepted": accepted,
        "half": half,
        "pixel_size_A": apix,
    }


def write_particles_csv(
    path: PathLike,
    *,
    image_names: Sequence[str],
    shifts: np.ndarray,
    angles: np.ndarray,
    scores: np.ndarray,
    accepted: np.ndarray,
    half: np.ndarray,
    overwrite: bool = False,
) -> None:
    """Write per-particle poses as CSV in cryocore's own convention, atomically.

    Columns: ``image_name, dy_px, dx_px, psi_deg, score, accepted, half``:
    one row per particle in input order; shifts in pixels and ``psi`` in
    degrees exactly as cryocore reports them (no RELION sign flips),
    ``accepted`` 1/0, ``half`` 1/2. Arguments as for :func:`write_particles_star`.
    """
    p = _check_overwrite(path, overwrite)
    poses = _check_poses(image_names, shifts, angles, scores, accepted, half)
    angles_out = _angle_mod(poses.angles)
    with atomic_write(p, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for i, name in enumerate(poses.image_names):
            w.writerow([
                name, _fmt(poses.shifts[i, 0]), _fmt(poses.shifts[i, 1]), _fmt(angles_out[i]),
                _fmt(poses.scores[i]), int(poses.accepted[i]), int(poses.half[i]),
            ])


def read_particles_csv(path: PathLike) -> dict[str, Any]:
    """Read a file written by :func:`write_particles_csv`.

    Returns
    -------
    dict with image_names (list of N str), shifts (N, 2) ``(dy, dx)`` px,
    angles (N,) degrees, scores (N,), accepted (N,) bool, half (N,) int64.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"CSV file {p!r} does not exist")
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != CSV_COLUMNS:
        raise ValueError(f"{p!r} is not a cryocore particle CSV: expected the header {','.join(CSV_COLUMNS)}")
    body = rows[1:]
    try:
        return {
            "image_names": [r[0] for r in body],
            "shifts": np.array([[float(r[1]), float(r[2])] for r in body], np.float64).reshape(-1, 2),
            "angles": np.array([float(r[3]) for r in body], np.float64),
            "scores": np.array([float(r[4]) for r in body], np.float64),
            "accepted": np.array([int(r[5]) != 0 for r in body], bool),
            "half": np.array([int(r[6]) for r in body], np.int64),
        }
    except (IndexError, ValueError) as err:
        raise ValueError(f"{p!r}: malformed row in particle CSV ({err})") from err
