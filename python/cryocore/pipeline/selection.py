"""Which images go where: the half-set split and the score threshold."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

__all__ = ["HalfSplit", "auto_threshold", "split_halves"]

HalfSplit = Union[str, np.ndarray]


def split_halves(n: int, half_split: HalfSplit = "random", seed: Optional[int] = 0) -> np.ndarray:
    """Half-set label (1 or 2) of each of ``n`` images.

    ``"random"``: a seeded random permutation, sizes ``n // 2`` and ``n - n // 2``;
    ``"halves"``: the first ``n // 2`` images form half 1; ``"even-odd"``: even
    indices form half 1. An array of 1/2 labels is used as given.
    """
    if isinstance(half_split, str):
        if half_split == "random":
            half = np.full(n, 2, np.int8)
            half[np.random.default_rng(seed).permutation(n)[: n // 2]] = 1
        elif half_split == "halves":
            half = np.where(np.arange(n) < n // 2, 1, 2).astype(np.int8)
        elif half_split == "even-odd":
            half = np.where(np.arange(n) % 2 == 0, 1, 2).astype(np.int8)
        else:
            raise ValueError(f"half_split must be 'random', 'halves', 'even-odd' or an array of 1/2, got {half_split!r}")
    else:
        half = np.asarray(half_split)
        if half.shape != (n,) or not np.isin(half, (1, 2)).all():
            raise ValueError(f"half_split as an array must have shape ({n},) with values 1 and 2")
        half = half.astype(np.int8)
    if not ((half == 1).any() and (half == 2).any()):
        raise ValueError("both half-sets must hold at least one image")
    return half


def auto_threshold(scores: np.ndarray, k: float = 4.0) -> float:
    """Robust outlier threshold: ``median - k * 1.4826 * MAD`` of the scores.

    Images of one particle at one noise level give a narrow, roughly normal
    score distribution; junk (empty frames, contamination, another particle)
    scores lower. The median and the median absolute deviation are not moved
    by up to half of the images being junk, so the same rule works at SNR 1 and
    at SNR 0.02 (where good images score about 0.14 against a clean average).
    ``k = 4`` rejects about 0.003% of normally distributed good images.
    """
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return -1.0
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    return med - k * mad

