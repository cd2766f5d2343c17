"""preprocess: background normalisation, contrast inversion, hot pixels, Fourier cropping."""

import numpy as np
import pytest

import cryocore
from cryocore.preprocess import background_mask, binned_shape, preprocess


def test_background_gets_zero_mean_and_unit_deviation(rng):
    imgs = (rng.normal(5.0, 3.0, (4, 64, 64)) + np.linspace(0, 1, 64)).astype(np.float32)
    out, apix = preprocess(imgs, pixel_size_A=1.5, particle_diameter_A=60.0, hot_pixel_sigma=None)
    bg = background_mask((64, 64), 20.0)
    assert apix == 1.5 and out.shape == imgs.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[:, bg].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, bg].std(axis=1), 1.0, atol=1e-5)
    # a linear map of each image: the particle region follows the same map
    a = (imgs[0] - imgs[0][bg].mean()) / imgs[0][bg].std()
    np.testing.assert_allclose(out[0], a, atol=1e-4)


def test_contrast_inversion_and_hot_pixels(rng):
    imgs = rng.normal(0.0, 1.0, (3, 48, 48)).astype(np.float32)
    imgs[1, 2, 3] = 1000.0  # a hot pixel in the background
    imgs[2, 24, 24] = -800.0  # and a dead one in the particle
    out, _ = preprocess(imgs, pixel_size_A=1.0, particle_diameter_A=30.0, invert_contrast=True, hot_pixel_sigma=5.0)
    assert np.abs(out).max() < 8.0
    kept, _ = preprocess(imgs, pixel_size_A=1.0, particle_diameter_A=30.0, hot_pixel_sigma=None, normalize=False)
    np.testing.assert_array_equal(kept, imgs)
    inv, _ = preprocess(imgs, pixel_size_A=1.0, particle_diameter_A=30.0, invert_contrast=True, hot_pixel_sigma=None,
                        normalize=False)
    np.testing.assert_array_equal(inv, -imgs)


def test_fourier_cropping_is_band_limited_resampling():
    """A stack of low-frequency cosines binned 2x is the same cosines sampled on the coarser grid."""
    ny, nx = 64, 96
    y, x = np.mgrid[0:ny, 0:nx]
    imgs = np.stack([np.cos(2 * np.pi * (3 * x / nx + 2 * y / ny)) + 0.5,
                     np.sin(2 * np.pi * (5 * x / nx - 4 * y / ny))]).astype(np.float32)
    out, apix = preprocess(imgs, pixel_size_A=1.0, target_pixel_size_A=2.0, normalize=False, hot_pixel_sigma=None)
    assert out.shape == (2, 32, 48) and apix == pytest.approx(2.0)
    my, mx = 32, 48
    yy, xx = np.mgrid[0:my, 0:mx]
    want = np.stack([np.cos(2 * np.pi * (3 * xx / mx + 2 * yy / my)) + 0.5,
                     np.sin(2 * np.pi * (5 * xx / mx - 4 * yy / my))])
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert binned_shape((128, 128), 1.0, 3.0) == (42, 42)


def test_binning_keeps_the_particle(rng):
    sim = cryocore.simulate(1, 128, snr=np.inf, max_shift=0, rotate=False, psf_sigma=(2.0, 2.0), seed=0)
    out, apix = preprocess(sim.images, pixel_size_A=1.0, target_pixel_size_A=2.0, normalize=False,
                           hot_pixel_sigma=None)
    small = sim.images[0].reshape(64, 2, 64, 2).mean(axis=(1, 3))  # box-average binning, for comparison
    assert np.corrcoef(out[0].ravel(), small.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("kw, word", [
    (dict(pixel_size_A=0.0), "pixel_size_A"),
    (dict(pixel_size_A=2.0, target_pixel_size_A=1.0), "target_pixel_size_A"),
    (dict(pixel_size_A=1.0, particle_diameter_A=200.0), "no background"),
    (dict(pixel_size_A=1.0, particle_diameter_A=-5.0), "particle_diameter_A"),
    (dict(pixel_size_A=1.0, hot_pixel_sigma=0.0), "hot_pixel_sigma"),
])
def test_bad_arguments(rng, kw, word):
    with pytest.raises(ValueError, match=word):
        preprocess(rng.standard_normal((2, 64, 64)), **kw)
    with pytest.raises(ValueError, match="NaN"):
        bad = rng.standard_normal((2, 32, 32))
        bad[1, 3, 3] = np.nan
        preprocess(bad, pixel_size_A=1.0)
