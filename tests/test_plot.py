"""Tests of cryocore.plot: every writer makes a valid file, atomically, and checks its inputs."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

import cryocore
from cryocore import plot
from cryocore.frc import frc

PIXEL_SIZE_A = 1.5
N_ITER = 4


def run_alignment(n_images: int = 200, size: int = 64, n_junk: int = 20, seed: int = 0) -> dict:
    """A small realistic gold-standard run on simulated data.

    ``n_images`` particles plus ``n_junk`` pure-noise images are split into two
    halves; each half is aligned for ``N_ITER`` iterations against its own
    average (the first against the template), keeping images whose score
    passes a threshold. Returns the inputs each plot needs.
    """
    sim = cryocore.simulate(n_images, size, snr=0.5, rotate=False, seed=seed)
    rng = np.random.default_rng(seed)
    junk = rng.standard_normal((n_junk, size, size)).astype(np.float32) * float(sim.images.std())
    images = np.concatenate([sim.images, junk])
    n = images.shape[0]
    half = np.where(rng.permutation(n) % 2 == 0, 1, 2)
    refs = {1: sim.template, 2: sim.template}
    prev: dict[int, np.ndarray] = {}
    history, frames, labels = [], [], []
    for it in range(1, N_ITER + 1):
        averages = {}
        for h in (1, 2):
            sel = half == h
            reg = cryocore.register(refs[h], images[sel], max_shift=16)
            threshold = float(np.percentile(reg.scores, 10))
            keep = reg.scores >= threshold
            acc = cryocore.Accumulator((size, size)).add(images[sel][keep], reg.shifts[keep])
            averages[h] = acc
            change = float(np.sqrt(np.mean(np.sum((reg.shifts - prev[h]) ** 2, axis=1)))) if h in prev else np.nan
            prev[h] = reg.shifts
            history.append(
                dict(iteration=it, half=h, mean_score=float(reg.scores.mean()), accepted=int(keep.sum()),
                     total=int(sel.sum()), pose_change=change)
            )
            refs[h] = acc.mean()
        both = averages[1] + averages[2]
        frames.append(both.mean())
        labels.append(f"iteration {it}")
    # Final scores of all images against the combined average, for the histogram.
    reg = cryocore.register(both.mean(), images, max_shift=16)
    threshold = float(np.percentile(reg.scores, 10))
    curve = frc(averages[1].mean(), averages[2].mean(), mask_radius=size * 0.4, pixel_size_A=PIXEL_SIZE_A)
    return dict(
        template=sim.template, average=both.mean(), half1=averages[1].mean(), history=history,
        frames=np.stack(frames), labels=labels, scores=reg.scores, accepted=reg.scores >= threshold,
        threshold=threshold, half=half, frc=curve,
    )


@pytest.fixture(scope="module")
def run() -> dict:
    return run_alignment()


def write_all(run: dict, out: Path) -> dict[str, Path]:
    """Write every figure of ``run`` into ``out``; returns the paths by name."""
    c = run["frc"]
    paths = {
        "image": out / "average.png",
        "image_plain": out / "template.png",
        "convergence": out / "convergence.png",
        "frc": out / "frc.png",
        "frc_px": out / "frc_px.png",
        "scores": out / "scores.png",
        "scores_halves": out / "scores_halves.png",
        "gif": out / "averages.gif",
    }
    plot.save_image_png(paths["image"], run["average"], title="Average of both halves", pixel_size_A=PIXEL_SIZE_A)
    plot.save_image_png(paths["image_plain"], run["template"])
    plot.plot_convergence(paths["convergence"], run["history"])
    plot.plot_frc(paths["frc"], c.frequencies, c.values, pixel_size_A=PIXEL_SIZE_A,
                  resolution_0143=c.resolution_0143, resolution_05=c.resolution_05)
    plot.plot_frc(paths["frc_px"], c.frequencies, c.values,
                  resolution_0143=c.resolution_0143, resolution_05=c.resolution_05)
    plot.plot_scores(paths["scores"], run["scores"], accepted=run["accepted"], threshold=run["threshold"])
    plot.plot_scores(paths["scores_halves"], run["scores"], accepted=run["accepted"], threshold=run["threshold"],
                     half=run["half"])
    plot.write_gif(paths["gif"], run["frames"], fps=4, labels=run["labels"], size=200)
    return paths


def no_partials(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.endswith(".partial")]
    assert left == [], f"leftover partial files: {left}"


# --------------------------------------------------------------------------
# Valid files
# --------------------------------------------------------------------------


def test_all_writers_make_valid_files(run, tmp_path):
    paths = write_all(run, tmp_path)
    for name, p in paths.items():
        assert p.is_file() and p.stat().st_size > 0, name
        with Image.open(p) as im:
            assert im.width > 0 and im.height > 0, name
            if name == "gif":
                assert im.format == "GIF"
            else:
                assert im.format == "PNG"
                assert im.mode in ("RGB", "RGBA"), (name, im.mode)
                im.load()
    no_partials(tmp_path)


def test_png_is_not_blank(run, tmp_path):
    p = tmp_path / "a.png"
    plot.save_image_png(p, run["average"], title="avg", pixel_size_A=PIXEL_SIZE_A)
    with Image.open(p) as im:
        a = np.asarray(im.convert("L"), dtype=np.float64)
    # Dark background, bright particle and white figure margin: a real spread of grays.
    assert a.std() > 20


def test_image_orientation_row0_at_top(tmp_path):
    img = np.full((64, 64), 0.5)
    img[:8] = 1.0  # white top rows
    img[-8:] = 0.0  # black bottom rows
    p = tmp_path / "o.png"
    plot.save_image_png(p, img)
    with Image.open(p) as im:
        a = np.asarray(im.convert("L"), dtype=np.int64)
    black = np.nonzero((a < 30).sum(axis=1) > 50)[0]
    gray = np.nonzero(((a > 100) & (a < 160)).sum(axis=1) > 50)[0]
    assert black.size > 0 and gray.size > 0
    assert black.min() > gray.max()  # row 0 drawn at the top


def test_gif_frames_size_and_loop(run, tmp_path):
    p = tmp_path / "g.gif"
    t = run["frames"].shape[0]
    plot.write_gif(p, run["frames"], fps=5, labels=run["labels"], size=128)
    with Image.open(p) as im:
        frames = [f.copy() for f in ImageSequence.Iterator(im)]
        assert im.info.get("loop") == 0
        assert im.info.get("duration") == 200
    assert len(frames) == t
    assert all(f.size == (128, 128) for f in frames)
    no_partials(tmp_path)


def test_gif_without_labels_and_rectangular(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((3, 32, 48))
    p = tmp_path / "r.gif"
    plot.write_gif(p, frames, size=96)
    with Image.open(p) as im:
        sizes = [f.size for f in ImageSequence.Iterator(im)]
    assert sizes == [(96, 64)] * 3


def test_convergence_without_pose_change_and_one_half(tmp_path):
    hist = [dict(iteration=i, half=1, mean_score=0.1 * i, accepted=9, total=10, pose_change=float("nan"))
            for i in (1, 2)]
    p = tmp_path / "c.png"
    plot.plot_convergence(p, hist)
    with Image.open(p) as im:
        assert im.format == "PNG"


def test_frc_crossing_zero(tmp_path):
    f = np.arange(33) / 64
    v = np.full(33, -0.05)
    v[0] = 1.0
    plot.plot_frc(tmp_path / "z.png", f, v, resolution_0143=0.0, pixel_size_A=2.0)
    assert (tmp_path / "z.png").is_file()


def test_overwrite_replaces_file(run, tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"old")
    plot.save_image_png(p, run["template"])
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_partials(tmp_path)


def test_threads_write_concurrently(run, tmp_path):
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            plot.save_image_png(tmp_path / f"t{i}.png", run["frames"][i % len(run["frames"])], title=f"t{i}")
            plot.plot_scores(tmp_path / f"s{i}.png", run["scores"], accepted=run["accepted"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):
        with Image.open(tmp_path / f"t{i}.png") as im:
            im.load()
    no_partials(tmp_path)


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def _failing_savefig(self, fname, *args, **kwargs):
    fname.write(b"\x89PNG half a file")
    raise RuntimeError("disk on fire")


@pytest.mark.parametrize("which", ["image", "convergence", "frc", "scores"])
def test_failure_leaves_existing_png_untouched(run, tmp_path, monkeypatch, which):
    p = tmp_path / "keep.png"
    p.write_bytes(b"previous contents")
    monkeypatch.setattr(plot.Figure, "savefig", _failing_savefig)
    c = run["frc"]
    calls = {
        "image": lambda: plot.save_image_png(p, run["average"]),
        "convergence": lambda: plot.plot_convergence(p, run["history"]),
        "frc": lambda: plot.plot_frc(p, c.frequencies, c.values),
        "scores": lambda: plot.plot_scores(p, run["scores"], accepted=run["accepted"]),
    }
    with pytest.raises(RuntimeError, match="disk on fire"):
        calls[which]()
    assert p.read_bytes() == b"previous contents"
    no_partials(tmp_path)


def test_failure_leaves_existing_gif_untouched(run, tmp_path, monkeypatch):
    p = tmp_path / "keep.gif"
    p.write_bytes(b"previous gif")

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"GIF89a partial")
        raise OSError("no space left")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="no space left"):
        plot.write_gif(p, run["frames"])
    assert p.read_bytes() == b"previous gif"
    no_partials(tmp_path)


def test_bad_input_writes_nothing(tmp_path):
    with pytest.raises(ValueError):
        plot.save_image_png(tmp_path / "n.png", np.full((16, 16), np.nan))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------

IMG = np.random.default_rng(0).standard_normal((32, 32))
GOOD_H = dict(iteration=1, half=1, mean_score=0.5, accepted=5, total=10, pose_change=float("nan"))


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros(32), "2D"),
        (np.zeros((2, 32, 32)), "2D"),
        (np.zeros((0, 32)), "empty"),
        (np.where(np.eye(32) > 0, np.nan, 0.0), "NaN"),
        (np.where(np.eye(32) > 0, np.inf, 0.0), "NaN or infinity"),
        (np.zeros((32, 32), complex), "real"),
    ],
)
def test_save_image_png_rejects(tmp_path, image, match):
    with pytest.raises(ValueError, match=match):
        plot.save_image_png(tmp_path / "x.png", image)


@pytest.mark.parametrize("pix", [0.0, -1.0, float("nan"), "abc"])
def test_save_image_png_rejects_pixel_size(tmp_path, pix):
    with pytest.raises(ValueError, match="pixel_size_A"):
        plot.save_image_png(tmp_path / "x.png", IMG, pixel_size_A=pix)


@pytest.mark.parametrize(
    "history, match",
    [
        ([], "empty"),
        ("abc", "list"),
        ([{"iteration": 1}], "lacks"),
        ([dict(GOOD_H, half=3)], "half"),
        ([dict(GOOD_H, iteration=0)], "iteration"),
        ([dict(GOOD_H, iteration=1.5)], "iteration"),
        ([dict(GOOD_H, accepted=11)], "accepted"),
        ([dict(GOOD_H, total=0)], "total"),
        ([dict(GOOD_H, mean_score=float("nan"))], "mean_score"),
        ([dict(GOOD_H, pose_change=-1.0)], "pose_change"),
        ([GOOD_H, GOOD_H], "two entries"),
        ([GOOD_H, 3], "dict"),
    ],
)
def test_plot_convergence_rejects(tmp_path, history, match):
    with pytest.raises(ValueError, match=match):
        plot.plot_convergence(tmp_path / "x.png", history)


@pytest.mark.parametrize(
    "f, v, kw, match",
    [
        (np.zeros((3, 3)), np.zeros((3, 3)), {}, "1D"),
        (np.arange(5) / 10, np.zeros(4), {}, "same length"),
        (np.zeros(1), np.zeros(1), {}, "at least 2"),
        (np.arange(5) / 10, np.array([1, 0.5, np.nan, 0, 0]), {}, "finite"),
        (np.array([0, 0.2, 0.1, 0.3]), np.zeros(4), {}, "non-decreasing"),
        (np.arange(5) / 10, np.zeros(5), {"resolution_0143": -0.1}, "crossing"),
        (np.arange(5) / 10, np.zeros(5), {"resolution_05": float("nan")}, "finite"),
        (np.arange(5) / 10, np.zeros(5), {"pixel_size_A": 0}, "pixel_size_A"),
    ],
)
def test_plot_frc_rejects(tmp_path, f, v, kw, match):
    with pytest.raises(ValueError, match=match):
        plot.plot_frc(tmp_path / "x.png", f, v, **kw)


@pytest.mark.parametrize(
    "scores, kw, match",
    [
        (np.zeros((2, 2)), {"accepted": np.ones((2, 2), bool)}, "1D"),
        (np.zeros(0), {"accepted": np.ones(0, bool)}, "empty"),
        (np.array([0.1, np.nan]), {"accepted": np.ones(2, bool)}, "NaN"),
        (np.zeros(3), {"accepted": np.ones(2, bool)}, "accepted must have shape"),
        (np.zeros(3), {"accepted": np.array([0.5, 1, 0])}, "boolean"),
        (np.zeros(3), {"accepted": np.ones(3, bool), "half": np.array([1, 2, 3])}, "1 and 2"),
        (np.zeros(3), {"accepted": np.ones(3, bool), "half": np.ones(2)}, "half must have shape"),
        (np.zeros(3), {"accepted": np.ones(3, bool), "threshold": float("inf")}, "threshold"),
    ],
)
def test_plot_scores_rejects(tmp_path, scores, kw, match):
    with pytest.raises(ValueError, match=match):
        plot.plot_scores(tmp_path / "x.png", scores, **kw)


@pytest.mark.parametrize(
    "frames, kw, match",
    [
        (np.zeros((32, 32)), {}, r"image\[None\]"),
        (np.zeros((0, 32, 32)), {}, "empty"),
        (np.where(np.arange(2 * 16 * 16).reshape(2, 16, 16) == 300, np.nan, 0.0), {}, "frame 1"),
        (np.zeros((2, 16, 16)), {"labels": ["a"]}, "labels"),
        (np.zeros((2, 16, 16)), {"labels": "ab"}, "labels"),
        (np.zeros((2, 16, 16)), {"fps": 0}, "fps"),
        (np.zeros((2, 16, 16)), {"size": 4}, "size"),
        (np.zeros((2, 16, 16)), {"size": 100.5}, "size"),
    ],
)
def test_write_gif_rejects(tmp_path, frames, kw, match):
    with pytest.raises(ValueError, match=match):
        plot.write_gif(tmp_path / "x.gif", frames, **kw)
    assert list(tmp_path.iterdir()) == []
