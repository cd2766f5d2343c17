"""The alignment pipeline on simulated data with known ground truth."""

import numpy as np
import pytest

import cryocore
from cryocore.alignment import align, auto_threshold, centre_of_mass_offset, split_halves


def _fit_to_template(average, template):
    """Pearson correlation of an average with the template after aligning it by a shift."""
    fit = cryocore.register(template, average, upsample=50)
    aligned = cryocore.shift(average, -fit.shifts)
    return float(np.corrcoef(aligned.ravel(), template.ravel())[0, 1])


def _shift_errors(result, truth):
    """Per-image shift error after removing the global offset of the average."""
    err = result.shifts - truth
    offset = np.median(err[result.accepted], axis=0)
    return np.hypot(*(err - offset).T)


@pytest.fixture(scope="module")
def snr01():
    sim = cryocore.simulate(500, 128, snr=0.1, max_shift=10, rotate=False, seed=11)
    res = align(sim.images, rotate=False, progress=False, pixel_size_A=1.5)
    return sim, res


def test_reference_free_matches_oracle_at_snr01(snr01):
    sim, res = snr01
    oracle = cryocore.register(sim.template, sim.images)
    med_oracle = np.median(np.hypot(*(oracle.shifts - sim.shifts).T))
    med = np.median(_shift_errors(res, sim.shifts)[res.accepted])
    assert med <= 1.15 * med_oracle, (med, med_oracle)
    assert _fit_to_template(res.average, sim.template) >= 0.95


def test_both_halves_converge_and_resolution_is_reported(snr01):
    _, res = snr01
    last = max(r["iteration"] for r in res.history)
    rows = [r for r in res.history if r["iteration"] == last]
    assert {r["half"] for r in rows} == {1, 2}
    if last > 1:
        assert all(r["pose_change"] < 0.05 for r in rows)
    # each half average on its own resembles the particle
    for h in (0, 1):
        assert _fit_to_template(res.half_averages[h], _template(128)) > 0.9
    assert 0.05 < res.resolution < 0.5
    assert res.resolution_A == pytest.approx(1.5 / res.resolution)
    assert res.frc.values[1] > 0.9


def _template(n):
    return cryocore.make_template(n)


def test_result_shapes_and_halves(snr01):
    sim, res = snr01
    n = len(sim.images)
    assert res.shifts.shape == (n, 2) and res.scores.shape == (n,) and res.accepted.dtype == bool
    assert set(np.unique(res.half)) == {1, 2} and abs((res.half == 1).sum() - n / 2) <= 1
    assert res.average.shape == (128, 128) and res.half_averages.shape == (2, 128, 128)
    assert res.frames.shape[1:] == (128, 128) and len(res.frames) == max(r["iteration"] for r in res.history)


def test_lower_snr_converges_to_worse_resolution(snr01):
    _, res01 = snr01
    sim = cryocore.simulate(500, 128, snr=0.02, max_shift=10, rotate=False, seed=12)
    res = align(sim.images, rotate=False, progress=False)
    assert _fit_to_template(res.average, sim.template) > 0.85
    assert res.resolution < res01.resolution
    assert res.accepted.mean() > 0.9


def test_auto_threshold_rejects_pure_noise_images():
    sim = cryocore.simulate(400, 96, snr=0.1, max_shift=8, rotate=False, seed=13)
    rng = np.random.default_rng(1)
    imgs = sim.images.copy()
    bad = rng.choice(len(imgs), 40, replace=False)
    imgs[bad] = rng.standard_normal((40, 96, 96)).astype(np.float32) * imgs.std()
    res = align(imgs, rotate=False, progress=False)
    is_bad = np.zeros(len(imgs), bool)
    is_bad[bad] = True
    assert (~res.accepted[is_bad]).mean() >= 0.9
    assert (~res.accepted[~is_bad]).mean() <= 0.05


@pytest.mark.parametrize("how", ["random", "halves", "even-odd"])
def test_split_halves(how):
    h = split_halves(11, how, seed=3)
    assert h.shape == (11,) and set(h) == {1, 2} and (h == 1).sum() == (6 if how == "even-odd" else 5)
    if how == "halves":
        assert (h[:5] == 1).all() and (h[5:] == 2).all()
    if how == "even-odd":
        assert (h[::2] == 1).all() and (h[1::2] == 2).all()
    assert np.array_equal(split_halves(11, how, seed=3), h)


