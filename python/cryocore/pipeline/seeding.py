"""Reference-free starting classes for 2D classification.

A random subset of the stack (``per_class`` images per class) is registered image against image
at low resolution (rotations and shifts, each image multiplied by its CTF); the images whose
nearest neighbours match worst (pure-noise junk, mostly) are set aside; the rest are clustered
by spectral clustering of their nearest-neighbour graph (k-means on the graph Laplacian's first
eigenvectors) into K + J clusters (J = 1 + K // 10 spare ones); each cluster's members are moved
onto its medoid and averaged. Clusters whose members do not agree beyond low resolution (the
correlation of their even and odd members' averages between 0.1 and 0.25 cycles/px below half
the clusters' median: blobs, aggregates, ice that only look alike when blurred) are kept apart
as junk classes; of the others, the two whose averages match best are merged until K remain. The subset is small (at most ``MAX_SUBSET``
images), so this costs little next to one pass over the stack, and the starting classes are
distinct views rather than random blurs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .kernel import move_back, pairwise_poses

__all__ = ["Seeds", "kmeans", "seed_classes", "spectral_clusters", "split_half_coherence"]

MAX_SUBSET = 1200  # images in the pairwise subset at most (its cost grows as its square)
OUTLIER_FRACTION = 0.15  # of the subset, set aside as the worst-matching
NEIGHBOURS = 10  # of each image in the similarity graph
TEMPERATURE = 0.1  # graph weights exp((score - 1) / TEMPERATURE)
COHERENCE_BAND = (0.1, 0.25)  # cycles/px: where a cluster's split-half coherence is measured
INCOHERENT = 0.5  # a cluster whose split-half coherence is below this x the median is junk


@dataclass
class Seeds:
    """refs (K + J, ny, nx) float64: the starting class averages, the K classes' first, then J
    junk classes'; subset (m,): the stack indices registered against each other; labels (m,):
    their class (-1: set aside as outliers)."""

    refs: np.ndarray
    subset: np.ndarray
    labels: np.ndarray
    n_junk: int = 0


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, restarts: int = 10,
           iterations: int = 100) -> np.ndarray:
    """Labels (n,) of the best of ``restarts`` k-means runs (k-means++ starts) on points (n, d)."""
    best: Optional[tuple[float, np.ndarray]] = None
    n = len(points)
    for _ in range(restarts):
        centres = [points[rng.integers(n)]]
        for _ in range(k - 1):
            d2 = np.min(((points[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            centres.append(points[rng.choice(n, p=d2 / total)] if total > 0 else points[rng.integers(n)])
        c = np.array(centres)
        labels = np.zeros(n, np.int64)
        for _ in range(iterations):
            dist = ((points[:, None] - c[None]) ** 2).sum(-1)
            new = np.argmin(dist, axis=1)
            if _ and np.array_equal(new, labels):
                break
            labels = new
            c = np.array([points[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(k)])
        inertia = float(((points - c[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels)
    assert best is not None
    return best[1]


def spectral_clusters(similarity: np.ndarray, k: int, rng: np.random.Generator,
                      neighbours: int = NEIGHBOURS) -> np.ndarray:
    """K clusters (labels (m,)) of a similarity matrix (m, m) (larger: more alike; the diagonal is
    ignored): each point linked to its nearest neighbours, weights exp((s - 1) / TEMPERATURE),
    k-means on the normalised Laplacian's first k eigenvectors (rows normalised)."""
    m = len(similarity)
    s = similarity.copy()
    np.fill_diagonal(s, -np.inf)
    nn = np.argsort(-s, axis=1)[:, : min(neighbours, m - 1)]
    w = np.zeros((m, m))
    rows = np.arange(m)[:, None]
    w[rows, nn] = np.exp((s[rows, nn] - 1.0) / TEMPERATURE)
    w = np.maximum(w, w.T)
    d = np.maximum(w.sum(axis=1), 1e-300)
    lap = np.eye(m) - w / np.sqrt(d[:, None] * d[None, :])
    _, vectors = np.linalg.eigh(lap)
    z = vectors[:, :k]
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
    return kmeans(z, k, rng)


