"""2D classification: cryocore.classify against the truth of simulated multi-view stacks (with
CTFs and junk), determinism, the outputs in RELION's layout, and subset selection."""

import json
import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest
import starfile

import cryocore
from conftest import purity, ribosome_views


def adjusted_rand_index(a, b):
    """ARI of two labelings, written out here (Hubert and Arabie)."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    pairs = lambda x: x * (x - 1) / 2  # noqa: E731
    index, rows, cols = pairs(table).sum(), pairs(table.sum(1)).sum(), pairs(table.sum(0)).sum()
    expected = rows * cols / pairs(len(a))
    return (index - expected) / (0.5 * (rows + cols) - expected)


def junk_handled(result, truth):
    """Fraction of junk particles rejected or in classes of at most 10% good particles."""
    ok = []
    for i in np.flatnonzero(truth == 0):
        members = (result.classes == result.classes[i]) & result.accepted
        ok.append(not result.accepted[i] or np.mean(truth[members] > 0) <= 0.1)
    return float(np.mean(ok))


@pytest.fixture(scope="module")
def views_stack():
    views = ribosome_views(5, 64, seed=3)
    sim = cryocore.simulate(900, 64, snr=0.1, templates=views, max_shift=3, ctf=True, pixel_size_A=4.0,
                            defocus_range_A=(8000, 25000), seed=4, junk_fraction=0.1)
    return views, sim


def test_classes_are_the_views_and_junk_is_set_apart(views_stack):
    views, sim = views_stack
    truth = np.asarray(sim.classes)
    good = truth > 0
    res = cryocore.classify(sim.images, 5, ctf=sim.ctf, pixel_size_A=4.0, progress=False, threads=2)
    assert isinstance(res, cryocore.ClassResult)
    assert adjusted_rand_index(res.classes[good], truth[good]) >= 0.9
    assert junk_handled(res, truth) >= 0.8
    counts = res.class_counts()
    assert list(counts[:5]) == sorted(counts[:5], reverse=True)  # sorted by size, junk classes after
    assert res.junk_classes == list(range(6, res.n_classes + 1))
    assert not res.accepted[np.isin(res.classes, res.junk_classes)].any()
    for k in range(5):  # each class average is its view (after the best rotation and shift)
        view = np.bincount(truth[good & (res.classes == k + 1)]).argmax()
        fit = cryocore.register(views[view - 1], res.class_averages[k], rotate=True, upsample=20)
        assert fit.scores >= 0.9, (k, float(fit.scores))
    assert res.accuracy_rotations_deg.shape == (res.n_classes,) and res.class_distribution()[:5].sum() == pytest.approx(1.0)
    # twice as many classes: purer still
    res2 = cryocore.classify(sim.images, 10, ctf=sim.ctf, pixel_size_A=4.0, progress=False, threads=2)
    assert purity(res2.classes[res2.accepted], truth[res2.accepted]) >= 0.95
    assert junk_handled(res2, truth) >= 0.8


def test_the_same_seed_gives_the_same_classes_for_any_thread_count():
    views = cryocore.simulation.make_views(3, 48, seed=1)
    sim = cryocore.simulate(360, 48, snr=0.2, templates=views, max_shift=2, seed=2)
    a = cryocore.classify(sim.images, 3, seed=5, threads=1, progress=False, iterations=6)
    b = cryocore.classify(sim.images, 3, seed=5, threads=2, progress=False, iterations=6)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_allclose(a.class_averages, b.class_averages, atol=1e-5)
    assert adjusted_rand_index(a.classes, sim.classes) >= 0.9


def test_bad_arguments():
    imgs = np.zeros((100, 32, 32), np.float32)
    with pytest.raises(ValueError, match="k must be"):
        cryocore.classify(imgs, 11)
    with pytest.raises(ValueError, match="per_class"):
        cryocore.classify(imgs, 2, per_class=1)


def test_cli_classify_writes_relions_layout_and_select_keeps_chosen_classes(tmp_path):
    from cryocore.cli import main

    stack = tmp_path / "sim" / "s.mrcs"
    assert main(["simulate", "-o", str(stack), "--n", "300", "--size", "48", "--snr", "1", "--max-shift", "2",
                 "--ctf", "--pixel-size-A", "3"]) == 0
    star = stack.parent / "truth.star"
    out = tmp_path / "cls"
    assert main(["classify", str(star), "-o", str(out), "-k", "3", "--iterations", "3", "--quiet"]) == 0
    with mrcfile.open(out / "classes.mrcs") as m:
        k_total = m.data.shape[0]
        assert m.data.shape[1:] == (48, 48) and k_total >= 3
    model = starfile.read(out / "model.star", always_dict=True)["model_classes"]
    assert len(model) == k_total and list(model["rlnReferenceImage"][:2]) == ["000001@classes.mrcs", "000002@classes.mrcs"]
    for col in ("rlnClassDistribution", "rlnAccuracyRotations", "rlnAccuracyTranslationsAngst", "rlnEstimatedResolution"):
        assert col in model.columns
    parts = starfile.read(out / "particles.star", always_dict=True)["particles"]
    assert len(parts) == 300 and "rlnDefocusU" in parts.columns and parts["rlnClassNumber"].between(1, k_total).all()
    assert (out / "gallery.png").stat().st_size > 0 and json.loads((out / "report.json").read_text())["n_images"] == 300
    # select: the accepted particles of classes 1 and 2, every column kept
    good = tmp_path / "good.star"
    assert main(["select", str(out), "--classes", "1,2", "-o", str(good)]) == 0
    chosen = starfile.read(good, always_dict=True)["particles"]
    want = parts[parts["rlnClassNumber"].isin([1, 2]) & (parts["rlnCryocoreAccepted"] == 1)]
    assert len(chosen) == len(want) > 0
    # the image names point at the same images, relative to each STAR file's own directory
    def images(names, folder):
        return [(n.split("@")[0], os.path.normpath(os.path.join(folder, n.split("@")[1]))) for n in names]

    assert images(chosen["rlnImageName"], tmp_path) == images(want["rlnImageName"], out)
    assert images(want["rlnImageName"], out)[0] == ("000001", str(stack))
    with cryocore.io.open_stack(str(good)) as g, cryocore.io.open_stack(str(star)) as s:
        first = int(chosen["rlnImageName"].iloc[0].split("@")[0]) - 1
        np.testing.assert_array_equal(g.read(0, 1), s.read(first, first + 1))
    assert list(chosen.columns) == list(parts.columns)
    table = cryocore.select(str(out), min_particles=10 ** 6)
    assert len(table) == 0
    r = subprocess.run([sys.executable, "-m", "cryocore", "select", str(out), "--classes", "99", "-o",
                        str(tmp_path / "x.star")], capture_output=True, text=True)
    assert r.returncode == 2 and "not in 1.." in r.stderr and not (tmp_path / "x.star").exists()


def test_demo_classify_shows_the_classes(tmp_path, capsys):
    from cryocore.cli import main

    out = tmp_path / "demo"
    assert main(["demo-classify", "-o", str(out), "--quiet", "--n", "300", "--views", "3", "-k", "3",
                 "--size", "48"]) == 0
    text = capsys.readouterr().out
    purity_line = [line for line in text.splitlines() if "purity" in line][0]
    assert float(purity_line.split("purity ")[1].split()[0]) >= 0.9
    assert (out / "gallery.png").stat().st_size > 0 and (out / "model.star").exists()


def test_an_interrupted_classification_resumes_to_the_same_result(tmp_path):
    views = cryocore.simulation.make_views(3, 48, seed=2)
    sim = cryocore.simulate(330, 48, snr=0.2, templates=views, max_shift=2, seed=3)
    kw = dict(seed=1, threads=2, progress=False, iterations=4)
    whole = cryocore.classify(sim.images, 3, **kw)
    checkpoint = str(tmp_path / "ck.npz")

    def stop(info):
        if info["iteration"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cryocore.classify(sim.images, 3, checkpoint=checkpoint, callback=stop, **kw)
    assert (tmp_path / "ck-seeds.npz").exists() and (tmp_path / "ck-run1.npz").exists()
    resumed = cryocore.classify(sim.images, 3, checkpoint=checkpoint, resume=True, **kw)
    np.testing.assert_array_equal(resumed.classes, whole.classes)
    np.testing.assert_allclose(resumed.class_averages, whole.class_averages, atol=1e-5)
    with pytest.raises(ValueError, match="another classification"):
        cryocore.classify(sim.images, 4, checkpoint=checkpoint, resume=True, **kw)


def test_cli_classify_resume_needs_an_interrupted_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cryocore", "classify", "--resume", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no interrupted cryocore run" in r.stderr


def test_classify_an_array_with_ctfs_and_no_preprocessing():
    """The pixel size given as an argument reaches the CTFs when no preprocessing step runs."""
    views = cryocore.simulation.make_views(3, 48, seed=2)
    sim = cryocore.simulate(330, 48, snr=0.5, templates=views, max_shift=2, seed=3, ctf=True, pixel_size_A=3.0)
    res = cryocore.classify(sim.images, 3, ctf=sim.ctf, pixel_size_A=3.0, normalize=False, target_pixel_size_A=None,
                            progress=False, iterations=3)
    assert res.parameters["ctf"] is True
    assert adjusted_rand_index(res.classes, sim.classes) >= 0.9


def test_classify_translations_only():
    views = cryocore.simulation.make_views(3, 48, seed=2)
    sim = cryocore.simulate(330, 48, snr=0.5, templates=views, max_shift=2, seed=3, rotate=False)
    res = cryocore.classify(sim.images, 3, rotate=False, progress=False, iterations=4)
    assert adjusted_rand_index(res.classes, sim.classes) >= 0.9 and not res.angles.any()
