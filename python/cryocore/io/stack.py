"""The stack interface the pipeline reads: ParticleStack (files), the array adapter, shared checks."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import operator
import sys
from typing import Any, Callable, Iterator, Optional, Protocol, runtime_checkable

import numpy as np

from .._validate import MIN_SIZE

LUMINANCE = np.array([0.299, 0.587, 0.114])

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


def read_rows(source: Any, start: int, rows: np.ndarray) -> np.ndarray:
    """Images ``start + rows`` (rows increasing) of a stack source, float32 (len(rows), ny, nx),
    reading only those: each run of consecutive rows in one read (a view where the source lends
    one)."""
    rows = np.asarray(rows, np.int64)
    read = getattr(source, "read_view", source.read)
    if len(rows) == 0:
        return np.empty((0,) + tuple(source.shape[1:]), np.float32)
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    return np.concatenate([read(start + int(r[0]), start + int(r[-1]) + 1) for r in runs]).astype(np.float32, copy=False)


def will_need(block: np.ndarray) -> None:
    """Ask the kernel to start reading a memory-mapped block's pages now, in the background
    (``madvise(MADV_WILLNEED)``), so that a later read finds them in memory: disk reads overlap
    the work on the block before. Does nothing for blocks in ordinary memory or where the call
    is not available."""
    _madvise(block, 3)  # MADV_WILLNEED


def unmap(block: np.ndarray) -> None:
    """Drop a memory-mapped block's pages from this process's page tables
    (``madvise(MADV_DONTNEED)``; a file mapping keeps its data in the page cache, so a later
    read costs a minor fault at most). Pages that stay mapped are costly for the kernel to
    reclaim: on a stack larger than memory, a run that kept every page it read mapped would
    make each new read wait for that reclaim. Does nothing for ordinary memory (which
    MADV_DONTNEED would zero)."""
    if _mapped(block):
        _madvise(block, 4)  # MADV_DONTNEED


def _madvise(block: np.ndarray, advice: int) -> None:
    """madvise(advice) on the pages that hold a C-contiguous block (Linux; elsewhere nothing)."""
    if not isinstance(block, np.ndarray) or block.size == 0 or not block.flags.c_contiguous:
        return
    libc = _libc()
    if libc is None:
        return
    start = block.__array_interface__["data"][0]
    aligned = start - start % _PAGE
    libc.madvise(ctypes.c_void_p(aligned), ctypes.c_size_t(start + block.nbytes - aligned), advice)


def _mapped(a: Any) -> bool:
    """True for a numpy array that is (a view of) a file mapping."""
    while isinstance(a, np.ndarray):
        if isinstance(a, np.memmap):
            return True
        a = a.base
    return False


_PAGE = mmap.PAGESIZE


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # pragma: no cover - no libc madvise
        return None


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
    table : ParticleTable
        The particles' table: for a STAR input every column of the file (optics
        groups kept), else just ``rlnImageName``.
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
        table: Any = None,
        viewer: Optional[Callable[[int, int], Optional[np.ndarray]]] = None,
        prefetcher: Optional[Callable[[int, int], None]] = None,
        releaser: Optional[Callable[[int, int], None]] = None,
    ) -> None:
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.pixel_size_A = None if pixel_size_A is None else float(pixel_size_A)
        self.image_names = image_names
        self.dtype = np.dtype(dtype)
        self._reader = reader
        self._closer = closer
        self._closed = False
        self._table = table
        self._viewer = viewer
        self._prefetcher = prefetcher
        self._releaser = releaser

    @property
    def table(self) -> Any:
        """The :class:`~cryocore.io.ParticleTable` of the stack's particles."""
        if self._table is None:
            from .tables import ParticleTable

            self._table = ParticleTable.from_names(self.image_names)
        return self._table

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

    def read_view(self, start: int, stop: int) -> np.ndarray:
        """Images ``start`` to ``stop - 1`` like :meth:`read`, but without a copy where the file
        holds them as native float32 in one block (MRC, .npy): a read-only view into the memory
        map, valid until :meth:`close`. Elsewhere the same fresh array as :meth:`read`."""
        if self._closed:
            raise ValueError(f"stack {self.path!r} is closed")
        start, stop = _check_range(start, stop, self.shape[0])
        view = self._viewer(start, stop) if self._viewer is not None and start < stop else None
        return self.read(start, stop) if view is None else view

    def release(self, start: int, stop: int) -> None:
        """Done with images ``start`` to ``stop - 1`` for now: a view lent by :meth:`read_view` is
        unmapped (:func:`unmap`; reading it again still works). A hint, as :meth:`prefetch`."""
        if self._releaser is not None and not self._closed:
            start, stop = _check_range(start, stop, self.shape[0])
            if start < stop:
                self._releaser(start, stop)

    def prefetch(self, start: int, stop: int) -> None:
        """Start reading images ``start`` to ``stop - 1`` from disk in the background (memory-mapped
        files: the kernel's read-ahead), so that reading them next costs no wait. A hint: it
        never fails and returns at once."""
        if self._prefetcher is not None and not self._closed:
            start, stop = _check_range(start, stop, self.shape[0])
            if start < stop:
                self._prefetcher(start, stop)

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
        out = np.array(held[0][start:stop], dtype=np.float32)
        release(start, stop)  # (copied: the mapped pages are not needed)
        return out

    def viewer(start: int, stop: int) -> Optional[np.ndarray]:
        block = held[0][start:stop]
        if block.dtype != np.dtype(np.float32) or not block.flags.c_contiguous:
            return None  # other types and byte orders are converted by read()
        view = np.asarray(block).view()
        view.flags.writeable = False
        return view

    def prefetch(start: int, stop: int) -> None:
        if _mapped(held[0]):
            will_need(held[0][start:stop])

    def release(start: int, stop: int) -> None:
        if _mapped(held[0]):
            unmap(held[0][start:stop])

    def close() -> None:
        held.clear()
        closer()

    return ParticleStack(
        path=path, shape=(n, ny, nx), pixel_size_A=pixel_size_A, image_names=names,
        dtype=arr.dtype, reader=reader, closer=close, viewer=viewer, prefetcher=prefetch, releaser=release,
    )




@runtime_checkable
class StackSource(Protocol):
    """What the pipeline reads: ``shape`` (N, ny, nx), ``pixel_size_A`` (Å or None),
    ``read(start, stop)`` -> float32 (stop - start, ny, nx) and ``table`` (the
    :class:`~cryocore.io.ParticleTable` of the N particles, or None)."""

    shape: tuple[int, ...]
    pixel_size_A: Optional[float]

    def read(self, start: int, stop: int) -> np.ndarray: ...


class ArraySource:
    """An in-memory (or memory-mapped) array (N, ny, nx) with the stack interface."""

    def __init__(self, a: np.ndarray, pixel_size_A: Optional[float] = None) -> None:
        self._a = a
        self.shape = tuple(int(v) for v in a.shape)
        self.pixel_size_A = pixel_size_A
        self.table = None
        self.image_names: Optional[list[str]] = None

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._a[start:stop], dtype=np.float32)


def as_source(images: object) -> StackSource:
    """``images`` as a stack source: a ParticleStack (or anything with ``read`` and
    ``shape``) as it is, an array (N, ny, nx) of real numbers through :class:`ArraySource`."""
    if hasattr(images, "read") and hasattr(images, "shape"):
        return images  # type: ignore[return-value]
    a = np.asarray(images)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"images must be a real numeric array (integer or float), got dtype {a.dtype}")
    if a.ndim != 3:
        raise ValueError(f"images must be a stack (n, ny, nx), got shape {a.shape}")
    return ArraySource(a)
