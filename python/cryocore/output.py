"""Writing an :class:`~cryocore.pipeline.result.AlignResult` to a directory."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .classification import ClassResult
    from .pipeline.result import AlignResult

__all__ = ["write_classification", "write_result", "prepare_outdir"]

OUTPUT_FILES = (
    "average.mrc", "half1.mrc", "half2.mrc", "classes.mrcs", "average.png", "particles.star", "particles.csv",
    "convergence.png", "frc.png", "scores.png", "progress.gif", "report.json",
)
CLASSIFICATION_FILES = ("model.star", "gallery.png")


def prepare_outdir(outdir: str, *, overwrite: bool = False, inputs: Sequence[str] = ()) -> Path:
    """Create ``outdir``; refuse an existing one unless ``overwrite``, and any path that is an input.

    Raises FileExistsError / ValueError / PermissionError with a message that says what to do.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {out} exists and is not a directory")
    if out.exists() and (out / ".cryocore-run.json").exists() and not overwrite:
        raise FileExistsError(f"output directory {out} holds an interrupted run; continue it with --resume {out}, "
                              "or use --overwrite to start afresh")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"output directory {out} already exists and is not empty; use --overwrite (overwrite=True) to replace its files")
    resolved_inputs = {Path(p).resolve() for p in inputs}
    for name in OUTPUT_FILES + CLASSIFICATION_FILES:
        if (out / name).resolve() in resolved_inputs:
            raise ValueError(f"output file {out / name} is one of the inputs; choose another output directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create the output directory {out}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output directory {out} is not writable")
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


def write_result(result: "AlignResult", outdir: str, *, overwrite: bool = False, inputs: Sequence[str] = ()) -> dict:
    """Write every output file of an alignment into ``outdir``; returns {file name: path}.

    Each file is written to a temporary name and renamed, so an interrupted
    run never leaves a half-written file.
    """
    from . import __version__, fftw_version, io, plot

    out = prepare_outdir(outdir, overwrite=overwrite, inputs=inputs)
    paths = {name: str(out / name) for name in OUTPUT_FILES}
    apix = result.pixel_size_A
    n, ny, nx = len(result.scores), result.average.shape[0], result.average.shape[1]
    io.write_mrc(paths["average.mrc"], result.average, pixel_size_A=apix, overwrite=True)
    io.write_mrc(paths["half1.mrc"], result.half_averages[0], pixel_size_A=apix, overwrite=True)
    io.write_mrc(paths["half2.mrc"], result.half_averages[1], pixel_size_A=apix, overwrite=True)
    io.write_mrc(paths["classes.mrcs"], result.class_averages, pixel_size_A=apix, overwrite=True)
    names = result.image_names or [f"{i + 1:06d}@particles.mrcs" for i in range(n)]
    columns: dict[str, Any] = dict(image_names=names, shifts=result.shifts, angles=result.angles,
                                   scores=result.scores, accepted=result.accepted, half=result.half,
                                   classes=result.classes)
    table = result.table if result.table is not None and len(result.table) == n else None
    io.write_particles_star(paths["particles.star"], pixel_size_A=apix, image_size=nx, table=table, overwrite=True,
                            **columns)
    io.write_particles_csv(paths["particles.csv"], overwrite=True, **columns)

    plot.save_image_png(paths["average.png"], result.average, title=f"Average of {int(result.accepted.sum())} images",
                        pixel_size_A=apix)
    plot.plot_convergence(paths["convergence.png"], result.history)
    plot.plot_frc(paths["frc.png"], result.frc.frequencies, result.frc.values, pixel_size_A=apix,
                  resolution_0143=result.frc.resolution_0143, resolution_05=result.frc.resolution_05)
    thr = float(np.mean(result.thresholds[np.isfinite(result.thresholds)]))
    plot.plot_scores(paths["scores.png"], result.scores, accepted=result.accepted, threshold=thr, half=result.half)
    if len(result.frames):
        online = result.parameters.get("mode") == "online"
        unit = "images" if online else "iteration"
        steps = sorted({int(r["iteration"]) for r in result.history})
        labels = [f"{s} {unit}" if online else f"{unit} {s}" for s in steps][: len(result.frames)]
        plot.write_gif(paths["progress.gif"], result.frames, labels=labels if len(labels) == len(result.frames) else None)
    else:  # pragma: no cover - align always records frames
        paths.pop("progress.gif")

    report = dict(
        cryocore_version=__version__,
        fftw_version=fftw_version,
        numpy_version=np.__version__,
        python_version=platform.python_version(),
        parameters=result.parameters,
        timings_s=result.timings,
        n_images=n,
        box=[ny, nx],
        pixel_size_A=apix,
        accepted=int(result.accepted.sum()),
        rejected=int((~result.accepted).sum()),
        per_half=[dict(half=h, images=int((result.half == h).sum()),
                       accepted=int(result.accepted[result.half == h].sum()),
                       threshold=float(result.thresholds[h - 1, 0]) if result.n_classes == 1
                       else result.thresholds[h - 1].tolist()) for h in (1, 2)],
        classes=[dict(class_number=k + 1, particles=int(np.sum(result.classes == k + 1)),
                      accepted=int(result.class_counts()[k]),
                      frc_0143_per_px=result.class_frcs[k].resolution_0143,
                      frc_0143_A=result.class_frcs[k].resolution_A(0.143)) for k in range(result.n_classes)],
        resolution=dict(frc_0143_per_px=result.frc.resolution_0143, frc_05_per_px=result.frc.resolution_05,
                        frc_0143_A=result.frc.resolution_A(0.143), frc_05_A=result.frc.resolution_A(0.5)),
        frc=dict(frequencies_per_px=result.frc.frequencies, values=result.frc.values, ssnr=result.frc.ssnr),
        history=result.history,
        files=sorted(paths),
    )
    with io.atomic_write(paths["report.json"], "w") as f:
        json.dump(_jsonable(report), f, indent=1, allow_nan=False)
    return paths


def write_classification(result: "ClassResult", outdir: str, *, overwrite: bool = False,
                         inputs: Sequence[str] = ()) -> dict:
    """Write a classification into ``outdir``: the alignment's files (``classes.mrcs`` sorted by
    size, ``particles.star`` with rlnClassNumber, plots, ``report.json``), RELION's ``model.star``
    and ``gallery.png`` (each class with its particles and resolution); returns {name: path}."""
    from . import io, plot

    paths = write_result(result, outdir, overwrite=overwrite, inputs=inputs)
    out = Path(outdir)
    counts = result.class_counts()
    res = np.array([f.resolution_A(0.143) or math.nan for f in result.class_frcs], np.float64)
    paths["model.star"] = str(out / "model.star")
    io.write_model_star(paths["model.star"], classes_file="classes.mrcs", distribution=result.class_distribution(),
                        accuracy_rotations_deg=result.accuracy_rotations_deg,
                        accuracy_translations_A=result.accuracy_translations_A, resolution_A=res, particles=counts,
                        overwrite=True)
    labels = [f"{k + 1}: {int(counts[k])}" + (f", {res[k]:.0f} Å" if math.isfinite(res[k]) else "")
              for k in range(result.n_classes)]
    paths["gallery.png"] = str(out / "gallery.png")
    plot.save_gallery_png(paths["gallery.png"], result.class_averages, labels,
                          title=f"{result.n_classes} classes of {int(result.accepted.sum())} particles")
    return paths
