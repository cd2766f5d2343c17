"""cryocore.Accumulator: weighted running mean and variance of aligned images."""

from __future__ import annotations

import numpy as np
import pytest

import cryocore
from conftest import DTYPES, SIZE_IDS, SIZES, fourier_shift, rel_err, smooth_image, to_dtype


def _numpy_stats(imgs, shifts=None, weights=None):
    """Weighted mean and population variance of the images moved back by their shifts."""
    imgs = np.asarray(imgs, np.float64)
    if shifts is not None:
        imgs = np.array([fourier_shift(a, -np.asarray(s)) for a, s in zip(imgs, shifts)])
    w = np.ones(len(imgs)) if weights is None else np.asarray(weights, np.float64)
    mean = np.tensordot(w, imgs, axes=1) / w.sum()
    var = np.tensordot(w, (imgs - mean) ** 2, axes=1) / w.sum()
    return mean, var, np.tensordot(w, imgs, axes=1), np.tensordot(w, imgs**2, axes=1)


def _data(rng, shape, n, dtype=np.float64):
    imgs = to_dtype(rng.standard_normal((n,) + shape) + 0.5, dtype)
    return imgs, rng.uniform(-6, 6, (n, 2)), rng.uniform(0.1, 2.0, n)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_shifts_and_weights_match_numpy(rng, shape, dtype):
    imgs, shifts, weights = _data(rng, shape, 11, dtype)  # 11: not a multiple of the chunk size
    acc = cryocore.Accumulator(shape)
    assert acc.add(imgs, shifts, weights) is acc
    mean, var, s, sq = _numpy_stats(imgs, shifts, weights)
    assert acc.count == 11
    assert acc.weight == pytest.approx(weights.sum(), rel=1e-12)
    assert acc.sum.dtype == np.float64 and acc.sum_sq.dtype == np.float64
    assert acc.mean().shape == shape and acc.mean().dtype == np.float64
    assert rel_err(acc.sum, s) < 1e-5
    assert rel_err(acc.sum_sq, sq) < 1e-5
    assert rel_err(acc.mean(), mean) < 1e-5
    assert rel_err(acc.variance(), var) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_without_shifts_is_plain_weighted_mean(rng, shape, dtype):
    imgs, _, weights = _data(rng, shape, 13, dtype)
    x = imgs.astype(np.float32).astype(np.float64)  # what the core sees
    acc = cryocore.Accumulator(shape).add(imgs, weights=weights)
    mean = np.average(x, axis=0, weights=weights)
    var = np.average((x - mean) ** 2, axis=0, weights=weights)
    assert rel_err(acc.mean(), mean) < 1e-10
    assert rel_err(acc.variance(), var) < 1e-5
    plain = cryocore.Accumulator(shape).add(imgs)
    assert plain.weight == 13.0 and plain.count == 13
    assert rel_err(plain.mean(), x.mean(axis=0)) < 1e-10
    assert rel_err(plain.variance(), x.var(axis=0)) < 1e-5


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_merge_equals_single_accumulator(rng, shape):
    imgs, shifts, weights = _data(rng, shape, 20)
    whole = cryocore.Accumulator(shape).add(imgs, shifts, weights)
    a = cryocore.Accumulator(shape).add(imgs[:7], shifts[:7], weights[:7])
    b = cryocore.Accumulator(shape).add(imgs[7:], shifts[7:], weights[7:])
    a_sum = a.sum.copy()
    merged = a + b
    assert merged is not a and merged is not b
    np.testing.assert_array_equal(a.sum, a_sum)  # operands untouched
    assert merged.count == 20 and merged.weight == pytest.approx(whole.weight, rel=1e-14)
    np.testing.assert_allclose(merged.sum, whole.sum, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.sum_sq, whole.sum_sq, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.mean(), whole.mean(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.variance(), whole.variance(), rtol=1e-10, atol=1e-12)
    # an empty accumulator is the identity
    empty = cryocore.Accumulator(shape)
    for m in (whole + empty, empty + whole):
        np.testing.assert_array_equal(m.sum, whole.sum)
        assert m.count == whole.count and m.weight == whole.weight


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_chunked_adds_equal_one_add(rng, shape):
    imgs, shifts, weights = _data(rng, shape, 21)
    one = cryocore.Accumulator(shape).add(imgs, shifts, weights)
    chunked = cryocore.Accumulator(shape)
    for lo, hi in [(0, 1), (1, 4), (4, 12), (12, 13), (13, 21)]:
        chunked.add(imgs[lo:hi], shifts[lo:hi], weights[lo:hi])
    assert chunked.count == 21
    np.testing.assert_allclose(chunked.sum, one.sum, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(chunked.sum_sq, one.sum_sq, rtol=1e-12, atol=1e-12)
    assert chunked.weight == pytest.approx(one.weight, rel=1e-14)
    # single 2D images with (2,) shifts and scalar weights
    singles = cryocore.Accumulator(shape)
    for a, s, w in zip(imgs, shifts, weights):
        singles.add(a, s, w)
    np.testing.assert_allclose(singles.sum, one.sum, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(singles.sum_sq, one.sum_sq, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_order_independence(rng, shape):
    imgs, shifts, weights = _data(rng, shape, 19)
    acc = cryocore.Accumulator(shape).add(imgs, shifts, weights)
    p = rng.permutation(19)
    perm = cryocore.Accumulator(shape).add(imgs[p], shifts[p], weights[p])
    np.testing.assert_allclose(perm.sum, acc.sum, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(perm.sum_sq, acc.sum_sq, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(perm.variance(), acc.variance(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_zero_weight_images_contribute_nothing(rng, shape):
    imgs, shifts, weights = _data(rng, shape, 10)
    weights[[2, 5, 9]] = 0.0
    imgs[[2, 5, 9]] = 1e6 * rng.standard_normal((3,) + shape)  # would dominate if added
    acc = cryocore.Accumulator(shape).add(imgs, shifts, weights)
    keep = weights > 0
    ref = cryocore.Accumulator(shape).add(imgs[keep], shifts[keep], weights[keep])
    assert acc.count == 10 and ref.count == 7
    assert acc.weight == pytest.approx(ref.weight, rel=1e-14)
    np.testing.assert_allclose(acc.sum, ref.sum, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acc.sum_sq, ref.sum_sq, rtol=1e-12, atol=1e-12)


def test_all_zero_weights_give_zero_mean_and_variance(rng):
    imgs, shifts, _ = _data(rng, (40, 36), 4)
    acc = cryocore.Accumulator((40, 36)).add(imgs, shifts, np.zeros(4))
    assert acc.count == 4 and acc.weight == 0.0
    assert np.array_equal(acc.mean(), np.zeros((40, 36)))
    assert np.array_equal(acc.variance(), np.zeros((40, 36)))
    fresh = cryocore.Accumulator((40, 36))
    assert fresh.count == 0 and fresh.weight == 0.0
    assert np.array_equal(fresh.mean(), np.zeros((40, 36)))


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_variance_of_identical_images_is_zero(rng, shape):
    img = rng.standard_normal(shape) * 100 + 1000
    acc = cryocore.Accumulator(shape).add(np.stack([img] * 5), weights=rng.uniform(0.5, 1.5, 5))
    v = acc.variance()
    assert np.all(v >= 0.0)
    assert v.max() < 1e-6 * (img**2).max()
    np.testing.assert_allclose(acc.mean(), img.astype(np.float32), rtol=1e-12)


@pytest.mark.parametrize("bad", ["nan", "inf", "weights"])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_failed_add_leaves_accumulator_unchanged(rng, shape, bad):
    imgs, shifts, weights = _data(rng, shape, 12)
    acc = cryocore.Accumulator(shape).add(imgs[:5], shifts[:5], weights[:5])
    before = (acc.sum.copy(), acc.sum_sq.copy(), acc.weight, acc.count)
    more = imgs[5:].copy()
    w = weights[5:].copy()
    if bad == "weights":
        w[3] = -1.0
        match = "weights"
    else:
        more[3, 2, 1] = np.nan if bad == "nan" else np.inf
        match = "image 3"
    with pytest.raises(ValueError, match=match):
        acc.add(more, shifts[5:], w)
    with pytest.raises(ValueError, match=match):
        acc.add(more, None, w)
    np.testing.assert_array_equal(acc.sum, before[0])
    np.testing.assert_array_equal(acc.sum_sq, before[1])
    assert acc.weight == before[2] and acc.count == before[3]
    # still usable afterwards
    acc.add(imgs[5:], shifts[5:], weights[5:])
    whole = cryocore.Accumulator(shape).add(imgs, shifts, weights)
    np.testing.assert_allclose(acc.sum, whole.sum, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_registered_shifts_align_onto_reference(rng, shape):
    """register gives the pose; Accumulator applies its inverse: the average lands on the reference."""
    ref = smooth_image(rng, shape, sigma_f=0.2)
    true = rng.uniform(-8, 8, (16, 2))
    imgs = np.array([fourier_shift(ref, s) for s in true]) + 0.5 * rng.standard_normal((16,) + shape)
    reg = cryocore.register(ref, imgs)
    aligned = cryocore.Accumulator(shape).add(imgs, reg.shifts).mean()
    unaligned = cryocore.Accumulator(shape).add(imgs).mean()
    wrong_sign = cryocore.Accumulator(shape).add(imgs, -reg.shifts).mean()
    corr = lambda a: np.corrcoef(a.ravel(), ref.ravel())[0, 1]  # noqa: E731
    assert corr(aligned) > 0.95
    assert corr(unaligned) < 0.6
    assert corr(wrong_sign) < 0.6


def test_inputs_not_modified(rng):
    imgs, shifts, weights = _data(rng, (32, 40), 5, np.float32)
    copies = imgs.copy(), shifts.copy(), weights.copy()
    cryocore.Accumulator((32, 40)).add(imgs, shifts, weights)
    for a, b in zip((imgs, shifts, weights), copies):
        np.testing.assert_array_equal(a, b)
