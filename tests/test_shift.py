"""cryocore.shift: exact Fourier shifts in the pose convention."""

from __future__ import annotations

import numpy as np
import pytest

import cryocore
from conftest import DTYPES, SIZE_IDS, SIZES, fourier_shift, rel_err, smooth_image, to_dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_matches_numpy_fourier_shift(rng, shape, dtype):
    imgs = to_dtype(rng.standard_normal((5,) + shape), dtype)  # white: Nyquist content included
    shifts = rng.uniform(-10, 10, (5, 2))
    shifts[0] = (0.5, -0.5)  # Nyquist factor cos(pi/2) = 0
    out = cryocore.shift(imgs, shifts)
    assert out.shape == imgs.shape and out.dtype == np.float32
    expected = np.array([fourier_shift(a, s) for a, s in zip(imgs.astype(np.float64), shifts)])
    scale = np.abs(imgs.astype(np.float64)).max()
    assert np.abs(out - expected).max() / scale < 1e-4


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_integer_shifts_are_np_roll(rng, shape):
    imgs = rng.standard_normal((6,) + shape)
    ny, nx = shape
    shifts = np.array([[3, -2], [-5, 7], [0, 0], [ny, -nx], [ny + 1, 2 * nx - 3], [-17, 23]], float)
    out = cryocore.shift(imgs, shifts)
    for o, a, s in zip(out, imgs, shifts.astype(int)):
        assert rel_err(o, np.roll(a, tuple(s), axis=(0, 1))) < 1e-4


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_round_trip_band_limited(rng, shape):
    imgs = smooth_image(rng, shape, n=6)
    s = rng.uniform(-12, 12, (6, 2))
    back = cryocore.shift(cryocore.shift(imgs, s), -s)
    assert rel_err(back, imgs) < 1e-4
    # not trivially: the intermediate is really moved
    assert rel_err(cryocore.shift(imgs, s), imgs) > 0.1


@pytest.mark.parametrize("shape", [(65, 65), (81, 51), (33, 9)], ids=["65x65", "81x51", "33x9"])
def test_round_trip_white_noise_odd_sizes(rng, shape):
    imgs = rng.standard_normal((6,) + shape)
    s = rng.uniform(-12, 12, (6, 2))
    back = cryocore.shift(cryocore.shift(imgs, s), -s)
    assert rel_err(back, imgs) < 1e-4


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (80, 48)], ids=["64x64", "48x80", "80x48"])
def test_even_size_nyquist_cos_rule(rng, shape):
    """Even sizes: the Nyquist term is multiplied by cos(pi d), so a half-pixel
    shift removes it and a round trip is not the identity there."""
    ny, nx = shape
    rows = np.cos(np.pi * np.arange(ny))[:, None] * np.ones((1, nx))  # (-1)^y: Nyquist along y only
    cols = np.ones((ny, 1)) * np.cos(np.pi * np.arange(nx))[None, :]
    out = cryocore.shift(np.stack([rows, cols]), [[0.5, 0.0], [0.0, 0.5]])
    assert np.abs(out).max() < 1e-5
    out = cryocore.shift(np.stack([rows, cols]), [[1.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(out, -np.stack([rows, cols]), atol=1e-5)
    out = cryocore.shift(np.stack([rows, cols]), [[0.25, 0.7], [-2.2, 1.0 / 3.0]])
    np.testing.assert_allclose(out[0], np.cos(np.pi * 0.25) * rows, atol=1e-5)
    np.testing.assert_allclose(out[1], np.cos(np.pi / 3.0) * cols, atol=1e-5)
    # round trip on white noise equals the numpy round trip (cos^2 at Nyquist)
    img = rng.standard_normal(shape)
    s = (0.3, -0.6)
    back = cryocore.shift(cryocore.shift(img, s), (-s[0], -s[1]))
    expected = fourier_shift(fourier_shift(img, s), (-s[0], -s[1]))
    assert rel_err(back, expected) < 1e-4


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_content_moves_to_larger_indices(rng, shape):
    ny, nx = shape
    cy, cx = ny // 2, nx // 2
    y = np.arange(ny)[:, None] - cy
    x = np.arange(nx)[None, :] - cx
    blob = np.exp(-(y**2 + x**2) / (2 * 2.0**2))
    out = cryocore.shift(blob, (3.0, -2.0))
    assert np.unravel_index(np.argmax(out), shape) == (cy + 3, cx - 2)
    # sub-pixel: the centroid moves by exactly (dy, dx)
    for d in [(0.3, -0.7), (-4.25, 2.5), (1.0 / 3.0, 0.0)]:
        out = cryocore.shift(blob, d).astype(np.float64)
        total = out.sum()
        centroid = ((out * y).sum() / total, (out * x).sum() / total)
        np.testing.assert_allclose(centroid, d, atol=1e-4)


@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_single_image_and_zero_shift(rng, shape):
    img = rng.standard_normal(shape)
    one = cryocore.shift(img, (1.5, -2.25))
    assert one.shape == shape and one.dtype == np.float32
    np.testing.assert_array_equal(one, cryocore.shift(img[None], [[1.5, -2.25]])[0])
    np.testing.assert_allclose(cryocore.shift(img, (0.0, 0.0)), img, atol=1e-5)
    # shifting is linear
    other = rng.standard_normal(shape)
    s = (0.7, 3.3)
    lhs = cryocore.shift(2.0 * img - other, s)
    rhs = 2.0 * cryocore.shift(img, s) - cryocore.shift(other, s)
    assert rel_err(lhs, rhs) < 1e-5


def test_composition_of_shifts(rng):
    imgs = smooth_image(rng, (48, 80), n=3)
    a = rng.uniform(-5, 5, (3, 2))
    b = rng.uniform(-5, 5, (3, 2))
    two_steps = cryocore.shift(cryocore.shift(imgs, a), b)
    one_step = cryocore.shift(imgs, a + b)
    assert rel_err(two_steps, one_step) < 1e-4


def test_input_not_modified(rng):
    imgs = rng.standard_normal((3, 40, 44)).astype(np.float32)
    copy = imgs.copy()
    cryocore.shift(imgs, rng.uniform(-3, 3, (3, 2)))
    np.testing.assert_array_equal(imgs, copy)
