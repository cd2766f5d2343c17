"""Soft (score-weighted) class assignment: each searched class's own pose from the core, the
weights against a likelihood written out here, the sums against per-class hard sums, and
classification with it."""

import numpy as np
import pytest

import cryocore
from cryocore import _core
from cryocore.ctf import CtfParameters
from cryocore.pipeline.chunks import make_chunks
from cryocore.pipeline.config import SearchOptions
from cryocore.pipeline.kernel import ChunkCtf, ChunkData, Pass, search_chunk, soft_weights, sum_chunk
from conftest import purity, ribosome_views


@pytest.fixture(scope="module")
def three_views():
    views = ribosome_views(3, 48, seed=7).astype(np.float32)
    sim = cryocore.simulate(60, 48, snr=0.3, templates=views, max_shift=3, seed=8, ctf=True, pixel_size_A=4.0,
                            defocus_range_A=(8000, 20000))
    return views, sim


def test_per_class_poses_are_each_classes_own_search(three_views):
    views, sim = three_views
    imgs = np.ascontiguousarray(sim.images, np.float32)
    settings = _core.SearchSettings(upsample=10)
    search = _core.RotationalSearch(views, settings, angular_step=2.0)
    s, a, c, best, (ps, pa, pc, pk) = search.register(imgs, threads=2, per_class=True)
    assert pk.shape == (60, 3) and (pk == np.arange(3)).all()
    for r in range(3):  # slot r: the search against reference r alone
        one = _core.RotationalSearch(views[r : r + 1], settings, angular_step=2.0).register(imgs, threads=1)
        np.testing.assert_array_equal(ps[:, r], one[0])
        np.testing.assert_array_equal(pa[:, r], one[1])
        np.testing.assert_array_equal(pc[:, r], one[2])
    np.testing.assert_array_equal(best, np.argmax(pc, axis=1))  # the best is the best refined class
    np.testing.assert_array_equal(c, pc.max(axis=1))
    # two candidates: two slots, in increasing class order, the best among them
    _, _, c2, best2, (_, _, pc2, pk2) = search.register(imgs, threads=1, candidates=2, per_class=True)
    assert pk2.shape == (60, 2) and (pk2[:, 0] < pk2[:, 1]).all()
    np.testing.assert_array_equal(best2, pk2[np.arange(60), np.argmax(pc2, axis=1)])
    # a local search against a prior class fills one slot
    prior = np.zeros(60, np.int32) + 1
    out = search.register(imgs, threads=1, prior_angles=a, prior_shifts=s, prior_classes=prior, per_class=True)
    assert (out[4][3][:, 0] == 1).all() and (out[4][3][:, 1:] == -1).all() and np.isnan(out[4][2][:, 1:]).all()


def test_soft_weights_are_the_profile_likelihood():
    ny, nx, lowpass = 20, 24, 0.4
    m = 0  # independent real Fourier samples within the band, counted one by one
    for y in range(ny):
        for x in range(nx):
            fy, fx = (y if y < ny / 2 else y - ny) / ny, (x if x < nx / 2 else x - nx) / nx
            m += 0 < fy * fy + fx * fx <= lowpass * lowpass
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.05, 0.4, (50, 3))
    classes = np.tile(np.arange(3, dtype=np.int32), (50, 1))
    classes[0, 2] = -1  # an unused slot
    scores[1] = [0.2, 0.2, -0.4]  # a tie; a negative correlation counts as none
    w = soft_weights(scores, classes, (ny, nx), lowpass)
    expected = np.empty_like(scores)
    for i in range(50):
        lik = [((1 - max(c, 0) ** 2) ** (-m / 2) if k >= 0 else 0.0) for c, k in zip(scores[i], classes[i])]
        p = np.array(lik) / sum(lik)
        p[p < 0.01] = 0
        expected[i] = p / p.sum()
    np.testing.assert_allclose(w, expected, rtol=1e-9, atol=1e-12)
    assert w[0, 2] == 0 and w[1, 0] == w[1, 1]
    assert 0.1 < np.mean((w > 0).sum(axis=1) > 1) < 0.9  # this band leaves some, not all, images spread


