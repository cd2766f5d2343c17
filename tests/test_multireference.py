"""Multi-reference alignment: K references, each image assigned to its best class, K class
averages per half; and the particle table: every input STAR column survives `cryocore align`."""

import json

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from conftest import ribosome_views

import cryocore
from cryocore.cli import main

SIZE = 64


def angle_error(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def three():
    """600 images of three distinct ribosome views, SNR 0.1, random rotations and shifts."""
    views = ribosome_views(3, SIZE, seed=0)
    return cryocore.simulate(600, SIZE, snr=0.1, max_shift=4, rotate=True, seed=1, templates=views)


@pytest.fixture(scope="module")
def clean_run(three):
    return cryocore.align(three.images, three.templates, progress=False)


def test_clean_references_classify_and_align_as_well_as_one_reference_each(three, clean_run):
    res = clean_run
    assert res.n_classes == 3 and res.classes.shape == (600,) and set(np.unique(res.classes)) <= {1, 2, 3}
    assert (res.classes == three.classes).mean() >= 0.98
    # the same images against their own template, one class at a time
    single = np.zeros(600)
    for k in (1, 2, 3):
        m = three.classes == k
        r1 = cryocore.align(three.images[m], three.templates[k - 1], progress=False)
        single[m] = angle_error(r1.angles, three.angles[m])
    multi = angle_error(res.angles, three.angles)[res.classes == three.classes]
    assert np.median(multi) <= 1.2 * np.median(single)
    assert np.median(multi) < 2.0
    # each class average is its template's view
    for k in range(3):
        fit = cryocore.register(three.templates[k], res.class_averages[k], rotate=True)
        assert float(fit.scores) > 0.9


def test_noisy_starting_references_still_classify(three):
    first = np.stack([three.images[np.flatnonzero(three.classes == k)[0]] for k in (1, 2, 3)])
    res = cryocore.align(three.images, first, progress=False)
    assert (res.classes == three.classes).mean() >= 0.95


def test_translations_with_several_references():
    views = ribosome_views(3, SIZE, seed=2)
    sim = cryocore.simulate(300, SIZE, snr=0.2, max_shift=4, rotate=False, seed=3, templates=views)
    for cache in (True, False):
        res = cryocore.align(sim.images, views, rotate=False, progress=False, cache_spectra=cache)
        assert (res.classes == sim.classes).mean() >= 0.98
        # poses refer to the references recentred on their centres of mass: one offset per class
        for k in (1, 2, 3):
            m = (res.classes == k) & (sim.classes == k)
            d = res.shifts[m] - sim.shifts[m]
            assert np.median(np.hypot(*(d - np.median(d, axis=0)).T)) < 0.3


def test_one_reference_as_a_stack_of_one_is_the_same_run(three):
    a = cryocore.align(three.images[:200], three.templates[0], progress=False, iterations=3)
    b = cryocore.align(three.images[:200], three.templates[:1], progress=False, iterations=3)
    assert np.array_equal(a.shifts, b.shifts) and np.array_equal(a.angles, b.angles)
    assert (a.classes == 1).all() and a.thresholds.shape == (2, 1)


def test_classes_do_not_depend_on_threads(three):
    kw = dict(progress=False, iterations=3, tolerance_px=0)
    a = cryocore.align(three.images[:300], three.templates, threads=1, **kw)
    b = cryocore.align(three.images[:300], three.templates, threads=2, **kw)
    assert np.array_equal(a.classes, b.classes) and np.array_equal(a.shifts, b.shifts)
    assert np.array_equal(a.class_averages, b.class_averages)


def test_bad_references(three):
    with pytest.raises(ValueError, match="box"):
        cryocore.align(three.images, np.zeros((3, 32, 32)), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        refs = three.templates.copy()
        refs[1, 3, 3] = np.nan
        cryocore.align(three.images, refs, progress=False)
    with pytest.raises(NotImplementedError, match="one reference"):
        cryocore.align(three.images, three.templates, mode="online", rotate=False, progress=False)


def test_outputs_of_several_classes(three, clean_run, tmp_path):
    paths = clean_run.write(str(tmp_path / "out"))
    with mrcfile.open(paths["classes.mrcs"]) as m:
        assert m.data.shape == (3, SIZE, SIZE)
        np.testing.assert_array_equal(m.data, clean_run.class_averages)
    table = starfile.read(paths["particles.star"])["particles"]
    np.testing.assert_array_equal(table["rlnClassNumber"].to_numpy(), clean_run.classes)
    with open(paths["report.json"]) as f:
        report = json.load(f)
    counts = [c["accepted"] for c in report["classes"]]
    assert counts == clean_run.class_counts().tolist() and sum(counts) == int(clean_run.accepted.sum())
    assert report["parameters"]["n_classes"] == 3


def test_cli_takes_a_stack_of_references(three, tmp_path):
    stack = tmp_path / "stack.mrcs"
    refs = tmp_path / "refs.mrcs"
    cryocore.io.write_mrc(str(stack), three.images[:300], pixel_size_A=2.0)
    cryocore.io.write_mrc(str(refs), three.templates, pixel_size_A=2.0)
    out = tmp_path / "out"
    assert main(["align", str(stack), "-o", str(out), "--reference", str(refs), "--quiet",
                 "--max-memory", "256M"]) == 0
    table = starfile.read(out / "particles.star")["particles"]
    assert (table["rlnClassNumber"].to_numpy() == three.classes[:300]).mean() >= 0.95
    report = json.loads((out / "report.json").read_text())
    assert report["parameters"]["max_memory"] == 256 << 20


def test_every_input_star_column_survives_align(tmp_path):
    """A RELION 3.1 STAR file with CTF, micrograph and coordinate columns: `cryocore align`
    writes every input column into particles.star with its values unchanged."""
    sim = cryocore.simulate(60, SIZE, snr=1.0, max_shift=3, rotate=False, seed=5)
    cryocore.io.write_mrc(str(tmp_path / "parts.mrcs"), sim.images, pixel_size_A=1.5)
    rng = np.random.default_rng(0)
    n = 60
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@parts.mrcs" for i in range(n)],
        "rlnMicrographName": [f"MotionCorr/job002/mic_{i // 7:04d}.mrc" for i in range(n)],
        "rlnCoordinateX": rng.uniform(100, 3000, n).round(2),
        "rlnCoordinateY": rng.uniform(100, 3000, n).round(2),
        "rlnDefocusU": rng.uniform(8000, 25000, n),
        "rlnDefocusV": rng.uniform(8000, 25000, n),
        "rlnDefocusAngle": rng.uniform(0, 180, n),
        "rlnCtfBfactor": np.zeros(n),
        "rlnCtfScalefactor": np.ones(n),
        "rlnPhaseShift": np.zeros(n),
        "rlnOpticsGroup": np.ones(n, int),
        "rlnGroupNumber": rng.integers(1, 4, n),
    })
    optics = pd.DataFrame({
        "rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnAmplitudeContrast": [0.1],
        "rlnSphericalAberration": [2.7], "rlnVoltage": [300.0], "rlnImagePixelSize": [1.5],
        "rlnImageSize": [SIZE], "rlnImageDimensionality": [2],
    })
    star = tmp_path / "in.star"
    starfile.write({"optics": optics, "particles": particles}, star)
    before = starfile.read(star)
    out = tmp_path / "out"
    assert main(["align", str(star), "-o", str(out), "--no-rotate", "--quiet", "--iterations", "3"]) == 0
    after = starfile.read(out / "particles.star")
    for block in ("optics", "particles"):
        for col in before[block].columns:
            assert col in after[block].columns, (block, col)
            got, want = after[block][col], before[block][col]
            if want.dtype.kind == "f":
                np.testing.assert_array_equal(got.to_numpy(np.float64), want.to_numpy(np.float64))
            elif col == "rlnImageName":  # the same images, the path now relative to out/
                assert got.tolist() == [v.replace("@", "@../") for v in want.tolist()]
            else:
                assert got.tolist() == want.tolist(), (block, col)
    assert {"rlnOriginXAngst", "rlnAnglePsi", "rlnClassNumber", "rlnCryocoreScore"} <= set(after["particles"].columns)
    # and the table reads per particle, optics merged in
    table = cryocore.io.open_stack(str(star)).table
    np.testing.assert_array_equal(table.column("rlnVoltage"), np.full(n, 300.0))
    np.testing.assert_array_equal(table.column("rlnDefocusU"), before["particles"]["rlnDefocusU"].to_numpy())
    assert table.column("rlnCtfBfactor").shape == (n,)
    with pytest.raises(KeyError, match="rlnNotAColumn"):
        table.column("rlnNotAColumn")


