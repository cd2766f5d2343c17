"""cryocore.register: shifts, sign convention, search radius, filters, references."""

from __future__ import annotations

import numpy as np
import pytest

import cryocore
from conftest import DTYPES, SIZE_IDS, SIZES, fourier_shift, smooth_image, to_dtype


def _shifted_stack(rng, ref, n, max_shift=10.0):
    true = rng.uniform(-max_shift, max_shift, (n, 2))
    return np.array([fourier_shift(ref, s) for s in true]), true


@pytest.mark.parametrize("upsample", [1, 10, 20, 50])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_subpixel_shifts_recovered(rng, shape, dtype, upsample):
    ref = smooth_image(rng, shape)
    imgs, true = _shifted_stack(rng, ref, 12)
    reg = cryocore.register(to_dtype(ref, dtype), to_dtype(imgs, dtype), upsample=upsample)
    assert reg.shifts.shape == (12, 2) and reg.shifts.dtype == np.float64
    assert reg.scores.shape == (12,) and reg.scores.dtype == np.float64
    assert np.array_equal(reg.reference_index, np.zeros(12))
    tol = 0.6 / upsample
    err = np.abs(reg.shifts - true)
    assert err.max() < tol, f"max error {err.max():.4f} px, tolerance {tol:.4f}"
    assert reg.scores.min() > (0.999 if np.dtype(dtype).itemsize > 1 else 0.99)


@pytest.mark.parametrize("upsample", [1, 20])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_sign_convention(rng, shape, upsample):
    """An image that is the reference moved by (+3, -2) gives the pose shift (+3, -2)."""
    smooth = smooth_image(rng, shape)
    reg = cryocore.register(smooth, fourier_shift(smooth, (3.0, -2.0)), upsample=upsample)
    np.testing.assert_allclose(reg.shifts, [3.0, -2.0], atol=0.05)
    # integer moves with np.roll on white noise (no interpolation at all)
    white = rng.standard_normal(shape)
    for d in [(3, -2), (-5, 7), (0, 11), (-9, 0)]:
        reg = cryocore.register(white, np.roll(white, d, axis=(0, 1)), upsample=upsample)
        np.testing.assert_allclose(reg.shifts, d, atol=1e-3)
        assert reg.scores == pytest.approx(1.0, abs=1e-5)
    # and cryocore.shift moves the same way
    moved = cryocore.shift(smooth, (3.0, -2.0))
    np.testing.assert_allclose(cryocore.register(smooth, moved).shifts, [3.0, -2.0], atol=1e-3)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_max_shift_restricts_search(rng, shape):
    """A stronger decoy copy far away wins without max_shift, loses with it."""
    ref = smooth_image(rng, shape, sigma_f=0.15)
    near, far = np.array([2.4, 3.1]), np.array([15.2, -19.6])
    img = fourier_shift(ref, near) + 1.5 * fourier_shift(ref, far)
    free = cryocore.register(ref, img)
    np.testing.assert_allclose(free.shifts, far, atol=0.5)
    limited = cryocore.register(ref, img, max_shift=8)
    np.testing.assert_allclose(limited.shifts, near, atol=0.5)
    assert limited.scores < free.scores
    # a radius that reaches the decoy finds it again (|far| = 24.8 px)
    if min(shape) / 2 >= 24.9:
        wide = cryocore.register(ref, img, max_shift=24.9)
        np.testing.assert_allclose(wide.shifts, far, atol=0.5)


@pytest.mark.parametrize("max_shift", [0.0, 1.5])
@pytest.mark.parametrize("upsample", [1, 20])
@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)], ids=["64x64", "65x65", "48x80"])
def test_max_shift_is_a_hard_bound(rng, shape, upsample, max_shift):
    """The true peak lies just outside the search radius, on a broad correlation peak:
    the returned shift must still lie inside the radius (the best shift *within* it)."""
    ref = smooth_image(rng, shape, sigma_f=0.03)
    img = fourier_shift(ref, (3.3, 1.4))
    reg = cryocore.register(ref, img, max_shift=max_shift, upsample=upsample)
    assert np.hypot(*reg.shifts) <= max_shift + 1e-9


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_max_shift_inside_radius_unchanged(rng, shape):
    ref = smooth_image(rng, shape)
    imgs, true = _shifted_stack(rng, ref, 8, max_shift=6.0)
    free = cryocore.register(ref, imgs)
    limited = cryocore.register(ref, imgs, max_shift=min(shape) / 2)
    limited9 = cryocore.register(ref, imgs, max_shift=9.0)
    np.testing.assert_allclose(limited.shifts, free.shifts, atol=1e-9)
    np.testing.assert_allclose(limited9.shifts, true, atol=0.03)


