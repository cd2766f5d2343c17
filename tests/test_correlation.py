"""cryocore.correlation_maps and the Pearson scores of cryocore.register."""

from __future__ import annotations

import numpy as np
import pytest

import cryocore
from conftest import (
    DTYPES,
    SIZE_IDS,
    SIZES,
    bandpass,
    correlation_map,
    fourier_shift,
    pearson,
    rel_err,
    smooth_image,
    to_dtype,
)

FILTERS = [
    pytest.param({}, id="nofilter"),
    pytest.param({"lowpass": 0.25}, id="lp0.25"),
    pytest.param({"highpass": 0.05}, id="hp0.05"),
    pytest.param({"lowpass": 0.3, "highpass": 0.06, "filter_edge": 0.05}, id="band-edge0.05"),
    pytest.param({"lowpass": 0.2, "filter_edge": 0.0}, id="lp0.2-hardedge"),
]


def _stack(rng, shape, n=5, noise=0.5):
    """A reference and a stack of noisy shifted copies of it (float64)."""
    ref = smooth_image(rng, shape)
    shifts = rng.uniform(-10, 10, (n, 2))
    imgs = np.array([fourier_shift(ref, s) for s in shifts])
    imgs += noise * rng.standard_normal(imgs.shape)
    return ref, imgs, shifts


def _numpy_maps(ref, imgs, kw):
    kw = dict(kw)
    edge = kw.pop("filter_edge", 0.02)
    return np.array([correlation_map(ref, a, edge=edge, **kw) for a in imgs])


