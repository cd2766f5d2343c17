"""cryocore.simulate: determinism, ground truth and the pose convention."""

from __future__ import annotations

import numpy as np
import pytest

import cryocore
from conftest import fourier_shift, pearson

INF = float("inf")


def _fields(sim):
    return [sim.images, sim.shifts, sim.angles, sim.template, sim.psf_sigmas, sim.noise_sigma]


def test_same_seed_same_stack_other_seed_differs():
    a = cryocore.simulate(6, size=48, snr=0.5, seed=42)
    b = cryocore.simulate(6, size=48, snr=0.5, seed=42)
    for x, y in zip(_fields(a), _fields(b)):
        assert np.array_equal(x, y)
    c = cryocore.simulate(6, size=48, snr=0.5, seed=43)
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.shifts, c.shifts)
    assert not np.array_equal(a.angles, c.angles)
    assert not np.array_equal(a.psf_sigmas, c.psf_sigmas)
    np.testing.assert_array_equal(a.template, c.template)  # the particle itself does not change


@pytest.mark.parametrize("size", [32, 48, 65])
def test_shapes_dtypes_and_ranges(size):
    n, max_shift = 40, size / 4
    sim = cryocore.simulate(n, size=size, snr=0.2, max_shift=max_shift, psf_sigma=(0.5, 1.5), seed=1)
    assert sim.images.shape == (n, size, size) and sim.images.dtype == np.float32
    assert sim.shifts.shape == (n, 2) and sim.shifts.dtype == np.float64
    assert sim.angles.shape == (n,) and sim.angles.dtype == np.float64
    assert sim.template.shape == (size, size) and sim.template.dtype == np.float32
    assert sim.psf_sigmas.shape == (n,) and sim.noise_sigma.shape == (n,)
    assert sim.snr == 0.2
    assert np.all(np.abs(sim.shifts) <= max_shift)
    assert np.abs(sim.shifts).max() > 0.5 * max_shift  # really spread over the range
    assert np.all((sim.angles >= 0) & (sim.angles < 360))
    assert np.ptp(sim.angles) > 180
    assert np.all((sim.psf_sigmas >= 0.5) & (sim.psf_sigmas <= 1.5))
    assert np.all(sim.noise_sigma > 0)
    assert np.all(np.isfinite(sim.images))
    assert sim.template.std() > 0
    np.testing.assert_array_equal(sim.template, cryocore.make_template(size))


def test_rotate_false_gives_zero_angles():
    sim = cryocore.simulate(10, size=48, rotate=False, seed=2)
    assert np.array_equal(sim.angles, np.zeros(10))
    zero = cryocore.simulate(5, size=48, max_shift=0, seed=2)
    assert np.array_equal(zero.shifts, np.zeros((5, 2)))


def test_infinite_snr_has_no_noise_and_same_poses():
    noisy = cryocore.simulate(8, size=64, snr=0.1, seed=5)
    clean = cryocore.simulate(8, size=64, snr=INF, seed=5)
    assert np.array_equal(clean.noise_sigma, np.zeros(8))
    # the noise is drawn after all poses, so the poses coincide
    np.testing.assert_array_equal(noisy.shifts, clean.shifts)
    np.testing.assert_array_equal(noisy.angles, clean.angles)
    np.testing.assert_array_equal(noisy.psf_sigmas, clean.psf_sigmas)


@pytest.mark.parametrize("snr", [0.02, 0.1, 1.0])
def test_measured_snr(snr):
    """Noise = images minus a noise-free re-simulation with the same seed."""
    noisy = cryocore.simulate(12, size=64, snr=snr, seed=9)
    clean = cryocore.simulate(12, size=64, snr=INF, seed=9)
    noise = noisy.images.astype(np.float64) - clean.images.astype(np.float64)
    signal_var = clean.images.astype(np.float64).var(axis=(1, 2))
    noise_var = noise.var(axis=(1, 2))
    # 64^2 pixels: the variance ratio is known to a few percent per image
    np.testing.assert_allclose(signal_var / noise_var, snr, rtol=0.08)
    assert np.mean(signal_var / noise_var) == pytest.approx(snr, rel=0.03)
    np.testing.assert_allclose(noise.std(axis=(1, 2)), noisy.noise_sigma, rtol=0.04)
    np.testing.assert_allclose(noisy.noise_sigma**2 * snr, signal_var, rtol=1e-4)
    assert abs(noise.mean()) < 5 * noisy.noise_sigma.mean() / np.sqrt(noise.size)


