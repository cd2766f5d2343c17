"""The ``cryocore`` command line: ``align``, ``simulate`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["main"]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError,
               IsADirectoryError, NotImplementedError)


class UserError(Exception):
    """A problem with the user's input: reported in one line, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _finite_number(text: str, zero_ok: bool) -> float:
    """A finite number > 0 (>= 0 with ``zero_ok``), else an argparse error."""
    expected = "a finite number >= 0" if zero_ok else "a positive number"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (v >= 0 if zero_ok else v > 0) or v == float("inf"):  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    return _finite_number(text, zero_ok=False)


def _nonnegative_float(text: str) -> float:
    return _finite_number(text, zero_ok=True)


def _memory(text: str) -> int:
    from .pipeline.config import parse_memory

    try:
        return parse_memory(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _threshold(text: str) -> Any:
    if text == "auto":
        return "auto"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a Pearson score in [-1, 1], got {text!r}") from None
    if not -1 <= v <= 1:
        raise argparse.ArgumentTypeError(f"a threshold is a Pearson score in [-1, 1], got {text!r}")
    return v


def _reference(text: str, n_images: int) -> Any:
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    from .io import open_stack

    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"reference file {text} does not exist (give 'auto', an image index or an image file)")
    with open_stack(str(path)) as ref:
        if len(ref) > 1000:
            raise UserError(f"reference file {text} holds {len(ref)} images; give one image, or a stack of "
                            "K references (one per class, at most 1000)")
        refs = ref.read(0, len(ref))
        return refs[0] if len(refs) == 1 else refs


def _print_summary(result: Any, paths: dict, elapsed: float) -> None:
    print()
    print(f"{'':8}{'images':>8}{'kept':>8}{'rejected':>10}{'threshold':>11}")
    for h in (1, 2):
        m = result.half == h
        kept = int(result.accepted[m].sum())
        thr = " ".join(f"{t:.3f}" for t in result.thresholds[h - 1])
        print(f"half {h:<3}{int(m.sum()):>8}{kept:>8}{int(m.sum()) - kept:>10}{thr:>11}")
    total_kept = int(result.accepted.sum())
    print(f"{'total':<8}{len(result.scores):>8}{total_kept:>8}{len(result.scores) - total_kept:>10}")
    if result.n_classes > 1:
        counts = result.class_counts()
        for k in range(result.n_classes):
            f = result.class_frcs[k]
            print(f"class {k + 1:<3}{int(counts[k]):>8} kept, FRC 0.143: {f.resolution_0143:.3f} 1/px"
                  + (f" ({f.resolution_A(0.143):.1f} Å)" if result.pixel_size_A else ""))
    res = f"FRC 0.143: {result.frc.resolution_0143:.3f} 1/px, 0.5: {result.frc.resolution_05:.3f} 1/px"
    if result.resolution_A is not None:
        res += f"  ({result.frc.resolution_A(0.143):.1f} Å / {result.frc.resolution_A(0.5):.1f} Å)"
    print(res)
    iters = max(int(r["iteration"]) for r in result.history) if result.history else 0
    print(f"{iters} {'images' if result.parameters.get('mode') == 'online' else 'iterations'} in {elapsed:.1f} s")
    if paths:
        print("outputs: " + ", ".join(sorted(Path(p).name for p in paths.values())))
        print(f"   in {Path(next(iter(paths.values()))).parent}")


RUN_FILE = ".cryocore-run.json"
CHECKPOINT_FILE = ".cryocore-checkpoint.npz"
RESUMABLE = ("input", "output", "reference", "threshold", "iterations", "half_split", "mode", "rotate",
             "lowpass_A", "pixel_size_A", "max_shift", "threads", "seed", "quiet", "tolerance_px", "local_search",
             "max_memory", "ctf")


CLASSIFY_RESUMABLE = ("input", "output", "k", "iterations", "rotate", "pixel_size_A", "ctf", "junk_classes", "soft_assignment",
                      "threads", "max_memory", "particle_diameter_A", "normalize", "invert_contrast",
                      "hot_pixel_sigma", "bin_to_A", "seed", "quiet")


def _align(args: argparse.Namespace) -> int:
    return _resumable(args, RESUMABLE, _run_align)


def _classify(args: argparse.Namespace) -> int:
    return _resumable(args, CLASSIFY_RESUMABLE, _run_classify)


