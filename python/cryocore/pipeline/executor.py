"""Where the chunk tasks run: the Executor protocol and the local executor.

An executor runs a picklable function ``fn(shared, task)`` over tasks (blocks of chunks,
:mod:`.tasks`) and yields the results **in task order**; the driver adds them in that order, so
results do not depend on the executor. The local one runs each task in this process (the C++
core spreads each chunk over the threads); :class:`cryocore.pipeline.distributed.DaskExecutor`
runs them on the workers of a dask cluster.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol, Sequence, TypeVar

__all__ = ["Executor", "LocalExecutor"]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T], shared: S) -> Iterator[R]:
        """``fn(shared, task)`` for every task, yielded in task order."""
        ...

    def task_threads(self, threads: int) -> int:
        """The threads one task should use, for a run asked to use ``threads``."""
        ...


class LocalExecutor:
    """Runs the tasks one after the other in this process, reading each chunk when its turn comes
    (so at most one chunk's images are in memory)."""

    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T], shared: S) -> Iterator[R]:
        for task in tasks:
            yield fn(shared, task)

    def task_threads(self, threads: int) -> int:
        return threads
