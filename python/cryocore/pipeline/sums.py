"""SpectralSums: the one mergeable accumulator of the pipeline.

Every pass over the stack reduces to these sums: per group (half, class,
quarter) the sum of the images' spectra moved back to the reference frame and
the sum of their weights. Chunks make partial sums; the driver adds them in
chunk order, so the totals (and every result made from them) are the same for
any thread count and any executor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpectralSums"]


@dataclass
class SpectralSums:
    """Sums over images of one pass, per group (half, class, quarter).

    Attributes
    ----------
    spectra : (2, K, 2, ny, nx//2+1) complex128
        Sum of each group's images' half spectra (``numpy.fft.rfft2`` layout,
        unnormalised), moved back by their poses and weighted.
    weights : (2, K, 2, 1, 1) or (2, K, 2, ny, nx//2+1) float64
        Sum of the weights: one number per image (broadcast over the
        frequencies), or one per frequency (e.g. CTF^2 for Wiener averages).
    shape : (ny, nx) of the images.
    """

    spectra: np.ndarray
    weights: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def zeros(cls, n_classes: int, shape: tuple[int, int]) -> "SpectralSums":
        ny, nx = (int(v) for v in shape)
        return cls(np.zeros((2, n_classes, 2, ny, nx // 2 + 1), np.complex128),
                   np.zeros((2, n_classes, 2, 1, 1)), (ny, nx))

    @property
    def n_classes(self) -> int:
        return int(self.spectra.shape[1])

    def __iadd__(self, other: "SpectralSums") -> "SpectralSums":
        if other.spectra.shape != self.spectra.shape:
            raise ValueError(f"cannot add sums of shape {other.spectra.shape} to {self.spectra.shape}")
        self.spectra += other.spectra
        if other.weights.shape == self.weights.shape or self.weights.shape[-1] != 1:
            self.weights += other.weights
        else:  # per-frequency weights added to per-image ones
            self.weights = self.weights + other.weights
        return self

    def __add__(self, other: "SpectralSums") -> "SpectralSums":
        out = SpectralSums(self.spectra.copy(), self.weights.copy(), self.shape)
        out += other
        return out

    def counts(self) -> np.ndarray:
        """(2, K, 2) total weight per group (the weight at frequency 0)."""
        return self.weights[..., 0, 0].copy()

    def quarter_spectra(self, half: int) -> tuple[np.ndarray, np.ndarray]:
        """Half ``half`` (0 or 1): the two quarters' summed spectra, each (K, ny, nx//2+1)."""
        return self.spectra[half, :, 0], self.spectra[half, :, 1]

    def class_spectra(self) -> np.ndarray:
        """(2, K, ny, nx//2+1): per half and class, the sum over both quarters."""
        return self.spectra.sum(axis=2)

    def mean_spectra(self) -> np.ndarray:
        """(2, K, ny, nx//2+1) per half and class: the summed spectrum over both
        quarters divided by its total weight (zeros where a class holds none).
        Scalar weights only: per-frequency weights need a regularised (Wiener)
        division."""
        if self.weights.shape[-1] != 1:
            raise ValueError("mean_spectra divides by one weight per group; these sums have per-frequency weights")
        total = self.weights.sum(axis=2)[..., 0, 0]  # (2, K)
        spec = self.class_spectra()
        safe = np.where(total > 0, total, 1.0)
        return np.where((total > 0)[..., None, None], spec / safe[..., None, None], 0.0)