def test_halves_are_independent():
    """Changing the images of half 2 must not change anything of half 1 (gold standard)."""
    sim = cryocore.simulate(120, 64, snr=0.5, max_shift=5, rotate=False, seed=14)
    r1 = align(sim.images, rotate=False, half_split="even-odd", progress=False, iterations=3, tolerance_px=0)
    imgs = sim.images.copy()
    imgs[1::2] = np.random.default_rng(0).standard_normal(imgs[1::2].shape)
    r2 = align(imgs, rotate=False, half_split="even-odd", progress=False, iterations=3, tolerance_px=0)
    # Half-1 poses before the final combination are the same; the final step moves
    # only half 2's poses, so half 1's shifts and scores agree exactly.
    assert np.array_equal(r1.shifts[::2], r2.shifts[::2])
    assert np.array_equal(r1.scores[::2], r2.scores[::2])


def test_cached_and_chunked_paths_agree():
    sim = cryocore.simulate(60, 64, snr=1.0, max_shift=5, rotate=False, seed=15)
    a = align(sim.images, rotate=False, progress=False, iterations=3, tolerance_px=0, cache_spectra=True)
    b = align(sim.images, rotate=False, progress=False, iterations=3, tolerance_px=0, cache_spectra=False)
    np.testing.assert_allclose(a.shifts, b.shifts, atol=1e-3)
    np.testing.assert_allclose(a.average, b.average, atol=1e-4 * np.abs(a.average).max())


def test_cropped_cache_grows_and_falls_back_with_the_same_results(monkeypatch):
    """The spectra cache holds only what the searches read; when the low-pass grows past it
    the cache is re-made wider, and when it would not fit, the images are read instead: the
    results are those of the uncached path either way."""
    from cryocore.pipeline import driver, reading

    sim = cryocore.simulate(60, 64, snr=1.0, max_shift=5, rotate=False, seed=16)
    kw = dict(rotate=False, progress=False, iterations=4, tolerance_px=0)
    ref = align(sim.images, cache_spectra=False, **kw)
    assert max(r["lowpass"] for r in ref.history) > 0.25  # the searches reach past a 0.2 crop
    crops = []
    orig = reading.StackReader.data

    def recording(self, chunk, after, crop, rows=None, threads=1):
        if crop is not False and (not crops or crops[-1] != crop):
            crops.append(crop)
        return orig(self, chunk, after, crop, rows, threads)

    monkeypatch.setattr(reading.StackReader, "data", recording)
    monkeypatch.setattr(driver, "CACHE_BAND", 0.15)
    grown = align(sim.images, cache_spectra=True, **kw)
    # first cropped to what the first search reads (|k| <= 12 of 64), then wider
    assert len(crops) >= 2 and crops[0] == (12, 12)
    assert crops[-1][0] > crops[0][0]
    assert grown.timings["cache_bytes"] > 0
    monkeypatch.setattr(reading, "crop_bytes", lambda *a: 1 << 50)  # nothing fits: made and not kept
    chunked = align(sim.images, **kw)
    assert chunked.timings["cache_bytes"] == 0
    for got in (grown, chunked):
        np.testing.assert_allclose(got.shifts, ref.shifts, atol=1e-3)
        np.testing.assert_allclose(got.average, ref.average, atol=1e-4 * np.abs(ref.average).max())
        assert [r["lowpass"] for r in got.history] == pytest.approx([r["lowpass"] for r in ref.history], abs=1e-6)


@pytest.mark.parametrize("reference", [7, "template"])
def test_given_reference_and_online_mode(reference):
    sim = cryocore.simulate(200, 64, snr=0.3, max_shift=5, rotate=False, seed=16)
    ref = sim.template if reference == "template" else reference
    for mode in ("iterative", "online"):
        res = align(sim.images, ref, rotate=False, mode=mode, progress=False)
        assert _fit_to_template(res.average, sim.template) > 0.9, mode
        assert res.accepted.mean() > 0.8


def test_fixed_threshold_and_all_rejected():
    sim = cryocore.simulate(60, 64, snr=0.1, max_shift=5, rotate=False, seed=17)
    res = align(sim.images, rotate=False, threshold=-1.0, progress=False, iterations=2)
    assert res.accepted.all()
    with pytest.raises(ValueError, match="threshold"):
        align(sim.images, rotate=False, threshold=0.999, progress=False, iterations=2)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(rotate=True, mode="online"), NotImplementedError, "rotate"),
        (dict(threshold=1.5), ValueError, "threshold"),
        (dict(threshold="high"), ValueError, "threshold"),
        (dict(iterations=0), ValueError, "iterations"),
        (dict(mode="batch"), ValueError, "mode"),
        (dict(half_split="thirds"), ValueError, "half_split"),
        (dict(pixel_size_A=-1.0), ValueError, "pixel_size_A"),
        (dict(lowpass_A=10.0), ValueError, "pixel"),
        (dict(max_shift=100.0), ValueError, "max_shift"),
        (dict(reference=500), ValueError, "out of range"),
        (dict(reference=np.zeros((10, 10))), ValueError, "box"),
        (dict(threads=0), ValueError, "threads"),
    ],
)
def test_bad_arguments(kwargs, exc, word):
    sim = cryocore.simulate(20, 64, snr=1.0, rotate=False, seed=18)
    kw = dict(progress=False, rotate=False)
    kw.update(kwargs)
    with pytest.raises(exc, match=word):
        align(sim.images, **kw)


