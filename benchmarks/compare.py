#!/usr/bin/env python
"""Throughput and accuracy of cryocore.register against other ways to do the same job.

One simulated stack (``cryocore.simulate(n, size, snr, max_shift=10,
rotate=False, seed=0)``) is registered against its noise-free template by:

  a  cryocore.register, upsample=1 (integer peak + quadratic fit)
  b  cryocore.register, upsample=20
  c  cryocore.register, upsample=20, lowpass=0.25 (cropped inverse FFT)
  d  pyfftw batch: FFTW plans made once (FFTW_MEASURE, float32, ``--threads``)
     for batched r2c / c2r over chunks of images held in preallocated aligned
     buffers; cross-power with the conjugate reference spectrum, batched
     inverse, per-image argmax and 1D parabolic fits in y and x, all
     vectorised over the chunk
  e  the same as d with the raised-cosine low-pass at 0.25 cycles/pixel
     folded into the reference spectrum (full-size inverse)
  f  numpy.fft, one image at a time (rfft2, irfft2, argmax, parabolic fit)
  g  skimage.registration.phase_cross_correlation(template, image,
     upsample_factor=20, normalization=None), one image at a time, on the
     first ``--skimage-subset`` images only; images/s is scaled from them
  h  'FFTW floor': the batched r2c + c2r of d alone (no product, no peak)

All methods run in this one process, on one shared aligned copy of the
stack, after a warm-up; every repeat runs each method once, in an order
shuffled (seeded) from repeat to repeat, and the median time is reported.
RMS error is ``sqrt(mean((est - true)**2))`` over both axes, in pixels,
against the simulation's true poses (registered against the true template,
so the error is absolute; nothing is removed).
Shifts of every method are in cryocore's pose convention (the image is the
reference moved by +shift; skimage's result is negated).

The final 'targets' block prints PASS / MISS with the numbers; nothing is
asserted (timings on a shared or small machine are noisy).

    python benchmarks/compare.py               # n=2000, size=128, 5 repeats
    python benchmarks/compare.py --quick       # n=300, 2 repeats: smoke test

asv imports every module in benchmarks/, this one included: no top-level
name here may start with an asv prefix (time_, timeraw_, peakmem_, mem_,
track_), and the heavy imports (cryocore, pyfftw, skimage) happen in main().
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

if __name__ == "__main__":
    # OpenBLAS threads busy-wait after each call (skimage's upsampled DFT uses
    # BLAS) and steal the cores from whichever method runs next; no method
    # here needs a threaded BLAS.
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

QUICK_N = 300
QUICK_REPEATS = 2
DEFAULT_N = 2000
DEFAULT_REPEATS = 5
LOWPASS = 0.25
FILTER_EDGE = 0.02  # cryocore's default raised-cosine edge width (cycles/pixel)


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------


def rms_error(est: np.ndarray, true: np.ndarray) -> float:
    """Root-mean-square of (est - true) over all images and both axes, pixels."""
    d = np.asarray(est, np.float64) - np.asarray(true, np.float64)
    return float(np.sqrt(np.mean(d * d)))


def lowpass_weights(ny: int, nx: int, cutoff: float, edge: float = FILTER_EDGE) -> np.ndarray:
    """Raised-cosine low-pass on the rfft2 grid (ny, nx//2+1): 1 below cutoff - edge/2, 0 above cutoff + edge/2."""
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    t = np.clip((f - (cutoff - 0.5 * edge)) / edge, 0.0, 1.0) if edge > 0 else (f >= cutoff).astype(float)
    return 1.0 - np.sin(0.5 * np.pi * t) ** 2


def conj_reference_spectrum(template: np.ndarray, lowpass: Optional[float] = None) -> np.ndarray:
    """conj(rfft2(template - mean)) as complex64, optionally low-passed.

    Removing the mean (zero DC) makes the argmax of the cross-correlation the
    argmax of the normalised one: the image's mean and norm only shift and
    scale each map.
    """
    ref = np.asarray(template, np.float64)
    spec = np.conj(np.fft.rfft2(ref - ref.mean()))
    if lowpass is not None:
        spec = spec * lowpass_weights(*ref.shape, lowpass)
    return spec.astype(np.complex64)


def _vertex(cm: np.ndarray, c0: np.ndarray, cp: np.ndarray) -> np.ndarray:
    """Offset in (-0.5, 0.5) of the vertex of the parabola through (-1, cm), (0, c0), (1, cp)."""
    den = cm - 2.0 * c0 + cp
    num = 0.5 * (cm - cp)
    safe = np.where(den < 0.0, den, -1.0)  # den < 0 at a strict maximum; flat: no offset
    return np.where(den < 0.0, num / safe, 0.0)


def _to_signed(v: np.ndarray, n: int) -> np.ndarray:
    """Circular position -> signed shift in [-n/2, n/2)."""
    return (v + n / 2.0) % n - n / 2.0


def batch_peaks(maps: np.ndarray) -> np.ndarray:
    """Pose shifts (m, 2) from correlation maps (m, ny, nx): argmax + parabolic fit in y and x."""
    m, ny, nx = maps.shape
    flat = maps.reshape(m, ny * nx)
    idx = flat.argmax(axis=1)
    iy, ix = np.divmod(idx, nx)
    rows = np.arange(m)
    c0 = flat[rows, idx].astype(np.float64)
    cym = maps[rows, (iy - 1) % ny, ix].astype(np.float64)
    cyp = maps[rows, (iy + 1) % ny, ix].astype(np.float64)
    cxm = maps[rows, iy, (ix - 1) % nx].astype(np.float64)
    cxp = maps[rows, iy, (ix + 1) % nx].astype(np.float64)
    out = np.empty((m, 2), np.float64)
    out[:, 0] = _to_signed(iy + _vertex(cym, c0, cyp), ny)
    out[:, 1] = _to_signed(ix + _vertex(cxm, c0, cxp), nx)
    return out


def single_peak(c: np.ndarray) -> tuple[float, float]:
    """Pose shift of one correlation map (ny, nx): argmax + parabolic fit in y and x."""
    ny, nx = c.shape
    iy, ix = divmod(int(c.argmax()), nx)
    c0 = float(c[iy, ix])

    def vertex(cm: float, cp: float) -> float:
        den = cm - 2.0 * c0 + cp
        return 0.5 * (cm - cp) / den if den < 0.0 else 0.0

    dy = iy + vertex(float(c[iy - 1, ix]), float(c[(iy + 1) % ny, ix]))
    dx = ix + vertex(float(c[iy, ix - 1]), float(c[iy, (ix + 1) % nx]))
    return (dy + ny / 2.0) % ny - ny / 2.0, (dx + nx / 2.0) % nx - nx / 2.0


# --------------------------------------------------------------------------
# competitors
# --------------------------------------------------------------------------


class PyFFTWBatch:
    """Batched FFT cross-correlation registration on pyfftw, planned once.

    Images are processed in chunks of ``chunk``: one batched r2c straight from
    the (aligned) stack into a preallocated spectrum buffer, an in-place
    product with the conjugate reference spectrum, one batched c2r into a
    preallocated map buffer, then argmax + parabolic fits vectorised over the
    chunk. A second pair of plans covers the last, shorter chunk. FFTW runs
    with ``threads`` threads (it splits the batch between them). The numpy
    steps (product, peak search) release the GIL and can be split over
    ``numpy_workers`` threads; on the 2-core development machine that gave
    no gain over 1 (FFTW's threads already keep both cores busy most of the
    time), hence the default. Chunks of 64-256 images keep the buffers in
    the last-level cache; 128 was the best or close to it there.
    """

    def __init__(
        self,
        template: np.ndarray,
        n_images: int,
        *,
        threads: int,
        chunk: int = 128,
        lowpass: Optional[float] = None,
        effort: str = "FFTW_MEASURE",
        numpy_workers: int = 1,
    ) -> None:
        import pyfftw

        self._pyfftw = pyfftw
        ny, nx = template.shape
        self.shape = (ny, nx)
        self.chunk = max(1, min(int(chunk), int(n_images)))
        self.n_images = int(n_images)
        self.threads = max(1, int(threads))
        self.cref = pyfftw.byte_align(conj_reference_spectrum(template, lowpass))
        c = self.chunk
        self.real_in = pyfftw.empty_aligned((c, ny, nx), dtype="float32")
        self.spec = pyfftw.empty_aligned((c, ny, nx // 2 + 1), dtype="complex64")
        self.maps = pyfftw.empty_aligned((c, ny, nx), dtype="float32")
        t0 = time.perf_counter()
        self.plans = {c: self._plan(c, effort)}
        rest = self.n_images % c
        if rest:
            self.plans[rest] = self._plan(rest, effort)
        self.planning_s = time.perf_counter() - t0
        self.workers = max(1, int(numpy_workers))
        self.pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def _plan(self, m: int, effort: str):
        fwd = self._pyfftw.FFTW(
            self.real_in[:m], self.spec[:m], axes=(1, 2), direction="FFTW_FORWARD",
            flags=(effort,), threads=self.threads,
        )
        inv = self._pyfftw.FFTW(
            self.spec[:m], self.maps[:m], axes=(1, 2), direction="FFTW_BACKWARD",
            flags=(effort, "FFTW_DESTROY_INPUT"), threads=self.threads,
        )
        return fwd, inv

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """The stack as aligned contiguous float32 (done once, outside the timings)."""
        return self._pyfftw.byte_align(np.ascontiguousarray(images, dtype=np.float32))

    def _split(self, m: int) -> list[slice]:
        k = min(self.workers, m)
        edges = np.linspace(0, m, k + 1).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def _spread(self, fn: Callable[[slice], None], m: int) -> None:
        parts = self._split(m)
        if self.pool is None or len(parts) == 1:
            for p in parts:
                fn(p)
        else:
            for f in [self.pool.submit(fn, p) for p in parts]:
                f.result()

    def _transforms(self, stack: np.ndarray, start: int, m: int):
        fwd, inv = self.plans[m]
        src = stack[start:start + m]
        if src.ctypes.data % self._pyfftw.simd_alignment == 0:
            fwd.update_arrays(src, self.spec[:m])  # no copy into the input buffer
        else:  # pragma: no cover - prepare() aligns the stack
            np.copyto(self.real_in[:m], src)
            fwd.update_arrays(self.real_in[:m], self.spec[:m])
        fwd.execute()
        return inv

    def register(self, stack: np.ndarray) -> np.ndarray:
        """Pose shifts (N, 2) of an aligned stack from :meth:`prepare`."""
        n = stack.shape[0]
        out = np.empty((n, 2), np.float64)
        spec, maps, cref = self.spec, self.maps, self.cref
        for start in range(0, n, self.chunk):
            m = min(self.chunk, n - start)
            inv = self._transforms(stack, start, m)

            def product(p: slice) -> None:
                np.multiply(spec[p], cref, out=spec[p])

            self._spread(product, m)
            inv.execute()  # unnormalised c2r: the scale does not move the peak

            def peaks(p: slice, start: int = start) -> None:
                out[start + p.start:start + p.stop] = batch_peaks(maps[p])

            self._spread(peaks, m)
        return out

    def floor(self, stack: np.ndarray) -> None:
        """The batched r2c + c2r alone."""
        n = stack.shape[0]
        for start in range(0, n, self.chunk):
            m = min(self.chunk, n - start)
            self._transforms(stack, start, m).execute()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def numpy_per_image(template: np.ndarray, images: np.ndarray) -> np.ndarray:
    """numpy.fft, one image at a time: rfft2, product, irfft2, argmax + parabolic fit."""
    cref = conj_reference_spectrum(template)
    shape = template.shape
    out = np.empty((images.shape[0], 2), np.float64)
    for i, img in enumerate(images):
        c = np.fft.irfft2(np.fft.rfft2(img) * cref, s=shape)
        out[i] = single_peak(c)
    return out


def skimage_per_image(template: np.ndarray, images: np.ndarray, upsample: int = 20) -> np.ndarray:
    """skimage phase_cross_correlation per image, converted to the pose convention."""
    from skimage.registration import phase_cross_correlation

    out = np.empty((images.shape[0], 2), np.float64)
    for i, img in enumerate(images):
        shift, _, _ = phase_cross_correlation(template, img, upsample_factor=upsample, normalization=None)
        out[i] = -np.asarray(shift, np.float64)  # skimage: the shift that moves the image back
    return out


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------


@dataclass
class Method:
    key: str
    label: str
    run: Callable[[], Optional[np.ndarray]]
    n_images: int  # images processed per call
    truth: Optional[np.ndarray] = None  # true poses of those images (None: no error)
    note: str = ""
    times: list[float] = field(default_factory=list)
    result: Optional[np.ndarray] = None

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def rate(self) -> float:
        return self.n_images / self.seconds

    @property
    def rms(self) -> float:
        if self.result is None or self.truth is None:
            return float("nan")
        return rms_error(self.result, self.truth)


def interleaved_order(k: int, r: int) -> list[int]:
    """Method order of repeat r: the listed order first, then seeded shuffles.

    Every method runs once per repeat; across repeats each one starts, ends
    and follows different methods, so drifts and after-effects (a long
    single-threaded run just before a multi-threaded one, say) do not always
    hit the same method. Deterministic: the same r gives the same order.
    """
    if r == 0:
        return list(range(k))
    return [int(i) for i in np.random.default_rng(1000 + r).permutation(k)]


def run_interleaved(methods: list[Method], repeats: int) -> None:
    """Run every method once per repeat, in the order of :func:`interleaved_order`."""
    for r in range(repeats):
        for i in interleaved_order(len(methods), r):
            m = methods[i]
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                res = m.run()
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
            m.times.append(dt)
            if res is not None:
                m.result = res


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def machine_info(args: argparse.Namespace) -> list[str]:
    import pyfftw
    import report

    try:
        import skimage

        sk = skimage.__version__
    except ImportError:  # pragma: no cover
        sk = "not installed"
    lines = report.machine_lines(
        f"n={args.n} size={args.size} snr={args.snr} repeats={args.repeats} threads={args.threads} "
        f"chunk={args.chunk} numpy-workers={args.numpy_workers} skimage subset={args.skimage_subset}"
        + (" (--quick)" if args.quick else ""))
    return lines[:-1] + [f"pyfftw    : {pyfftw.__version__} (simd_alignment {pyfftw.simd_alignment})",
                         f"skimage   : {sk}", lines[-1]]


def _fmt_ratio(x: float) -> str:
    return f"{x:8.2f}x" if np.isfinite(x) else "      --"


def print_table(methods: list[Method], base_cc: Method, base_pf: Method) -> None:
    head = (
        f"{'':2} {'method':<46} {'images/s':>10} {'median s':>9} {'spread s':>15} "
        f"{'RMS px':>8} {'vs cc up1':>9} {'vs pyfftw':>9}"
    )
    print(head)
    print("-" * len(head))
    for m in methods:
        spread = f"{min(m.times):.4f}-{max(m.times):.4f}"
        rms = f"{m.rms:8.4f}" if np.isfinite(m.rms) else f"{'--':>8}"
        print(
            f"{m.key:2} {m.label:<46} {m.rate:10.0f} {m.seconds:9.4f} {spread:>15} {rms} "
            f"{_fmt_ratio(m.rate / base_cc.rate)} {_fmt_ratio(m.rate / base_pf.rate)}"
        )
    notes = [f"   {m.key}: {m.note}" for m in methods if m.note]
    if notes:
        print("\n".join(notes))


def write_report(methods: list[Method], base_pf: Method, machine: list[str], header: str, outdir: str) -> None:
    """``outdir/compare.md`` (the table, with the machine) and ``outdir/compare.png`` (images/s per
    method, RMS error in the labels)."""
    import report

    rows = [[m.key, m.label, f"{m.rate:,.0f}", f"{m.rms:.4f}" if np.isfinite(m.rms) else "–",
             f"{m.rate / base_pf.rate:.2f}×"] for m in methods]
    bars = [(m.label + (f"  (RMS {m.rms:.3f} px)" if np.isfinite(m.rms) else ""), m.rate,
             m.label.startswith("cryocore")) for m in methods]
    report.write_report(outdir, "compare", "cryocore.register against other implementations", header,
                        ["", "method", "images/s", "RMS error (px)", "vs pyfftw batch"], rows, bars, "images/s",
                        machine)


def rms_difference_se(a: Method, b: Method) -> float:
    """Standard error of RMS(a) - RMS(b) from the paired per-image squared errors (delta method)."""
    ea = np.sum((a.result - a.truth) ** 2, axis=1) / 2.0
    eb = np.sum((b.result - b.truth) ** 2, axis=1) / 2.0
    d = ea - eb
    se_mse = float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return se_mse / (2.0 * max(b.rms, 1e-12))


def print_targets(by: dict[str, Method], rms_b_subset: float, n_subset: int) -> None:
    a, b, c, d, g = by["a"], by["b"], by["c"], by["d"], by["g"]
    rows = []

    def target(name: str, ok: bool, detail: str) -> None:
        rows.append(f"  {'PASS' if ok else 'MISS'}  {name:<52} {detail}")

    r = a.rate / d.rate
    target("cryocore upsample=1 >= 1.25x pyfftw batch", r >= 1.25,
           f"{r:.2f}x ({a.rate:.0f} vs {d.rate:.0f} images/s)")
    r = b.rate / d.rate
    target("cryocore upsample=20 >= 1.0x pyfftw batch", r >= 1.0,
           f"{r:.2f}x ({b.rate:.0f} vs {d.rate:.0f} images/s)")
    r = b.rate / g.rate
    target("cryocore upsample=20 >= 12x skimage", r >= 12.0,
           f"{r:.1f}x ({b.rate:.0f} vs {g.rate:.0f} images/s)")
    rel = rms_b_subset / g.rms - 1.0
    target(f"cryocore upsample=20 RMS <= 1.05x skimage (first {n_subset})", rms_b_subset <= 1.05 * g.rms,
           f"{rms_b_subset:.4f} vs {g.rms:.4f} px ({rel:+.1%})")
    r = c.rate / d.rate
    target("cryocore lowpass=0.25 >= 2x pyfftw batch", r >= 2.0,
           f"{r:.2f}x ({c.rate:.0f} vs {d.rate:.0f} images/s)")
    # "No worse" between two RMS errors on the same noisy images is judged with the paired
    # standard error of their difference: an excess within 2 s.e. is no evidence of a worse error.
    se = rms_difference_se(c, b)
    target("cryocore lowpass=0.25 RMS no worse than without cut (within 2 paired s.e.)",
           c.rms <= b.rms + 2.0 * se,
           f"{c.rms:.5f} vs {b.rms:.5f} px ({c.rms - b.rms:+.5f}, paired s.e. {se:.5f}; "
           f"strictly {'<=' if c.rms <= b.rms else '>'})")
    print("targets (printed, not asserted; timings are noisy on a small or shared machine)")
    print("\n".join(rows))
    n_miss = sum(row.lstrip().startswith("MISS") for row in rows)
    print(f"  {len(rows) - n_miss}/{len(rows)} PASS")


# --------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help=f"images in the stack (default {DEFAULT_N}; --quick {QUICK_N})")
    p.add_argument("--size", type=int, default=128, help="image box in pixels (default 128)")
    p.add_argument("--snr", type=float, default=0.1, help="signal-to-noise variance ratio (default 0.1)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed repeats per method (default {DEFAULT_REPEATS}; --quick {QUICK_REPEATS})")
    p.add_argument("--threads", type=int, default=2, help="threads for cryocore and pyfftw (default 2)")
    p.add_argument("--chunk", type=int, default=128, help="images per pyfftw batch (default 128)")
    p.add_argument("--numpy-workers", type=int, default=1,
                   help="threads for the numpy steps of the pyfftw batch (default 1)")
    p.add_argument("--skimage-subset", type=int, default=200,
                   help="images registered with skimage (default 200; capped at --n)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write DIR/compare.md (Markdown table) and DIR/compare.png (chart)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: n={QUICK_N}, repeats={QUICK_REPEATS} unless given")
    args = p.parse_args(argv)
    if args.n is None:
        args.n = QUICK_N if args.quick else DEFAULT_N
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if min(args.n, args.repeats, args.threads, args.chunk, args.skimage_subset, args.numpy_workers) < 1:
        p.error("--n, --repeats, --threads, --chunk, --numpy-workers and --skimage-subset must be positive")
    args.skimage_subset = min(args.skimage_subset, args.n)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    import cryocore

    cryocore.set_planning("measure")
    machine = machine_info(args)  # before the run: the load average it reports is that of other processes
    print("\n".join(machine))

    t0 = time.perf_counter()
    sim = cryocore.simulate(args.n, args.size, args.snr, max_shift=10, rotate=False, seed=0)
    template, images, truth = sim.template, sim.images, sim.shifts
    print(f"simulate  : {time.perf_counter() - t0:.2f} s")

    th = args.threads
    opts = dict(threads=th, chunk=args.chunk, numpy_workers=args.numpy_workers)
    pf = PyFFTWBatch(template, args.n, **opts)
    pf_lp = PyFFTWBatch(template, args.n, lowpass=LOWPASS, **opts)
    # One array for every method: the aligned copy the pyfftw batch reads in
    # place. Sharing it keeps memory effects (which pages are hot, where they
    # live) the same for all methods.
    stack = pf.prepare(images)
    images = stack
    del sim
    print(f"pyfftw    : FFTW_MEASURE planning {pf.planning_s + pf_lp.planning_s:.2f} s "
          f"(chunks of {pf.chunk}, {len(pf.plans)} plan pair(s) each)")
    sub = args.skimage_subset
    sub_images, sub_truth = images[:sub], truth[:sub]

    def cc(**kw):
        return lambda: cryocore.register(template, images, threads=th, **kw).shifts

    methods = [
        Method("a", "cryocore.register upsample=1", cc(upsample=1), args.n, truth),
        Method("b", "cryocore.register upsample=20", cc(upsample=20), args.n, truth),
        Method("c", "cryocore.register upsample=20 lowpass=0.25", cc(upsample=20, lowpass=LOWPASS), args.n, truth),
        Method("d", "pyfftw batch (parabolic)", lambda: pf.register(stack), args.n, truth),
        Method("e", "pyfftw batch lowpass=0.25 (parabolic)", lambda: pf_lp.register(stack), args.n, truth),
        Method("f", "numpy.fft per image (parabolic)", lambda: numpy_per_image(template, images), args.n, truth,
               note="numpy.fft is single-threaded"),
        Method("g", f"skimage phase_cross_correlation up=20 [{sub}]", lambda: skimage_per_image(template, sub_images),
               sub, sub_truth, note=f"skimage: timed and RMS on the first {sub} images, single-threaded"),
        Method("h", "FFTW floor: pyfftw batched r2c + c2r only", lambda: pf.floor(stack), args.n, None,
               note="FFTW floor: no product, no peak search, no error"),
    ]

    # warm-up: plans, caches, page faults (the slow per-image methods on a few images)
    t0 = time.perf_counter()
    for kw in ({"upsample": 1}, {"upsample": 20}, {"upsample": 20, "lowpass": LOWPASS}):
        cryocore.register(template, images, threads=th, **kw)
    pf.register(stack)
    pf_lp.register(stack)
    pf.floor(stack)
    numpy_per_image(template, images[:16])
    skimage_per_image(template, images[:4])
    print(f"warm-up   : {time.perf_counter() - t0:.2f} s")

    run_interleaved(methods, args.repeats)
    pf.close()
    pf_lp.close()

    by = {m.key: m for m in methods}
    rms_b_subset = rms_error(by["b"].result[:sub], sub_truth)
    print()
    header = (f"{args.n} images {args.size}x{args.size}, snr {args.snr}, median of {args.repeats} interleaved repeats; "
              f"RMS vs true poses (px)")
    print(header)
    print_table(methods, by["a"], by["d"])
    if args.report:
        write_report(methods, by["d"], machine, header, args.report)
        print(f"   report: {args.report}/compare.md, {args.report}/compare.png")
    print(f"   RMS on the skimage subset (first {sub}): cryocore upsample=20 {rms_b_subset:.4f} px, "
          f"skimage {by['g'].rms:.4f} px, cryocore upsample=1 {rms_error(by['a'].result[:sub], sub_truth):.4f} px")
    print()
    print_targets(by, rms_b_subset, sub)
    return 0


if __name__ == "__main__":
    sys.exit(main())
