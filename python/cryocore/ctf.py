"""The microscope's contrast transfer function in RELION's convention (CONVENTIONS.md, CTF).

:func:`ctf` computes one CTF on numpy's FFT grid; :class:`CtfParameters` holds the parameters
of every particle of a stack (from a RELION STAR file's columns, optics groups merged in, or
from arrays) and gives each particle's CTF. Units are RELION's: defocus in Å (positive =
underfocus), astigmatism angle in degrees from x to the U axis, voltage in kV, spherical
aberration in mm, amplitude contrast as a fraction, phase shift in degrees, B-factor in Å².
The CTF is positive at low frequency (white particles), ``CTF(0) = Q0 * scale`` without a phase
shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Union

import numpy as np

__all__ = ["CtfParameters", "ctf", "ctf_at", "ctf_in_reference_frame", "ctf_stack", "wavelength_A",
           "wiener_average"]

# STAR column of each parameter, and RELION's value when a file does not give it (defocus V: U).
STAR_COLUMNS = {
    "defocus_u_A": "rlnDefocusU",
    "defocus_v_A": "rlnDefocusV",
    "defocus_angle_deg": "rlnDefocusAngle",
    "voltage_kV": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
    "phase_shift_deg": "rlnPhaseShift",
    "bfactor_A2": "rlnCtfBfactor",
    "scale": "rlnCtfScalefactor",
}


def wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å (300 kV: 0.019688 Å)."""
    v = float(voltage_kV) * 1e3
    return 12.2643247 / math.sqrt(v * (1.0 + 0.978466e-6 * v))


def _check(name: str, value: Any, *, low: Optional[float] = None, high: Optional[float] = None,
           low_open: bool = False, high_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name} must be a finite number {' and '.join(x for x in (lo, hi) if x)}, got {value!r}")
    return v


def ctf_at(fx: np.ndarray, fy: np.ndarray, defocus_u_A: float, defocus_v_A: Optional[float] = None,
           defocus_angle_deg: float = 0.0, *, voltage_kV: float = 300.0, cs_mm: float = 2.7,
           amplitude_contrast: float = 0.1, phase_shift_deg: float = 0.0, bfactor_A2: float = 0.0,
           scale: float = 1.0) -> np.ndarray:
    """The CTF at spatial frequencies ``(fx, fy)`` in 1/Å (x along columns, y along rows),
    float64 of their broadcast shape. Parameters as :func:`ctf`."""
    du = _check("defocus_u_A", defocus_u_A)
    dv = du if defocus_v_A is None else _check("defocus_v_A", defocus_v_A)
    angle = math.radians(_check("defocus_angle_deg", defocus_angle_deg))
    lam = wavelength_A(_check("voltage_kV", voltage_kV, low=0.0, low_open=True))
    cs = _check("cs_mm", cs_mm, low=0.0) * 1e7  # Å
    q0 = _check("amplitude_contrast", amplitude_contrast, low=0.0, high=1.0, high_open=True)
    phase = math.radians(_check("phase_shift_deg", phase_shift_deg))
    b = _check("bfactor_A2", bfactor_A2)
    sc = _check("scale", scale)
    return _formula(np.asarray(fx, np.float64), np.asarray(fy, np.float64), du, dv, angle, lam, cs, q0, phase, b, sc)


def _formula(fx: np.ndarray, fy: np.ndarray, du: Any, dv: Any, angle_rad: Any, lam: Any, cs_A: Any, q0: Any,
             phase_rad: Any, b: Any, scale: Any) -> np.ndarray:
    """RELION's CTF at frequencies (fx, fy) (1/Å); the parameters broadcast against them."""
    u2 = fx * fx + fy * fy
    theta = np.arctan2(fy, fx)
    dz = du * np.cos(theta - angle_rad) ** 2 + dv * np.sin(theta - angle_rad) ** 2
    gamma = (-np.pi * lam * dz * u2 + 0.5 * np.pi * cs_A * lam**3 * u2 * u2
             - phase_rad - np.arctan(q0 / np.sqrt(1.0 - q0 * q0)))
    return -np.sin(gamma) * np.exp(-0.25 * b * u2) * scale