@pytest.mark.parametrize("upsample", [1, 20])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_lowpass_gives_same_shifts_on_smooth_images(rng, shape, upsample):
    ref = smooth_image(rng, shape)
    imgs, true = _shifted_stack(rng, ref, 10)
    plain = cryocore.register(ref, imgs, upsample=upsample)
    for kw in ({"lowpass": 0.25}, {"lowpass": 0.25, "highpass": 0.02}, {"lowpass": 0.4}):
        filt = cryocore.register(ref, imgs, upsample=upsample, **kw)
        tol = 0.6 / upsample
        np.testing.assert_allclose(filt.shifts, plain.shifts, atol=tol)
        np.testing.assert_allclose(filt.shifts, true, atol=tol)
        assert filt.scores.min() > 0.99


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_multiple_references_pick_the_right_one(rng, shape):
    refs = smooth_image(rng, shape, n=3)
    k = np.tile([0, 1, 2], 5)
    rng.shuffle(k)
    true = rng.uniform(-10, 10, (k.size, 2))
    imgs = np.array([fourier_shift(refs[j], s) for j, s in zip(k, true)])
    imgs += 0.7 * rng.standard_normal(imgs.shape)
    reg = cryocore.register(refs, imgs)
    np.testing.assert_array_equal(reg.reference_index, k)
    np.testing.assert_allclose(reg.shifts, true, atol=0.2)
    # the reported score and shift are those of the chosen reference alone
    singles = [cryocore.register(r, imgs) for r in refs]
    best = np.max([s.scores for s in singles], axis=0)
    np.testing.assert_allclose(reg.scores, best, atol=1e-6)
    chosen = np.array([singles[j].shifts[i] for i, j in enumerate(k)])
    np.testing.assert_allclose(reg.shifts, chosen, atol=1e-6)


@pytest.mark.slow
def test_simulated_ground_truth():
    snr = 0.1
    sim = cryocore.simulate(300, size=128, snr=snr, rotate=False, seed=11)
    reg = cryocore.register(sim.template, sim.images)
    err = np.hypot(*(reg.shifts - sim.shifts).T)
    assert np.median(err) < 0.5
    assert np.percentile(err, 95) < 1.5
    assert np.median(reg.scores) == pytest.approx(np.sqrt(snr / (1 + snr)), abs=0.05)
    assert np.array_equal(reg.reference_index, np.zeros(300))


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_agrees_with_skimage_with_opposite_sign(rng, shape):
    registration = pytest.importorskip("skimage.registration")
    ref = smooth_image(rng, shape)
    imgs, true = _shifted_stack(rng, ref, 5)
    imgs += 0.5 * rng.standard_normal(imgs.shape)
    reg = cryocore.register(ref, imgs, upsample=20)
    for img, ours, t in zip(imgs, reg.shifts, true):
        theirs, _, _ = registration.phase_cross_correlation(
            ref, img, upsample_factor=20, normalization=None
        )
        # scikit-image returns the correction to apply: minus the pose
        np.testing.assert_allclose(ours, -np.asarray(theirs), atol=0.1)
        np.testing.assert_allclose(ours, t, atol=0.2)


def test_agrees_with_skimage_on_simulated_particles():
    registration = pytest.importorskip("skimage.registration")
    sim = cryocore.simulate(6, size=128, snr=0.1, rotate=False, seed=5)
    reg = cryocore.register(sim.template, sim.images)
    for img, ours in zip(sim.images, reg.shifts):
        theirs, _, _ = registration.phase_cross_correlation(
            sim.template, img, upsample_factor=20, normalization=None
        )
        np.testing.assert_allclose(ours, -np.asarray(theirs), atol=0.1)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_single_image_and_reference_forms(rng, shape):
    ref = smooth_image(rng, shape)
    imgs, true = _shifted_stack(rng, ref, 3)
    stack = cryocore.register(ref, imgs)
    one = cryocore.register(ref, imgs[1])
    assert one.shifts.shape == (2,)
    assert np.ndim(one.scores) == 0 and np.ndim(one.reference_index) == 0
    assert len(one) == 1 and len(stack) == 3
    np.testing.assert_array_equal(one.shifts, stack.shifts[1])
    assert one.scores == stack.scores[1]
    # a (1, ny, nx) reference is the same as (ny, nx)
    ref3 = cryocore.register(ref[None], imgs)
    np.testing.assert_array_equal(ref3.shifts, stack.shifts)
    np.testing.assert_array_equal(ref3.scores, stack.scores)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_non_contiguous_and_byteswapped_inputs(rng, shape):
    ref = smooth_image(rng, shape)
    imgs, _ = _shifted_stack(rng, ref, 4)
    base = cryocore.register(ref, imgs.astype(np.float32))
    fortran = np.asfortranarray(imgs.astype(np.float32))
    strided = np.repeat(imgs.astype(np.float32), 2, axis=0)[::2]  # a view with a stride
    swapped = imgs.astype(">f4")
    for variant in (fortran, strided, swapped):
        r = cryocore.register(ref, variant)
        np.testing.assert_array_equal(r.shifts, base.shifts)
        np.testing.assert_array_equal(r.scores, base.scores)
    reversed_view = imgs[:, ::-1, ::-1]
    r = cryocore.register(ref[::-1, ::-1], reversed_view)
    np.testing.assert_allclose(r.shifts, -base.shifts, atol=1e-3)


