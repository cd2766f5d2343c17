"""One definition of every option of a run: AlignConfig and SearchOptions.

These frozen dataclasses give ``report.json``'s parameters, the checkpoint's
fingerprint (what a resumed run must share) and the options the CLI saves to
resume a run; ``align()`` validates its keyword arguments into them.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

__all__ = ["AlignConfig", "SearchOptions", "parse_memory", "default_max_memory"]

# Options that change how fast a run goes but not its result: left out of the fingerprint.
NOT_IN_FINGERPRINT = ("threads", "iterations")


@dataclass(frozen=True)
class SearchOptions:
    """How each image is searched against the references of its half.

    rotate : also search in-plane rotations
    upsample : sub-pixel refinement factor of the shift search (1/upsample px)
    max_shift : search radius in px (None: the whole box)
    local_search : search settled poses locally around their last pose
    angular_step : degrees between the references' pre-made rotations
    class_candidates : with rotations and K references, the full search runs against only this
        many, pre-screened per image (0: all)
    soft_assignment : with rotations and K references, each image is added to every class it
        was searched against, weighted by its likelihood there (:func:`kernel.soft_weights`),
        instead of to its best class only
    """

    rotate: bool = True
    upsample: int = 20
    max_shift: Optional[float] = None
    local_search: bool = True
    angular_step: float = 1.0
    class_candidates: int = 0
    soft_assignment: bool = False

    def settings(self, lowpass: float) -> dict[str, Any]:
        """The core's search settings (``_core.SearchSettings`` keywords) at this low-pass (cycles/px)."""
        return dict(upsample=int(self.upsample), max_shift=None if self.max_shift is None else float(self.max_shift),
                    lowpass=lowpass if lowpass < 0.5 else None)


@dataclass(frozen=True)
class AlignConfig:
    """Every option of an alignment run (see :func:`cryocore.align` for their meaning).

    ``max_memory`` is in bytes: caches and buffers cryocore allocates stay under it
    (a memory-mapped input does not count).
    """

    search: SearchOptions = field(default_factory=SearchOptions)
    threshold: Union[str, float] = "auto"
    threshold_mad: float = 4.0  # "auto": reject scores below median - threshold_mad x 1.4826 x MAD
    iterations: int = 10
    tolerance_px: float = 0.01
    class_tolerance: float = 0.0  # K references: also converged when at most this fraction changes class
    half_split: str = "random"
    seed: Optional[int] = 0
    mode: str = "iterative"
    pixel_size_A: Optional[float] = None
    lowpass_A: Optional[float] = None
    mask_radius: Optional[float] = None
    threads: int = 1
    cache_spectra: bool = True
    max_memory: int = 4 << 30
    n_classes: int = 1
    reference: str = "reference-free"
    ctf: bool = False
    ctf_intact_first_peak: bool = False

    @property
    def cap(self) -> float:
        """Highest frequency (cycles/px) any search or reference may use."""
        if self.lowpass_A is None or self.pixel_size_A is None:
            return 0.5
        return float(self.pixel_size_A) / float(self.lowpass_A)

    @property
    def first_lowpass(self) -> float:
        """Low-pass (cycles/px) of the first iteration's search."""
        return min(self.cap, 0.1)

    def parameters(self) -> dict[str, Any]:
        """The options as one flat dict (``report.json``)."""
        d = asdict(self)
        search = d.pop("search")
        d.update(search)
        return d

    def fingerprint(self) -> dict[str, Any]:
        """The options a resumed run must share with the interrupted one."""
        return {k: v for k, v in self.parameters().items() if k not in NOT_IN_FINGERPRINT}


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory(value: Union[str, int, float]) -> int:
    """Bytes from ``4G``, ``512M``, ``1.5G``, ``2048`` (bytes) or a number. ValueError if not positive."""
    if isinstance(value, bool):
        raise TypeError(f"max_memory must be bytes or a size such as '4G', got {value!r}")
    if isinstance(value, (int, float)):
        n = float(value)
    else:
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        unit = text[-1:] if text[-1:] in _UNITS else ""
        try:
            n = float(text[: len(text) - len(unit)]) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"max_memory must be a size such as 4G, 512M or a number of bytes, got {value!r}") from None
    if not (math.isfinite(n) and n >= 64 << 20):
        raise ValueError(f"max_memory must be at least 64M, got {value!r}")
    return int(n)


def default_max_memory() -> int:
    """A quarter of the machine's physical memory, at least 1 GiB (4 GiB where it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 << 30
    return max(1 << 30, int(total) // 4)
