#!/usr/bin/env python
"""Cost of align() iterations against one registration pass and a pyfftw batch pipeline.

On one simulated stack (``cryocore.simulate(n, size, snr, max_shift=10,
rotate=False, seed=0)``), in one process, methods interleaved per repeat,
medians reported:

  register   one ``cryocore.register`` pass over the stack (against the template)
  align      ``cryocore.align(images, rotate=False, iterations=K, tolerance_px=0)``: K full
             iterations, reference-free, two half-sets (spectra cached once,
             correlation on the spectrum cropped to the current resolution,
             band-limited accumulation in Fourier space)
  pyfftw     the same K iterations written with a pyfftw batch: per half and
             iteration, batched rfft2 of every image, product with the
             conjugate (low-passed) reference spectrum, batched irfft2,
             argmax + parabolic fit, then the average as the sum of the
             phase-shifted spectra of the accepted images (one irfft2)

    python benchmarks/compare_align.py            # n=2000, size=128, K=10
    python benchmarks/compare_align.py --quick    # n=300, K=3, 1 repeat
    python benchmarks/compare_align.py --report docs/benchmarks   # also compare_align.md, .png
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")  # idle BLAS threads spin and steal cores

import numpy as np  # noqa: E402


def pyfftw_iterations(images: np.ndarray, half: np.ndarray, iterations: int, threads: int,
                      lowpass: float = 0.2, chunk: int = 128) -> list[np.ndarray]:
    """Reference-free iterations of both halves, pyfftw batch style; returns the half averages."""
    import pyfftw

    n, ny, nx = images.shape
    nxh = nx // 2 + 1
    a = pyfftw.empty_aligned((chunk, ny, nx), "float32")
    F = pyfftw.empty_aligned((chunk, ny, nxh), "complex64")
    C = pyfftw.empty_aligned((chunk, ny, nxh), "complex64")
    m = pyfftw.empty_aligned((chunk, ny, nx), "float32")
    fwd = pyfftw.FFTW(a, F, axes=(1, 2), threads=threads, flags=("FFTW_MEASURE",))
    inv = pyfftw.FFTW(C, m, axes=(1, 2), direction="FFTW_BACKWARD", threads=threads, flags=("FFTW_MEASURE",))
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    lp = (np.hypot(fy, fx) <= lowpass).astype(np.float32)
    ky = np.fft.fftfreq(ny)[None, :, None]
    kx = np.fft.rfftfreq(nx)[None, None, :]
    averages = []
    for h in (1, 2):
        idx = np.flatnonzero(half == h)
        ref = images[idx].mean(axis=0)
        for _ in range(iterations):
            G = np.conj(np.fft.rfft2(ref)).astype(np.complex64) * lp
            total = np.zeros((ny, nxh), np.complex128)
            count = 0
            for start in range(0, len(idx), chunk):
                sel = idx[start:start + chunk]
                k = len(sel)
                a[:k] = images[sel]
                fwd()
                np.multiply(F[:k], G, out=C[:k])
                inv()
                flat = m[:k].reshape(k, -1).argmax(axis=1)
                iy, ix = np.unravel_index(flat, (ny, nx))

                def parabola(l, c, r):
                    d = l - 2 * c + r
                    return np.where(d < 0, 0.5 * (l - r) / np.where(d < 0, d, 1), 0.0)

                rows = np.arange(k)
                oy = parabola(m[rows, (iy - 1) % ny, ix], m[rows, iy, ix], m[rows, (iy + 1) % ny, ix])
                ox = parabola(m[rows, iy, (ix - 1) % nx], m[rows, iy, ix], m[rows, iy, (ix + 1) % nx])
                dy = np.where(iy > ny // 2, iy - ny, iy) + oy
                dx = np.where(ix > nx // 2, ix - nx, ix) + ox
                # average: spectra moved back by (dy, dx), summed; separable phase ramps
                ey = np.exp(2j * np.pi * ky[0, :, 0][None, :] * dy[:, None]).astype(np.complex64)
                ex = np.exp(2j * np.pi * kx[0, 0, :][None, :] * dx[:, None]).astype(np.complex64)
                total += np.einsum("kyx,ky,kx->yx", F[:k], ey, ex, optimize=True)
                count += k
            ref = np.fft.irfft2(total / count, s=(ny, nx))
        averages.append(ref)
    return averages


def template_correlation(template: np.ndarray, average: np.ndarray) -> float:
    """Correlation of an average with the true template at the best shift (cryocore.register's score)."""
    import cryocore

    return float(cryocore.register(template, average[None].astype(np.float32)).scores[0])


def machine_lines(args) -> list[str]:
    import report

    return report.machine_lines(f"n={args.n} size={args.size} snr={args.snr} iterations={args.iterations} "
                                f"threads={args.threads} repeats={args.repeats}")


def write_report(args, machine, med, base, correlation) -> None:
    """DIR/compare_align.md and .png: seconds, the ratio to one register pass and the correlation of
    the final half averages with the true template (the mean over the two halves), per method."""
    import report

    header = (f"{args.n} images {args.size}x{args.size}, SNR {args.snr}, {args.threads} threads, "
              f"median of {args.repeats} interleaved repeats")
    rows = [[k, f"{v:.3f}", f"{v / base:.2f}×", f"{correlation[k]:.4f}" if k in correlation else "–"]
            for k, v in med.items()]
    bars = [(k, v, not k.startswith("pyfftw")) for k, v in med.items()]
    md, png = report.write_report(
        args.report, "compare_align", "align() iterations against one register pass and a pyfftw pipeline",
        header, ["method", "seconds", "vs one register pass", "half averages vs true template (mean correlation)"], rows,
        bars, "seconds (shorter is faster)", machine)
    print(f"  report: {md}, {png}")


def main(argv=None) -> int:
    import cryocore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--snr", type=float, default=0.1)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write DIR/compare_align.md (Markdown table) and DIR/compare_align.png (chart)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.iterations, args.repeats = 300, 3, 1
    machine = machine_lines(args)  # before the run: the load average it reports is that of other processes
    print("\n".join(machine))
    sim = cryocore.simulate(args.n, args.size, snr=args.snr, max_shift=10, rotate=False, seed=0)
    imgs, t = sim.images, sim.template
    half = cryocore.alignment.split_halves(args.n, "random", 0)
    methods = {
        "register (one pass)": lambda: cryocore.register(t, imgs, threads=args.threads),
        f"align ({args.iterations} iterations)": lambda: cryocore.align(
            imgs, rotate=False, iterations=args.iterations, tolerance_px=0, progress=False, threads=args.threads),
        f"pyfftw batch ({args.iterations} iterations)": lambda: pyfftw_iterations(
            imgs, half, args.iterations, args.threads),
    }
    for f in methods.values():  # warm-up: plans, caches
        f()
    times: dict[str, list[float]] = {k: [] for k in methods}
    outputs = {}
    rng = np.random.default_rng(0)
    for _ in range(args.repeats):
        for name in rng.permutation(list(methods)):
            t0 = time.perf_counter()
            out = methods[name]()
            if args.report:  # kept only for the report's accuracy column
                outputs[name] = out
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["register (one pass)"]
    names = list(methods)
    print(f"\n{args.n} images {args.size}x{args.size}, SNR {args.snr}, threads {args.threads}, "
          f"median of {args.repeats}")
    for k in names:
        print(f"  {k:<32} {med[k]:8.3f} s   {med[k] / base:6.2f}x register pass")
    al, pf = med[names[1]], med[names[2]]
    if args.report:
        halves = {names[1]: outputs[names[1]].half_averages, names[2]: outputs[names[2]]}
        write_report(args, machine, med, base,
                     {k: float(np.mean([template_correlation(t, a) for a in h])) for k, h in halves.items()})
    print("\ntargets (printed, not asserted)")
    print(f"  {'PASS' if al <= 5 * base else 'MISS'}  align {args.iterations} iterations <= 5x one register pass: "
          f"{al / base:.2f}x")
    print(f"  {'PASS' if pf >= 2.5 * al else 'MISS'}  pyfftw iterations >= 2.5x align: {pf / al:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
