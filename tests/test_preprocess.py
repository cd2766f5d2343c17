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


def test_align_bins_for_speed_and_reports_in_the_input_units():
    """target_pixel_size_A: the run works on 32 px images, the result is in the input's 64 px:
    shifts in input pixels (checked against the truth), averages of the input's box, FRC and
    pixel size of the input."""
    sim = cryocore.simulate(300, 64, snr=1.0, max_shift=5, rotate=False, seed=4, pixel_size_A=1.0)
    res = cryocore.align(sim.images, sim.template, rotate=False, pixel_size_A=1.0, target_pixel_size_A=2.0,
                         progress=False, iterations=4)
    pre = res.parameters["preprocessing"]
    assert pre["working_box"] == [32, 32] and pre["working_pixel_size_A"] == pytest.approx(2.0)
    assert res.average.shape == (64, 64) and res.half_averages.shape == (2, 64, 64)
    assert res.pixel_size_A == pytest.approx(1.0) and len(res.frc.frequencies) == 33
    # poses refer to the (recentred) average: the true shifts in input pixels (slope 1) but for
    # a common offset, as an unbinned run's
    full = cryocore.align(sim.images, sim.template, rotate=False, pixel_size_A=1.0, progress=False, iterations=4)
    for axis in (0, 1):
        slope = np.polyfit(sim.shifts[:, axis], res.shifts[:, axis], 1)[0]
        assert slope == pytest.approx(1.0, abs=0.02)
    d = res.shifts - sim.shifts
    assert np.median(np.hypot(*(d - np.median(d, axis=0)).T)) < 0.3
    d = res.shifts - full.shifts
    assert np.median(np.hypot(*(d - np.median(d, axis=0)).T)) < 0.1
    # the final averages come from the input's images: as good as the unbinned run's, with
    # detail beyond the binned Nyquist frequency (0.25 cycles/input px)
    def fit(avg):
        f = cryocore.register(sim.template, avg, upsample=50)
        moved = cryocore.transform(avg, 0.0, f.shifts, inverse=True)
        return np.corrcoef(moved.ravel(), sim.template.ravel())[0, 1]

    assert fit(res.average) > 0.9 and fit(res.average) > fit(full.average) - 0.01
    spec = np.abs(np.fft.rfft2(res.average))
    assert spec[20:44, :].max() > 1e-3 * spec.max()


def test_align_inverts_black_particles_and_normalises_by_default():
    sim = cryocore.simulate(200, 64, snr=0.5, max_shift=4, rotate=False, seed=5)
    kw = dict(rotate=False, progress=False, iterations=3)
    white = cryocore.align(sim.images, sim.template, **kw)
    black = cryocore.align(-sim.images, sim.template, invert_contrast=True, **kw)
    np.testing.assert_allclose(black.shifts, white.shifts, atol=1e-6)
    np.testing.assert_allclose(black.average, white.average, atol=1e-5)
    assert white.parameters["preprocessing"]["normalize"] is True
    # normalised: the average is in units of the background's deviation (here the noise's)
    raw = cryocore.align(sim.images, sim.template, normalize=False, **kw)
    ratio = white.average.std() / raw.average.std()
    assert ratio == pytest.approx(1.0 / sim.noise_sigma, rel=0.1)


