"""Fourier ring correlation against a direct numpy implementation on the full 2D spectrum,
and the spectrum helpers that align's iterations use instead of images."""

import numpy as np
import pytest

import cryocore
from cryocore.pipeline.geometry import centre_of_mass_of_spectrum, centre_of_mass_offset, shift_spectrum
from cryocore.frc import frc, frc_of_spectra, soft_circular_mask


def _frc_full_spectrum(a, b):
    """Per ring round(|f| n) (n the smaller side) of the full fft2: Re sum F1 F2* / sqrt(sum|F1|^2 sum|F2|^2)."""
    ny, nx = a.shape
    n = min(ny, nx)
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    ring = np.rint(np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]) * n).astype(int)
    out = []
    for r in range(n // 2 + 1):
        m = ring == r
        num = (fa[m] * np.conj(fb[m])).real.sum()
        den = np.sqrt((np.abs(fa[m]) ** 2).sum() * (np.abs(fb[m]) ** 2).sum())
        out.append(num / den if den > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
def test_frc_matches_the_full_spectrum_computation(rng, shape):
    common = rng.standard_normal(shape)
    a = common + 0.7 * rng.standard_normal(shape)
    b = common + 0.7 * rng.standard_normal(shape)
    got = frc(a, b)
    np.testing.assert_allclose(got.values, _frc_full_spectrum(a, b), atol=1e-12)
    assert got.frequencies[1] == pytest.approx(1 / min(shape))
    # from the half spectra, in any scale: the same curve
    via = frc_of_spectra(3.0 * np.fft.rfft2(a), np.fft.rfft2(b) / 7.0, shape)
    np.testing.assert_allclose(via.values, got.values, atol=1e-12)
    # with a mask: the FRC of the masked images
    m = soft_circular_mask(shape, 0.3 * min(shape))
    np.testing.assert_allclose(frc(a, b, mask_radius=0.3 * min(shape)).values, _frc_full_spectrum(a * m, b * m),
                               atol=1e-12)


def test_frc_of_equal_and_of_independent_images(rng):
    a = rng.standard_normal((96, 96))
    assert np.allclose(frc(a, a).values[1:], 1.0)
    c = frc(a, rng.standard_normal((96, 96)))
    # independent noise: |FRC| within a few 1/sqrt(pixels per ring)
    assert np.all(np.abs(c.values[4:]) < 5 / np.sqrt(c.counts[4:]))
    assert c.resolution_0143 < 0.1


def test_frc_crossing_interpolates():
    f = frc_of_spectra(np.ones((8, 5)), np.ones((8, 5)), (8, 8))
    assert f.resolution_0143 == pytest.approx(0.5)  # never falls below: the last ring
    from cryocore.frc import FRC

    c = FRC(np.array([0.0, 0.1, 0.2, 0.3]), np.array([1.0, 0.8, 0.4, 0.0]), np.zeros(4), np.ones(4, int))
    assert c.crossing(0.5) == pytest.approx(0.175)
    assert c.crossing(0.143) == pytest.approx(0.2 + 0.1 * (0.4 - 0.143) / 0.4)


def test_frc_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        frc(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="pixel_size_A"):
        frc(np.zeros((8, 8)), np.zeros((8, 8)), pixel_size_A=-1)
    with pytest.raises(ValueError, match="spectra must have shape"):
        frc_of_spectra(np.zeros((8, 5)), np.zeros((8, 5)), (8, 10))


@pytest.mark.parametrize("shape", [(64, 64), (65, 63)])
def test_spectrum_helpers_match_their_image_versions(rng, shape):
    img = cryocore.shift(np.pad(rng.standard_normal((20, 20)), ((22, shape[0] - 42), (22, shape[1] - 42))),
                         (3.3, -5.2)).astype(np.float64)
    spec = np.fft.rfft2(img)
    np.testing.assert_allclose(centre_of_mass_of_spectrum(spec, shape), centre_of_mass_offset(img), atol=1e-9)
    d = np.array([2.7, -1.4])
    moved = np.fft.irfft2(shift_spectrum(spec, d, shape), s=shape)
    np.testing.assert_allclose(moved, cryocore.shift(img, d), atol=2e-5 * np.abs(img).max())