def test_inputs_not_modified(rng):
    ref = smooth_image(rng, (48, 80)).astype(np.float32)
    imgs, _ = _shifted_stack(rng, ref, 3)
    imgs = imgs.astype(np.float32)
    ref_copy, imgs_copy = ref.copy(), imgs.copy()
    cryocore.register(ref, imgs, lowpass=0.3, highpass=0.02)
    cryocore.correlation_maps(ref, imgs)
    np.testing.assert_array_equal(ref, ref_copy)
    np.testing.assert_array_equal(imgs, imgs_copy)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_large_moves_wrap_into_the_box(rng, shape):
    """Shifts are circular: a move beyond half the box is reported wrapped, |dy| <= ny/2."""
    ny, nx = shape
    white = rng.standard_normal(shape)
    for d in [(ny // 2 + 3, -(nx // 2) - 4), (ny - 1, 1), (2 * ny + 2, -3 * nx - 5)]:
        reg = cryocore.register(white, np.roll(white, d, axis=(0, 1)))
        wrapped = [(d[0] + ny // 2) % ny - ny // 2, (d[1] + nx // 2) % nx - nx // 2]
        np.testing.assert_allclose(reg.shifts, wrapped, atol=1e-3)
        assert abs(reg.shifts[0]) <= ny / 2 and abs(reg.shifts[1]) <= nx / 2


@pytest.mark.parametrize("kw", [{}, dict(lowpass=0.2), dict(upsample=1), dict(full_search=True),
                                dict(rotate=True)])
@pytest.mark.parametrize("offset", [0, 1])
def test_register_never_writes_its_inputs(kw, offset):
    # FFTW reads aligned images in place (out-of-place r2c preserves its input):
    # the caller's arrays must come back bit-identical, aligned (offset 0) or not
    rng = np.random.default_rng(7)
    buf = rng.standard_normal(6 * 48 * 48 + 1).astype(np.float32)
    imgs = buf[offset:offset + 6 * 48 * 48].reshape(6, 48, 48)
    ref = imgs[0].copy()
    before, ref_before = imgs.copy(), ref.copy()
    cryocore.register(ref, imgs, **kw)
    assert np.array_equal(imgs, before) and np.array_equal(ref, ref_before)


def test_search_settings_are_one_type_taken_by_every_search():
    from cryocore import _core

    s = _core.SearchSettings(upsample=5, max_shift=3.0, lowpass=0.2)
    assert (s.upsample, s.max_shift, s.lowpass, s.highpass, s.phase, s.crop, s.coarse) == (5, 3.0, 0.2, None, False,
                                                                                          True, True)
    assert "upsample=5" in repr(s) and "lowpass=0.2" in repr(s)
    d = _core.SearchSettings()
    assert d.upsample == 20 and d.max_shift is None and d.lowpass is None and d.edge == 0.02
    for bad in (dict(upsample=0), dict(max_shift=-1.0), dict(lowpass=0.7), dict(edge=-0.1)):
        with pytest.raises(ValueError):
            _core.SearchSettings(**bad)
    sim = cryocore.simulate(20, 64, snr=2.0, max_shift=5, rotate=False, seed=2)
    ref = sim.template[None]
    a = _core.register_stack(ref, sim.images, s, threads=2)
    assert np.all(np.hypot(*a[0].T) <= 3.0 + 1e-9)  # max_shift taken from the settings
    b = cryocore.register(sim.template, sim.images, upsample=5, max_shift=3.0, lowpass=0.2)
    np.testing.assert_array_equal(a[0], b.shifts)
    with pytest.raises(ValueError, match="phase"):
        _core.RotationalSearch(ref, _core.SearchSettings(phase=True))
    with pytest.raises(ValueError, match="max_shift"):
        _core.register_stack(ref, sim.images, _core.SearchSettings(max_shift=40.0))  # beyond half the box