def _resumable(args: argparse.Namespace, keys: Sequence[str], run: Any) -> int:
    """A run that can be interrupted and continued: its options are saved in OUTDIR/RUN_FILE
    before the work; ``--resume OUTDIR`` reads them back (the command must be the same)."""
    import json

    from .io import atomic_write
    from .output import prepare_outdir

    if args.resume is not None:
        saved_file = Path(args.resume) / RUN_FILE
        if not saved_file.exists():
            raise FileNotFoundError(f"{args.resume} holds no interrupted cryocore run to resume ({RUN_FILE} is missing)")
        saved = json.loads(saved_file.read_text())
        if saved.get("command", "align") != args.command:
            raise UserError(f"{args.resume} holds an interrupted 'cryocore {saved.get('command', 'align')}' run; "
                            f"resume it with that command")
        for k in keys:
            if k in saved:
                setattr(args, k, saved[k])
        args.output = args.resume
        return int(run(args))
    if args.input is None or args.output is None:
        raise UserError(f"{args.command} needs INPUT and -o OUTDIR (or --resume OUTDIR)")
    # Refuse a bad output directory before the work, not after it.
    created = not Path(args.output).exists()
    prepare_outdir(args.output, overwrite=args.overwrite, inputs=[args.input])
    with atomic_write(str(Path(args.output) / RUN_FILE), "w") as f:
        json.dump({"command": args.command, **{k: getattr(args, k) for k in keys}}, f)
    try:
        return int(run(args))
    except (UserError,) + USER_ERRORS:
        # A user error will not go away on --resume: leave nothing behind.
        _discard_run(Path(args.output), created)
        raise


def _discard_run(out: Path, created: bool) -> None:
    _forget_run(out)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _forget_run(out: Path) -> None:
    """Remove a run's resume files (the run file and every checkpoint)."""
    (out / RUN_FILE).unlink(missing_ok=True)
    for p in out.glob(CHECKPOINT_FILE.removesuffix(".npz") + "*"):
        p.unlink(missing_ok=True)


