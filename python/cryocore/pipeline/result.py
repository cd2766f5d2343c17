"""AlignResult: what a run returns (poses, classes, averages, FRC, history)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..frc import FRC

__all__ = ["AlignResult", "in_input_units"]


@dataclass
class AlignResult:
    """Result of :func:`cryocore.align`. Poses refer to the average of each image's class.

    Attributes
    ----------
    shifts : (N, 2) float64   pose shift ``(dy, dx)`` in px of every input image
    angles : (N,) float64     in-plane angle psi in degrees (0 without rotation)
    scores : (N,) float64     Pearson score against its half's final reference of its class
    accepted : (N,) bool      kept in the average
    half : (N,) int8          half-set, 1 or 2
    classes : (N,) int32      class of each image, 1..K (all 1 with one reference)
    class_averages : (K, ny, nx) float32      combined average of each class (both halves)
    class_half_averages : (K, 2, ny, nx) float32  each class's two half averages, aligned
    class_frcs : list of K FRC                 each class's half-set FRC
    average : (ny, nx) float32        class 1's average (the average, with one reference)
    half_averages : (2, ny, nx) float32  class 1's half averages, aligned to each other
    frc : FRC                  class 1's Fourier ring correlation of the half averages
    resolution : float         FRC 0.143 crossing, cycles/px
    resolution_A : float or None   the same in Å (needs ``pixel_size_A``)
    thresholds : (2, K) float  score threshold of each half and class in the last iteration
    history : list of dict     per iteration and half: mean_score, accepted, total,
                               pose_change (RMS px), threshold, lowpass, resolution
    frames : (T, ny', nx') float32   the average after each iteration (or every k
                                   images online; K > 1: the class averages tiled)
    pixel_size_A : float or None
    image_names : list of str or None   ``index@stack`` of each input image
    table : ParticleTable or None   the input's particle table (STAR inputs: every column)
    parameters : dict, timings : dict
    """

    shifts: np.ndarray
    angles: np.ndarray
    scores: np.ndarray
    accepted: np.ndarray
    half: np.ndarray
    classes: np.ndarray
    class_averages: np.ndarray
    class_half_averages: np.ndarray
    class_frcs: list
    thresholds: np.ndarray
    history: list
    frames: np.ndarray
    pixel_size_A: Optional[float] = None
    image_names: Optional[list] = None
    table: Any = None
    parameters: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(self.class_averages.shape[0])

    @property
    def average(self) -> np.ndarray:
        return self.class_averages[0]

    @property
    def half_averages(self) -> np.ndarray:
        return self.class_half_averages[0]

    @property
    def frc(self) -> FRC:
        return self.class_frcs[0]

    @property
    def resolution(self) -> float:
        return self.frc.resolution_0143

    @property
    def resolution_A(self) -> Optional[float]:
        return self.frc.resolution_A(0.143)

    def class_counts(self) -> np.ndarray:
        """(K,) accepted images per class."""
        return np.bincount(self.classes[self.accepted] - 1, minlength=self.n_classes)

    def summary(self) -> str:
        n = len(self.scores)
        lines = [f"{int(self.accepted.sum())} of {n} images kept"]
        for h in (1, 2):
            m = self.half == h
            thr = ", ".join(f"{t:.3f}" for t in self.thresholds[h - 1])
            lines.append(f"  half {h}: {int(self.accepted[m].sum())} of {int(m.sum())} kept, threshold {thr}")
        if self.n_classes > 1:
            counts = self.class_counts()
            for k in range(self.n_classes):
                f = self.class_frcs[k]
                res = f"{f.resolution_0143:.3f} 1/px" + (f" ({f.resolution_A(0.143):.1f} Å)" if self.pixel_size_A else "")
                lines.append(f"  class {k + 1}: {int(counts[k])} images, FRC 0.143 {res}")
            return "\n".join(lines)
        res = f"FRC 0.143: {self.resolution:.3f} 1/px"
        if self.resolution_A is not None:
            res += f" ({self.resolution_A:.1f} Å)"
        lines.append(res)
        return "\n".join(lines)

    def write(self, outdir: str, *, overwrite: bool = False, inputs: Sequence[str] = ()) -> dict:
        """Write the averages, tables, plots and report into ``outdir``; returns {name: path}.
        (The same as :func:`cryocore.output.write_result`.)"""
        from ..output import write_result

        return write_result(self, outdir, overwrite=overwrite, inputs=inputs)


def in_input_units(result: AlignResult, f: float) -> AlignResult:
    """A binned run's history and frames in the input's units (``f`` input px per binned px):
    pose changes in input pixels, low-pass and resolution in cycles per input pixel, one class's
    frames Fourier-padded to the input's box (frames of several classes are galleries: kept at
    the binned scale, a movie only). Poses, averages and FRCs are the input's already."""
    from ..preprocess import fourier_pad

    history = [dict(row) for row in result.history]
    for row in history:
        for key, scale in (("pose_change", f), ("lowpass", 1 / f), ("resolution", 1 / f)):
            if isinstance(row.get(key), (int, float)):
                row[key] = row[key] * scale
    frames = result.frames
    if len(frames) and frames.shape[1:] != result.class_averages.shape[1:] and result.n_classes == 1:
        frames = fourier_pad(frames, result.class_averages.shape[1:]).astype(np.float32)
    return dataclasses.replace(result, history=history, frames=frames)