def split_half_coherence(moved: np.ndarray, band: tuple[float, float] = COHERENCE_BAND) -> float:
    """The correlation, over the spectral band (cycles/px), of the averages of a cluster's even and
    odd members (m, ny, nx) moved onto its medoid: near 1 for images of one view, near 0 for junk
    that only looks alike at low resolution (blobs, aggregates)."""
    if len(moved) < 2:
        return 1.0
    ny, nx = moved.shape[1:]
    f = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    keep = (f > band[0]) & (f < band[1])
    a = np.fft.rfft2(moved[0::2].mean(axis=0))[keep]
    b = np.fft.rfft2(moved[1::2].mean(axis=0))[keep]
    norm = np.sqrt(np.sum(np.abs(a) ** 2) * np.sum(np.abs(b) ** 2))
    return float(np.real(np.sum(a * np.conj(b))) / norm) if norm > 0 else 0.0


def seed_classes(images_of: Any, n: int, k: int, *, rotate: bool, lowpass: float, threads: int, seed: Optional[int],
                 per_class: int = 30, ctf: Any = None, junk: bool = True) -> Seeds:
    """K starting class averages from the stack (and, with ``junk``, those of junk classes).

    images_of(index) -> float32 (m, ny, nx): the (preprocessed) images at those stack indices;
    lowpass: cycles/px of the comparisons; ctf: the run's ChunkCtf (or None).
    """
    rng = np.random.default_rng(seed)
    spare = 1 + k // 10 if junk else 0
    m = int(min(n, MAX_SUBSET, max(per_class * (k + spare), 2 * (k + spare) + 2)))
    subset = np.sort(rng.choice(n, m, replace=False))
    images = images_of(subset)
    core_ctf = None if ctf is None else (ctf.rows[subset], ctf.pixel_size_A, ctf.intact_first_peak)
    scores, angles, shifts, compared = pairwise_poses(images, lowpass, rotate, threads, core_ctf)
    sym = np.maximum(scores, scores.T)
    np.fill_diagonal(sym, -np.inf)
    # set aside the images whose nearest neighbours match worst (junk, mostly)
    top = np.sort(sym, axis=1)[:, -min(NEIGHBOURS, m - 1):].mean(axis=1)
    c = k + spare
    keep = np.flatnonzero(top >= np.quantile(top, OUTLIER_FRACTION)) if m - c > 2 * c else np.arange(m)
    labels = np.full(m, -1)
    labels[keep] = spectral_clusters(sym[np.ix_(keep, keep)], c, rng)

    def moved_members(members: np.ndarray) -> np.ndarray:
        block = sym[np.ix_(members, members)]
        medoid = members[int(np.argmax(np.where(np.isfinite(block), block, 0.0).sum(axis=1)))]
        return move_back(compared[members], angles[medoid, members], shifts[medoid, members], threads)

    groups = [np.flatnonzero(labels == j) for j in range(c)]
    groups = [g for g in groups if len(g)]
    moved = [moved_members(g) for g in groups]
    refs = [mv.mean(axis=0) for mv in moved]
    coherence = np.array([split_half_coherence(mv) for mv in moved])
    incoherent = coherence < INCOHERENT * np.median(coherence) if junk else np.zeros(len(refs), bool)
    good = [i for i in np.argsort(-coherence) if not incoherent[i]]
    bad = [i for i in np.argsort(coherence) if incoherent[i]]
    while len(good) < k and bad:  # (more incoherent clusters than spare ones: the most coherent of them count)
        good.append(bad.pop())
    while len(good) > k:  # merge the two good classes whose averages match best
        pair_scores = _average_scores([refs[i] for i in good], lowpass, rotate, threads)
        a, b = np.unravel_index(int(np.argmax(pair_scores)), pair_scores.shape)
        ia, ib = good[a], good[b]
        groups[ia] = np.concatenate([groups[ia], groups[ib]])
        refs[ia] = moved_members(groups[ia]).mean(axis=0)
        good.remove(ib)
        groups[ib] = np.zeros(0, np.int64)
    order = good + bad
    out = np.full(m, -1)
    for new, old in enumerate(order):
        out[groups[old]] = new
    return Seeds(np.stack([refs[i] for i in order]), subset, out, n_junk=len(bad))


def _average_scores(averages: list[np.ndarray], lowpass: float, rotate: bool, threads: int) -> np.ndarray:
    """Scores (g, g) of the averages against each other (symmetric; the diagonal -inf)."""
    scores, _, _, _ = pairwise_poses(np.stack(averages), lowpass, rotate, threads)
    sym = np.maximum(scores, scores.T)
    np.fill_diagonal(sym, -np.inf)
    return sym
