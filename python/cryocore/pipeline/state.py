"""The state of an iterative run between iterations, and its checkpoint file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import fftw
from ..io.atomic import atomic_write

__all__ = ["AlignState", "fingerprint"]


@dataclass
class AlignState:
    """Everything an iteration reads and writes; per image arrays in input order.

    refs : (2, K, ny, nx) float64, each half's current references
    lowpass : (2,) the next search's low-pass per half (cycles/px)
    shifts (N, 2), angles (N,), scores (N,), accepted (N,) bool, classes (N,) int32 (0-based)
    thresholds : (2, K) the score threshold of each half and class
    prev_shifts, prev_angles : the poses of the iteration before (local searches), or None
    history : list of dict (per iteration and half), frames : list of (ny, nx) float32
    """

    refs: np.ndarray
    lowpass: np.ndarray
    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    accepted: np.ndarray
    classes: np.ndarray
    thresholds: np.ndarray
    iteration: int = 0
    converged: bool = False
    prev_shifts: Optional[np.ndarray] = None
    prev_angles: Optional[np.ndarray] = None
    history: list = field(default_factory=list)
    frames: list = field(default_factory=list)

    @classmethod
    def start(cls, refs: np.ndarray, n: int, first_lowpass: float) -> "AlignState":
        K = refs.shape[1]
        return cls(refs=refs, lowpass=np.full(2, first_lowpass), shifts=np.zeros((n, 2)), angles=np.zeros(n),
                   scores=np.zeros(n), accepted=np.ones(n, bool), classes=np.zeros(n, np.int32),
                   thresholds=np.zeros((2, K)))

    _ARRAYS = ("refs", "lowpass", "shifts", "angles", "scores", "accepted", "classes", "thresholds")

    def save(self, path: str, fingerprint: str) -> None:
        """Write the state atomically (.npz), with FFTW's wisdom so a resumed run plans alike."""
        arrays: dict[str, Any] = {k: getattr(self, k) for k in self._ARRAYS}
        arrays.update(fingerprint=np.array(fingerprint), iteration=np.array(self.iteration),
                      converged=np.array(self.converged), history=np.array(json.dumps(self.history)),
                      frames=np.stack(self.frames) if self.frames else np.zeros((0, 1, 1), np.float32),
                      wisdom=np.frombuffer(fftw.export_wisdom(), np.uint8),
                      has_prev=np.array(self.prev_shifts is not None))
        if self.prev_shifts is not None:
            arrays.update(prev_shifts=self.prev_shifts, prev_angles=self.prev_angles)
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str, fingerprint: str) -> "AlignState":
        """The state saved at ``path``; ValueError if unreadable or made for another run."""
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception as err:
            raise ValueError(f"checkpoint {path} cannot be read ({err}); remove it to start afresh") from None
        if "fingerprint" not in d or str(d["fingerprint"]) != fingerprint or "classes" not in d:
            raise ValueError(f"checkpoint {path} was made for another input or other parameters; "
                             "remove it (or use another output directory) to start afresh")
        has_prev = bool(d["has_prev"])
        return cls(**{k: d[k] for k in cls._ARRAYS}, iteration=int(d["iteration"]), converged=bool(d["converged"]),
                   prev_shifts=d["prev_shifts"] if has_prev else None,
                   prev_angles=d["prev_angles"] if has_prev else None,
                   history=json.loads(str(d["history"])), frames=list(d["frames"]))


def import_wisdom(path: str) -> None:
    """Plan the FFTs exactly as the interrupted process did (same rounding)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            wisdom = z["wisdom"].tobytes() if "wisdom" in z.files else b""
    except Exception:
        return  # AlignState.load reports an unreadable file
    if wisdom:
        fftw.replan_with(wisdom)


def fingerprint(source: Any, half: np.ndarray, options: dict, refs: np.ndarray) -> str:
    """What a checkpoint must match to be resumed: the input's shape, a digest of its first and
    last images, of the half split and of the starting references, and every option that
    changes the result."""
    n = int(source.shape[0])
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(source.read(0, 1)).tobytes())
    h.update(np.ascontiguousarray(source.read(n - 1, n)).tobytes())
    h.update(half.tobytes())
    h.update(np.ascontiguousarray(refs, np.float64).tobytes())
    return json.dumps(dict(options, data=h.hexdigest(), shape=list(source.shape)), sort_keys=True, default=str)