def test_cli_preprocessing_options(tmp_path):
    from cryocore.cli import main

    path = tmp_path / "stack.mrcs"
    assert main(["simulate", "-o", str(path), "--n", "60", "--size", "64", "--snr", "1", "--no-rotate",
                 "--max-shift", "3", "--pixel-size-A", "1.5"]) == 0
    out = tmp_path / "out"
    assert main(["align", str(path), "-o", str(out), "--quiet", "--iterations", "2", "--no-rotate",
                 "--bin-to-A", "3", "--invert-contrast", "--hot-pixel-sigma", "6", "--particle-diameter-A", "60"]) == 0
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["pixel_size_A"] == pytest.approx(1.5)
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "cryocore", "align", str(path), "-o", str(tmp_path / "bad"), "--quiet",
                        "--bin-to-A", "1.0"], capture_output=True, text=True)
    assert r.returncode == 2 and "target_pixel_size_A" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def _numpy_steps(imgs, radius, invert, hot, normalize):
    """The real-space steps written out with numpy (independent of the core)."""
    out = imgs.astype(np.float64) * (-1.0 if invert else 1.0)
    ny, nx = out.shape[1:]
    bg = np.hypot(np.arange(ny)[:, None] - ny // 2, np.arange(nx)[None, :] - nx // 2) > radius
    mean, std = out[:, bg].mean(axis=1)[:, None, None], out[:, bg].std(axis=1)[:, None, None]
    if hot is not None:
        out = np.where(np.abs(out - mean) > hot * std, mean, out)
        mean, std = out[:, bg].mean(axis=1)[:, None, None], out[:, bg].std(axis=1)[:, None, None]
    return (out - mean) / std if normalize else out


@pytest.mark.parametrize("shape", [(48, 48), (47, 53)])
def test_the_cores_normalisation_is_the_numpy_steps(rng, shape):
    from cryocore import _core

    imgs = (3.0 + 2.0 * rng.standard_normal((7,) + shape)).astype(np.float32)
    imgs[2, 5, 7] = 400.0  # a hot pixel in the background
    imgs[4, shape[0] // 2, shape[1] // 2] = -300.0  # and one in the particle
    for invert, hot, normalize in ((False, None, True), (True, 5.0, True), (True, 4.0, False)):
        want = _numpy_steps(imgs, 17.5, invert, hot, normalize)
        got = _core.normalize_stack(imgs, 17.5, invert=invert, hot_sigma=hot, normalize=normalize, threads=2)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    idx = np.array([6, 1, 6])
    np.testing.assert_array_equal(_core.normalize_stack(imgs, 17.5, index=idx), _core.normalize_stack(imgs[idx], 17.5))
    with pytest.raises(ValueError, match="background pixels"):
        _core.normalize_stack(imgs, 60.0)
    imgs[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="image 3"):
        _core.normalize_stack(imgs, 17.5)


def _numpy_crop(images, shape):
    """Fourier cropping written out with numpy (independent of the core): the spectrum cut to
    ``shape``, an even crop's Nyquist row and column gathering both frequencies they stand for."""
    n, ny, nx = images.shape
    my, mx = shape
    f = np.fft.rfft2(images.astype(np.float64))
    rows = np.r_[0 : (my + 1) // 2, ny - my // 2 : ny]
    g = f[:, rows, : mx // 2 + 1].copy()
    if my % 2 == 0:
        g[:, my // 2] += f[:, my // 2, : mx // 2 + 1]
    if mx % 2 == 0:
        neg = np.r_[0, ny - np.arange(1, ny)]
        g[:, :, mx // 2] = f[:, rows, mx // 2] + np.conj(f[:, neg[rows], mx // 2])
        if my % 2 == 0:
            g[:, my // 2, mx // 2] = (f[:, my // 2, mx // 2] + f[:, ny - my // 2, mx // 2]
                                      + np.conj(f[:, ny - my // 2, mx // 2] + f[:, my // 2, mx // 2]))
    return np.fft.irfft2(g, s=(my, mx)) * (my * mx) / (ny * nx)


@pytest.mark.parametrize("shapes", [((64, 64), (32, 32)), ((65, 63), (33, 32)), ((64, 60), (31, 30))])
def test_the_cores_fourier_crop_is_numpys_and_undoes_fourier_pad(rng, shapes):
    from cryocore import _core
    from cryocore.preprocess import fourier_pad

    (ny, nx), (my, mx) = shapes
    x = rng.standard_normal((4, ny, nx)).astype(np.float32)
    np.testing.assert_allclose(_core.fourier_crop(x, my, mx, threads=2), _numpy_crop(x, (my, mx)), atol=2e-6)
    idx = np.array([3, 1])
    np.testing.assert_array_equal(_core.fourier_crop(x, my, mx, index=idx), _core.fourier_crop(x[idx], my, mx))
    small = rng.standard_normal((3, my, mx))
    back = _core.fourier_crop(fourier_pad(small, (ny, nx)).astype(np.float32), my, mx)
    np.testing.assert_allclose(back, small, atol=1e-5)
