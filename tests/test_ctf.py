"""The CTF in RELION's convention: cryocore.ctf against an independent numpy implementation of
RELION's formula, CONVENTIONS.md's worked values, per-particle parameters from STAR files, and
CTF-modulated simulations."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cryocore
from cryocore.ctf import ctf_at
from cryocore.io import ParticleTable, read_particles_star

DATA = Path(__file__).parent / "data"


def relion_ctf(ny, nx, apix, du, dv, angle_deg, kv, cs_mm, q0, phase_deg, b, scale, half=False):
    """RELION's getCTF written out here (independent of cryocore): numpy's (ny, nx) FFT layout,
    or with half=True the rfft layout (ny, nx//2+1), whose last column of an even nx is +Nyquist."""
    volts = kv * 1000.0
    lam = 12.2643247 / np.sqrt(volts * (1.0 + volts * 0.978466e-6))
    ky = np.fft.fftfreq(ny) * ny
    kx = np.fft.rfftfreq(nx) * nx if half else np.fft.fftfreq(nx) * nx
    Y = ky[:, None] / (ny * apix)
    X = kx[None, :] / (nx * apix)
    out = np.zeros((ny, len(kx)))
    for r in range(ny):
        for c in range(len(kx)):
            x, y = X[0, c], Y[r, 0]
            u2 = x * x + y * y
            ang = math.atan2(y, x)
            dz = du * math.cos(ang - math.radians(angle_deg)) ** 2 + dv * math.sin(ang - math.radians(angle_deg)) ** 2
            k1 = math.pi / 2.0 * 2.0 * lam  # pi * lambda
            k2 = math.pi / 2.0 * cs_mm * 1e7 * lam**3
            k3 = math.atan(q0 / math.sqrt(1.0 - q0 * q0))
            gamma = -k1 * dz * u2 + k2 * u2 * u2 - math.radians(phase_deg) - k3
            out[r, c] = -math.sin(gamma) * math.exp(-b / 4.0 * u2) * scale
    return out


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80), (81, 50)])
@pytest.mark.parametrize("params", [
    dict(du=15000.0, dv=15000.0, angle=0.0, kv=300.0, cs=2.7, q0=0.1, phase=0.0, b=0.0, scale=1.0),
    dict(du=21000.0, dv=18500.0, angle=37.0, kv=200.0, cs=2.0, q0=0.07, phase=0.0, b=60.0, scale=0.8),
    dict(du=9000.0, dv=9800.0, angle=-120.0, kv=300.0, cs=0.01, q0=0.1, phase=90.0, b=25.0, scale=1.0),
])
def test_ctf_is_relions_formula(shape, params):
    ny, nx = shape
    apix = 1.7
    p = params
    want = relion_ctf(ny, nx, apix, p["du"], p["dv"], p["angle"], p["kv"], p["cs"], p["q0"], p["phase"], p["b"],
                      p["scale"])
    kw = dict(voltage_kV=p["kv"], cs_mm=p["cs"], amplitude_contrast=p["q0"], phase_shift_deg=p["phase"],
              bfactor_A2=p["b"], scale=p["scale"])
    got = cryocore.ctf(shape, apix, p["du"], p["dv"], p["angle"], **kw)
    assert got.shape == shape
    np.testing.assert_allclose(got, want, atol=1e-5)
    half = cryocore.ctf(shape, apix, p["du"], p["dv"], p["angle"], rfft=True, **kw)
    assert half.shape == (ny, nx // 2 + 1)
    want_half = relion_ctf(ny, nx, apix, p["du"], p["dv"], p["angle"], p["kv"], p["cs"], p["q0"], p["phase"], p["b"],
                           p["scale"], half=True)
    np.testing.assert_allclose(half, want_half, atol=1e-5)
    # and the half is the full one's first columns but for the +Nyquist column of an even nx
    cols = nx // 2 + (1 if nx % 2 else 0)
    np.testing.assert_array_equal(half[:, :cols], got[:, :cols])


@pytest.mark.parametrize("fx, fy, kw, want", [
    (0.0, 0.0, dict(defocus_u_A=15000), 0.1),
    (0.01, 0.0, dict(defocus_u_A=15000), 0.19175),
    (0.05, 0.0, dict(defocus_u_A=15000), 0.66243),
    (0.1, 0.0, dict(defocus_u_A=15000), 0.07932),
    (0.05, 0.0, dict(defocus_u_A=20000, defocus_v_A=15000, defocus_angle_deg=30, amplitude_contrast=0.07,
                     bfactor_A2=50), 0.16810),
    (0.0, 0.05, dict(defocus_u_A=20000, defocus_v_A=15000, defocus_angle_deg=30, amplitude_contrast=0.07,
                     bfactor_A2=50), 0.51557),
    (0.1, 0.0, dict(defocus_u_A=20000, defocus_v_A=15000, defocus_angle_deg=30, amplitude_contrast=0.07,
                    bfactor_A2=50), -0.70833),
    (0.0, 0.1, dict(defocus_u_A=20000, defocus_v_A=15000, defocus_angle_deg=30, amplitude_contrast=0.07,
                    bfactor_A2=50), -0.54359),
])
def test_worked_values_of_the_conventions(fx, fy, kw, want):
    """CONVENTIONS.md, CTF: 300 kV, Cs 2.7 mm (cryocore.ctf's defaults), (X, Y) in 1/Å."""
    assert float(ctf_at(fx, fy, **kw)) == pytest.approx(want, abs=1e-5)


def test_zero_frequency_and_sign():
    c = cryocore.ctf(64, 2.0, 12000.0, amplitude_contrast=0.07, scale=0.9)
    assert c[0, 0] == pytest.approx(0.07 * 0.9)  # positive at low frequency: white particles
    from cryocore.ctf import wavelength_A

    assert wavelength_A(300) == pytest.approx(0.019688, abs=1e-6)


@pytest.mark.parametrize("kw, word", [
    (dict(defocus_u_A=float("nan")), "defocus_u_A"),
    (dict(defocus_u_A=10000, voltage_kV=-300), "voltage_kV"),
    (dict(defocus_u_A=10000, amplitude_contrast=1.0), "amplitude_contrast"),
    (dict(defocus_u_A=10000, amplitude_contrast=-0.1), "amplitude_contrast"),
    (dict(defocus_u_A=10000, cs_mm=-1), "cs_mm"),
    (dict(defocus_u_A=10000, bfactor_A2=float("inf")), "bfactor_A2"),
])
def test_absurd_parameters_are_refused(kw, word):
    with pytest.raises(ValueError, match=word):
        cryocore.ctf(32, 1.0, **kw)
    n = 3
    with pytest.raises(ValueError, match=word):
        cryocore.CtfParameters.from_arrays(n, kw)
    with pytest.raises(ValueError, match="pixel_size_A"):
        cryocore.ctf(32, 0.0, 10000)


def test_star_files_of_both_dialects_give_their_ctf_parameters():
    v30 = read_particles_star(DATA / "real-particles" / "sample.star")["table"]  # RELION 3.0, no optics
    p = cryocore.CtfParameters.from_table(v30)
    assert len(p) == 17
    np.testing.assert_allclose(p.defocus_u_A[0], 21186.804688)
    np.testing.assert_allclose(p.defocus_v_A[0], 21363.109375)
    np.testing.assert_allclose(p.defocus_angle_deg[0], 7.476096)
    assert (p.voltage_kV == 300).all() and (p.cs_mm == 2.7).all() and (p.amplitude_contrast == 0.1).all()
    v31 = read_particles_star(DATA / "real-particles" / "relion31.star")["table"]  # 3.1: optics group
    p = cryocore.CtfParameters.from_table(v31)
    assert len(p) == 5
    np.testing.assert_allclose(p.defocus_u_A[:2], [13108.082418, 12906.018499])
    assert (p.voltage_kV == 300).all() and (p.cs_mm == 0.01).all() and (p.amplitude_contrast == 0.1).all()
    c = p.image(0, (256, 256), 2.806)
    assert c.shape == (256, 129) and c[0, 0] == pytest.approx(0.1)


def test_ctf_parameters_fall_back_to_optics_then_relion_defaults():
    particles = pd.DataFrame({"rlnImageName": ["1@a.mrcs", "2@a.mrcs"], "rlnDefocusU": [10000.0, 20000.0],
                              "rlnOpticsGroup": [1, 1]})
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnVoltage": [300.0]})
    p = cryocore.CtfParameters.from_table(ParticleTable(particles, optics))
    np.testing.assert_array_equal(p.defocus_v_A, [10000.0, 20000.0])  # V = U
    np.testing.assert_array_equal(p.voltage_kV, [300.0, 300.0])  # from the optics group
    np.testing.assert_array_equal(p.cs_mm, [0.0, 0.0])  # RELION's defaults
    np.testing.assert_array_equal(p.amplitude_contrast, [0.0, 0.0])
    with pytest.raises(ValueError, match="rlnDefocusU"):
        cryocore.CtfParameters.from_table(ParticleTable(particles.drop(columns="rlnDefocusU"), optics))
    bad = particles.assign(rlnDefocusU=[10000.0, np.nan])
    with pytest.raises(ValueError, match="particle 2: defocus_u_A"):
        cryocore.CtfParameters.from_table(ParticleTable(bad, optics))


def test_simulated_stacks_carry_their_ctf():
    """Noise-free CTF simulation: each image is the posed particle filtered by its own CTF."""
    sim = cryocore.simulate(6, 64, snr=np.inf, max_shift=3, rotate=True, seed=4, ctf=True, pixel_size_A=2.0,
                            defocus_range_A=(8000, 25000))
    assert sim.ctf is not None and len(sim.ctf) == 6 and sim.pixel_size_A == 2.0
    assert ((sim.ctf.defocus_u_A >= 8000) & (sim.ctf.defocus_u_A <= 25000)).all()
    from cryocore.simulation import render

    posed = render(64, sim.angles, sim.shifts)
    for i in range(6):
        p = sim.ctf
        c = relion_ctf(64, 64, 2.0, p.defocus_u_A[i], p.defocus_v_A[i], p.defocus_angle_deg[i], 300.0, 2.7, 0.1,
                       0.0, 0.0, 1.0)
        want = np.fft.ifft2(np.fft.fft2(posed[i]) * c).real
        np.testing.assert_allclose(sim.images[i], want, atol=1e-4 * np.abs(want).max())
    with pytest.raises(ValueError, match="defocus_range_A"):
        cryocore.simulate(4, 64, ctf=True, defocus_range_A=(-1, 5))


def test_cli_simulates_a_ctf_stack_with_relion_columns(tmp_path):
    from cryocore.cli import main

    out = tmp_path / "sim" / "stack.mrcs"
    assert main(["simulate", "-o", str(out), "--n", "12", "--size", "64", "--ctf", "--pixel-size-A", "2.0",
                 "--defocus-min-A", "9000", "--defocus-max-A", "12000", "--seed", "3"]) == 0
    r = read_particles_star(out.parent / "truth.star")
    assert r["pixel_size_A"] == 2.0
    p = cryocore.CtfParameters.from_table(r["table"])
    assert ((p.defocus_u_A >= 9000) & (p.defocus_u_A <= 12000)).all()
    assert (p.voltage_kV == 300).all() and (p.cs_mm == 2.7).all() and (p.amplitude_contrast == 0.1).all()
    sim = cryocore.simulate(12, 64, seed=3, ctf=True, pixel_size_A=2.0, defocus_range_A=(9000, 12000))
    np.testing.assert_array_equal(p.defocus_u_A, sim.ctf.defocus_u_A)  # exact values in the file


def test_the_ctf_stays_with_the_detector():
    """An image rotated by psi carries its CTF unrotated: moved back onto the particle, it is the
    particle filtered by the CTF turned by -psi (astigmatism angle minus psi), not plus psi."""
    from conftest import ribosome_views

    from cryocore.ctf import ctf_in_reference_frame

    view = ribosome_views(1, 64, seed=1)[0]
    sim = cryocore.simulate(8, 64, snr=np.inf, max_shift=2, rotate=True, seed=5, templates=view[None], ctf=True,
                            pixel_size_A=2.0, defocus_range_A=(15000, 15000), astigmatism_A=6000)
    back = cryocore.transform(sim.images, sim.angles, sim.shifts, inverse=True)
    spec = np.fft.rfft2(view)
    f = np.hypot(np.fft.fftfreq(64)[:, None], np.fft.rfftfreq(64)[None, :])
    band = (f > 0.05) & (f < 0.2)  # where the CTF oscillates and bicubic interpolation is still exact enough
    checked = 0
    for i in range(8):
        psi = sim.angles[i]
        got = np.fft.rfft2(back[i])[band]
        right = (spec * ctf_in_reference_frame(sim.ctf, i, psi, (64, 64), 2.0))[band]
        wrong = (spec * ctf_in_reference_frame(sim.ctf, i, -psi, (64, 64), 2.0))[band]
        err_right = np.linalg.norm(got - right) / np.linalg.norm(got)
        err_wrong = np.linalg.norm(got - wrong) / np.linalg.norm(got)
        assert err_right < 0.1, (i, err_right)
        # the two turns differ by 2 psi in the astigmatism angle: visible with enough astigmatism
        if abs(sim.ctf.defocus_u_A[i] - sim.ctf.defocus_v_A[i]) * abs(np.sin(np.radians(2 * psi))) > 1500:
            assert err_wrong > 1.5 * err_right, (i, psi, err_right, err_wrong)
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("rotate", [False, True])
def test_wiener_average_restores_what_the_ctf_took(rotate):
    """800 images of a ribosome view, SNR 0.05, defocus 0.8-2.5 um, true poses: the plain average
    stops at the first CTF zero, the Wiener average of the same images does not."""
    from conftest import ribosome_views

    view = ribosome_views(1, 64, seed=0)[0]
    sim = cryocore.simulate(800, 64, snr=0.05, max_shift=3, rotate=rotate, seed=2, templates=view[None], ctf=True,
                            pixel_size_A=2.0, defocus_range_A=(8000, 25000), astigmatism_A=800)
    plain = cryocore.transform(sim.images, sim.angles, sim.shifts, inverse=True).mean(axis=0)
    wiener = cryocore.wiener_average(sim.images, sim.ctf, 2.0, shifts=sim.shifts,
                                     angles=sim.angles if rotate else None)

    def pearson(a):
        return np.corrcoef(a.ravel(), view.ravel())[0, 1]

    assert pearson(plain) < 0.8 and pearson(wiener) > 0.95
    f_plain = cryocore.frc(plain, view).resolution_05
    f_wiener = cryocore.frc(wiener, view).resolution_05
    assert f_wiener >= 2 * f_plain
    with pytest.raises(ValueError, match="ssnr"):
        cryocore.wiener_average(sim.images, sim.ctf, 2.0, ssnr=np.ones(5))
    with pytest.raises(ValueError, match="particles"):
        cryocore.wiener_average(sim.images[:10], sim.ctf, 2.0)


@pytest.fixture(scope="module")
def ctf_stack_sim():
    from conftest import ribosome_views

    view = ribosome_views(1, 64, seed=0)[0]
    sim = cryocore.simulate(600, 64, snr=0.05, max_shift=3, rotate=True, seed=2, templates=view[None], ctf=True,
                            pixel_size_A=2.0, defocus_range_A=(8000, 25000), astigmatism_A=200, bfactor_A2=50)
    return view, sim


def _fit(view, avg):
    f = cryocore.register(view, avg, rotate=True, upsample=50)
    return cryocore.transform(avg, f.angles, f.shifts, inverse=True), float(f.angles)


def test_ctf_corrected_alignment_reaches_the_true_pose_wiener_average(ctf_stack_sim):
    """600 rotated images of a ribosome view with CTFs (0.8-2.5 um), SNR 0.05: CTF-corrected
    align reaches an FRC 0.5 with the true view within 10% of the Wiener average made with the
    true poses and CTFs, at least twice that of the uncorrected average, and its poses are at
    least as good."""
    view, sim = ctf_stack_sim
    truth = cryocore.wiener_average(sim.images, sim.ctf, 2.0, shifts=sim.shifts, angles=sim.angles)
    f_truth = cryocore.frc(_fit(view, truth)[0], view).resolution_05
    results = {}
    for name, ctf in (("plain", None), ("ctf", sim.ctf)):
        res = cryocore.align(sim.images, pixel_size_A=2.0, ctf=ctf, progress=False)
        aligned, psi = _fit(view, res.average)
        err = np.abs(((res.angles + psi) % 360 - sim.angles + 180) % 360 - 180)[res.accepted]
        results[name] = (cryocore.frc(aligned, view).resolution_05, np.median(err), res)
    assert results["ctf"][0] >= 0.9 * f_truth
    assert results["ctf"][0] >= 2 * results["plain"][0]
    assert results["ctf"][1] <= results["plain"][1]
    res = results["ctf"][2]
    assert res.parameters["ctf"] is True and res.parameters["ctf"] != results["plain"][2].parameters["ctf"]
    # the half-set FRC has no dip to zero at the first CTF zeros (~1/20 A at 2 A/px: 0.1 cycles/px)
    band = (res.frc.frequencies > 0.06) & (res.frc.frequencies < 0.16)
    assert res.frc.values[band].min() > 0.5


def test_ctf_correction_inputs(ctf_stack_sim, tmp_path):
    view, sim = ctf_stack_sim
    imgs = sim.images[:40]
    with pytest.raises(ValueError, match="pixel size"):
        cryocore.align(imgs, ctf=sim.ctf.take(slice(0, 40)), progress=False, iterations=1)
    with pytest.raises(ValueError, match="particles"):
        cryocore.align(imgs, pixel_size_A=2.0, ctf=sim.ctf, progress=False, iterations=1)
    with pytest.raises(NotImplementedError, match="CTF"):
        cryocore.align(imgs, 0, rotate=False, mode="online", pixel_size_A=2.0, ctf=sim.ctf.take(slice(0, 40)),
                       progress=False)
    with pytest.raises(ValueError, match="amplitude_contrast"):
        cryocore.align(imgs, pixel_size_A=2.0, ctf=dict(defocus_u_A=15000.0, amplitude_contrast=1.5),
                       progress=False, iterations=1)
    # "auto": the STAR columns when there are, none otherwise
    from cryocore.cli import main

    out = tmp_path / "sim" / "s.mrcs"
    assert main(["simulate", "-o", str(out), "--n", "40", "--size", "64", "--ctf", "--pixel-size-A", "2"]) == 0
    with cryocore.io.open_stack(str(out.parent / "truth.star")) as stack:
        r = cryocore.align(stack, ctf="auto", rotate=False, progress=False, iterations=2)
        assert r.parameters["ctf"] is True
    with cryocore.io.open_stack(str(out)) as stack:  # an MRC stack has no CTF columns
        assert cryocore.align(stack, ctf="auto", rotate=False, progress=False, iterations=2).parameters["ctf"] is False
    # the command line: --ctf needs the columns; with them the run says so in its report
    assert main(["align", str(out.parent / "truth.star"), "-o", str(tmp_path / "o1"), "--ctf", "--no-rotate",
                 "--iterations", "2", "--quiet"]) == 0
    import json

    assert json.loads((tmp_path / "o1" / "report.json").read_text())["parameters"]["ctf"] is True
    assert main(["align", str(out), "-o", str(tmp_path / "o2"), "--ctf", "--no-rotate", "--quiet"]) == 2
    assert not (tmp_path / "o2" / "report.json").exists()


def test_the_stack_of_ctfs_is_each_particles_ctf(rng):
    from cryocore.ctf import ctf_in_reference_frame, ctf_stack

    n = 7
    p = cryocore.CtfParameters.from_arrays(n, dict(
        defocus_u_A=rng.uniform(8000, 25000, n), defocus_v_A=rng.uniform(8000, 25000, n),
        defocus_angle_deg=rng.uniform(0, 180, n), voltage_kV=rng.choice([200.0, 300.0], n),
        amplitude_contrast=rng.uniform(0, 0.2, n), phase_shift_deg=rng.uniform(0, 90, n),
        bfactor_A2=rng.uniform(0, 100, n), scale=rng.uniform(0.5, 1.5, n)))
    psi = rng.uniform(0, 360, n)
    for angles in (None, psi):
        st = ctf_stack(p, (50, 37), 1.3, angles)
        assert st.shape == (n, 50, 19) and st.dtype == np.float32
        for i in range(n):
            want = ctf_in_reference_frame(p, i, 0.0 if angles is None else psi[i], (50, 37), 1.3)
            np.testing.assert_allclose(st[i], want, atol=1e-6)


def _random_ctf_rows(rng, n):
    """(n, 9) CTF parameter rows in the core's order, spanning astigmatism, phase plates, positive
    and negative B-factors, both voltages."""
    return np.stack([rng.uniform(5000, 30000, n), rng.uniform(5000, 30000, n), rng.uniform(-180, 180, n),
                     rng.choice([200.0, 300.0], n), rng.uniform(0, 3, n), rng.uniform(0, 0.3, n),
                     rng.uniform(0, 90, n), rng.choice([0.0, 40.0, 150.0, -30.0], n), rng.uniform(0.5, 1.2, n)], 1)


def _relion_rows(rows, ny, nx, apix, psi=None):
    """The test's own formula for each row (turned by -psi): (n, ny, nx//2+1) float64."""
    return np.stack([relion_ctf(ny, nx, apix, r[0], r[1], r[2] - (0.0 if psi is None else psi[i]), *r[3:], half=True)
                     for i, r in enumerate(rows)])


@pytest.mark.parametrize("shape", [(32, 32), (33, 33), (24, 40), (41, 26)])
def test_the_cores_ctf_is_relions_formula(rng, shape):
    from cryocore import _core

    ny, nx = shape
    rows = _random_ctf_rows(rng, 6)
    psi = rng.uniform(0, 360, 6)
    want = _relion_rows(rows, ny, nx, 1.1, psi)
    got = _core.ctf_planes(rows, ny, nx, 1.1, angles=psi, threads=2)
    assert got.shape == (6, ny, nx // 2 + 1) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(_core.ctf_planes(rows, ny, nx, 1.1, angles=psi, squared=True), want**2, atol=1e-5)
    np.testing.assert_array_equal(_core.ctf_planes(rows, ny, nx, 1.1, angles=psi, threads=1), got)


def test_ctf_filter_is_numpy_fourier_filtering_by_each_ctf(rng):
    from cryocore import _core

    for ny, nx in ((64, 64), (45, 52)):
        imgs = rng.standard_normal((5, ny, nx)).astype(np.float32)
        rows = _random_ctf_rows(rng, 5)
        want = np.fft.irfft2(np.fft.rfft2(imgs.astype(np.float64)) * _relion_rows(rows, ny, nx, 1.7), s=(ny, nx))
        got = _core.ctf_filter(imgs, rows, 1.7, threads=2)
        np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())
        idx = np.array([3, 0, 3])
        np.testing.assert_array_equal(_core.ctf_filter(imgs, rows[:3], 1.7, threads=1, index=idx),
                                      _core.ctf_filter(imgs[idx], rows[:3], 1.7))
    with pytest.raises(ValueError, match="params must have shape"):
        _core.ctf_filter(imgs, rows[:2], 1.7)
    for column, value, word in ((0, np.nan, "defocus_u_A"), (5, 1.0, "amplitude contrast"), (3, -300.0, "voltage")):
        bad = rows.copy()
        bad[1, column] = value
        with pytest.raises(ValueError, match=f"particle 2: .*{word}"):
            _core.ctf_filter(imgs, bad, 1.7)
    with pytest.raises(ValueError, match="pixel_size_A"):
        _core.ctf_filter(imgs, rows, 0.0)
    imgs[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match="image 2"):
        _core.ctf_filter(imgs, rows, 1.7)


def test_accumulate_ctf2_is_the_weighted_sum_of_squares_per_group_within_the_band(rng):
    from cryocore import _core

    ny, nx, n, G = 40, 36, 70, 3
    rows = _random_ctf_rows(rng, n)
    psi = rng.uniform(0, 360, n)
    weights = rng.choice([0.0, 1.0, -1.0, 0.5], n)
    groups = rng.integers(-1, G, n).astype(np.int32)
    sq = _relion_rows(rows, ny, nx, 2.0, psi) ** 2
    band = 0.3
    keep = (np.abs(np.rint(np.fft.fftfreq(ny) * ny))[:, None] <= np.floor(band * ny)) & \
        (np.arange(nx // 2 + 1)[None, :] <= np.floor(band * nx))
    want = np.stack([np.einsum("i,ijk->jk", np.where(groups == g, weights, 0.0), sq) * keep for g in range(G)])
    start = rng.standard_normal((G, ny, nx // 2 + 1))
    out = start.copy()
    _core.accumulate_ctf2(rows, weights, groups, out, nx, 2.0, band=band, angles=psi, threads=2)
    np.testing.assert_allclose(out - start, want, atol=1e-5 * n)
    again = start.copy()
    _core.accumulate_ctf2(rows, weights, groups, again, nx, 2.0, band=band, angles=psi, threads=1)
    np.testing.assert_array_equal(again, out)  # the same for any thread count
    with pytest.raises(ValueError, match="out of range"):
        _core.accumulate_ctf2(rows, weights, np.full(n, G, np.int32), out, nx, 2.0)
    with pytest.raises(ValueError, match="out must have shape"):
        _core.accumulate_ctf2(rows, weights, groups, out, nx + 4, 2.0)


def test_star_inputs_with_ctf_columns_are_corrected_by_default(tmp_path):
    import json

    from cryocore.cli import main

    out = tmp_path / "sim" / "s.mrcs"
    assert main(["simulate", "-o", str(out), "--n", "40", "--size", "64", "--ctf", "--pixel-size-A", "2"]) == 0
    star = str(out.parent / "truth.star")
    for flags, expected in (([], True), (["--no-ctf"], False), (["--ctf"], True)):
        o = tmp_path / f"o{len(flags)}{expected}"
        assert main(["align", star, "-o", str(o), "--no-rotate", "--iterations", "2", "--quiet", *flags]) == 0
        assert json.loads((o / "report.json").read_text())["parameters"]["ctf"] is expected, flags
    with cryocore.io.open_stack(star) as stack:  # Python: the same default
        assert cryocore.align(stack, rotate=False, iterations=2, progress=False).parameters["ctf"] is True
        assert cryocore.align(stack, rotate=False, iterations=2, progress=False, ctf=None).parameters["ctf"] is False


def test_forward_stack_multiplies_each_spectrum_by_its_ctf_on_the_kept_frequencies(rng):
    from cryocore import _core

    ny, nx = 40, 34
    imgs = rng.standard_normal((4, ny, nx)).astype(np.float32)
    rows = _random_ctf_rows(rng, 4)
    want = np.fft.rfft2(imgs.astype(np.float64)) * _relion_rows(rows, ny, nx, 1.5)
    got = _core.forward_stack(imgs, threads=2, ctf=rows, pixel_size_A=1.5)
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
    idx = np.array([2, 0])
    cropped = _core.forward_stack(imgs, index=idx, crop=(5, 7), ctf=rows[:2], pixel_size_A=1.5)
    keep = np.r_[0:6, ny - 5 : ny]
    np.testing.assert_allclose(cropped, (np.fft.rfft2(imgs[idx].astype(np.float64)) *
                                         _relion_rows(rows[:2], ny, nx, 1.5))[:, keep, :8], atol=2e-5 * np.abs(want).max())
    with pytest.raises(ValueError, match="pixel_size_A"):
        _core.forward_stack(imgs, ctf=rows)
    with pytest.raises(ValueError, match="ctf must have shape"):
        _core.forward_stack(imgs, ctf=rows[:3], pixel_size_A=1.5)


def test_the_rotational_search_with_ctfs_searches_and_hands_back_ctf_x(rng):
    """The search with ctf= is the search of the CTF-filtered images (numpy-filtered here), and
    its filtered output is CTF X."""
    from cryocore import _core

    sim = cryocore.simulate(n_images=24, size=64, snr=2.0, ctf=True, pixel_size_A=2.5, seed=4)
    rows = sim.ctf.array()
    filtered_np = np.fft.irfft2(np.fft.rfft2(sim.images.astype(np.float64)) * _relion_rows(rows, 64, 64, 2.5),
                                s=(64, 64)).astype(np.float32)
    search = _core.RotationalSearch(sim.template[None].astype(np.float32), _core.SearchSettings(), angular_step=1.0)
    out = np.empty_like(sim.images, dtype=np.float32)
    idx = np.arange(24)[::-1].copy()
    s, a, c, _ = search.register(sim.images, threads=2, index=idx, ctf=rows[idx], pixel_size_A=2.5, filtered=out)
    np.testing.assert_allclose(out, filtered_np[idx], atol=1e-4 * np.abs(filtered_np).max())
    s2, a2, c2, _ = search.register(filtered_np[idx], threads=1)
    turn = np.abs((a - a2 + 180) % 360 - 180)
    assert np.median(turn) < 0.02 and np.median(np.hypot(*(s - s2).T)) < 0.01
    np.testing.assert_allclose(c, c2, atol=1e-3)
    with pytest.raises(ValueError, match="filtered needs ctf"):
        search.register(sim.images, filtered=out)


def test_register_with_ctfs_finds_the_true_poses_better_than_without(rng):
    for rotate in (False, True):
        sim = cryocore.simulate(n_images=120, size=96, snr=0.1, ctf=True, pixel_size_A=2.0, seed=8, rotate=rotate)
        plain = cryocore.register(sim.template, sim.images, rotate=rotate, threads=2)
        with_ctf = cryocore.register(sim.template, sim.images, rotate=rotate, threads=2, ctf=sim.ctf, pixel_size_A=2.0)
        err = [np.median(np.hypot(*(r.shifts - sim.shifts).T)) for r in (plain, with_ctf)]
        assert err[1] < 0.25 and err[1] <= err[0], err
        if rotate:
            turn = [np.median(np.abs((r.angles - sim.angles + 180) % 360 - 180)) for r in (plain, with_ctf)]
            assert turn[1] < 0.5 and turn[1] <= turn[0], turn
        # the same as registering the images multiplied by their CTFs (numpy)
        filt = np.fft.irfft2(np.fft.rfft2(sim.images.astype(np.float64)) *
                             np.stack([sim.ctf.image(i, (96, 96), 2.0) for i in range(120)]), s=(96, 96))
        ref = cryocore.register(sim.template, filt, rotate=rotate, threads=1)
        assert np.median(np.hypot(*(ref.shifts - with_ctf.shifts).T)) < 0.01
    with pytest.raises(ValueError, match="pixel_size_A"):
        cryocore.register(sim.template, sim.images, ctf=sim.ctf)
    with pytest.raises(ValueError, match="ctf gives 120 particles but there are 5"):
        cryocore.register(sim.template, sim.images[:5], ctf=sim.ctf, pixel_size_A=2.0)
    with pytest.raises(ValueError, match="amplitude"):
        cryocore.register(sim.template, sim.images[:2], ctf=dict(defocus_u_A=[1e4, 1e4], amplitude_contrast=1.0),
                          pixel_size_A=2.0)


@pytest.mark.parametrize("block, column, value, words", [
    ("particles", "rlnDefocusU", np.nan, "particle 4: defocus_u_A \\(rlnDefocusU\\)"),
    ("optics", "rlnAmplitudeContrast", 1.2, "amplitude_contrast \\(rlnAmplitudeContrast\\) is 1.2"),
    ("optics", "rlnVoltage", -300.0, "voltage_kV \\(rlnVoltage\\)"),
])
def test_cli_refuses_bad_ctf_columns_in_one_line_and_writes_nothing(tmp_path, block, column, value, words):
    import subprocess
    import sys

    import starfile

    from cryocore.cli import main

    out = tmp_path / "sim" / "s.mrcs"
    assert main(["simulate", "-o", str(out), "--n", "12", "--size", "32", "--ctf", "--pixel-size-A", "2",
                 "--max-shift", "3"]) == 0
    star = starfile.read(out.parent / "truth.star", always_dict=True)
    star[block].loc[3 if block == "particles" else 0, column] = value
    bad = out.parent / "bad.star"
    starfile.write(star, bad)
    before = bad.read_bytes()
    r = subprocess.run([sys.executable, "-m", "cryocore", "align", str(bad), "-o", str(tmp_path / "o"), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert re.search(words, r.stderr), r.stderr
    assert not (tmp_path / "o").exists() and bad.read_bytes() == before


def test_intact_first_peak_is_one_before_the_first_peak_as_relion(rng):
    """RELION's --ctf_intact_first_peak: 1 where |the CTF's argument without its constant phase|
    < pi/2 (before the first peak), the formula elsewhere; the envelope and scale still apply."""
    from cryocore import _core

    rows = _random_ctf_rows(rng, 5)
    rows[:, 6] = 0.0  # no phase plate
    ny = nx = 48
    apix = 1.5
    got = _core.ctf_planes(rows, ny, nx, apix, intact_first_peak=True)
    plain = _relion_rows(rows, ny, nx, apix)
    Y = (np.fft.fftfreq(ny) / apix)[:, None]
    X = (np.fft.rfftfreq(nx) / apix)[None, :]
    u2, theta = X * X + Y * Y, np.arctan2(Y, X)
    for i, r in enumerate(rows):
        lam = 12.2643247 / np.sqrt(r[3] * 1e3 * (1 + 0.978466e-6 * r[3] * 1e3))
        dz = r[0] * np.cos(theta - np.radians(r[2])) ** 2 + r[1] * np.sin(theta - np.radians(r[2])) ** 2
        argument = -np.pi * lam * dz * u2 + 0.5 * np.pi * r[4] * 1e7 * lam**3 * u2 * u2
        intact = np.abs(argument) < np.pi / 2
        want = np.where(intact, np.exp(-r[7] / 4 * u2) * r[8], plain[i])
        assert intact.sum() > 3 and (~intact).sum() > 100
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    # the same flag reaches the searches and filters
    imgs = rng.standard_normal((5, ny, nx)).astype(np.float32)
    f = _core.ctf_filter(imgs, rows, apix, intact_first_peak=True)
    np.testing.assert_allclose(f, np.fft.irfft2(np.fft.rfft2(imgs.astype(np.float64)) * got, s=(ny, nx)), atol=1e-4)
