"""The command line: align, simulate, demo; user errors give exit code 2 and one line."""

import json
import re
import subprocess
import sys

import mrcfile
import numpy as np
import pytest
import starfile

from cryocore.cli import main


def _run(*argv):
    return subprocess.run([sys.executable, "-m", "cryocore", *argv], capture_output=True, text=True)


def test_demo_runs_and_reports_accuracy(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--quiet", "--no-rotate"]) == 0
    text = capsys.readouterr().out
    m = re.search(r"median shift error ([0-9.]+) px", text)
    o = re.search(r"oracle \(registered against the true particle\) ([0-9.]+) px", text)
    c = re.search(r"Pearson ([0-9.]+)", text)
    assert m and o and c, text
    assert float(m.group(1)) <= 1.15 * float(o.group(1))
    assert float(c.group(1)) >= 0.95
    for name in ("average.mrc", "particles.star", "frc.png", "progress.gif", "report.json"):
        assert (out / name).stat().st_size > 0
    # a second run replaces the demo's own outputs
    assert main(["demo", "-o", str(out), "--quiet", "--n", "60", "--size", "64"]) == 0  # with rotations
    assert "median angle error" in capsys.readouterr().out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    path = d / "stack.mrcs"
    assert main(["simulate", "-o", str(path), "--n", "80", "--size", "64", "--snr", "0.5", "--no-rotate",
                 "--max-shift", "5", "--pixel-size-A", "2.0"]) == 0
    return path


def test_simulate_writes_stack_truth_and_template(stack):
    with mrcfile.open(stack) as m:
        assert m.data.shape == (80, 64, 64)
        assert float(m.voxel_size.x) == pytest.approx(2.0)
    truth = starfile.read(stack.parent / "truth.star")
    assert len(truth["particles"]) == 80
    assert truth["particles"]["rlnImageName"].iloc[0] == "000001@stack.mrcs"
    assert (stack.parent / "template.mrc").exists()


def test_align_writes_everything_and_round_trips(stack, tmp_path):
    from cryocore.io import read_particles_star

    out = tmp_path / "out"
    before = stack.read_bytes()
    assert main(["align", str(stack), "-o", str(out), "--quiet", "--iterations", "4"]) == 0
    assert stack.read_bytes() == before  # the input is never written
    star = starfile.read(out / "particles.star")
    parts = star["particles"]
    assert len(parts) == 80 and list(parts["rlnImageName"][:2]) == ["000001@" + str(stack), "000002@" + str(stack)]
    assert float(star["optics"]["rlnImagePixelSize"].iloc[0]) == pytest.approx(2.0)
    assert set(parts["rlnRandomSubset"]) == {1, 2}
    back = read_particles_star(out / "particles.star")
    report = json.loads((out / "report.json").read_text())
    assert report["n_images"] == 80 and report["pixel_size_A"] == pytest.approx(2.0)
    assert report["accepted"] == int(np.sum(back["accepted"]))
    with mrcfile.open(out / "average.mrc") as m:
        assert m.data.shape == (64, 64) and float(m.voxel_size.x) == pytest.approx(2.0)
        avg = m.data.copy()
    with mrcfile.open(out / "half1.mrc") as m1, mrcfile.open(out / "half2.mrc") as m2:
        assert np.corrcoef(m1.data.ravel(), m2.data.ravel())[0, 1] > 0.8
    # The written poses bring the images onto the written average.
    import cryocore

    with mrcfile.open(stack) as m:
        imgs = m.data.copy()
    keep = back["accepted"]
    acc = cryocore.Accumulator((64, 64)).add(imgs[keep], back["shifts"][keep], angles=back["angles"][keep])
    assert np.corrcoef(acc.mean().ravel(), avg.ravel())[0, 1] > 0.99
    # No temporary files are left behind.
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_existing_output_directory_is_refused(stack, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = _run("align", str(stack), "-o", str(out), "--quiet")
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "argv, word",
    [
        (["align", "missing.mrcs", "-o", "OUT"], "missing.mrcs"),
        (["align", "STACK", "-o", "OUT", "--threshold", "2"], "threshold"),
        (["align", "STACK", "-o", "OUT", "--iterations", "0"], "positive"),
        (["align", "STACK", "-o", "OUT", "--rotate", "--mode", "online", "--reference", "0"], "rotate"),
        (["align", "STACK", "-o", "OUT", "--reference", "999"], "out of range"),
        (["align", "STACK", "-o", "OUT", "--lowpass-A", "1"], "lowpass_A"),
        (["align", "STACK", "-o", "OUT", "--bogus"], "--bogus"),
        (["align", "STACK", "-o", "OUT", "--tolerance-px", "-1"], ">= 0"),
        (["align", "STACK", "-o", "OUT", "--tolerance-px", "nan"], ">= 0"),
        (["demo", "--n", "0"], "positive"),
        (["simulate", "-o", "x.txt"], ".mrcs"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, word, stack, tmp_path):
    argv = [a.replace("STACK", str(stack)).replace("OUT", str(tmp_path / "o")) for a in argv]
    r = _run(*argv)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert word in r.stderr
    assert len([ln for ln in r.stderr.strip().splitlines() if "error" in ln]) == 1


def test_not_an_image_stack(tmp_path):
    bad = tmp_path / "junk.mrcs"
    bad.write_bytes(b"this is not an MRC file" * 100)
    r = _run("align", str(bad), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_failed_run_leaves_no_output_directory(stack, tmp_path):
    out = tmp_path / "never"
    r = _run("align", str(stack), "-o", str(out), "--threshold", "0.9999", "--quiet")
    assert r.returncode == 2 and "threshold" in r.stderr
    assert not out.exists()
    r = _run("align", str(tmp_path / "missing.mrcs"), "-o", str(out))
    assert r.returncode == 2 and not out.exists()


def test_output_directory_that_cannot_be_created(stack, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    r = _run("align", str(stack), "-o", str(blocker / "sub"), "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cannot create the output directory" in r.stderr