def ctf(shape: Union[int, tuple[int, int]], pixel_size_A: float, defocus_u_A: float,
        defocus_v_A: Optional[float] = None, defocus_angle_deg: float = 0.0, *, voltage_kV: float = 300.0,
        cs_mm: float = 2.7, amplitude_contrast: float = 0.1, phase_shift_deg: float = 0.0,
        bfactor_A2: float = 0.0, scale: float = 1.0, rfft: bool = False) -> np.ndarray:
    """One CTF in numpy's FFT layout, RELION's formula, units and signs.

    Parameters
    ----------
    shape : int or (ny, nx)
        Image box in pixels.
    pixel_size_A : float
        Å per pixel.
    defocus_u_A, defocus_v_A : float
        Defocus along the U and V axes in Å, positive for underfocus (V defaults to U).
    defocus_angle_deg : float
        Angle from the x axis to the U axis, degrees.
    voltage_kV, cs_mm, amplitude_contrast, phase_shift_deg, bfactor_A2, scale
        Acceleration voltage (kV), spherical aberration (mm), amplitude contrast Q0 in [0, 1),
        phase shift (degrees), B-factor (Å²), scale.
    rfft : bool
        ``True``: the half spectrum ``(ny, nx // 2 + 1)`` (``numpy.fft.rfft2`` layout);
        ``False``: the whole ``(ny, nx)`` (``numpy.fft.fft2`` layout, zero frequency at [0, 0]).

    Returns
    -------
    ndarray float64, (ny, nx) or (ny, nx // 2 + 1)
    """
    if isinstance(shape, (int, np.integer)):
        ny = nx = int(shape)
    else:
        ny, nx = (int(v) for v in shape)
    if ny < 1 or nx < 1:
        raise ValueError(f"shape must be positive, got {shape!r}")
    apix = _check("pixel_size_A", pixel_size_A, low=0.0, low_open=True)
    fy = np.fft.fftfreq(ny)[:, None] / apix
    fx = (np.fft.rfftfreq(nx) if rfft else np.fft.fftfreq(nx))[None, :] / apix
    return ctf_at(fx, fy, defocus_u_A, defocus_v_A, defocus_angle_deg, voltage_kV=voltage_kV, cs_mm=cs_mm,
                  amplitude_contrast=amplitude_contrast, phase_shift_deg=phase_shift_deg, bfactor_A2=bfactor_A2,
                  scale=scale)


