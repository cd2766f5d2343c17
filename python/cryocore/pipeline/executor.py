"""Where the per-chunk kernel runs: the Executor protocol and the local executor.

An executor maps a function over chunk tasks and yields the results **in
task order**; the driver reduces them in that order, so results do not depend
on the executor. The local one runs each task in this process (the C++ core
spreads each chunk over the threads); a distributed one (dask) needs only to
provide the same ``map``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Protocol, TypeVar

__all__ = ["Executor", "LocalExecutor"]

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """``fn(task)`` for every task, yielded in task order."""
        ...


class LocalExecutor:
    """Runs the tasks one after the other in this process, reading each chunk when its turn comes
    (so at most one chunk's images are in memory)."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        for task in tasks:
            yield fn(task)
