"""FFTW planning effort and wisdom.

cryocore plans its FFTs once per image shape (and planning effort) and
reuses the plans. Planning with ``"measure"`` (the default) or ``"patient"``
times candidate algorithms; the result can be saved as FFTW *wisdom* and
restored in a later process to skip that time::

    blob = cryocore.export_wisdom()
    ...
    cryocore.import_wisdom(blob)

Only single-precision (fftwf) wisdom is involved.

Reproducibility: ``"measure"`` and ``"patient"`` time candidate plans, so two
processes may pick different plans and round differently in the last bits.
For results that are bit-identical across processes, plan with
``"estimate"`` (or set the environment variable ``CRYOCORE_PLANNING=estimate``
before importing cryocore), or import the same wisdom in every process. Plans are created under one
process-wide lock; another library in the same process that plans with FFTW
concurrently must call ``fftwf_make_planner_thread_safe()`` itself.
"""

from __future__ import annotations

import os

from . import _core

__all__ = ["set_planning", "get_planning", "export_wisdom", "import_wisdom", "forget_wisdom"]

_EFFORTS = {"estimate": 0, "measure": 1, "patient": 2, "exhaustive": 3}


def set_planning(effort: str) -> None:
    """Set FFTW's planning effort for plans made from now on.

    ``effort`` is ``"estimate"`` (no timing, fast to plan), ``"measure"``
    (default), ``"patient"`` or ``"exhaustive"`` (slow to plan, sometimes
    faster to run). Cached plans of other efforts stay cached.
    """
    if not isinstance(effort, str) or effort.lower() not in _EFFORTS:
        raise ValueError(f"effort must be one of {sorted(_EFFORTS)}, got {effort!r}")
    _core.set_planning_effort(_EFFORTS[effort.lower()])


def get_planning() -> str:
    """The current planning effort name."""
    code = _core.planning_effort()
    return next(k for k, v in _EFFORTS.items() if v == code)


def export_wisdom() -> bytes:
    """FFTW's accumulated single-precision wisdom, as bytes."""
    return bytes(_core.export_wisdom())


def import_wisdom(wisdom: bytes) -> None:
    """Add wisdom from :func:`export_wisdom`; ``ValueError`` if FFTW rejects it."""
    if isinstance(wisdom, str):
        wisdom = wisdom.encode()
    if not isinstance(wisdom, (bytes, bytearray)):
        raise TypeError(f"wisdom must be bytes from export_wisdom(), got {type(wisdom).__name__}")
    if not _core.import_wisdom(bytes(wisdom)):
        raise ValueError("FFTW rejected the wisdom (not produced by export_wisdom() of single-precision FFTW?)")


def replan_with(wisdom: bytes) -> bool:
    """Drop cryocore's cached plans and add ``wisdom``, so plans made from now on follow it (a
    resumed run plans its FFTs as the interrupted process did); False if FFTW rejects it."""
    _core.clear_plan_cache()
    return bool(_core.import_wisdom(bytes(wisdom)))


def forget_wisdom() -> None:
    """Discard FFTW's wisdom and cryocore's cached plans."""
    _core.clear_plan_cache()
    _core.forget_wisdom()


def _planning_from_environment() -> None:
    effort = os.environ.get("CRYOCORE_PLANNING")
    if effort:
        try:
            set_planning(effort)
        except ValueError:
            raise ValueError(f"CRYOCORE_PLANNING must be one of {sorted(_EFFORTS)}, got {effort!r}") from None


_planning_from_environment()