def test_bad_images():
    with pytest.raises(ValueError, match="at least 2"):
        align(np.zeros((1, 32, 32)), rotate=False, progress=False)
    with pytest.raises(ValueError, match="stack"):
        align(np.zeros((32, 32)), rotate=False, progress=False)
    with pytest.raises(TypeError, match="real"):
        align(np.zeros((4, 32, 32), complex), rotate=False, progress=False)
    imgs = np.random.default_rng(0).standard_normal((6, 32, 32))
    imgs[3, 4, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        align(imgs, rotate=False, progress=False)


def test_auto_threshold_rule():
    rng = np.random.default_rng(2)
    good = rng.normal(0.3, 0.02, 900)
    junk = rng.normal(0.05, 0.02, 100)
    thr = auto_threshold(np.concatenate([good, junk]))
    assert 0.1 < thr < 0.25
    assert (good >= thr).mean() > 0.99 and (junk < thr).all()


def test_centre_of_mass_offset_finds_a_shifted_blob():
    t = cryocore.make_template(64)
    c0 = centre_of_mass_offset(t)
    moved = cryocore.shift(t, (3.0, -2.0))
    np.testing.assert_allclose(centre_of_mass_offset(moved) - c0, (3.0, -2.0), atol=0.05)


@pytest.mark.slow
def test_reference_free_with_rotations_matches_translation_only_quality():
    """500 rotated images, SNR 0.1, reference-free: the average matches the particle and its
    resolution is within 15% of rotate=False on an unrotated stack."""
    sim = cryocore.simulate(500, 128, snr=0.1, max_shift=10, rotate=True, seed=31)
    res = align(sim.images, rotate=True, progress=False)
    fit = cryocore.register(sim.template, res.average, rotate=True, upsample=50)
    aligned = cryocore.transform(res.average, fit.angles, fit.shifts, inverse=True)
    assert np.corrcoef(aligned.ravel(), sim.template.ravel())[0, 1] >= 0.93
    plain = cryocore.simulate(500, 128, snr=0.1, max_shift=10, rotate=False, seed=31)
    res0 = align(plain.images, rotate=False, progress=False)
    assert abs(res.resolution - res0.resolution) <= 0.15 * res0.resolution
    # poses: compose each image's pose with the average's global pose and compare with the truth
    from cryocore.alignment import rotate_vectors

    pred = (res.angles + float(fit.angles)) % 360
    err = np.abs((pred - sim.angles + 180) % 360 - 180)
    assert np.median(err[res.accepted]) < 2.0
    shifts = res.shifts + rotate_vectors(np.broadcast_to(fit.shifts, res.shifts.shape), res.angles)
    assert np.median(np.hypot(*(shifts - sim.shifts).T)[res.accepted]) < 0.5


def test_local_search_matches_the_full_search():
    sim = cryocore.simulate(300, 64, snr=0.2, max_shift=5, rotate=False, seed=41)
    kw = dict(rotate=False, iterations=5, tolerance_px=0, progress=False)
    a = cryocore.align(sim.images, **kw)
    b = cryocore.align(sim.images, local_search=False, **kw)
    assert np.array_equal(a.accepted, b.accepted)
    np.testing.assert_allclose(a.shifts, b.shifts, atol=0.02)
    np.testing.assert_allclose(a.average, b.average, atol=1e-3 * np.abs(b.average).max())


@pytest.mark.parametrize("rotate", [False, True])
def test_resume_after_a_later_iteration_gives_the_same_result(tmp_path, rotate):
    # interrupted after iteration 3 (local searches under way, which depend on the
    # poses of the two iterations before): resuming must give the uninterrupted result
    sim = cryocore.simulate(240, 64, snr=0.3, max_shift=4, rotate=rotate, seed=43)
    kw = dict(rotate=rotate, iterations=6, tolerance_px=0, progress=False, threads=2)
    full = cryocore.align(sim.images, **kw)

    class Stop(Exception):
        pass

    def stop_after_3(info):
        if info["iteration"] == 3:
            raise Stop

    ckpt = str(tmp_path / "state.npz")
    with pytest.raises(Stop):
        cryocore.align(sim.images, checkpoint=ckpt, callback=stop_after_3, **kw)
    resumed = cryocore.align(sim.images, checkpoint=ckpt, resume=True, **kw)
    assert np.array_equal(resumed.shifts, full.shifts) and np.array_equal(resumed.angles, full.angles)
    assert np.array_equal(resumed.average, full.average)
