"""SpectralSums: the one mergeable accumulator of the pipeline.

Every pass over the stack reduces to these sums: per group (half, class,
quarter) the sum of the images' spectra moved back to the reference frame and
the sum of their weights. Chunks make partial sums; the driver adds them in
chunk order, so the totals (and every result made from them) are the same for
any thread count and any executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ctf import ring_ssnr, wiener_filter

__all__ = ["SpectralSums"]


@dataclass
class SpectralSums:
    """Sums over images of one pass, per group (half, class, quarter).

    Attributes
    ----------
    spectra : (2, K, 2, ny, nx//2+1) complex128
        Sum of each group's images' half spectra (``numpy.fft.rfft2`` layout,
        unnormalised), moved back by their poses and weighted.
    weights : (2, K, 2, 1, 1) float64
        Sum of the images' weights (their number, for weight 1 each).
    shape : (ny, nx) of the images.
    ctf2 : (2, K, 2, ny, nx//2+1) float64, or None
        With CTF correction, the per-frequency weight plane: the sum of the
        images' CTF^2 in the reference frame (the spectra then sum CTF X).
    """

    spectra: np.ndarray
    weights: np.ndarray
    shape: tuple[int, int]
    ctf2: Optional[np.ndarray] = None

    @classmethod
    def zeros(cls, n_classes: int, shape: tuple[int, int], ctf: bool = False) -> "SpectralSums":
        ny, nx = (int(v) for v in shape)
        planes = (2, n_classes, 2, ny, nx // 2 + 1)
        return cls(np.zeros(planes, np.complex128), np.zeros((2, n_classes, 2, 1, 1)), (ny, nx),
                   np.zeros(planes) if ctf else None)

    @property
    def n_classes(self) -> int:
        return int(self.spectra.shape[1])

    def __iadd__(self, other: "SpectralSums") -> "SpectralSums":
        if other.spectra.shape != self.spectra.shape:
            raise ValueError(f"cannot add sums of shape {other.spectra.shape} to {self.spectra.shape}")
        if (self.ctf2 is None) != (other.ctf2 is None):
            raise ValueError("cannot add sums with CTF weights to sums without")
        self.spectra += other.spectra
        self.weights += other.weights
        if self.ctf2 is not None and other.ctf2 is not None:
            self.ctf2 += other.ctf2
        return self

    def __add__(self, other: "SpectralSums") -> "SpectralSums":
        out = SpectralSums(self.spectra.copy(), self.weights.copy(), self.shape,
                           None if self.ctf2 is None else self.ctf2.copy())
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

    def mean_spectra(self, tau2_fudge: float = 2.0) -> np.ndarray:
        """(2, K, ny, nx//2+1) per half and class: the summed spectrum over both quarters
        divided by its total weight (zeros where a class holds none). With CTF weights, the
        Wiener-filtered mean ``sum CTF X / (sum CTF^2 + 1 / (T s))`` per frequency, ``s`` one
        image's spectral SNR per ring from the FRC of the class's two quarters in the same half
        (CONVENTIONS.md, CTF; the halves stay independent), ``T = tau2_fudge``."""
        total = self.weights.sum(axis=2)[..., 0, 0]  # (2, K)
        spec = self.class_spectra()
        if self.ctf2 is None:
            safe = np.where(total > 0, total, 1.0)
            return np.where((total > 0)[..., None, None], spec / safe[..., None, None], 0.0)
        out = np.zeros_like(spec)
        for h in range(2):
            for k in range(self.n_classes):
                if total[h, k] > 0:
                    out[h, k] = wiener(self.spectra[h, k, 0], self.spectra[h, k, 1], self.ctf2[h, k, 0],
                                       self.ctf2[h, k, 1], self.shape, tau2_fudge)
        return out


def wiener(qa: np.ndarray, qb: np.ndarray, wa: np.ndarray, wb: np.ndarray, shape: tuple[int, int],
           tau2_fudge: float) -> np.ndarray:
    """The Wiener mean of two quarters' sums (sum CTF X: qa, qb; sum CTF^2: wa, wb), with one
    image's SNR per ring from the quarters' FRC (:func:`cryocore.ctf.ring_ssnr`)."""
    return wiener_filter(qa + qb, wa + wb, ring_ssnr(qa, qb, wa, wb, shape), shape, tau2_fudge)
