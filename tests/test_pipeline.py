"""The pipeline's engine pieces: spectral sums, memory plan, options, executors, particle table."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import cryocore
from cryocore.io import ParticleTable
from cryocore.pipeline.chunks import make_chunks, plan_memory
from cryocore.pipeline.config import AlignConfig, parse_memory
from cryocore.pipeline.sums import SpectralSums


def test_spectral_sums_merge_in_any_grouping(rng):
    parts = []
    for _ in range(4):
        s = SpectralSums.zeros(3, (16, 16))
        s.spectra[...] = rng.standard_normal(s.spectra.shape) + 1j * rng.standard_normal(s.spectra.shape)
        s.weights[...] = rng.integers(0, 5, s.weights.shape)
        parts.append(s)
    a = parts[0] + parts[1] + parts[2] + parts[3]
    b = (parts[0] + parts[1]) + (parts[2] + parts[3])
    np.testing.assert_allclose(a.spectra, b.spectra, rtol=1e-12)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.counts().shape == (2, 3, 2)
    # the mean is the sum over quarters over the total weight, zero for an empty class
    a.weights[1, 2] = 0
    m = a.mean_spectra()
    np.testing.assert_allclose(m[0, 1], a.spectra[0, 1].sum(axis=0) / a.weights[0, 1].sum())
    assert not m[1, 2].any()
    with pytest.raises(ValueError, match="shape"):
        a += SpectralSums.zeros(2, (16, 16))


def test_chunks_split_quarters_within_each_half():
    half = np.array([1, 2, 2, 1, 1, 2, 1, 2, 2, 1])
    chunks = make_chunks(half, 4)
    assert [(c.start, c.stop) for c in chunks] == [(0, 4), (4, 8), (8, 10)]
    quarter = np.concatenate([c.quarter for c in chunks])
    for h in (1, 2):
        np.testing.assert_array_equal(quarter[half == h], np.arange((half == h).sum()) % 2)


@pytest.mark.parametrize("text, expected", [("4G", 4 << 30), ("512M", 512 << 20), ("1.5G", 3 << 29),
                                            ("2GiB", 2 << 30), (str(100 << 20), 100 << 20), (1 << 30, 1 << 30)])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-4G", "1M", "nanG", "4X"])
def test_parse_memory_refuses(bad):
    with pytest.raises(ValueError, match="max_memory"):
        parse_memory(bad)


def test_memory_plan_bounds_chunks_and_cache():
    big = plan_memory(8 << 30, 100_000, 128, 128, 1, rotate=False)
    assert big.chunk_size == 1024 and big.working_bytes + big.cache_budget == 8 << 30
    small = plan_memory(96 << 20, 100_000, 128, 128, 1, rotate=False)
    assert 64 <= small.chunk_size < 1024 and small.working_bytes <= 96 << 20
    many = plan_memory(8 << 30, 100_000, 128, 128, 50, rotate=True)
    assert many.working_bytes > big.working_bytes  # 50 references' rotations and sums
    with pytest.raises(ValueError, match="max_memory"):
        plan_memory(64 << 20, 1000, 128, 128, 50, rotate=True)


def test_align_within_a_small_memory_budget_gives_the_uncached_result():
    """1000 images of 64 px: their cropped spectra (~6 MB) do not all fit what 72 MB leave for
    the cache, so the cache keeps the first chunks (of fewer images) and the run reads the others
    every iteration, with the same result."""
    sim = cryocore.simulate(1000, 64, snr=0.5, max_shift=4, rotate=False, seed=3)
    kw = dict(rotate=False, progress=False, iterations=3, tolerance_px=0)
    free = cryocore.align(sim.images, cache_spectra=False, **kw)
    cached = cryocore.align(sim.images, **kw)
    tight = cryocore.align(sim.images, max_memory="72M", **kw)
    assert free.timings["cache_bytes"] == 0
    assert 0 < tight.timings["cache_bytes"] <= tight.timings["memory"]["cache_budget"] < cached.timings["cache_bytes"]
    memory = tight.timings["memory"]
    assert memory["max_memory"] == 72 << 20 and memory["chunk_size"] < 1024
    assert memory["working_bytes"] + memory["cache_budget"] == 72 << 20
    assert np.array_equal(tight.accepted, free.accepted)
    # smaller chunks sum in another order: rounding-level differences, which can move an image's
    # sub-pixel peak by at most a step of the finest grid (1/20 px)
    d = np.abs(tight.shifts - free.shifts)
    assert np.median(d) < 1e-4 and d.max() < 0.05
    with pytest.raises(ValueError, match="max_memory"):
        cryocore.align(sim.images, max_memory="1M", **kw)


def test_a_chunk_the_cache_cannot_keep_has_only_the_used_rows_transformed(rng, monkeypatch):
    """A sum pass that uses a few images of a chunk the full cache cannot keep transforms only
    those (the others' spectra zero) and keeps nothing; a chunk that fits is transformed whole
    and kept, and a pass using every row reads the chunk as it is."""
    from cryocore import _core
    from cryocore.io.stack import as_source
    from cryocore.pipeline import kernel
    from cryocore.pipeline.chunks import crop_bytes, make_chunks
    from cryocore.pipeline.reading import StackReader

    images = rng.standard_normal((40, 32, 32)).astype(np.float32)
    chunks = make_chunks(np.tile(np.array([1, 2], np.int8), 20), 20)
    crop = (6, 6)
    reader = StackReader.local(as_source(images), None, crop_bytes(20, 32, 32, crop))  # room for one chunk
    transformed = []
    real_forward = _core.forward_stack

    def counting(images, threads=1, index=None, **kw):
        transformed.append(len(images) if index is None else len(index))
        return real_forward(images, threads=threads, index=index, **kw)

    monkeypatch.setattr(kernel._core, "forward_stack", counting)
    try:
        whole = reader.data(chunks[0], None, crop, rows=np.array([0, 3]))  # fits: whole, kept
        assert sum(transformed) == 20 and reader.cached_bytes() == crop_bytes(20, 32, 32, crop)
        transformed.clear()
        rows = np.array([1, 4, 5])
        part = reader.data(chunks[1], None, crop, rows=rows)  # does not fit: the three rows only
        assert sum(transformed) == 3 and reader.cached_bytes() == crop_bytes(20, 32, 32, crop)
        expected = kernel.chunk_spectra(chunks[1], images[20:], crop, 1)
        assert whole.spectra is not None and part.spectra is not None
        for h in (0, 1):
            sel = chunks[1].of_half(h)
            used = np.isin(sel, rows)
            np.testing.assert_array_equal(part.spectra[h][used], expected[h][used])
            assert not part.spectra[h][~used].any()
        transformed.clear()
        one_half = reader.data(chunks[1], None, crop, rows=np.array([0, 2]))  # rows of half 1 only
        assert sum(transformed) == 2 and one_half.spectra is not None
        assert one_half.spectra[1].shape == expected[1].shape and not one_half.spectra[1].any()
        np.testing.assert_array_equal(one_half.spectra[0][:2], expected[0][:2])
        np.testing.assert_array_equal(whole.spectra[0], kernel.chunk_spectra(chunks[0], images[:20], crop, 1)[0])
        assert np.shares_memory(reader.read(chunks[1], rows=np.arange(20)), images)  # every row: no copy
    finally:
        reader.release()


def test_every_run_forgets_its_stacks_in_this_process(rng):
    """The registry of opened stacks (and their spectra caches) holds nothing after a run: an
    iterative run, an online run, and a run refused because other processes cannot read its stack."""
    from cryocore.pipeline import reading
    from cryocore.pipeline.driver import _Stack
    from cryocore.pipeline.executor import LocalExecutor

    images = rng.standard_normal((40, 32, 32)).astype(np.float32)
    before = set(reading._open)
    cryocore.align(images, iterations=2, rotate=False, progress=False)
    cryocore.align(images, 0, mode="online", rotate=False, progress=False)

    class FileOnly(LocalExecutor):
        needs_files = True

    with pytest.raises(ValueError, match="from their files"):
        _Stack(images, np.tile([1, 2], 20), AlignConfig(), FileOnly(), lambda it, _: it)
    assert set(reading._open) == before


def test_config_is_one_definition_of_the_options():
    cfg = AlignConfig()
    params = cfg.parameters()
    assert {"rotate", "upsample", "threshold", "iterations", "max_memory", "n_classes"} <= set(params)
    assert "threads" not in cfg.fingerprint() and "iterations" not in cfg.fingerprint()
    with pytest.raises(Exception):
        cfg.iterations = 3  # frozen


class OrderedThreadExecutor:
    """Runs the chunk tasks on a thread pool; yields the results in task order."""

    def map(self, fn, tasks, shared):
        with ThreadPoolExecutor(2) as pool:
            yield from pool.map(lambda t: fn(shared, t), list(tasks))

    def task_threads(self, threads):
        return 1


@pytest.mark.parametrize("rotate", [False, True])
def test_another_executor_gives_the_same_result(rotate):
    sim = cryocore.simulate(240, 64, snr=0.3, max_shift=4, rotate=rotate, seed=4)
    kw = dict(rotate=rotate, progress=False, iterations=3, tolerance_px=0, threads=1)
    a = cryocore.align(sim.images, **kw)
    b = cryocore.align(sim.images, executor=OrderedThreadExecutor(), **kw)
    assert np.array_equal(a.shifts, b.shifts) and np.array_equal(a.angles, b.angles)
    assert np.array_equal(a.average, b.average)


def test_particle_table_merges_optics_per_particle():
    particles = pd.DataFrame({"rlnImageName": ["1@a.mrcs", "2@a.mrcs", "3@a.mrcs"],
                              "rlnOpticsGroup": [1, 2, 1], "rlnDefocusU": [10000.0, 12000.0, 14000.0],
                              "rlnVoltage": [np.nan, 200.0, np.nan]})
    optics = pd.DataFrame({"rlnOpticsGroup": [1, 2], "rlnVoltage": [300.0, 300.0],
                           "rlnSphericalAberration": [2.7, 0.01]})
    t = ParticleTable(particles, optics)
    np.testing.assert_array_equal(t.column("rlnVoltage"), [300.0, 200.0, 300.0])  # own value wins
    np.testing.assert_array_equal(t.column("rlnSphericalAberration"), [2.7, 0.01, 2.7])
    np.testing.assert_array_equal(t.column("rlnAmplitudeContrast"), [0.0, 0.0, 0.0])  # RELION's default
    assert t.has("rlnSphericalAberration") and not t.has("rlnDefocusV")
    assert t.subset([2, 0]).image_names == ["3@a.mrcs", "1@a.mrcs"]
    bad = ParticleTable(particles.assign(rlnOpticsGroup=[1, 3, 1]), optics)
    with pytest.raises(ValueError, match="optics groups"):
        bad.column("rlnSphericalAberration")


def test_cached_ctf_squares_are_the_squares_of_the_chunk(rng):
    """K = 1 without rotation: the CTF^2 planes of a chunk's quarters are made once and reused; they
    equal the per-image sums, and another chunk (or other CTFs) does not get them."""
    from cryocore.pipeline.kernel import ChunkCtf

    n = 50
    params = cryocore.CtfParameters.from_arrays(n, dict(defocus_u_A=rng.uniform(8000, 25000, n),
                                                         defocus_v_A=rng.uniform(8000, 25000, n)))
    half = np.where(rng.random(n) < 0.5, 1, 2).astype(np.int8)
    chunks = make_chunks(half, 20)
    c = ChunkCtf(params, 1.7)
    for chunk in chunks:
        for h in (0, 1):
            direct = SpectralSums.zeros(1, (32, 32), ctf=True)
            sel = chunk.of_half(h)
            c.add_squares(direct, chunk, h, sel, np.zeros(len(sel), np.int32), None, np.ones(len(sel)))
            for _ in range(2):  # made, then reused
                cached = SpectralSums.zeros(1, (32, 32), ctf=True)
                c.add_all_squares(cached, chunk, h)
                np.testing.assert_allclose(cached.ctf2, direct.ctf2, rtol=1e-6)
    other = ChunkCtf(cryocore.CtfParameters.from_arrays(n, dict(defocus_u_A=np.full(n, 12000.0))), 1.7)
    a, b = SpectralSums.zeros(1, (32, 32), ctf=True), SpectralSums.zeros(1, (32, 32), ctf=True)
    c.add_all_squares(a, chunks[0], 0)
    other.add_all_squares(b, chunks[0], 0)
    assert not np.allclose(a.ctf2, b.ctf2)
