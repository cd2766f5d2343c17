"""The pipeline example of docs/examples (classify, select, align, write STAR, plot) runs on a
small simulated RELION stack and keeps the particles of the real views."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

import cryocore
from conftest import ribosome_views

ROOT = Path(__file__).resolve().parents[1]


def _example():
    spec = importlib.util.spec_from_file_location("pipeline_example", ROOT / "docs" / "examples" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pipeline_example_keeps_the_good_particles(tmp_path):
    views = ribosome_views(3, 64, seed=4)
    sim = cryocore.simulate(600, 64, snr=0.1, templates=views, max_shift=3, ctf=True, pixel_size_A=4.0,
                            defocus_range_A=(8000, 25000), seed=5, junk_fraction=0.1)
    cryocore.io.write_mrc(str(tmp_path / "stack.mrcs"), sim.images.astype(np.float32), pixel_size_A=4.0)
    cols = sim.ctf.star_columns()
    particles = pd.DataFrame({"rlnImageName": [f"{i + 1}@stack.mrcs" for i in range(600)], "rlnOpticsGroup": 1,
                              "rlnMicrographName": [f"mic{i // 50}.mrc" for i in range(600)],
                              **{c: cols[c] for c in ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle")}})
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnVoltage": [300.0],
                           "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1], "rlnImagePixelSize": [4.0],
                           "rlnImageSize": [64], "rlnImageDimensionality": [2]})
    cryocore.io.write_star_table(str(tmp_path / "particles.star"), cryocore.io.ParticleTable(particles, optics))

    summary = _example().run(str(tmp_path / "particles.star"), str(tmp_path / "work"), 3, threads=2)
    truth = np.asarray(sim.classes)
    out = starfile.read(summary["particles_star"], always_dict=True)["particles"]
    kept = np.array([int(n.split("@")[0]) - 1 for n in out["rlnImageName"]])
    assert len(summary["kept_classes"]) == 3 and summary["selected"] == len(out)
    assert np.mean(truth[kept] > 0) >= 0.95  # the selection is (almost) all real particles
    assert np.mean(np.isin(np.flatnonzero(truth > 0), kept)) >= 0.8  # ... and most of them
    assert {"rlnMicrographName", "rlnDefocusU", "rlnOriginXAngst", "rlnAnglePsi", "rlnClassNumber"} <= set(out.columns)
    assert Path(summary["gallery"]).stat().st_size > 0