def _run_align(args: argparse.Namespace) -> int:
    from .alignment import align
    from .io import open_stack

    checkpoint = str(Path(args.output) / CHECKPOINT_FILE)
    t0 = time.perf_counter()
    with open_stack(args.input) as stack:
        if not args.quiet:
            apix = args.pixel_size_A or stack.pixel_size_A
            verb = "resuming" if args.resume is not None else "align"
            uses_ctf = args.ctf == "on" or (args.ctf == "auto" and stack.table.has("rlnDefocusU"))
            print(f"cryocore {verb}: {len(stack)} images of {stack.shape[1]}x{stack.shape[2]} px from {args.input}"
                  + (f", {apix:g} Å/px" if apix else ", pixel size unknown")
                  + (", CTF correction from the STAR file's columns" if uses_ctf else ""))
        result = align(
            stack,
            _reference(args.reference, len(stack)),
            rotate=args.rotate,
            threshold=args.threshold,
            iterations=args.iterations,
            half_split=args.half_split,
            seed=args.seed,
            mode=args.mode,
            pixel_size_A=args.pixel_size_A,
            lowpass_A=args.lowpass_A,
            max_shift=args.max_shift,
            threads=args.threads,
            progress=not args.quiet,
            tolerance_px=args.tolerance_px,
            local_search=args.local_search,
            max_memory=args.max_memory,
            executor=args.dask,
            ctf={"off": None, "auto": "auto", "on": stack.table}[args.ctf],
            checkpoint=checkpoint if args.mode == "iterative" else None,
            resume=args.resume is not None,
            normalize=args.normalize,
            particle_diameter_A=args.particle_diameter_A,
            invert_contrast=args.invert_contrast,
            hot_pixel_sigma=args.hot_pixel_sigma,
            target_pixel_size_A=args.bin_to_A,
        )
        paths = result.write(args.output, overwrite=True, inputs=[args.input])
    _forget_run(Path(args.output))  # the run is complete: nothing left to resume
    if not args.quiet:
        _print_summary(result, paths, time.perf_counter() - t0)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from . import io
    from .simulation import simulate

    out = Path(args.output)
    if out.suffix not in (".mrcs", ".mrc"):
        raise UserError(f"the output stack must end in .mrcs or .mrc, got {args.output}")
    truth = out.parent / "truth.star"
    for p in (out, truth):
        if p.exists() and not args.overwrite:
            raise FileExistsError(f"{p} exists; use --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    sim = simulate(args.n, args.size, snr=args.snr, max_shift=args.max_shift, rotate=args.rotate,
                   psf_sigma=(args.psf_min, args.psf_max), seed=args.seed, ctf=args.ctf,
                   defocus_range_A=(args.defocus_min_A, args.defocus_max_A), pixel_size_A=args.pixel_size_A)
    io.write_mrc(str(out), sim.images, pixel_size_A=args.pixel_size_A, overwrite=True)
    n = len(sim.images)
    names = [f"{i + 1:06d}@{out.name}" for i in range(n)]
    table = None
    if sim.ctf is not None:  # RELION's layout: per-particle defocus, the microscope in the optics group
        import pandas as pd

        cols = sim.ctf.star_columns()
        optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                               **{k: [float(cols[k][0])] for k in ("rlnVoltage", "rlnSphericalAberration",
                                                                  "rlnAmplitudeContrast")}})
        particles = pd.DataFrame({"rlnImageName": names, "rlnOpticsGroup": np.ones(n, int),
                                  **{k: cols[k] for k in ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
                                                          "rlnPhaseShift", "rlnCtfBfactor", "rlnCtfScalefactor")}})
        table = io.ParticleTable(particles, optics)
    io.write_particles_star(
        str(truth), image_names=names, shifts=sim.shifts,
        angles=sim.angles, scores=np.ones(n), accepted=np.ones(n, bool),
        half=np.where(np.arange(n) % 2 == 0, 1, 2), pixel_size_A=args.pixel_size_A,
        image_size=args.size, table=table, overwrite=True,
    )
    template = out.parent / "template.mrc"
    io.write_mrc(str(template), sim.template, pixel_size_A=args.pixel_size_A, overwrite=True)
    print(f"wrote {n} images to {out}, their poses to {truth} and the clean particle to {template}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import register, transform
    from .alignment import align, rotate_vectors
    from .simulation import simulate

    rot = not args.no_rotate
    use_ctf = not args.no_ctf
    print(f"cryocore demo: the report's data set, simulated: {args.n} images of {args.size}x{args.size} px, "
          f"SNR {args.snr:g}, shifts up to ±10 px, {'random in-plane rotations' if rot else 'no rotation'}"
          + (f", each filtered by its own CTF (defocus 0.8-2.5 µm, {args.pixel_size_A:g} Å/px)" if use_ctf else "")
          + f" (seed {args.seed})")
    t0 = time.perf_counter()
    sim = simulate(args.n, args.size, snr=args.snr, max_shift=10.0, rotate=rot, seed=args.seed, ctf=use_ctf,
                   pixel_size_A=args.pixel_size_A)
    t1 = time.perf_counter()
    result = align(sim.images, None, rotate=rot, threshold="auto", iterations=10, half_split="random",
                   seed=args.seed, pixel_size_A=args.pixel_size_A, threads=args.threads, progress=not args.quiet,
                   ctf=sim.ctf)
    t2 = time.perf_counter()
    paths = result.write(args.output, overwrite=True)
    # Accuracy against the ground truth. Reference-free poses refer to the
    # average, which is the true particle under some global pose: fit it, then
    # compose it with every image's pose.
    fit = register(sim.template, result.average, rotate=rot, upsample=50, threads=args.threads)
    psi_g = float(fit.angles) if rot else 0.0
    pred_angles = (result.angles + psi_g) % 360.0
    pred_shifts = result.shifts + rotate_vectors(np.broadcast_to(fit.shifts, result.shifts.shape), result.angles)
    dist = np.hypot(*(pred_shifts - sim.shifts).T)
    dpsi = np.abs((pred_angles - sim.angles + 180.0) % 360.0 - 180.0)
    ctf_args = dict(ctf=sim.ctf, pixel_size_A=args.pixel_size_A) if use_ctf else {}
    oracle = register(sim.template, sim.images, rotate=rot, threads=args.threads, **ctf_args)
    d_oracle = np.hypot(*(oracle.shifts - sim.shifts).T)
    aligned = transform(result.average, psi_g, fit.shifts, inverse=True)
    corr = float(np.corrcoef(aligned.ravel(), sim.template.ravel())[0, 1])
    print(f"  simulated in {t1 - t0:.1f} s, aligned in {t2 - t1:.1f} s"
          + (" (CTF-corrected: each image compared with the reference times its CTF, Wiener-filtered averages)"
             if use_ctf else ""))
    _print_summary(result, paths, t2 - t1)
    print()
    print("accuracy against the ground truth (kept images, after the average's global pose is fitted):")
    kept = result.accepted
    print(f"  median shift error {np.median(dist[kept]):.3f} px; oracle (registered against the true particle) "
          f"{np.median(d_oracle):.3f} px")
    if rot:
        d_or = np.abs((oracle.angles - sim.angles + 180.0) % 360.0 - 180.0)
        print(f"  median angle error {np.median(dpsi[kept]):.2f} deg; oracle {np.median(d_or):.2f} deg")
    print(f"  average vs true particle: Pearson {corr:.3f}")
    return 0


def _add_preprocessing(parser: argparse.ArgumentParser, binning_help: str = "") -> None:
    pre = parser.add_argument_group("preprocessing (RELION's defaults: background normalisation only)")
    pre.add_argument("--particle-diameter-A", type=_positive_float, default=None,
                     help="particle diameter; the background is outside it (default: 0.75 of the box)")
    pre.add_argument("--no-normalize", dest="normalize", action="store_false",
                     help="keep the images' scale (no background normalisation)")
    pre.add_argument("--invert-contrast", action="store_true", help="for black particles (raw micrograph contrast)")
    pre.add_argument("--hot-pixel-sigma", type=_positive_float, default=None, metavar="K",
                     help="replace pixels beyond K standard deviations of the background (default: off)")
    pre.add_argument("--bin-to-A", type=_positive_float, default=None, metavar="APIX",
                     help=binning_help or "iterate on images Fourier-cropped to this coarser pixel size, for speed; "
                     "the final averages and poses are in the input's pixels and box")


def _run_classify(args: argparse.Namespace) -> int:
    from .classification import classify
    from .io import open_stack

    t0 = time.perf_counter()
    with open_stack(args.input) as stack:
        if not args.quiet:
            apix = args.pixel_size_A or stack.pixel_size_A
            verb = "resuming" if args.resume is not None else "classify"
            print(f"cryocore {verb}: {len(stack)} images of {stack.shape[1]}x{stack.shape[2]} px from "
                  f"{args.input} into {args.k} classes" + (f", {apix:g} Å/px" if apix else ""))
        result = classify(
            stack, args.k, iterations=args.iterations, rotate=args.rotate,
            ctf={"off": None, "auto": "auto", "on": stack.table}[args.ctf], pixel_size_A=args.pixel_size_A,
            target_pixel_size_A="auto" if args.bin_to_A is None else args.bin_to_A, seed=args.seed,
            threads=args.threads, max_memory=args.max_memory, progress=not args.quiet, executor=args.dask,
            junk_classes=args.junk_classes, soft_assignment=args.soft_assignment, normalize=args.normalize, particle_diameter_A=args.particle_diameter_A,
            invert_contrast=args.invert_contrast, hot_pixel_sigma=args.hot_pixel_sigma,
            checkpoint=str(Path(args.output) / CHECKPOINT_FILE), resume=args.resume is not None)
        paths = result.write(args.output, overwrite=True, inputs=[args.input])
    _forget_run(Path(args.output))
    if not args.quiet:
        counts = result.class_counts()
        print(f"{int(result.accepted.sum())} of {len(result.scores)} particles kept in {args.k} classes"
              + (f" (junk classes {result.junk_classes}: their particles rejected)" if result.junk_classes else "")
              + f", in {time.perf_counter() - t0:.1f} s")
        for k in range(result.n_classes):
            res = result.class_frcs[k].resolution_A(0.143)
            print(f"class {k + 1:<4}{int(counts[k]):>8} particles" + (f", {res:.1f} Å" if res else "")
                  + ("  (junk)" if k + 1 in result.junk_classes else ""))
        print("outputs: " + ", ".join(sorted(Path(p).name for p in paths.values())) + f"\n   in {args.output}")
    return 0


def _select(args: argparse.Namespace) -> int:
    from .class_selection import select

    classes = None
    if args.classes:
        try:
            classes = [int(v) for v in args.classes.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--classes must be class numbers separated by commas, got {args.classes!r}") from None
    table = select(args.run, classes=classes, min_resolution_A=args.min_resolution_A,
                   min_particles=args.min_particles, output=args.output, overwrite=args.overwrite)
    print(f"wrote {len(table)} particles of classes {', '.join(str(int(c)) for c in table.classes)} to {args.output}")
    return 0


def _demo_classify(args: argparse.Namespace) -> int:
    from .classification import classify
    from .simulation import make_views, simulate

    views = make_views(args.views, args.size, seed=args.seed)
    print(f"cryocore demo-classify: {args.n} images of {args.views} synthetic particles ({args.size}x{args.size} px, "
          f"2 Å/px), random in-plane rotations and shifts, each with its own CTF (defocus 0.8-2.5 µm), SNR "
          f"{args.snr:g}, 10% junk (noise and blobs); sorted into {args.k} classes (seed {args.seed})")
    sim = simulate(args.n, args.size, snr=args.snr, templates=views, max_shift=args.size / 16, ctf=True,
                   pixel_size_A=2.0, seed=args.seed, junk_fraction=0.1)
    t0 = time.perf_counter()
    result = classify(sim.images, args.k, ctf=sim.ctf, pixel_size_A=2.0, seed=args.seed, threads=args.threads,
                      progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    paths = result.write(args.output, overwrite=True)
    truth = np.asarray(sim.classes)
    good = truth > 0
    purity = 0
    for c in np.unique(result.classes[good]):
        m = good & (result.classes == c)
        purity += int(np.bincount(truth[m]).max())
    junk_ok = ~result.accepted[~good] | np.isin(result.classes[~good], result.junk_classes)
    counts = result.class_counts()
    print(f"  classified in {elapsed:.1f} s ({result.timings.get('seeding_s', 0):.1f} s for the starting classes)")
    for k in range(result.n_classes):
        m = good & (result.classes == k + 1) & result.accepted
        major = int(np.bincount(truth[m]).argmax()) if m.any() else 0
        res = result.class_frcs[k].resolution_A(0.143)
        print(f"  class {k + 1:<3}{int(counts[k]):>6} particles" + (f", {res:5.1f} Å" if res else "")
              + ("  junk class" if k + 1 in result.junk_classes else f"  mostly particle {major}"))
    print(f"accuracy against the ground truth: purity {purity / good.sum():.3f} (fraction of particles whose class's "
          f"majority is their own); junk rejected or in junk classes: {junk_ok.mean():.2f}")
    print(f"outputs (gallery.png, classes.mrcs, model.star, particles.star, ...) in {Path(paths['gallery.png']).parent}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from .build_info import build_config

    c = build_config()
    p = argparse.ArgumentParser(prog="cryocore", description="Fast alignment and averaging of 2D cryo-EM particle images.")
    p.add_argument("--version", action="version",
                   version=f"cryocore {c['version']} (FFTW {c['fftw_version']} {'+'.join(c['fftw_simd']) or 'scalar'}, "
                           f"{'bundled' if c['fftw_bundled'] else 'system library'})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for add in (_add_align, _add_classify, _add_select, _add_simulate, _add_demo, _add_demo_classify):
        add(sub)
    return p


def _add_align(sub: Any) -> None:
    a = sub.add_parser("align", help="align and average a particle stack in two half-sets",
                       description="Align and average a particle stack (MRC/MRCS, .npy, TIFF, a folder of PNG/TIFF, "
                                   "or a RELION particle STAR file) in two independent half-sets.")
    a.add_argument("input", nargs="?", help="particle stack or STAR file")
    a.add_argument("-o", "--output", help="output directory")
    a.add_argument("--resume", metavar="OUTDIR", default=None,
                   help="continue an interrupted run from its last completed iteration (same result)")
    a.add_argument("--reference", default="auto",
                   help="'auto' (reference-free), an image index, an image file, or a stack of K images: "
                        "multi-reference alignment, each image assigned to its best reference (class)")
    a.add_argument("--threshold", type=_threshold, default="auto", help="'auto' or a Pearson score (default auto)")
    a.add_argument("--iterations", type=_positive_int, default=10)
    a.add_argument("--tolerance-px", type=_nonnegative_float, default=0.01,
                   help="stop when poses move less than this (RMS px) and no image changes set (0: never)")
    a.add_argument("--full-search", dest="local_search", action="store_false",
                   help="search every image globally in every iteration (default: from the second iteration "
                        "on, locally around its last pose)")
    a.add_argument("--half-split", choices=("random", "halves", "even-odd"), default="random")
    a.add_argument("--mode", choices=("iterative", "online"), default="iterative")
    a.add_argument("--rotate", dest="rotate", action="store_true", help="search in-plane rotations (the default)")
    a.add_argument("--no-rotate", dest="rotate", action="store_false", help="translations only")
    a.set_defaults(rotate=True)
    a.add_argument("--lowpass-A", type=_positive_float, default=None, help="never use detail finer than this (Å)")
    a.add_argument("--pixel-size-A", type=_positive_float, default=None, help="Å per pixel (default: from the input)")
    a.add_argument("--max-shift", type=_positive_float, default=None, help="search radius in pixels")
    a.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    a.add_argument("--ctf", dest="ctf", action="store_const", const="on",
                   help="CTF correction from the STAR file's CTF columns (RELION's convention): images compared and "
                        "averaged multiplied by their CTFs, Wiener-filtered averages per half. Default: on when the "
                        "input is a STAR file with rlnDefocusU; --ctf makes a missing column an error")
    a.add_argument("--no-ctf", dest="ctf", action="store_const", const="off", help="no CTF correction")
    a.set_defaults(ctf="auto")
    a.add_argument("--max-memory", type=_memory, default=None, metavar="SIZE",
                   help="bound on the memory cryocore allocates, e.g. 4G or 512M (default: a quarter of the "
                        "machine's memory; a memory-mapped input does not count)")
    _add_dask(a)
    _add_preprocessing(a)
    a.add_argument("--seed", type=int, default=0, help="seed of the random half split")
    a.add_argument("--overwrite", action="store_true", help="replace the files of an existing output directory")
    a.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    a.set_defaults(func=_align)


def _add_dask(p: Any) -> None:
    p.add_argument("--dask", metavar="SCHEDULER", default=None,
                   help="run the chunks on a dask cluster: a scheduler address (tcp://host:8786) or local:N "
                        "(N worker processes here); needs pip install 'cryocore[cluster]'")


def _add_classify(sub: Any) -> None:
    c = sub.add_parser("classify", help="sort a particle stack into K 2D classes, reference-free",
                       description="Sort a particle stack into K 2D classes (reference-free; each class averaged "
                                   "in two independent half-sets, CTF-corrected), sorted by size.")
    c.add_argument("input", nargs="?", help="particle stack or STAR file")
    c.add_argument("-o", "--output", help="output directory")
    c.add_argument("--resume", metavar="OUTDIR", default=None,
                   help="continue an interrupted classification in OUTDIR (with its options)")
    c.add_argument("-k", type=_positive_int, default=50, help="number of classes (default 50)")
    c.add_argument("--iterations", type=_positive_int, default=20)
    c.add_argument("--no-rotate", dest="rotate", action="store_false", help="translations only")
    c.add_argument("--pixel-size-A", type=_positive_float, default=None, help="Å per pixel (default: from the input)")
    c.add_argument("--ctf", dest="ctf", action="store_const", const="on",
                   help="CTF correction from the STAR file's columns (the default when it has them)")
    c.add_argument("--no-ctf", dest="ctf", action="store_const", const="off", help="no CTF correction")
    c.set_defaults(ctf="auto")
    c.add_argument("--no-junk-classes", dest="junk_classes", action="store_false",
                   help="no junk classes for incoherent clusters of the starting subset")
    c.add_argument("--soft-assignment", action="store_true",
                   help="each image counts in its candidate classes by its likelihood there (default: best class only)")
    c.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    c.add_argument("--max-memory", type=_memory, default=None, metavar="SIZE", help="memory bound, e.g. 4G")
    _add_dask(c)
    _add_preprocessing(c, "classify images Fourier-cropped to this pixel size (default: boxes over 64 px are "
                          "binned to about 64 px); averages and poses come back in the input's units")
    c.add_argument("--seed", type=int, default=0, help="seed of the starting subset and the half split")
    c.add_argument("--overwrite", action="store_true", help="replace the files of an existing output directory")
    c.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    c.set_defaults(func=_classify)


def _add_select(sub: Any) -> None:
    e = sub.add_parser("select", help="write the particles of chosen classes of a classification as a STAR file")
    e.add_argument("run", help="a cryocore classify output directory")
    e.add_argument("-o", "--output", required=True, help="output STAR file")
    e.add_argument("--classes", default=None, help="class numbers, e.g. 3,7,12 (default: all)")
    e.add_argument("--min-resolution-A", type=_positive_float, default=None,
                   help="keep classes whose FRC 0.143 resolution is this fine or finer")
    e.add_argument("--min-particles", type=_positive_int, default=None, help="keep classes with this many particles")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    e.set_defaults(func=_select)


def _add_simulate(sub: Any) -> None:
    s = sub.add_parser("simulate", help="write a simulated stack with its ground truth (truth.star)")
    s.add_argument("-o", "--output", required=True, help="output stack (.mrcs); truth.star and template.mrc go beside it")
    s.add_argument("--n", type=_positive_int, default=500)
    s.add_argument("--size", type=_positive_int, default=128)
    s.add_argument("--snr", type=_positive_float, default=0.1)
    s.add_argument("--max-shift", type=float, default=10.0)
    s.add_argument("--rotate", dest="rotate", action="store_true", help="random in-plane angles (default)")
    s.add_argument("--no-rotate", dest="rotate", action="store_false")
    s.set_defaults(rotate=True)
    s.add_argument("--psf-min", type=float, default=0.5, help="smallest PSF sigma, px")
    s.add_argument("--psf-max", type=float, default=1.5, help="largest PSF sigma, px")
    s.add_argument("--pixel-size-A", type=_positive_float, default=1.0)
    s.add_argument("--ctf", action="store_true",
                   help="filter each image by its own CTF (300 kV, Cs 2.7 mm, Q0 0.1; RELION's convention) instead "
                        "of the Gaussian PSF; truth.star gets the CTF columns")
    s.add_argument("--defocus-min-A", type=_positive_float, default=8000.0, help="smallest defocus U, Å")
    s.add_argument("--defocus-max-A", type=_positive_float, default=25000.0, help="largest defocus U, Å")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_simulate)


def _add_demo(sub: Any) -> None:
    d = sub.add_parser("demo", help="simulate the report's 500-image stack, align it, print the accuracy")
    d.add_argument("-o", "--output", default="demo_out", help="output directory (default ./demo_out, replaced)")
    d.add_argument("--n", type=_positive_int, default=500, help="number of images (default 500)")
    d.add_argument("--size", type=_positive_int, default=128, help="box size in pixels (default 128)")
    d.add_argument("--snr", type=_positive_float, default=0.1, help="signal-to-noise ratio (default 0.1)")
    d.add_argument("--pixel-size-A", type=_positive_float, default=2.0, help="Å per pixel (default 2)")
    d.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-rotate", action="store_true", help="simulate and align without rotations")
    d.add_argument("--no-ctf", action="store_true",
                   help="simulate a Gaussian blur instead of CTFs (and align without CTF correction)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_demo)


def _add_demo_classify(sub: Any) -> None:
    dc = sub.add_parser("demo-classify", help="simulate a stack of several particles with junk and classify it")
    dc.add_argument("-o", "--output", default="demo_classify_out", help="output directory (replaced)")
    dc.add_argument("--n", type=_positive_int, default=1200, help="number of images (default 1200)")
    dc.add_argument("--views", type=_positive_int, default=6, help="distinct particles (default 6)")
    dc.add_argument("-k", type=_positive_int, default=6, help="classes (default 6)")
    dc.add_argument("--size", type=_positive_int, default=64, help="box size in pixels (default 64)")
    dc.add_argument("--snr", type=_positive_float, default=0.1, help="signal-to-noise ratio (default 0.1)")
    dc.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    dc.add_argument("--seed", type=int, default=0)
    dc.add_argument("--quiet", action="store_true")
    dc.set_defaults(func=_demo_classify)



def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # argparse exits with code 2 on bad options
    try:
        return int(args.func(args))
    except (UserError,) + USER_ERRORS as exc:
        msg = str(exc).strip().splitlines()
        print(f"cryocore {args.command}: error: {msg[0] if msg else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryocore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