@dataclass(frozen=True)
class CtfParameters:
    """The CTF parameters of N particles: arrays (N,) float64 in RELION's units (see :func:`ctf`)."""

    defocus_u_A: np.ndarray
    defocus_v_A: np.ndarray
    defocus_angle_deg: np.ndarray
    voltage_kV: np.ndarray
    cs_mm: np.ndarray
    amplitude_contrast: np.ndarray
    phase_shift_deg: np.ndarray
    bfactor_A2: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.defocus_u_A)
        for f in fields(self):
            a = np.asarray(getattr(self, f.name), np.float64)
            if a.shape != (n,):
                raise ValueError(f"{f.name} must have shape ({n},), got {a.shape}")
            object.__setattr__(self, f.name, a)
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, mask: np.ndarray, expected: str) -> None:
            if mask.any():
                i = int(np.argmax(mask))
                raise ValueError(f"particle {i + 1}: {name} ({STAR_COLUMNS[name]}) is {float(getattr(self, name)[i]):g}; "
                                 f"expected {expected}")
        for f in fields(self):
            bad(f.name, ~np.isfinite(getattr(self, f.name)), "a finite number")
        bad("voltage_kV", self.voltage_kV <= 0, "a positive voltage in kV")
        bad("cs_mm", self.cs_mm < 0, "a spherical aberration >= 0 mm")
        bad("amplitude_contrast", (self.amplitude_contrast < 0) | (self.amplitude_contrast >= 1),
            "an amplitude contrast in [0, 1)")

    def __len__(self) -> int:
        return len(self.defocus_u_A)

    @classmethod
    def of(cls, ctf: Any, n: int) -> "CtfParameters":
        """The CTF parameters of n images given as CtfParameters, a ParticleTable (its STAR
        columns) or a dict of per-image arrays (:meth:`from_arrays`)."""
        if isinstance(ctf, CtfParameters):
            params = ctf
        elif isinstance(ctf, Mapping):
            params = cls.from_arrays(n, ctf)
        elif hasattr(ctf, "column") and hasattr(ctf, "has"):
            params = cls.from_table(ctf)
        else:
            raise TypeError(f"ctf must be CtfParameters, a ParticleTable or a dict of arrays, got {type(ctf).__name__}")
        if len(params) != n:
            raise ValueError(f"ctf gives {len(params)} particles but there are {n} images")
        return params

    @classmethod
    def from_arrays(cls, n: int, values: Mapping[str, Any]) -> "CtfParameters":
        """From a dict of per-particle arrays or scalars, named as :func:`ctf`'s parameters;
        ``defocus_u_A`` is required, the others default to :func:`ctf`'s defaults (V to U)."""
        unknown = sorted(set(values) - set(STAR_COLUMNS))
        if unknown:
            raise ValueError(f"unknown CTF parameters {unknown}; expected some of {sorted(STAR_COLUMNS)}")
        if "defocus_u_A" not in values:
            raise ValueError("CTF parameters need defocus_u_A (Å, positive = underfocus)")
        defaults = dict(defocus_angle_deg=0.0, voltage_kV=300.0, cs_mm=2.7, amplitude_contrast=0.1,
                        phase_shift_deg=0.0, bfactor_A2=0.0, scale=1.0)
        out = {}
        for name in STAR_COLUMNS:
            v = values.get(name, values["defocus_u_A"] if name == "defocus_v_A" else defaults.get(name))
            out[name] = np.broadcast_to(np.asarray(v, np.float64), (n,)).copy()
        return cls(**out)

    @classmethod
    def from_table(cls, table: Any) -> "CtfParameters":
        """From a :class:`~cryocore.io.ParticleTable`: each particle's own column, else its optics
        group's, else RELION's default (200 kV, Cs 0, Q0 0, angle 0, V = U, B 0, scale 1, phase 0).
        ValueError naming the column when no particle gives a defocus."""
        if not table.has("rlnDefocusU"):
            raise ValueError("the particle table has no rlnDefocusU column: no CTF parameters (give them, "
                             "or align without CTF correction)")
        u = table.column("rlnDefocusU", default=float("nan"))  # a missing value is an error (below)
        values = {"defocus_u_A": u}
        for name, col in STAR_COLUMNS.items():
            if name == "defocus_u_A":
                continue
            values[name] = table.column(col, default=None) if name != "defocus_v_A" or table.has(col) else u
        return cls(**values)

    def take(self, index: Any) -> "CtfParameters":
        """The parameters of the particles at ``index`` (integer array, slice or boolean mask)."""
        return CtfParameters(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def array(self) -> np.ndarray:
        """The parameters as one (N, 9) float64 array, a row per particle, columns in the order
        of :data:`STAR_COLUMNS` (the core's order)."""
        return np.stack([getattr(self, name) for name in STAR_COLUMNS], axis=1)

    def star_columns(self) -> dict[str, np.ndarray]:
        """The parameters as RELION STAR columns (per particle)."""
        return {col: getattr(self, name) for name, col in STAR_COLUMNS.items()}

    def image(self, i: int, shape: tuple[int, int], pixel_size_A: float, rfft: bool = True) -> np.ndarray:
        """Particle ``i``'s CTF (:func:`ctf` layout; half spectrum by default)."""
        return ctf(shape, pixel_size_A, self.defocus_u_A[i], self.defocus_v_A[i], self.defocus_angle_deg[i],
                   voltage_kV=self.voltage_kV[i], cs_mm=self.cs_mm[i], amplitude_contrast=self.amplitude_contrast[i],
                   phase_shift_deg=self.phase_shift_deg[i], bfactor_A2=self.bfactor_A2[i], scale=self.scale[i],
                   rfft=rfft)


def wiener_average(images: Any, ctf: CtfParameters, pixel_size_A: float, *, shifts: Optional[np.ndarray] = None,
                   angles: Optional[np.ndarray] = None, ssnr: Optional[np.ndarray] = None,
                   tau2_fudge: float = 2.0, threads: Optional[int] = None) -> np.ndarray:
    """The CTF-corrected (Wiener-filtered) average of images with known poses and CTFs.

    Per frequency ``A = sum_i CTF_i X_i / (sum_i CTF_i^2 + 1 / (T s))`` (CONVENTIONS.md, CTF),
    with ``X_i`` the images moved back to the reference frame by their poses, ``CTF_i`` their
    CTFs turned with them (astigmatism angle minus psi), ``T = tau2_fudge`` and ``s`` one
    image's spectral SNR per ring: given (``ssnr``, (min(ny, nx)//2 + 1,) per ring of width
    1/n), or estimated from the FRC of the Wiener sums of the even and odd images,
    ``s = FRC' / (1 - FRC') / W`` with ``FRC' = 2 FRC / (1 + FRC)`` (all images) and ``W`` the
    ring's mean ``sum CTF^2``.

    Parameters
    ----------
    images : array (N, ny, nx)
    ctf : CtfParameters of the N images
    pixel_size_A : float
    shifts : (N, 2) pose shifts (dy, dx) in px, optional; angles : (N,) psi in degrees, optional
        The images' poses (CONVENTIONS.md): image = particle rotated by psi, then shifted.

    Returns
    -------
    ndarray (ny, nx) float64
    """
    from . import _core
    from ._validate import as_threads

    imgs = np.ascontiguousarray(images, np.float32)
    if imgs.ndim != 3:
        raise ValueError(f"images must be a stack (N, ny, nx), got shape {imgs.shape}")
    n, ny, nx = imgs.shape
    if len(ctf) != n:
        raise ValueError(f"ctf holds {len(ctf)} particles but there are {n} images")
    apix = _check("pixel_size_A", pixel_size_A, low=0.0, low_open=True)
    psi = np.zeros(n) if angles is None else np.asarray(angles, np.float64).reshape(n)
    t = np.zeros((n, 2)) if shifts is None else np.asarray(shifts, np.float64).reshape(n, 2)
    nt = as_threads(threads)
    moved = _core.transform_stack(imgs, psi, t, inverse=True, threads=nt) if angles is not None else \
        _core.shift_stack(imgs, -t, threads=nt)
    num = np.zeros((2, ny, nx // 2 + 1), np.complex128)  # even and odd images
    den = np.zeros((2, ny, nx // 2 + 1))
    for start in range(0, n, 256):  # the CTFs turned into the reference frame, a batch at a time
        b = np.arange(start, min(n, start + 256))
        c = ctf_stack(ctf.take(b), (ny, nx), apix, psi[b], threads=nt)
        spec = np.fft.rfft2(moved[b]) * c
        for parity in (0, 1):
            m = b % 2 == parity
            num[parity] += spec[m].sum(axis=0)
            den[parity] += (c[m].astype(np.float64) ** 2).sum(axis=0)
    n_rings = min(ny, nx) // 2 + 1
    if ssnr is None:  # FRC of the even and odd sums (as the pipeline's two quarters)
        s = ring_ssnr(num[0], num[1], den[0], den[1], (ny, nx))
    else:
        s = np.asarray(ssnr, np.float64)
        if s.shape != (n_rings,) or not np.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"ssnr must hold {n_rings} non-negative numbers (one per ring), got shape {s.shape}")
    return np.fft.irfft2(wiener_filter(num.sum(axis=0), den.sum(axis=0), s, (ny, nx), tau2_fudge), s=(ny, nx))


def ring_ssnr(qa: np.ndarray, qb: np.ndarray, wa: np.ndarray, wb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One image's spectral SNR per ring from two independent sums of ``CTF X`` (half spectra
    ``qa``, ``qb``, with ``sum CTF^2`` planes ``wa``, ``wb``): ``s = FRC / (1 - FRC) / W``, ``W`` the
    ring's mean weight of one sum (CONVENTIONS.md, CTF; the same as the whole set's corrected FRC
    ``2 FRC / (1 + FRC)`` over the whole set's weight)."""
    from .frc import _rings

    keep, ring, weight, counts = _rings(*shape)
    n_rings = len(counts)
    fa, fb = qa[keep], qb[keep]
    cross = np.bincount(ring, weights=weight * (fa * np.conj(fb)).real, minlength=n_rings)
    pa = np.bincount(ring, weights=weight * np.abs(fa) ** 2, minlength=n_rings)
    pb = np.bincount(ring, weights=weight * np.abs(fb) ** 2, minlength=n_rings)
    w = np.bincount(ring, weights=weight * 0.5 * (wa + wb)[keep], minlength=n_rings) / np.maximum(counts, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.clip(np.where(pa * pb > 0, cross / np.sqrt(pa * pb), 0.0), 0.0, 0.999)
        return np.where(w > 0, f / (1.0 - f) / w, 0.0)


def wiener_filter(numerator: np.ndarray, weight: np.ndarray, ssnr: np.ndarray, shape: tuple[int, int],
                  tau2_fudge: float) -> np.ndarray:
    """``numerator / (weight + 1 / (T s))`` per frequency of a half spectrum, ``s`` per ring;
    frequencies of rings without signal (s = 0) are left out (zero)."""
    from .frc import _rings

    keep, ring, _, _ = _rings(*shape)
    with np.errstate(divide="ignore"):
        inv = np.where(ssnr > 0, 1.0 / (float(tau2_fudge) * np.where(ssnr > 0, ssnr, 1.0)), np.inf)
    reg = np.full(numerator.shape, np.inf)
    reg[keep] = inv[ring]
    total = weight + reg
    return np.where(np.isfinite(total), numerator / np.where(np.isfinite(total), total, 1.0), 0.0)


def ctf_in_reference_frame(params: CtfParameters, i: int, psi_deg: float, shape: tuple[int, int],
                           pixel_size_A: float) -> np.ndarray:
    """Particle ``i``'s CTF (half spectrum) as it acts on the particle in the reference frame: the
    CTF stays with the detector, so an image rotated by psi has its CTF turned back by -psi (its
    astigmatism angle, measured on the particle, is the detector's minus psi)."""
    return ctf(shape, pixel_size_A, params.defocus_u_A[i], params.defocus_v_A[i],
               float(params.defocus_angle_deg[i]) - float(psi_deg), voltage_kV=params.voltage_kV[i],
               cs_mm=params.cs_mm[i], amplitude_contrast=params.amplitude_contrast[i],
               phase_shift_deg=params.phase_shift_deg[i], bfactor_A2=params.bfactor_A2[i], scale=params.scale[i],
               rfft=True)


def ctf_stack(params: CtfParameters, shape: tuple[int, int], pixel_size_A: float,
              angles_deg: Optional[np.ndarray] = None, threads: Optional[int] = None) -> np.ndarray:
    """Every particle's CTF on the half spectrum: (N, ny, nx//2+1) float32; with ``angles_deg``
    (N,) each turned into its reference frame (:func:`ctf_in_reference_frame`).

    The same formula as :func:`ctf`, computed by the core (float32 output, within ~1e-7)."""
    from . import _core
    from ._validate import as_threads

    ny, nx = (int(v) for v in shape)
    apix = _check("pixel_size_A", pixel_size_A, low=0.0, low_open=True)
    angles = None if angles_deg is None else np.ascontiguousarray(angles_deg, np.float64).reshape(len(params))
    return _core.ctf_planes(params.array(), ny, nx, apix, angles=angles, threads=as_threads(threads))