@pytest.mark.parametrize("with_ctf", [False, True])
def test_soft_sums_are_the_weighted_sums_of_each_class(three_views, with_ctf):
    views, sim = three_views
    n = len(sim.images)
    half = np.where(np.arange(n) % 2 == 0, 1, 2).astype(np.int8)
    chunk = make_chunks(half, n)[0]
    # (2 halves, K = 3, ny, nx): two of the classes nearly alike, so that images spread over them
    alike = np.stack([views[0], views[0] + 0.05 * views[1], views[2]])
    refs = np.stack([alike, alike[::-1]]).astype(np.float32)
    ctf = ChunkCtf(CtfParameters.of(sim.ctf, n), 4.0) if with_ctf else None
    search = SearchOptions(rotate=True, upsample=10, angular_step=2.0, class_candidates=2, soft_assignment=True)
    p = Pass(refs=refs, lowpass=(0.12, 0.12), band=(0.2, 0.2), crop=None, search=search, key=("soft", with_ctf),
             ctf=ctf)
    data = ChunkData(images=np.ascontiguousarray(sim.images, np.float32))
    r = search_chunk(chunk, data, p, None, None, threads=2)
    cw = r.soft
    assert cw is not None and cw.weights.shape == (n, 2)
    np.testing.assert_allclose(cw.weights.sum(axis=1), 1.0)
    assert (cw.weights > 0).sum() > n  # some images are in two classes
    np.testing.assert_array_equal(r.classes, cw.classes[np.arange(n), np.argmax(np.where(cw.classes >= 0, cw.weights, -1), 1)])

    def hard(weights):  # each slot as its own hard assignment, weighted
        total = None
        for j in range(2):
            w = np.where(cw.classes[:, j] >= 0, weights * cw.weights[:, j], 0.0)
            s = sum_chunk(chunk, data, cw.shifts[:, j], cw.angles[:, j], np.maximum(cw.classes[:, j], 0), w,
                          p.band, 3, (48, 48), True, 1, ctf)
            total = s if total is None else total + s
        return total

    expected = hard(np.ones(n))
    np.testing.assert_allclose(r.sums.spectra, expected.spectra, atol=1e-6 * np.abs(expected.spectra).max())
    np.testing.assert_allclose(r.sums.weights, expected.weights, rtol=1e-12)
    if with_ctf:
        np.testing.assert_allclose(r.sums.ctf2, expected.ctf2, rtol=1e-6, atol=1e-6)  # (float32 CTF values)
    # the rejection pass takes out each rejected image from every class it went to
    rejected = -(np.arange(n) % 3 == 0).astype(np.float64)
    out = sum_chunk(chunk, data, r.shifts, r.angles, r.classes, rejected, p.band, 3, (48, 48), True, 2, ctf, soft=cw)
    want = hard(rejected)
    np.testing.assert_allclose(out.spectra, want.spectra, atol=1e-6 * np.abs(want.spectra).max())
    np.testing.assert_allclose(out.weights, want.weights, rtol=1e-12)


def test_soft_classification_finds_the_views_for_any_thread_count():
    views = ribosome_views(4, 48, seed=11)
    sim = cryocore.simulate(480, 48, snr=0.1, templates=views, max_shift=2, seed=12, ctf=True, pixel_size_A=4.0,
                            defocus_range_A=(8000, 25000), junk_fraction=0.1)
    truth = np.asarray(sim.classes)
    a = cryocore.classify(sim.images, 4, ctf=sim.ctf, pixel_size_A=4.0, soft_assignment=True, threads=2,
                          progress=False, iterations=8, seed=1)
    b = cryocore.classify(sim.images, 4, ctf=sim.ctf, pixel_size_A=4.0, soft_assignment=True, threads=1,
                          progress=False, iterations=8, seed=1)
    np.testing.assert_array_equal(a.classes, b.classes)
    assert purity(a.classes[a.accepted], truth[a.accepted]) >= 0.95
    assert a.parameters["soft_assignment"] is True


def test_soft_assignment_needs_rotations():
    imgs = np.random.default_rng(0).standard_normal((40, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="soft_assignment needs rotate=True"):
        cryocore.classify(imgs, 2, rotate=False, soft_assignment=True)
    with pytest.raises(ValueError, match="soft_assignment needs rotate=True"):
        cryocore.align(imgs, imgs[:2], rotate=False, soft_assignment=True, progress=False)
