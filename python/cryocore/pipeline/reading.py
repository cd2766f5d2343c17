"""Where a chunk task gets its data: :class:`StackReader`, picklable, so that the same task runs
in this process or on a dask worker, which re-opens the stack from its path.

Each process keeps, per run, its opened stack and a spectra cache: the half spectra (cropped,
CTF X with CTF correction) of the chunks it has transformed, kept between iterations while they
fit the cache budget (translations: a rotational search needs the images). A chunk is added the
first time a pass reads it; when a pass asks for a wider crop, the cache is emptied and refilled.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..io.stack import read_rows
from .chunks import Chunk, crop_bytes
from .kernel import ChunkCtf, ChunkData, chunk_spectra

__all__ = ["StackReader", "reopener"]

MAX_OPEN_RUNS = 4  # a worker keeps the stacks and caches of at most this many recent readers


@dataclass
class _Opened:
    source: Any
    owned: bool  # opened here (closed when evicted), or the caller's
    crop: Optional[tuple[int, int]] = None
    spectra: dict[int, list[np.ndarray]] = field(default_factory=dict)
    nbytes: int = 0


_open: dict[str, _Opened] = {}
IN_MEMORY = ("a dask run reads the images from their files on the workers: give it a stack opened from a "
             "file (cryocore.io.open_stack(path)), not an in-memory array")
_lock = threading.Lock()


@dataclass(frozen=True)
class StackReader:
    """How chunk tasks read one stack.

    key : the reader's own id (the process-wide registry of opened stacks and caches)
    opener : re-opens the source in another process (None: only this process can read it)
    ctf : the CTF correction of the stack's images (or None)
    cache_budget : bytes of spectra each process may keep (0: no cache)
    """

    key: str
    opener: Optional[Callable[[], Any]]
    ctf: Optional[ChunkCtf]
    cache_budget: int

    @classmethod
    def local(cls, source: Any, ctf: Optional[ChunkCtf], cache_budget: int,
              other_processes: bool = False) -> "StackReader":
        """A reader of ``source``, registered in this process (which reads it as it is);
        ``other_processes``: other processes will read it too (a ValueError if they cannot)."""
        opener = reopener(source)
        if other_processes and opener is None:
            raise ValueError(IN_MEMORY)
        key = f"{os.getpid()}-{id(source)}-{next(_ids)}"
        with _lock:
            _open[key] = _Opened(source, owned=False)
        return cls(key, opener, ctf, int(cache_budget))

    def _entry(self) -> _Opened:
        with _lock:
            entry = _open.get(self.key)
            if entry is not None:
                return entry
            if self.opener is None:
                raise ValueError(IN_MEMORY)
            for old in list(_open)[: max(0, len(_open) - MAX_OPEN_RUNS + 1)]:
                _close(_open.pop(old))
            entry = _open[self.key] = _Opened(self.opener(), owned=True)
            return entry

    @property
    def source(self) -> Any:
        return self._entry().source

    def read(self, chunk: Chunk, after: Optional[Chunk] = None, rows: Optional[np.ndarray] = None) -> np.ndarray:
        """The chunk's images, without a copy where the source lends them (memory-mapped float32);
        a preprocessing source prepares only ``rows`` when given. The reads of ``after`` (the
        next chunk) are started in the background."""
        from ..preprocess import PreprocessedSource

        source = self.source
        if after is not None and hasattr(source, "prefetch"):  # disk reads overlap the work
            source.prefetch(after.start, after.stop)
        if rows is not None and len(rows) == len(chunk):  # every row: the whole chunk, as it is
            rows = None
        if rows is not None and isinstance(source, PreprocessedSource):
            return source.read(chunk.start, chunk.stop, rows)
        if rows is not None and 2 * len(rows) <= len(chunk):  # a few rows used: only they are read
            out = np.zeros((len(chunk),) + tuple(int(v) for v in source.shape[1:]), np.float32)
            r = np.sort(np.asarray(rows, np.int64))
            out[r] = read_rows(source, chunk.start, r)
            return out
        return getattr(source, "read_view", source.read)(chunk.start, chunk.stop)

    def done(self, chunk: Chunk) -> None:
        """Done with the chunk's images for this pass: views lent by a memory-mapped source are
        unmapped (:func:`cryocore.io.stack.unmap`)."""
        source = self.source
        if hasattr(source, "release"):
            source.release(chunk.start, chunk.stop)

    def data(self, chunk: Chunk, after: Optional[Chunk], crop: Optional[tuple[int, int]] | bool,
             rows: Optional[np.ndarray] = None, threads: int = 1) -> ChunkData:
        """The chunk's images (``crop`` False), or its half spectra cropped to ``crop`` (a crop or
        None: the whole spectrum) from this process's cache, made now and kept while the cache
        budget allows. ``rows`` (positions in the chunk): the pass uses only those images; a chunk
        the cache cannot keep then has only their spectra made (the others zero)."""
        if crop is False or self.cache_budget <= 0:
            return ChunkData(images=self.read(chunk, after, rows))
        assert crop is None or isinstance(crop, tuple)
        entry = self._entry()
        with _lock:
            if entry.crop != crop:  # another crop: the cache starts again
                entry.spectra.clear()
                entry.crop, entry.nbytes = crop, 0
            spectra = entry.spectra.get(chunk.index)
        if spectra is None:
            ny, nx = (int(v) for v in entry.source.shape[1:])
            size = crop_bytes(len(chunk), ny, nx, crop)
            with _lock:
                fits = entry.crop == crop and entry.nbytes + size <= self.cache_budget
            if not fits and rows is not None and len(rows) < len(chunk):  # not kept: only the rows used
                return ChunkData(spectra=chunk_spectra(chunk, self.read(chunk, after, rows), crop, threads, self.ctf,
                                                       rows), crop=crop)
            spectra = chunk_spectra(chunk, self.read(chunk, after), crop, threads, self.ctf)
            with _lock:
                if entry.crop == crop and entry.nbytes + size <= self.cache_budget:
                    entry.spectra[chunk.index] = spectra
                    entry.nbytes += size
        return ChunkData(spectra=spectra, crop=crop)

    def cached_bytes(self) -> int:
        """Bytes of spectra this process keeps for the reader."""
        with _lock:
            entry = _open.get(self.key)
            return 0 if entry is None else entry.nbytes

    def release(self) -> None:
        """Forget the reader in this process (its cache; the source if opened here)."""
        with _lock:
            entry = _open.pop(self.key, None)
        if entry is not None:
            _close(entry)


def _close(entry: _Opened) -> None:
    entry.spectra.clear()
    if entry.owned and hasattr(entry.source, "close"):
        entry.source.close()


_ids = itertools.count()


def reopener(source: Any) -> Optional[Callable[[], Any]]:
    """A picklable callable that opens ``source`` again in another process (from its file's
    absolute path), or None for a source without a file (an in-memory array)."""
    from ..io.stack import ParticleStack
    from ..preprocess import PreprocessedSource

    if isinstance(source, ParticleStack):
        from ..io import open_stack

        return functools.partial(open_stack, os.path.abspath(source.path))
    if isinstance(source, PreprocessedSource):
        inner = reopener(source.source)
        if inner is None:
            return None
        return functools.partial(_preprocessed, inner, source.steps, source.input_pixel_size_A, source.threads)
    return None


def _preprocessed(inner: Callable[[], Any], steps: Any, pixel_size_A: Optional[float], threads: int) -> Any:
    from ..preprocess import PreprocessedSource

    return PreprocessedSource(inner(), steps, pixel_size_A, threads)
