"""Rotational + translational registration (register(rotate=True)) against ground truth."""

import numpy as np
import pytest

import cryocore
from cryocore.simulation import make_template, render


def _angle_error(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("n", [64, 65, 128])
def test_noise_free_poses_are_recovered(n):
    rng = np.random.default_rng(n)
    angles = np.concatenate([[0.0, 90.0, 179.9, 180.0, 270.0, 359.9], rng.uniform(0, 360, 34)])
    max_shift = 10.0 if n >= 128 else 5.0
    shifts = rng.uniform(-max_shift, max_shift, (len(angles), 2))
    imgs = render(n, angles, shifts).astype(np.float32)
    reg = cryocore.register(make_template(n), imgs, rotate=True)
    assert _angle_error(reg.angles, angles).max() <= 0.2
    assert np.abs(reg.shifts - shifts).max() <= 0.05
    assert reg.scores.min() > 0.999
    assert ((reg.angles >= 0) & (reg.angles < 360)).all()


def test_snr_01_statistics_and_shift_accuracy_against_translation_only():
    sim = cryocore.simulate(400, 128, snr=0.1, max_shift=10, rotate=True, seed=21)
    reg = cryocore.register(sim.template, sim.images, rotate=True)
    err = _angle_error(reg.angles, sim.angles)
    assert np.median(err) <= 1.0
    assert np.mean(err > 5.0) <= 0.02
    # translation-only registration of an unrotated stack with the same shifts and noise level
    plain = cryocore.simulate(400, 128, snr=0.1, max_shift=10, rotate=False, seed=21)
    reg0 = cryocore.register(plain.template, plain.images)
    med_rot = np.median(np.hypot(*(reg.shifts - sim.shifts).T))
    med_0 = np.median(np.hypot(*(reg0.shifts - plain.shifts).T))
    assert med_rot <= 1.2 * med_0, (med_rot, med_0)


@pytest.mark.slow
def test_snr_002_median_angle_error():
    sim = cryocore.simulate(300, 128, snr=0.02, max_shift=10, rotate=True, seed=22)
    reg = cryocore.register(sim.template, sim.images, rotate=True)
    assert np.median(_angle_error(reg.angles, sim.angles)) <= 3.0


def test_chiral_hand_rotations_and_its_mirror():
    from pathlib import Path

    path = Path(__file__).parent / "data" / "hand" / "hand.mrcs"
    hand = cryocore.io.open_stack(path).read(0, 1)[0]
    angles = np.array([12.5, 133.0, 250.0, 301.7])
    shifts = np.array([[1.5, -2.0], [0.0, 3.25], [-2.5, -1.0], [2.0, 2.0]])
    imgs = cryocore.transform(np.repeat(hand[None], 4, 0), angles, shifts)
    reg = cryocore.register(hand, imgs, rotate=True)
    assert _angle_error(reg.angles, angles).max() <= 0.3
    assert np.abs(reg.shifts - shifts).max() <= 0.1
    # a mirrored hand is not a rotated hand: it matches clearly worse than the real ones
    mirrored = cryocore.register(hand, imgs[:, :, ::-1].copy(), rotate=True)
    assert mirrored.scores.max() < 0.99 < reg.scores.min()


def test_multi_reference_picks_the_right_reference_and_pose():
    from pathlib import Path

    hands = cryocore.io.open_stack(Path(__file__).parent / "data" / "hand" / "hand.mrcs").read(0, 40)
    refs = hands[[0, 20, 39]]
    rng = np.random.default_rng(5)
    which = rng.integers(0, 3, 12)
    angles = rng.uniform(0, 360, 12)
    shifts = rng.uniform(-3, 3, (12, 2))
    imgs = cryocore.transform(refs[which], angles, shifts)
    reg = cryocore.register(refs, imgs, rotate=True)
    assert np.array_equal(reg.reference_index, which)
    assert _angle_error(reg.angles, angles).max() <= 0.5


def test_rotation_results_do_not_depend_on_threads():
    sim = cryocore.simulate(30, 64, snr=0.2, max_shift=4, rotate=True, seed=23)
    a = cryocore.register(sim.template, sim.images, rotate=True, threads=1)
    b = cryocore.register(sim.template, sim.images, rotate=True, threads=3)
    assert np.array_equal(a.angles, b.angles) and np.array_equal(a.shifts, b.shifts)
    assert np.array_equal(a.scores, b.scores)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(angular_step=0.0), "angular_step"), (dict(angular_step=45.0), "angular_step"),
     (dict(phase_correlation=True), "phase_correlation")],
)
def test_bad_rotation_arguments(kwargs, match):
    t = make_template(32)
    with pytest.raises(ValueError, match=match):
        cryocore.register(t, t[None], rotate=True, **kwargs)


