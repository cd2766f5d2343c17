"""mode="online": the original report's single pass, each image against the running
weighted average of its half (translations only)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .config import AlignConfig
from .driver import Progress, finish, given_references
from .geometry import combine
from .kernel import register_image, sum_image
from .result import AlignResult
from .selection import auto_threshold
from .state import AlignState

__all__ = ["run_online"]


def run_online(source: Any, half: np.ndarray, config: AlignConfig, reference: Any, *,
               progress: Progress) -> AlignResult:
    """One pass over the images in input order; see :func:`cryocore.align` (``mode="online"``)."""
    t_start = time.perf_counter()
    if reference is None:
        raise ValueError("mode='online' needs a starting reference: an image index or an array")
    n, ny, nx = (int(v) for v in source.shape)
    refs = given_references(source, reference, config.first_lowpass)[:, 0]
    sums = [r.copy() for r in refs]  # the starting reference counts as one image of weight 1
    weights = [1.0, 1.0]
    shifts, scores = np.zeros((n, 2)), np.zeros(n)
    accepted = np.zeros(n, bool)
    fixed = None if config.threshold == "auto" else float(config.threshold)
    history: list[dict] = []
    frames = []
    every = max(1, n // 40)
    seen: list[list[float]] = [[], []]
    thr = -1.0
    t0 = time.perf_counter()
    for i in progress(range(n), "images"):
        h = int(half[i]) - 1
        img = source.read(i, i + 1)
        ref = (sums[h] / weights[h]).astype(np.float32)
        s, c = register_image(ref, img, config.search, config.first_lowpass)
        shifts[i], scores[i] = s, c
        seen[h].append(c)
        thr = auto_threshold(np.array(seen[h])) if fixed is None else fixed
        if fixed is None and len(seen[h]) <= 10:
            thr = -1.0  # too few scores for a robust rule yet
        if c >= thr and c > 0:
            add = np.zeros((ny, nx))
            sum_image(img, s, c, add)
            sums[h] += add
            weights[h] += c
            accepted[i] = True
        if (i + 1) % every == 0 or i == n - 1:
            frames.append(combine(sums[0] / weights[0], sums[1] / weights[1], 1, 1).astype(np.float32))
            for hh in (0, 1):
                m = half[: i + 1] == hh + 1
                history.append(dict(iteration=i + 1, half=hh + 1,
                                    mean_score=float(scores[: i + 1][m].mean()) if m.any() else 0.0,
                                    accepted=int(accepted[: i + 1][m].sum()), total=int(m.sum()),
                                    pose_change=float("nan"), threshold=float(thr), lowpass=float(config.first_lowpass)))
    thresholds = np.array([[auto_threshold(scores[half == h]) if fixed is None else fixed] for h in (1, 2)])
    st = AlignState(refs=refs[:, None], lowpass=np.full(2, config.first_lowpass), shifts=shifts, angles=np.zeros(n),
                    scores=scores, accepted=accepted, classes=np.zeros(n, np.int32), thresholds=thresholds,
                    history=history, frames=frames)
    avgs = np.stack([sums[0] / weights[0], sums[1] / weights[1]])[:, None]
    return finish(source, half, config, st, avgs, {"online_s": time.perf_counter() - t0}, t_start)
