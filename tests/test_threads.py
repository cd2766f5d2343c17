"""Results do not depend on the number of worker threads, and calls are safe from many Python threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cryocore
from conftest import SIZE_IDS, SIZES, fourier_shift, smooth_image

THREADS = [1, 2, 3, 7]


def _noisy_stack(rng, shape, n):
    ref = smooth_image(rng, shape)
    true = rng.uniform(-8, 8, (n, 2))
    imgs = np.array([fourier_shift(ref, s) for s in true]) + rng.standard_normal((n,) + shape)
    return ref.astype(np.float32), imgs.astype(np.float32)


def _all_results(ref, imgs, shifts, weights, threads):
    shape = imgs.shape[1:]
    out = {}
    for name, kw in {
        "default": {},
        "up1": {"upsample": 1},
        "band": {"lowpass": 0.2, "highpass": 0.03},
        "phase": {"phase_correlation": True, "max_shift": 12},
    }.items():
        r = cryocore.register(ref, imgs, threads=threads, **kw)
        out[f"register-{name}"] = (r.shifts, r.scores, r.reference_index)
    refs = np.stack([ref, np.roll(ref, 5, axis=1), -ref])
    r = cryocore.register(refs, imgs, threads=threads)
    out["register-multi"] = (r.shifts, r.scores, r.reference_index)
    out["shift"] = (cryocore.shift(imgs, shifts, threads=threads),)
    acc = cryocore.Accumulator(shape).add(imgs, shifts, weights, threads=threads)
    out["accumulate"] = (acc.sum, acc.sum_sq, acc.mean(), acc.variance())
    acc = cryocore.Accumulator(shape).add(imgs, threads=threads)
    out["accumulate-noshift"] = (acc.sum, acc.sum_sq)
    out["maps"] = (cryocore.correlation_maps(ref, imgs, threads=threads),)
    out["maps-lp"] = (cryocore.correlation_maps(ref, imgs, lowpass=0.3, threads=threads),)
    return out


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_bit_identical_for_any_thread_count(rng, shape):
    n = 37  # several chunks of 8, the last one partial
    ref, imgs = _noisy_stack(rng, shape, n)
    shifts = rng.uniform(-6, 6, (n, 2))
    weights = rng.uniform(0.0, 2.0, n)
    base = _all_results(ref, imgs, shifts, weights, 1)
    for t in THREADS[1:] + [None]:
        other = _all_results(ref, imgs, shifts, weights, t)
        for key, arrays in base.items():
            for a, b in zip(arrays, other[key]):
                assert np.array_equal(a, b), f"{key} differs between threads=1 and threads={t}"


def test_more_threads_than_images(rng):
    ref, imgs = _noisy_stack(rng, (40, 40), 2)
    a = cryocore.register(ref, imgs, threads=1)
    b = cryocore.register(ref, imgs, threads=64)
    assert np.array_equal(a.shifts, b.shifts) and np.array_equal(a.scores, b.scores)


# Different shapes so that several plans are created at the same time.
CONCURRENT_SHAPES = [(64, 64), (65, 65), (48, 80), (81, 50), (40, 40), (33, 57), (72, 96), (50, 81)]


def _register_job(args):
    ref, imgs, kw = args
    r = cryocore.register(ref, imgs, **kw)
    return r.shifts, r.scores


def _mixed_job(args):
    ref, imgs, kw = args
    shifts = np.linspace(-3, 3, 2 * len(imgs)).reshape(-1, 2)
    acc = cryocore.Accumulator(imgs.shape[1:]).add(imgs, shifts, threads=kw.get("threads"))
    return (
        cryocore.shift(imgs, shifts, threads=kw.get("threads")),
        cryocore.correlation_maps(ref, imgs, lowpass=0.3, threads=kw.get("threads")),
        acc.sum,
    )


@pytest.mark.parametrize("job", [_register_job, _mixed_job], ids=["register", "mixed"])
def test_concurrent_python_threads_match_sequential(rng, job):
    data = []
    for i, shape in enumerate(CONCURRENT_SHAPES):
        ref, imgs = _noisy_stack(rng, shape, 12)
        kw = {"threads": 1 + i % 3}
        if i % 2:
            kw["lowpass"] = 0.3  # a second, cropped plan per shape
        data.append((ref, imgs, kw if job is _register_job else {"threads": kw["threads"]}))
    cryocore._core.clear_plan_cache()
    sequential = [job(d) for d in data]
    for _round in range(3):
        cryocore._core.clear_plan_cache()
        assert cryocore._core.plan_cache_size() == 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            concurrent = list(pool.map(job, data))
        for seq, par in zip(sequential, concurrent):
            for a, b in zip(seq, par):
                assert np.array_equal(a, b)
        assert cryocore._core.plan_cache_size() >= len(CONCURRENT_SHAPES)


def test_concurrent_calls_on_the_same_shape(rng):
    """Many threads sharing one cached plan, while the cache is being cleared."""
    shape = (56, 56)
    data = [_noisy_stack(rng, shape, 6) for _ in range(16)]
    expected = [cryocore.register(r, i, threads=1).shifts for r, i in data]

    def job(k):
        if k % 5 == 0:
            cryocore._core.clear_plan_cache()
        r, i = data[k % len(data)]
        return k % len(data), cryocore.register(r, i, threads=2).shifts

    with ThreadPoolExecutor(max_workers=8) as pool:
        for idx, shifts in pool.map(job, range(48)):
            assert np.array_equal(shifts, expected[idx])


def test_one_rotational_search_shared_by_python_threads(rng):
    """A prepared RotationalSearch used from 8 Python threads at once (its rotations made lazily,
    under call_once, by whichever thread needs one first) gives the sequential results."""
    sim = cryocore.simulate(48, 48, snr=0.5, max_shift=3, rotate=True, seed=int(rng.integers(1 << 30)))
    ref = np.ascontiguousarray(sim.template, np.float32)[None]
    imgs = np.ascontiguousarray(sim.images, np.float32)
    want = cryocore._core.register_rotate(ref, imgs, threads=1)
    search = cryocore._core.RotationalSearch(ref)

    def job(k):
        a = (k * 5) % 48
        return a, search.register(imgs[a : a + 6], threads=1 + k % 2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for a, got in pool.map(job, range(32)):
            for x, y in zip(got, want):
                assert np.array_equal(x, y[a : a + 6])


def test_sixteen_python_threads_register_and_align_like_sequential_calls():
    """16 threads calling register and align concurrently on different data (and shapes, so
    plans are created under contention) give bit-identical results to sequential calls."""
    from concurrent.futures import ThreadPoolExecutor

    shapes = [(48, 48), (49, 49), (40, 64), (64, 40)]
    jobs = []
    for k in range(16):
        sim = cryocore.simulate(40, 64, snr=0.5, max_shift=4, rotate=False, seed=100 + k)
        ny, nx = shapes[k % 4]
        jobs.append((k, sim.images[:, :ny, :nx].copy(), sim.template[:ny, :nx].copy()))

    def work(job):
        k, imgs, ref = job
        if k % 2:
            r = cryocore.align(imgs, progress=False, iterations=3, seed=k, rotate=bool(k % 4 == 1))
            return r.shifts, r.scores, r.average
        r = cryocore.register(ref, imgs, threads=2)
        return r.shifts, r.scores, r.reference_index

    cryocore._core.clear_plan_cache()
    sequential = [work(j) for j in jobs]
    cryocore._core.clear_plan_cache()
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(work, jobs))
    for a, b in zip(sequential, concurrent):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)
