"""Running the chunk tasks on a dask.distributed cluster: :class:`DaskExecutor`.

Each pass submits one task per block of chunks. What the tasks share travels once per worker:
the reader (the stack's path, its CTF parameters) once per run, the pass (the references) once
per iteration, both as results of tasks of their own, so that a worker lost mid-run is replaced
by recomputing from the graph (dask's lineage) rather than from scattered data. The workers
read the images from the files themselves and keep their spectra caches between iterations; a
block goes to the same worker every pass while that worker lives. Results come back in task
order and the driver adds them in that order, as with the local executor.

``pip install cryocore[cluster]`` installs dask.distributed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

from .. import fftw

__all__ = ["DaskExecutor", "as_executor", "CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = 10  # a scheduler that does not answer within this is an error, not a hang

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ValueError("running on a dask cluster needs dask.distributed: pip install 'cryocore[cluster]' "
                         "(or pip install 'dask[distributed]')") from None
    return distributed


def _sizeof(x: Any) -> int:
    """Bytes of an object's numpy arrays (and the rest, roughly), as dask counts them."""
    from dask.sizeof import sizeof

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return sum(_sizeof(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, (list, tuple)):
        return sum(_sizeof(v) for v in x)
    return int(sizeof(x))


def _identity(x: Any) -> Any:
    return x


def _call(fn: Callable[[Any, Any], Any], cls: type, fields: dict, task: Any) -> Any:
    return fn(cls(**fields), task)


class DaskExecutor:
    """Runs the pipeline's tasks on the workers of a ``distributed.Client``.

    Each task uses as many threads as the smallest worker has (a LocalCluster made by
    :func:`as_executor` has one thread per worker process)."""

    needs_files = True  # the workers read the stack from its files

    def __init__(self, client: Any, owned: Optional[list] = None) -> None:
        self.client = client
        self._owned = owned or []  # the client and cluster made here, closed by close()
        self._shared: dict[int, tuple[Any, Any]] = {}  # id(object) -> (object, its future)
        # bytes handed to the cluster (shared objects, tasks) and received from it (results), as
        # dask's sizeof counts them: what travels between this process and the cluster
        self.sent_bytes = 0
        self.received_bytes = 0
        from ._dask_plugin import FftwSetup

        plugin = FftwSetup(fftw.get_planning(), fftw.export_wisdom())
        if hasattr(self.client, "register_plugin"):
            self.client.register_plugin(plugin)
        else:  # pragma: no cover - distributed < 2023.9
            self.client.register_worker_plugin(plugin)

    def task_threads(self, threads: int) -> int:
        workers = self.client.scheduler_info()["workers"].values()
        return max(1, min((int(w.get("nthreads", 1)) for w in workers), default=1))

    def _future(self, obj: Any) -> Any:
        """``obj`` as the result of a task (made once per object)."""
        hit = self._shared.get(id(obj))
        if hit is None or hit[0] is not obj:
            with warnings.catch_warnings():  # (large by design: in the graph, so that lineage covers it)
                warnings.filterwarnings("ignore", message="(Sending large graph|Large object)", category=UserWarning)
                future = self.client.submit(_identity, obj, pure=False)
            hit = self._shared[id(obj)] = (obj, future)
            self.sent_bytes += _sizeof(obj)
        return hit[1]

    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T], shared: S) -> Iterator[R]:
        # the shared dataclass's large fields (the reader, the pass) as futures, the others as they are
        fields = {f.name: getattr(shared, f.name) for f in dataclasses.fields(shared)}  # type: ignore[arg-type]
        used = set()
        for name, value in fields.items():
            if dataclasses.is_dataclass(value):
                fields[name] = self._future(value)
                used.add(id(value))
        for key in [k for k in self._shared if k not in used]:  # earlier passes' (their tasks are done)
            del self._shared[key]
        workers = sorted(self.client.scheduler_info()["workers"])
        futures = [self.client.submit(_call, fn, type(shared), fields, task, pure=False,
                                      workers=[workers[i % len(workers)]] if workers else None,
                                      allow_other_workers=True)
                   for i, task in enumerate(tasks)]
        self.sent_bytes += sum(_sizeof(t) for t in tasks)
        try:
            for f in futures:
                r = f.result()
                self.received_bytes += _sizeof(r)
                yield r
        finally:  # an error or Ctrl-C: the rest is not needed
            self.client.cancel([f for f in futures if not f.done()])
            del futures

    def forget(self) -> None:
        """Release the shared objects' futures (the end of a run)."""
        futures = [f for _, f in self._shared.values()]
        self._shared.clear()
        with contextlib.suppress(Exception):
            self.client.cancel(futures)

    def close(self) -> None:
        """Release the shared objects and close the client and cluster made by :func:`as_executor`."""
        self.forget()
        for thing in self._owned:
            with contextlib.suppress(Exception):
                thing.close()


def as_executor(executor: Any) -> tuple[Any, Callable[[], None]]:
    """The executor a run uses and what to call when it ends.

    None: this process (LocalExecutor); a ``distributed.Client``: its cluster; a string: a
    scheduler address (``tcp://host:8786``), or ``local:N`` for a LocalCluster of N worker
    processes made for the run; anything else is used as an Executor as it is.
    """
    from .executor import LocalExecutor

    if executor is None:
        return LocalExecutor(), lambda: None
    if isinstance(executor, str):
        dist = _distributed()
        if executor.startswith("local:"):
            try:
                n = int(executor.split(":", 1)[1])
            except ValueError:
                n = 0
            if n < 1:
                raise ValueError(f"a local dask cluster is local:N with N >= 1 worker processes, got {executor!r}")
            cluster = dist.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = dist.Client(cluster)
            ex = DaskExecutor(client, owned=[client, cluster])
        else:
            try:
                client = dist.Client(executor, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError) as err:
                raise ValueError(f"cannot reach the dask scheduler at {executor!r} within {CONNECT_TIMEOUT_S} s "
                                 f"({err})") from None
            ex = DaskExecutor(client, owned=[client])
        return ex, ex.close
    if type(executor).__name__ == "Client" and type(executor).__module__.startswith("distributed"):
        ex = DaskExecutor(executor)
        return ex, ex.forget
    if not (hasattr(executor, "map") and hasattr(executor, "task_threads")):
        raise TypeError("executor must be None, a dask distributed.Client, a scheduler address ('tcp://host:8786' "
                        f"or 'local:N') or an Executor (map, task_threads), got {type(executor).__name__}")
    return executor, lambda: None
