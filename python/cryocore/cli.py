"""The ``cryocore`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import numpy as np

__all__ = ["main"]


class UserError(Exception):
    """A problem with the user's input: reported in one line, exit code 2."""


def _demo(args: argparse.Namespace) -> int:
    from . import register, simulate
    from . import fftw_version

    if args.n < 1 or args.size < 32:
        raise UserError("--n must be >= 1 and --size >= 32")
    if not args.snr > 0:
        raise UserError("--snr must be > 0")
    print(
        f"cryocore demo: simulating {args.n} images of {args.size}x{args.size} px, SNR {args.snr:g}, "
        f"shifts up to +-{args.max_shift:g} px (seed {args.seed})"
    )
    t0 = time.perf_counter()
    sim = simulate(args.n, args.size, snr=args.snr, max_shift=args.max_shift, rotate=False, seed=args.seed)
    t1 = time.perf_counter()
    reg = register(sim.template, sim.images, upsample=args.upsample, threads=args.threads)
    t2 = time.perf_counter()
    err = reg.shifts - sim.shifts
    dist = np.hypot(err[:, 0], err[:, 1])
    rms = float(np.sqrt(np.mean(err**2)))
    print(f"  simulated in {t1 - t0:.2f} s; registered against the template in {t2 - t1:.3f} s "
          f"({args.n / (t2 - t1):,.0f} images/s, {fftw_version})")
    print(f"  shift error vs ground truth: median {np.median(dist):.3f} px, RMS per axis {rms:.3f} px, "
          f"90th percentile {np.percentile(dist, 90):.3f} px, max {dist.max():.3f} px")
    print(f"  Pearson scores: median {np.median(reg.scores):.3f} "
          f"(expected about sqrt(SNR/(1+SNR)) = {np.sqrt(args.snr / (1 + args.snr)):.3f})")
    print(f"  bias (mean error): dy {err[:, 0].mean():+.3f} px, dx {err[:, 1].mean():+.3f} px")
    return 0


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog="cryocore", description="Fast alignment and averaging of 2D cryo-EM particle images."
    )
    p.add_argument("--version", action="version", version=f"cryocore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    d = sub.add_parser("demo", help="simulate the report's 500-image stack and register it; print the accuracy")
    d.add_argument("--n", type=int, default=500, help="number of images (default 500)")
    d.add_argument("--size", type=int, default=128, help="box size in pixels (default 128)")
    d.add_argument("--snr", type=float, default=0.1, help="signal-to-noise ratio (default 0.1)")
    d.add_argument("--max-shift", type=float, default=10.0, help="largest true shift in pixels (default 10)")
    d.add_argument("--upsample", type=int, default=20, help="sub-pixel refinement factor (default 20)")
    d.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # argparse exits with code 2 on bad options
    try:
        return int(args.func(args))
    except (UserError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"cryocore {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
