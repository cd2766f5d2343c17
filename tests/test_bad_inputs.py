"""Bad arguments raise ValueError/TypeError naming the argument, never crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import cryocore

_rng = np.random.default_rng(2024)
R = _rng.standard_normal((32, 32)).astype(np.float32)
S = _rng.standard_normal((5, 32, 32)).astype(np.float32)
Z = np.zeros((5, 2))


def _bad(value, index=3):
    a = S.copy()
    a[index, 4, 5] = value
    return a


def _bad_ref(value):
    r = R.copy()
    r[7, 9] = value
    return r


def _acc(shape=(32, 32)):
    return cryocore.Accumulator(shape)


# (id, call, exception type, match)
CASES = [
    # dimensions
    ("register-1d-images", lambda: cryocore.register(R, S[0, 0]), ValueError, "images"),
    ("register-1d-reference", lambda: cryocore.register(R[0], S), ValueError, "reference"),
    ("register-4d-images", lambda: cryocore.register(R, S[None]), ValueError, "images"),
    ("register-4d-reference", lambda: cryocore.register(S[None], S), ValueError, "reference"),
    ("register-0d", lambda: cryocore.register(R, np.float32(3)), ValueError, "images"),
    ("maps-1d", lambda: cryocore.correlation_maps(R, S[0, 0]), ValueError, "images"),
    ("maps-4d", lambda: cryocore.correlation_maps(R, S[None]), ValueError, "images"),
    ("shift-1d", lambda: cryocore.shift(S[0, 0], (1, 1)), ValueError, "images"),
    ("shift-4d", lambda: cryocore.shift(S[None], Z), ValueError, "images"),
    ("accumulate-1d", lambda: _acc().add(S[0, 0]), ValueError, "images"),
    ("accumulate-4d", lambda: _acc().add(S[None]), ValueError, "images"),
    # mismatched boxes
    ("register-box-mismatch", lambda: cryocore.register(R[:30], S), ValueError, "reference"),
    ("register-box-transposed", lambda: cryocore.register(R[:, :30].T, S[:, :, :30]), ValueError, "reference"),
    ("maps-box-mismatch", lambda: cryocore.correlation_maps(R[:, :31], S), ValueError, "reference"),
    ("maps-several-references", lambda: cryocore.correlation_maps(S[:2], S), ValueError, "reference"),
    ("accumulator-box-mismatch", lambda: _acc((32, 33)).add(S), ValueError, "accumulator"),
    ("accumulator-merge-mismatch", lambda: _acc() + _acc((32, 33)), ValueError, "accumulators"),
    # too small
    ("register-7px", lambda: cryocore.register(R[:7, :7], S[:, :7, :7]), ValueError, "images"),
    ("register-7px-one-axis", lambda: cryocore.register(R[:, :7], S[:, :, :7]), ValueError, "images"),
    ("shift-7px", lambda: cryocore.shift(S[:, :7], Z), ValueError, "images"),
    ("accumulator-7px", lambda: cryocore.Accumulator((7, 32)), ValueError, "shape"),
    ("accumulator-shape-int", lambda: cryocore.Accumulator(32), TypeError, "shape"),
    # dtypes
    ("register-complex", lambda: cryocore.register(R, S.astype(np.complex64)), TypeError, "images"),
    ("register-complex-reference", lambda: cryocore.register(R.astype(complex), S), TypeError, "reference"),
    ("register-object", lambda: cryocore.register(R, S.astype(object)), TypeError, "images"),
    ("register-string", lambda: cryocore.register(R, np.full((5, 32, 32), "a")), TypeError, "images"),
    ("register-bool", lambda: cryocore.register(R, S > 0), TypeError, "images"),
    ("maps-complex", lambda: cryocore.correlation_maps(R, S.astype(complex)), TypeError, "images"),
    ("shift-complex", lambda: cryocore.shift(S.astype(complex), Z), TypeError, "images"),
    ("shift-string", lambda: cryocore.shift(np.full((5, 32, 32), "x"), Z), TypeError, "images"),
    ("accumulate-object", lambda: _acc().add(S.astype(object)), TypeError, "images"),
    ("accumulate-complex", lambda: _acc().add(S.astype(complex)), TypeError, "images"),
    ("shift-shifts-string", lambda: cryocore.shift(S, np.full((5, 2), "a")), TypeError, "shifts"),
    # non-finite pixels: image index 3 of 5 is named
    ("register-nan-image-3", lambda: cryocore.register(R, _bad(np.nan)), ValueError, "image 3"),
    ("register-inf-image-3", lambda: cryocore.register(R, _bad(np.inf)), ValueError, "image 3"),
    ("register-neginf-image-3", lambda: cryocore.register(R, _bad(-np.inf)), ValueError, "image 3"),
    ("maps-nan-image-3", lambda: cryocore.correlation_maps(R, _bad(np.nan)), ValueError, "image 3"),
    ("shift-nan-image-3", lambda: cryocore.shift(_bad(np.nan), Z), ValueError, "image 3"),
    ("shift-inf-image-3", lambda: cryocore.shift(_bad(np.inf), Z), ValueError, "image 3"),
    ("accumulate-nan-image-3", lambda: _acc().add(_bad(np.nan), Z), ValueError, "image 3"),
    ("accumulate-inf-image-3-noshift", lambda: _acc().add(_bad(np.inf)), ValueError, "image 3"),
    ("register-nan-reference", lambda: cryocore.register(_bad_ref(np.nan), S), ValueError, "reference"),
    ("register-inf-reference", lambda: cryocore.register(_bad_ref(np.inf), S), ValueError, "reference"),
    ("register-nan-in-2nd-reference", lambda: cryocore.register(np.stack([R, _bad_ref(np.nan)]), S), ValueError, "reference"),
    ("maps-nan-reference", lambda: cryocore.correlation_maps(_bad_ref(np.nan), S), ValueError, "reference"),
    # empty stacks
    ("register-empty", lambda: cryocore.register(R, S[:0]), ValueError, "images"),
    ("register-empty-reference", lambda: cryocore.register(S[:0], S), ValueError, "reference"),
    ("maps-empty", lambda: cryocore.correlation_maps(R, S[:0]), ValueError, "images"),
    ("shift-empty", lambda: cryocore.shift(S[:0], np.zeros((0, 2))), ValueError, "images"),
    ("accumulate-empty", lambda: _acc().add(S[:0]), ValueError, "images"),
    # max_shift
    ("max_shift-negative", lambda: cryocore.register(R, S, max_shift=-1), ValueError, "max_shift"),
    ("max_shift-over-half-box", lambda: cryocore.register(R, S, max_shift=16.5), ValueError, "max_shift"),
    ("max_shift-over-half-short-side", lambda: cryocore.register(R[:, :20], S[:, :, :20], max_shift=11), ValueError, "max_shift"),
    ("max_shift-nan", lambda: cryocore.register(R, S, max_shift=float("nan")), ValueError, "max_shift"),
    ("max_shift-inf", lambda: cryocore.register(R, S, max_shift=float("inf")), ValueError, "max_shift"),
    ("max_shift-string", lambda: cryocore.register(R, S, max_shift="far"), TypeError, "max_shift"),
    # upsample
    ("upsample-0", lambda: cryocore.register(R, S, upsample=0), ValueError, "upsample"),
    ("upsample-negative", lambda: cryocore.register(R, S, upsample=-4), ValueError, "upsample"),
    ("upsample-too-large", lambda: cryocore.register(R, S, upsample=10**6), ValueError, "upsample"),
    ("upsample-float", lambda: cryocore.register(R, S, upsample=2.5), TypeError, "upsample"),
    ("upsample-bool", lambda: cryocore.register(R, S, upsample=True), TypeError, "upsample"),
    # filters
    ("lowpass-0", lambda: cryocore.register(R, S, lowpass=0), ValueError, "lowpass"),
    ("lowpass-negative", lambda: cryocore.register(R, S, lowpass=-0.1), ValueError, "lowpass"),
    ("lowpass-over-nyquist", lambda: cryocore.register(R, S, lowpass=0.51), ValueError, "lowpass"),
    ("lowpass-nan", lambda: cryocore.register(R, S, lowpass=float("nan")), ValueError, "lowpass"),
    ("lowpass-string", lambda: cryocore.register(R, S, lowpass="high"), TypeError, "lowpass"),
    ("highpass-0", lambda: cryocore.register(R, S, highpass=0), ValueError, "highpass"),
    ("highpass-0.5", lambda: cryocore.register(R, S, highpass=0.5), ValueError, "highpass"),
    ("highpass-above-lowpass", lambda: cryocore.register(R, S, lowpass=0.2, highpass=0.3), ValueError, "highpass"),
    ("highpass-equals-lowpass", lambda: cryocore.register(R, S, lowpass=0.2, highpass=0.2), ValueError, "highpass"),
    ("maps-lowpass-0", lambda: cryocore.correlation_maps(R, S, lowpass=0), ValueError, "lowpass"),
    ("maps-lowpass-over", lambda: cryocore.correlation_maps(R, S, lowpass=0.7), ValueError, "lowpass"),
    ("maps-highpass-above-lowpass", lambda: cryocore.correlation_maps(R, S, lowpass=0.1, highpass=0.15), ValueError, "highpass"),
    ("maps-highpass-0.5", lambda: cryocore.correlation_maps(R, S, highpass=0.5), ValueError, "highpass"),
    ("filter_edge-negative", lambda: cryocore.register(R, S, lowpass=0.2, filter_edge=-0.1), ValueError, "edge"),
    ("filter_edge-too-wide", lambda: cryocore.register(R, S, lowpass=0.2, filter_edge=0.3), ValueError, "edge"),
    ("filter_edge-nan", lambda: cryocore.correlation_maps(R, S, filter_edge=float("nan")), ValueError, "edge"),
    # threads
    ("threads-0", lambda: cryocore.register(R, S, threads=0), ValueError, "threads"),
    ("threads-negative", lambda: cryocore.register(R, S, threads=-1), ValueError, "threads"),
    ("threads-1e6", lambda: cryocore.register(R, S, threads=10**6), ValueError, "threads"),
    ("threads-float", lambda: cryocore.register(R, S, threads=1.5), TypeError, "threads"),
    ("threads-string", lambda: cryocore.register(R, S, threads="4"), TypeError, "threads"),
    ("maps-threads-0", lambda: cryocore.correlation_maps(R, S, threads=0), ValueError, "threads"),
    ("shift-threads-negative", lambda: cryocore.shift(S, Z, threads=-1), ValueError, "threads"),
    ("shift-threads-1e6", lambda: cryocore.shift(S, Z, threads=10**6), ValueError, "threads"),
    ("accumulate-threads-0", lambda: _acc().add(S, threads=0), ValueError, "threads"),
    ("accumulate-threads-float", lambda: _acc().add(S, threads=1.5), TypeError, "threads"),
    # shifts and weights
    ("shift-shifts-too-few", lambda: cryocore.shift(S, np.zeros((4, 2))), ValueError, "shifts"),
    ("shift-shifts-3-columns", lambda: cryocore.shift(S, np.zeros((5, 3))), ValueError, "shifts"),
    ("shift-shifts-flat", lambda: cryocore.shift(S, np.zeros(10)), ValueError, "shifts"),
    ("shift-shifts-pair-for-stack", lambda: cryocore.shift(S, (1.0, 2.0)), ValueError, "shifts"),
    ("shift-shifts-nan", lambda: cryocore.shift(S, np.full((5, 2), np.nan)), ValueError, "shifts"),
    ("shift-shifts-inf", lambda: cryocore.shift(S[0], (np.inf, 0.0)), ValueError, "shifts"),
    ("accumulate-shifts-shape", lambda: _acc().add(S, np.zeros(5)), ValueError, "shifts"),
    ("accumulate-shifts-nan", lambda: _acc().add(S, np.where(np.eye(5, 2) > 0, np.nan, 0.0)), ValueError, "shifts"),
    ("accumulate-weights-negative", lambda: _acc().add(S, Z, np.array([1, 1, -0.5, 1, 1])), ValueError, "weights"),
    ("accumulate-weights-nan", lambda: _acc().add(S, None, np.full(5, np.nan)), ValueError, "weights"),
    ("accumulate-weights-inf", lambda: _acc().add(S, None, np.full(5, np.inf)), ValueError, "weights"),
    ("accumulate-weights-shape", lambda: _acc().add(S, None, np.ones(4)), ValueError, "weights"),
    ("accumulate-weights-scalar-negative", lambda: _acc().add(S, None, -1.0), ValueError, "weights"),
    ("accumulate-weights-complex", lambda: _acc().add(S, None, np.ones(5, complex)), TypeError, "weights"),
    # FFTW planning and wisdom
    ("import_wisdom-garbage", lambda: cryocore.import_wisdom(b"garbage"), ValueError, "wisdom"),
    ("import_wisdom-truncated", lambda: cryocore.import_wisdom(b"(fftw-3.3.10 fftwf_wisdom #x"), ValueError, "wisdom"),
    ("import_wisdom-int", lambda: cryocore.import_wisdom(12345), TypeError, "wisdom"),
    ("import_wisdom-none", lambda: cryocore.import_wisdom(None), TypeError, "wisdom"),
    ("set_planning-fast", lambda: cryocore.set_planning("fast"), ValueError, "effort"),
    ("set_planning-int", lambda: cryocore.set_planning(1), ValueError, "effort"),
    ("set_planning-none", lambda: cryocore.set_planning(None), ValueError, "effort"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises(call, exc, match):
    planning = cryocore.get_planning()
    with pytest.raises(exc, match=match):
        call()
    assert cryocore.get_planning() == planning


def test_float64_beyond_float32_range_is_rejected():
    """1e300 is finite in float64 but not in float32, where the core computes."""
    imgs = S.astype(np.float64)
    imgs[3, 4, 5] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow-in-cast warning
        with pytest.raises(ValueError, match="image 3"):
            cryocore.register(R, imgs)
        with pytest.raises(ValueError, match="image 3"):
            cryocore.shift(imgs, Z)


def test_filter_edge_must_be_numeric():
    with pytest.raises((TypeError, ValueError)):
        cryocore.register(R, S, filter_edge="wide")


@pytest.mark.parametrize("value", ["wide", None, [0.1]], ids=["string", "None", "list"])
def test_filter_edge_message_names_argument(value):
    with pytest.raises((TypeError, ValueError), match="filter_edge"):
        cryocore.register(R, S, filter_edge=value)


def test_errors_leave_library_usable():
    """After every error above, a normal call still works and gives the same result."""
    ref = R.astype(np.float64)
    img = np.roll(ref, (2, -3), axis=(0, 1))
    before = cryocore.register(ref, img)
    for _, call, exc, _ in CASES:
        with pytest.raises(exc):
            call()
    after = cryocore.register(ref, img)
    np.testing.assert_array_equal(before.shifts, after.shifts)
    np.testing.assert_allclose(after.shifts, [2.0, -3.0], atol=1e-3)


def test_no_bad_input_crashes_the_interpreter(tmp_path):
    """Run the whole table in a fresh interpreter: every call must raise and the process exit 0."""
    here = Path(__file__).resolve().parent
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(here)!r})
        import test_bad_inputs as t
        raised = 0
        for name, call, exc, match in t.CASES:
            try:
                call()
            except (TypeError, ValueError):
                raised += 1
            else:
                print("no error:", name)
        print("raised", raised, "of", len(t.CASES))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"raised {len(CASES)} of {len(CASES)}" in proc.stdout


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (31, 17), (63, 63), (40, 0)])
@pytest.mark.parametrize("kw", [{}, dict(lowpass=0.2), dict(upsample=1), dict(full_search=True)])
def test_one_non_finite_pixel_anywhere_is_caught(bad, where, kw):
    # register finds non-finite pixels on the spectrum (every coefficient sums all pixels):
    # one bad pixel, wherever it is and whichever transform is used, must be reported
    rng = np.random.default_rng(0)
    imgs = rng.standard_normal((5, 64, 64)).astype(np.float32)
    imgs[3][where] = bad
    with pytest.raises(ValueError, match="image 3 contains NaN or infinity"):
        cryocore.register(imgs[0], imgs, **kw)
