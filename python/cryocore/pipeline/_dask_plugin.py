"""The dask worker plugin of :mod:`.distributed` (a module of its own: it imports distributed)."""

from __future__ import annotations

import contextlib
from typing import Any

from distributed import WorkerPlugin


class FftwSetup(WorkerPlugin):
    """The client's FFTW planning effort and wisdom in every worker (also those that join or
    restart later), so that workers plan the FFTs as the client would."""

    name = "cryocore-fftw"

    def __init__(self, effort: str, wisdom: bytes) -> None:
        self.effort, self.wisdom = effort, wisdom

    def setup(self, worker: Any) -> None:
        from cryocore import fftw

        fftw.set_planning(self.effort)
        with contextlib.suppress(ValueError):
            fftw.import_wisdom(self.wisdom)
