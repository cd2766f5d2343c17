"""In-plane rotation and whole poses (cryocore.rotate / transform / Accumulator angles)."""

import numpy as np
import pytest

import cryocore
from cryocore.simulation import make_template, render


def _pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("n", [33, 65])
def test_quarter_turns_on_odd_boxes_are_exact(n):
    img = np.random.default_rng(n).standard_normal((n, n)).astype(np.float32)
    # positive psi turns x' towards y': 90 degrees is numpy.rot90 with k=-1
    np.testing.assert_allclose(cryocore.rotate(img, 90.0), np.rot90(img, k=-1), atol=1e-5)
    np.testing.assert_allclose(cryocore.rotate(img, 180.0), np.rot90(img, k=2), atol=1e-5)
    np.testing.assert_allclose(cryocore.rotate(img, 270.0), np.rot90(img, k=1), atol=1e-5)
    np.testing.assert_allclose(cryocore.rotate(img, -90.0), np.rot90(img, k=1), atol=1e-5)


def test_quarter_turn_on_even_box_turns_about_n_over_2():
    """For an even box the centre is (n/2, n/2), half a pixel off numpy.rot90's centre."""
    hand = cryocore.io.open_stack(_data("hand", "hand.mrcs")).read(0, 1)[0]
    r = cryocore.rotate(hand, 90.0)
    expected = np.roll(np.rot90(hand, k=-1), 1, axis=1)
    np.testing.assert_allclose(r[:, 1:], expected[:, 1:], atol=1e-4 * np.abs(hand).max())
    # the chiral hand is not its own mirror image: a mirror error would show here
    assert _pearson(r, np.roll(np.rot90(hand.T, k=-1), 1, axis=1)) < 0.9


def _data(*parts):
    from pathlib import Path

    for d in (Path(__file__).parent / "data", Path(__file__).resolve().parents[2] / "shared" / "data"):
        if d.joinpath(*parts).exists():
            return str(d.joinpath(*parts))
    pytest.skip("test data not found")


@pytest.mark.parametrize("n", [64, 65])
def test_forward_pose_matches_the_analytic_particle(n):
    """transform() of the template equals the particle rendered exactly at that pose."""
    rng = np.random.default_rng(n)
    t = make_template(n)
    angles = rng.uniform(0, 360, 6)
    shifts = rng.uniform(-4, 4, (6, 2))
    moved = cryocore.transform(np.repeat(t[None], 6, 0), angles, shifts)
    exact = render(n, angles, shifts)
    for m, e in zip(moved, exact):
        assert _pearson(m, e) > 0.9995
    # and the opposite sense of rotation is clearly wrong
    wrong = cryocore.transform(np.repeat(t[None], 6, 0), -angles, shifts)
    assert max(_pearson(w, e) for w, e in zip(wrong, exact)) < 0.99  # the ring part alone gives ~0.95


def test_inverse_brings_images_back():
    rng = np.random.default_rng(3)
    t = make_template(64)
    angles, shifts = rng.uniform(0, 360, 5), rng.uniform(-5, 5, (5, 2))
    back = cryocore.transform(cryocore.transform(np.repeat(t[None], 5, 0), angles, shifts), angles, shifts,
                              inverse=True)
    for b in back:
        assert _pearson(b, t) > 0.999


def test_accumulator_with_angles_averages_posed_images_onto_the_reference():
    rng = np.random.default_rng(4)
    n = 40
    angles, shifts = rng.uniform(0, 360, n), rng.uniform(-5, 5, (n, 2))
    imgs = render(64, angles, shifts).astype(np.float32)
    imgs += rng.standard_normal(imgs.shape).astype(np.float32) * 0.05 * imgs.std()
    acc = cryocore.Accumulator((64, 64)).add(imgs, shifts, angles=angles)
    assert _pearson(acc.mean(), make_template(64)) > 0.999
    # threads do not change the result
    acc1 = cryocore.Accumulator((64, 64)).add(imgs, shifts, angles=angles, threads=1)
    acc3 = cryocore.Accumulator((64, 64)).add(imgs, shifts, angles=angles, threads=3)
    assert np.array_equal(acc1.sum, acc3.sum)
    # without the angles the average is a blur
    blur = cryocore.Accumulator((64, 64)).add(imgs, shifts)
    assert _pearson(blur.mean(), make_template(64)) < 0.99


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cryocore.rotate(np.zeros((3, 16, 16)), [1.0, 2.0]), "angles"),
        (lambda: cryocore.rotate(np.zeros((3, 16, 16)), [1.0, np.nan, 2.0]), "angles"),
        (lambda: cryocore.transform(np.zeros((2, 16, 16)), [1.0, 2.0], np.zeros((3, 2))), "shifts"),
        (lambda: cryocore.rotate(np.full((2, 16, 16), np.inf), 3.0), "NaN or infinity"),
        (lambda: cryocore.Accumulator((16, 16)).add(np.zeros((2, 16, 16)), angles=[1.0]), "angles"),
        (lambda: cryocore.rotate(np.zeros((2, 16, 16)), "ninety"), "angles"),
    ],
)
def test_bad_poses(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