@pytest.mark.parametrize("shape", [(12, 12), (17, 17), (48, 80), (81, 50)])
@pytest.mark.parametrize("kwargs", [{}, dict(lowpass=0.3, highpass=0.05)])
def test_small_and_rectangular_boxes(shape, kwargs):
    # a random asymmetric blob pattern inside the box, rotated exactly by transform
    rng = np.random.default_rng(sum(shape))
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx].astype(float)
    ref = np.zeros(shape)
    r = 0.25 * min(shape)
    for _ in range(4):
        cy, cx = rng.uniform(-r, r, 2)
        ref += np.exp(-((y - ny // 2 - cy) ** 2 + (x - nx // 2 - cx) ** 2) / (2 * (0.08 * min(shape)) ** 2))
    angles = np.array([17.0, 123.0, 250.0])
    imgs = cryocore.transform(np.repeat(ref[None], 3, 0), angles, np.zeros((3, 2)))
    reg = cryocore.register(ref, imgs, rotate=True, **kwargs)
    assert _angle_error(reg.angles, angles).max() <= 1.0, reg.angles
    assert reg.scores.min() > 0.98


def test_prior_poses_give_a_local_search():
    from cryocore import _core

    sim = cryocore.simulate(120, 64, snr=0.3, max_shift=4, rotate=True, seed=24)
    t = sim.template[None].astype(np.float32)
    s, a, c, _ = _core.register_rotate(t, sim.images, threads=2)
    rng = np.random.default_rng(1)
    pa = a + rng.uniform(-3, 3, len(a))
    ps = s + rng.uniform(-0.5, 0.5, s.shape)
    pa[::5] = np.nan  # no prior: the global search
    s2, a2, c2, _ = _core.register_rotate(t, sim.images, threads=2, prior_angles=pa, prior_shifts=ps)
    # from a prior within 3 deg / 0.5 px the local search lands where the global one did
    # (but for the odd image whose noisy score has another local maximum nearby)
    same = (_angle_error(a2, a) <= 0.2) & (np.abs(s2 - s).max(axis=1) <= 0.1)
    assert same.mean() >= 0.95 and same[::5].all()  # no prior: the global search itself
    # a prior far off stays local: at most 16 one-degree steps away
    far = (a + 90.0) % 360.0
    _, a3, c3, _ = _core.register_rotate(t, sim.images, threads=2, prior_angles=far, prior_shifts=s)
    assert _angle_error(a3, far).max() <= 17.0
    assert np.median(c3) < np.median(c)
    with pytest.raises(ValueError, match="together"):
        _core.register_rotate(t, sim.images, prior_angles=pa)
    with pytest.raises(ValueError, match="prior_angles"):
        _core.register_rotate(t, sim.images, prior_angles=pa[:3], prior_shifts=ps)


def test_prepared_rotational_search_equals_register_rotate_across_chunks(rng):
    """RotationalSearch prepares the references once; chunk by chunk, on any thread count, it
    gives register_rotate's results bit for bit, priors included."""
    from cryocore import _core

    sim = cryocore.simulate(40, 64, snr=0.5, max_shift=4, rotate=True, seed=int(rng.integers(1 << 30)))
    ref = np.ascontiguousarray(sim.template, np.float32)[None]
    imgs = np.ascontiguousarray(sim.images, np.float32)
    want = _core.register_rotate(ref, imgs, threads=2, settings=_core.SearchSettings(lowpass=0.3))
    search = _core.RotationalSearch(ref, settings=_core.SearchSettings(lowpass=0.3))
    parts = [search.register(imgs[a:b], threads=t) for a, b, t in ((0, 13, 1), (13, 40, 3))]
    for k in range(4):
        assert np.array_equal(np.concatenate([p[k] for p in parts]), want[k])
    prior_a = np.where(rng.random(40) < 0.5, want[1], np.nan)
    prior_s = want[0].copy()
    a = _core.register_rotate(ref, imgs, prior_angles=prior_a, prior_shifts=prior_s, settings=_core.SearchSettings(lowpass=0.3))
    b = search.register(imgs, threads=2, prior_angles=prior_a, prior_shifts=prior_s)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # the poses are the simulated ones
    err = np.abs((want[1] - sim.angles + 180) % 360 - 180)
    assert np.median(err) < 2.0
    with pytest.raises(ValueError, match="references' box"):
        search.register(imgs[:, :32, :32])
    with pytest.raises(ValueError, match="go together"):
        search.register(imgs, prior_angles=prior_a)
    with pytest.raises(ValueError, match="angular_step"):
        _core.RotationalSearch(ref, angular_step=0.0)
    bad = ref.copy()
    bad[0, 3, 3] = np.inf
    with pytest.raises(ValueError, match="reference 0"):
        _core.RotationalSearch(bad)


def test_an_index_reads_a_subset_without_copying_it(rng):
    """RotationalSearch.register and accumulate with index= give the results of the copied subset."""
    from cryocore import _core

    sim = cryocore.simulate(40, 64, snr=1.0, max_shift=3, rotate=True, seed=8)
    idx = np.array([5, 0, 31, 7, 7, 12], np.int64)
    search = _core.RotationalSearch(sim.template[None], settings=_core.SearchSettings(lowpass=0.3))
    want = search.register(np.ascontiguousarray(sim.images[idx]), threads=2)
    got = search.register(sim.images, threads=2, index=idx)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)
    shifts, angles, weights = rng.normal(0, 2, (6, 2)), rng.uniform(0, 360, 6), rng.uniform(0.5, 2, 6)
    a, b = np.zeros((64, 64)), np.zeros((64, 64))
    _core.accumulate(np.ascontiguousarray(sim.images[idx]), shifts, weights, a, None, threads=2, angles=angles)
    _core.accumulate(sim.images, shifts, weights, b, None, threads=2, angles=angles, index=idx)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="out of range"):
        search.register(sim.images, index=np.array([40]))
    # a NaN image is refused where it counts, and left unread where its weight is 0
    bad = sim.images.copy()
    bad[31, 3, 3] = np.nan
    with pytest.raises(ValueError, match="image 31"):
        _core.accumulate(bad, shifts, weights, np.zeros((64, 64)), None, angles=angles, index=idx)
    w0 = weights.copy()
    w0[2] = 0.0
    _core.accumulate(bad, shifts, w0, np.zeros((64, 64)), None, angles=angles, index=idx)