@pytest.mark.parametrize("size", [64, 65])
def test_pose_shift_convention(size):
    """snr=inf, no PSF, angle 0: each image is the template Fourier-shifted by its (dy, dx)."""
    sim = cryocore.simulate(12, size=size, snr=INF, rotate=False, psf_sigma=(0, 0), seed=3)
    t = sim.template.astype(np.float64)
    for img, s in zip(sim.images, sim.shifts):
        assert pearson(img, fourier_shift(t, s)) > 0.99
        assert pearson(img, fourier_shift(t, -s)) < 0.9  # the sign matters
    reg = cryocore.register(sim.template, sim.images)
    np.testing.assert_allclose(reg.shifts, sim.shifts, atol=0.05)
    assert reg.scores.min() > 0.99


def test_psf_is_a_gaussian_blur():
    sigma = 1.3
    sim = cryocore.simulate(4, size=64, snr=INF, rotate=False, psf_sigma=(sigma, sigma), seed=4)
    np.testing.assert_allclose(sim.psf_sigmas, sigma)
    f2 = np.fft.fftfreq(64)[:, None] ** 2 + np.fft.fftfreq(64)[None, :] ** 2
    otf = np.exp(-2 * np.pi**2 * sigma**2 * f2)
    for img, s in zip(sim.images, sim.shifts):
        expected = np.fft.ifft2(np.fft.fft2(fourier_shift(sim.template, s)) * otf).real
        assert pearson(img, expected) > 0.999
        assert pearson(img, fourier_shift(sim.template, s)) < pearson(img, expected)


def _rot_pose(template, k):
    """np.rot90 about the box centre (ny//2, nx//2), as CONVENTIONS.md places it."""
    r = np.rot90(template, k)
    if template.shape[0] % 2 == 0:
        # np.rot90 turns about the middle of the array, half a pixel away from n//2
        r = np.roll(r, 1, axis=1 if k % 4 == 3 else 0) if k % 4 in (1, 3) else np.roll(r, (1, 1), axis=(0, 1))
    return r


@pytest.mark.parametrize("size", [64, 65])
def test_render_rotation_convention(size):
    """psi = 90 turns x' towards y': image(y', x') = R(y' = -x', x' = y'), i.e. np.rot90(R, -1).

    From CONVENTIONS.md: image(y', x') = R(Rot(-psi) (x', y')), Rot(-90) (x', y') = (y', -x').
    """
    from cryocore.simulation import render

    t = render(size, [0.0], [[0.0, 0.0]])[0]
    np.testing.assert_allclose(t, cryocore.make_template(size), rtol=1e-6, atol=1e-6)
    for angle, k in [(90.0, -1), (180.0, 2), (270.0, 1)]:
        img = render(size, [angle], [[0.0, 0.0]])[0]
        # (the roll for even sizes wraps one edge row/column, where the particle is ~1e-5)
        np.testing.assert_allclose(img, _rot_pose(t, k), atol=1e-4 * np.abs(t).max())
        if k != 2:
            assert pearson(img, _rot_pose(t, -k)) < 0.9  # the opposite turn does not match
    # a point at (y', x') = (0, +10) (right of centre) goes to (+10, 0) (below it, larger y)
    cy = cx = size // 2
    point = np.zeros((size, size))
    point[cy, cx + 10] = 1.0
    turned = _rot_pose(point, -1)
    assert turned[cy + 10, cx] == 1.0


@pytest.mark.parametrize("size", [64, 65])
def test_simulated_rotation_convention(size):
    """Images simulated near 90/180/270 degrees match the template turned the prescribed way."""
    # seed 13: the angles closest to 90, 180 and 270 are all within 0.4 degrees
    sim = cryocore.simulate(300, size=size, snr=INF, psf_sigma=(0, 0), seed=13)
    t = sim.template.astype(np.float64)
    for target, k in [(90, -1), (180, 2), (270, 1)]:
        i = int(np.argmin(np.abs(sim.angles - target)))
        assert abs(sim.angles[i] - target) < 1.0
        img = sim.images[i]
        assert pearson(img, fourier_shift(_rot_pose(t, k), sim.shifts[i])) > 0.99
        if k != 2:
            assert pearson(img, fourier_shift(_rot_pose(t, -k), sim.shifts[i])) < 0.9


def test_template_has_no_symmetry():
    t = cryocore.make_template(65).astype(np.float64)
    for other in (np.fliplr(t), np.flipud(t), np.rot90(t, 1), np.rot90(t, 2), np.rot90(t, 3)):
        assert pearson(t, other) < 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_images": 0}, "n_images"),
        ({"n_images": 2.5}, "n_images"),
        ({"size": 16}, "size"),
        ({"snr": 0}, "snr"),
        ({"snr": -1}, "snr"),
        ({"snr": float("nan")}, "snr"),
        ({"size": 64, "max_shift": 17}, "max_shift"),
        ({"max_shift": -1}, "max_shift"),
        ({"psf_sigma": (2, 1)}, "psf_sigma"),
        ({"psf_sigma": (-1, 1)}, "psf_sigma"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"n_images": 2, "size": 48} | kwargs
    with pytest.raises(ValueError, match=match):
        cryocore.simulate(**args)
