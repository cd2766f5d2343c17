"""The tasks an executor runs: a block of consecutive chunks, searched or summed, its sums added
in chunk order inside the task. Tasks and what they share are picklable (a dask worker runs
them as well as this process), and the driver adds the blocks' sums in block order, so the
arithmetic is the same for every executor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np

from .chunks import Chunk
from .kernel import ChunkResult, ClassWeights, Pass, search_chunk, sum_chunk
from .reading import StackReader
from .sums import SpectralSums

__all__ = ["BLOCK_CHUNKS", "SearchShared", "SearchBlock", "SumShared", "SumBlock", "blocks_of", "search_block",
           "sum_block"]

BLOCK_CHUNKS = 8  # chunks per task

Crop = Union[None, bool, tuple[int, int]]  # False: read images; None or (ky, kx): spectra of that crop


def blocks_of(chunks: list[Chunk]) -> list[tuple[list[Chunk], Optional[Chunk]]]:
    """Consecutive groups of BLOCK_CHUNKS chunks, each with the chunk after it (for read-ahead)."""
    out = []
    for i in range(0, len(chunks), BLOCK_CHUNKS):
        group = chunks[i : i + BLOCK_CHUNKS]
        out.append((group, chunks[i + BLOCK_CHUNKS] if i + BLOCK_CHUNKS < len(chunks) else None))
    return out


def _rows(a: Optional[np.ndarray], chunk: Chunk) -> Optional[np.ndarray]:
    return None if a is None else a[chunk.start : chunk.stop]


@dataclass(frozen=True)
class SearchShared:
    """What every block of one search pass shares: the reader, the pass, the data wanted
    (``crop``: False for images, else the spectra cache's crop) and the threads of a task."""

    reader: StackReader
    p: Pass
    crop: Crop
    threads: int


@dataclass(frozen=True)
class _Block:
    """Consecutive chunks of one task, and the chunk after them (read ahead)."""

    chunks: list[Chunk]
    after: Optional[Chunk]

    @property
    def offset(self) -> int:
        """The block's first image (row 0 of its per-image arrays)."""
        return self.chunks[0].start

    def each(self) -> Iterator[tuple[int, Chunk, Optional[Chunk]]]:
        """(position in the block, chunk, the chunk read after it) for each chunk, in order."""
        for i, chunk in enumerate(self.chunks):
            yield i, chunk, self.chunks[i + 1] if i + 1 < len(self.chunks) else self.after


@dataclass(frozen=True)
class SearchBlock(_Block):
    """Chunks of one task and their images' priors (arrays of the whole stack's length cut to
    the block's rows from its first image, ``offset``)."""

    prior_shifts: Optional[np.ndarray]
    prior_angles: Optional[np.ndarray]
    prior_classes: Optional[np.ndarray]


def search_block(shared: SearchShared, block: SearchBlock) -> tuple[list[ChunkResult], SpectralSums]:
    """Search each chunk of the block; the per-chunk results (without sums) and the block's sums."""
    results, total = [], None
    for _, chunk, after in block.each():
        data = shared.reader.data(chunk, after, shared.crop, threads=shared.threads)
        local = Chunk(chunk.index, chunk.start - block.offset, chunk.stop - block.offset, chunk.half, chunk.quarter)
        r = search_chunk(chunk, data, shared.p, _rows(block.prior_shifts, local), _rows(block.prior_angles, local),
                         shared.threads, _rows(block.prior_classes, local))
        shared.reader.done(chunk)
        if total is None:
            total = r.sums
        else:
            total += r.sums
        r.sums = None  # type: ignore[assignment]
        results.append(r)
    assert total is not None
    return results, total


@dataclass(frozen=True)
class SumShared:
    """What every block of one sum pass shares."""

    reader: StackReader
    band: tuple[float, float]
    n_classes: int
    shape: tuple[int, int]
    rotate: bool
    crop: Crop
    threads: int


@dataclass(frozen=True)
class SumBlock(_Block):
    """Chunks of one task with their images' poses, classes and weights (cut to the block's rows
    from ``offset``) and, with soft assignment, each chunk's class weights."""

    shifts: np.ndarray
    angles: np.ndarray
    classes: np.ndarray
    weights: np.ndarray
    soft: Optional[list[ClassWeights]]


def sum_block(shared: SumShared, block: SumBlock) -> SpectralSums:
    """The block's sums, its chunks added in order."""
    total = None
    for i, chunk, after in block.each():
        a, b = chunk.start - block.offset, chunk.stop - block.offset
        used = np.flatnonzero(block.weights[a:b] != 0)
        data = shared.reader.data(chunk, after, shared.crop, rows=used, threads=shared.threads)
        s = sum_chunk(chunk, data, block.shifts[a:b], block.angles[a:b], block.classes[a:b], block.weights[a:b],
                      shared.band, shared.n_classes, shared.shape, shared.rotate, shared.threads, shared.reader.ctf,
                      None if block.soft is None else block.soft[i])
        shared.reader.done(chunk)
        if total is None:
            total = s
        else:
            total += s
    assert total is not None
    return total