def test_resume_with_several_references_gives_the_same_result(three, tmp_path):
    kw = dict(iterations=4, tolerance_px=0, progress=False, threads=2)
    images = three.images[:240]
    full = cryocore.align(images, three.templates, **kw)

    class Stop(Exception):
        pass

    def stop_after_2(info):
        assert info["class_half_averages"].shape == (3, 2, SIZE, SIZE)
        if info["iteration"] == 2:
            raise Stop

    ckpt = str(tmp_path / "state.npz")
    with pytest.raises(Stop):
        cryocore.align(images, three.templates, checkpoint=ckpt, callback=stop_after_2, **kw)
    resumed = cryocore.align(images, three.templates, checkpoint=ckpt, resume=True, **kw)
    assert np.array_equal(resumed.classes, full.classes) and np.array_equal(resumed.shifts, full.shifts)
    assert np.array_equal(resumed.class_averages, full.class_averages)
    # other references: the checkpoint is refused
    with pytest.raises(ValueError, match="another input or other parameters"):
        cryocore.align(images, three.templates[::-1].copy(), checkpoint=ckpt, resume=True, **kw)


def test_a_class_that_empties_keeps_its_reference(three):
    """A fourth reference that matches nothing (pure noise, low score): the run goes on, the class
    holds (almost) no images and its average stays finite."""
    junk = np.random.default_rng(0).standard_normal((1, SIZE, SIZE)) * 0.01
    refs = np.concatenate([three.templates, junk])
    res = cryocore.align(three.images[:300], refs, progress=False, iterations=3)
    assert res.n_classes == 4 and np.isfinite(res.class_averages).all()
    assert (res.classes[res.accepted] == 4).mean() < 0.05
    assert (res.classes == three.classes[:300]).mean() >= 0.95