@pytest.mark.parametrize("kw", FILTERS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_maps_match_numpy_reference(rng, shape, dtype, kw):
    ref, imgs, _ = _stack(rng, shape)
    ref_in = to_dtype(ref, dtype)
    imgs_in = to_dtype(imgs, dtype)
    maps = cryocore.correlation_maps(ref_in, imgs_in, **kw)
    assert maps.shape == imgs.shape
    assert maps.dtype == np.float32
    expected = _numpy_maps(ref_in.astype(np.float64), imgs_in.astype(np.float64), kw)
    for m, e in zip(maps, expected):
        assert rel_err(m, e) < 1e-4


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_map_entries_are_real_space_pearson(rng, shape):
    """maps[y, x] is the plain Pearson correlation of the reference with the image moved back by (y, x)."""
    ref = rng.standard_normal(shape)
    img = rng.standard_normal(shape) + 0.5 * np.roll(ref, (4, -7), axis=(0, 1))
    maps = cryocore.correlation_maps(ref, img)
    ny, nx = shape
    for y, x in [(0, 0), (4, -7), (-4, 7), (1, 2), (ny // 2, nx // 2), (ny - 1, 3)]:
        moved_back = np.roll(img, (-y, -x), axis=(0, 1))
        assert maps[y % ny, x % nx] == pytest.approx(pearson(ref, moved_back), abs=2e-6)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_map_layout_peak_at_pose_shift(rng, shape):
    ref = rng.standard_normal(shape)
    dy, dx = 5, -3
    maps = cryocore.correlation_maps(ref, np.roll(ref, (dy, dx), axis=(0, 1)))
    iy, ix = np.unravel_index(np.argmax(maps), shape)
    assert (iy, ix) == (dy % shape[0], dx % shape[1])
    assert maps[iy, ix] == pytest.approx(1.0, abs=1e-5)


def test_maps_single_image_is_2d(rng):
    ref, imgs, _ = _stack(rng, (48, 80), n=2)
    one = cryocore.correlation_maps(ref, imgs[1])
    both = cryocore.correlation_maps(ref, imgs)
    assert one.shape == (48, 80)
    np.testing.assert_array_equal(one, both[1])


@pytest.mark.parametrize(
    "a, b", [(1e-3, 0.0), (2.5, -7.0), (1e3, -50.0), (0.01, 100.0), (37.0, 1e4), (1e6, 3.0)]
)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_scores_invariant_to_scale_and_offset(rng, shape, a, b):
    ref, imgs, _ = _stack(rng, shape, n=4, noise=0.8)
    base = cryocore.register(ref, imgs)
    base_maps = cryocore.correlation_maps(ref, imgs)
    scaled = cryocore.register(ref, a * imgs + b)
    np.testing.assert_allclose(scaled.scores, base.scores, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scaled.shifts, base.shifts, atol=2e-3, rtol=0)
    np.testing.assert_allclose(cryocore.correlation_maps(ref, a * imgs + b), base_maps, atol=2e-4)
    # and of the reference
    scaled_ref = cryocore.register(a * ref + b, imgs)
    np.testing.assert_allclose(scaled_ref.scores, base.scores, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scaled_ref.shifts, base.shifts, atol=2e-3, rtol=0)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_negative_scale_flips_map_sign(rng, shape):
    ref, imgs, _ = _stack(rng, shape, n=3)
    m = cryocore.correlation_maps(ref, imgs)
    np.testing.assert_allclose(cryocore.correlation_maps(ref, -2.0 * imgs + 1.0), -m, atol=1e-5)


@pytest.mark.parametrize("kw", FILTERS[:3])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_scores_and_maps_within_unit_interval(rng, shape, kw):
    ref, imgs, _ = _stack(rng, shape, n=6, noise=0.2)
    imgs[1] = -imgs[1]  # anti-correlated
    imgs[2] = ref  # perfectly correlated
    imgs[3] = -ref  # perfectly anti-correlated
    reg = cryocore.register(ref, imgs, **kw)
    assert np.all(np.isfinite(reg.scores))
    assert np.all(reg.scores <= 1.0) and np.all(reg.scores >= -1.0)
    maps = cryocore.correlation_maps(ref, imgs, **kw)
    # float32 maps may exceed 1 by rounding, never by more
    assert maps.max() <= 1.0 + 1e-6
    assert maps.min() >= -1.0 - 1e-6
    assert maps[3].min() == pytest.approx(-1.0, abs=1e-5)
    assert maps[3][0, 0] == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("kw", FILTERS[:4])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_self_correlation_is_one_at_zero_shift(rng, shape, kw):
    ref = smooth_image(rng, shape, sigma_f=0.15)
    reg = cryocore.register(ref, ref, **kw)
    assert reg.scores == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(reg.shifts, [0.0, 0.0], atol=1e-3)
    maps = cryocore.correlation_maps(ref, ref, **kw)
    assert maps[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(np.argmax(maps), shape) == (0, 0)


@pytest.mark.parametrize("value", [0.0, 7.0, -3.25, 1000.3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_constant_image_scores_zero(rng, shape, dtype, value):
    if np.dtype(dtype).kind in "iu":
        value = min(abs(round(value)), 255)
    ref, imgs, _ = _stack(rng, shape, n=4)
    imgs = imgs.astype(dtype) if np.dtype(dtype).kind == "f" else to_dtype(imgs, dtype)
    imgs[2] = value
    reg = cryocore.register(ref, imgs)
    assert not np.isnan(reg.scores).any() and not np.isnan(reg.shifts).any()
    assert reg.scores[2] == 0.0
    assert np.array_equal(reg.shifts[2], [0.0, 0.0])
    assert np.all(reg.scores[[0, 1, 3]] > 0.5)  # the others are unaffected
    maps = cryocore.correlation_maps(ref, imgs)
    assert not np.isnan(maps).any()
    assert np.array_equal(maps[2], np.zeros(shape, np.float32))
    # a constant reference
    flat_ref = np.full(shape, value, dtype)
    reg = cryocore.register(flat_ref, imgs)
    assert np.array_equal(reg.scores, np.zeros(4))
    assert np.array_equal(reg.shifts, np.zeros((4, 2)))
    assert np.array_equal(cryocore.correlation_maps(flat_ref, imgs), np.zeros((4,) + shape, np.float32))


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_constant_reference_is_never_chosen(rng, shape):
    ref, imgs, _ = _stack(rng, shape, n=4)
    refs = np.stack([np.full(shape, 5.0), ref, np.zeros(shape)])
    reg = cryocore.register(refs, imgs)
    assert np.array_equal(reg.reference_index, [1, 1, 1, 1])
    assert np.all(reg.scores > 0.5)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_phase_correlation_finds_shift_and_scores_pearson(rng, shape):
    ref = smooth_image(rng, shape)
    true = rng.uniform(-10, 10, (5, 2))
    imgs = np.array([fourier_shift(ref, s) for s in true])
    reg = cryocore.register(ref, imgs, phase_correlation=True)
    np.testing.assert_allclose(reg.shifts, true, atol=0.1)
    # the scores are still Pearson correlations (1 for noise-free copies)
    np.testing.assert_allclose(reg.scores, 1.0, atol=1e-3)
    maps = cryocore.correlation_maps(ref, imgs, phase_correlation=True)
    for m, s in zip(maps, true):
        iy, ix = np.unravel_index(np.argmax(m), shape)
        peak = np.array([iy if iy < shape[0] / 2 else iy - shape[0], ix if ix < shape[1] / 2 else ix - shape[1]])
        assert np.all(np.abs(peak - s) <= 1.0)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_score_is_pearson_of_aligned_image(rng, shape):
    """CONVENTIONS.md: the score is the Pearson correlation of the reference with the aligned image.

    The noise here is band-limited: for even sizes the Nyquist term of a
    sub-pixel shift is cos(pi d), which removes energy from the aligned image
    that the score's normalisation does not see (see the report); with no
    Nyquist content the two agree.
    """
    ref = smooth_image(rng, shape)
    true = rng.uniform(-8, 8, (6, 2))
    imgs = np.array([fourier_shift(ref, s) for s in true])
    imgs += 0.8 * smooth_image(rng, shape, sigma_f=0.2, n=6)
    reg = cryocore.register(ref, imgs)
    aligned = [pearson(ref, fourier_shift(a, -s)) for a, s in zip(imgs, reg.shifts)]
    np.testing.assert_allclose(reg.scores, aligned, atol=1e-4)


@pytest.mark.parametrize("shape", [(65, 65), (81, 51)], ids=["65x65", "81x51"])
def test_score_is_pearson_of_aligned_image_white_noise_odd(rng, shape):
    ref = smooth_image(rng, shape)
    true = rng.uniform(-8, 8, (6, 2))
    imgs = np.array([fourier_shift(ref, s) for s in true]) + 0.8 * rng.standard_normal((6,) + shape)
    reg = cryocore.register(ref, imgs)
    aligned = [pearson(ref, fourier_shift(a, -s)) for a, s in zip(imgs, reg.shifts)]
    np.testing.assert_allclose(reg.scores, aligned, atol=1e-5)


@pytest.mark.parametrize("band", [(0.25, None), (0.15, 0.03), (0.4, 0.1)], ids=["lp", "band", "wideband"])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_filtered_score_is_pearson_of_filtered_images(rng, shape, band):
    """With a band-pass, the score is the Pearson correlation of the filtered reference
    and the filtered aligned image (same H on both)."""
    lowpass, highpass = band
    ref = smooth_image(rng, shape, sigma_f=0.2)
    true = rng.uniform(-8, 8, (5, 2))
    imgs = np.array([fourier_shift(ref, s) for s in true]) + rng.standard_normal((5,) + shape)
    h = bandpass(shape, lowpass, highpass)

    def filt(a):
        return np.fft.ifft2(np.fft.fft2(a) * h).real

    reg = cryocore.register(ref, imgs, lowpass=lowpass, highpass=highpass)
    expected = [pearson(filt(ref), filt(fourier_shift(a, -s))) for a, s in zip(imgs, reg.shifts)]
    np.testing.assert_allclose(reg.scores, expected, atol=1e-5)
    unfiltered = [pearson(ref, fourier_shift(a, -s)) for a, s in zip(imgs, reg.shifts)]
    assert np.abs(np.array(unfiltered) - reg.scores).max() > 1e-3  # the filter matters here
