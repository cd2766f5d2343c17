"""cryocore.io: stack readers, atomic writers, RELION STAR and CSV pose files.

Real files made by RELION and other programs are read from ``tests/data``
(copied from the project's shared data, GPL-3.0, see tests/data/README.md),
or from ``shared/data`` next to the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import tifffile
from PIL import Image

import cryocore
from conftest import pearson
from cryocore import io

DATA_DIRS = (
    Path(__file__).resolve().parent / "data",
    Path(__file__).resolve().parents[2] / "shared" / "data",
)


def shared(*parts: str) -> Path:
    for d in DATA_DIRS:
        p = d.joinpath(*parts)
        if p.exists():
            return p
    pytest.skip(f"test data not found: {'/'.join(parts)} in {[str(d) for d in DATA_DIRS]}")


def random_stack(rng, n=7, ny=24, nx=30, dtype=np.float32) -> np.ndarray:
    a = rng.standard_normal((n, ny, nx)) * 100
    if np.dtype(dtype).kind in "iu":
        a = np.clip(a + 128, 0, 255) if np.dtype(dtype) == np.uint8 else a
        return np.round(a).astype(dtype)
    return a.astype(dtype)


def write_mrcfile(path, data, *, stack=True, voxel=None) -> None:
    with mrcfile.new(str(path), data, overwrite=True) as m:
        if stack and data.ndim == 3:
            m.set_image_stack()
        if voxel is not None:
            m.voxel_size = voxel


def check_stack(s: io.ParticleStack, expected: np.ndarray, path) -> None:
    """Shape, names, chunks and read_all of an open stack against the array written."""
    n = expected.shape[0]
    assert len(s) == n and s.shape == expected.shape
    assert s.path == str(path)
    assert len(s.image_names) == n
    for chunk in [(0, 1), (1, min(4, n)), (n - 1, n), (0, n), (2, 2)]:
        if chunk[1] > n or chunk[0] > chunk[1]:
            continue
        got = s.read(*chunk)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected[chunk[0]: chunk[1]].astype(np.float32))
    np.testing.assert_array_equal(s.read_all(), expected.astype(np.float32))
    starts = [st for st, imgs in s.iter_chunks(3)]
    assert starts == list(range(0, n, 3))


# --------------------------------------------------------------------------
# atomic_write
# --------------------------------------------------------------------------


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with io.atomic_write(target) as f:
        f.write(b"new content")
        partial = [p.name for p in tmp_path.iterdir() if p.name != "out.bin"]
        assert len(partial) == 1
        assert partial[0].startswith(".") and partial[0].endswith(".partial")
        assert target.read_bytes() == b"old"  # nothing visible before the end
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_keeps_old_file_on_exception(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_write(target, "w") as f:
            f.write("half written")
            raise RuntimeError("boom")
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_new_file_and_errors(tmp_path):
    with pytest.raises(KeyError):
        with io.atomic_write(tmp_path / "never.txt", "w") as f:
            f.write("x")
            raise KeyError("x")
    assert list(tmp_path.iterdir()) == []
    with io.atomic_write(tmp_path / "text.txt", "w") as f:
        f.write("héllo\n")
    assert (tmp_path / "text.txt").read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(ValueError, match="mode"):
        with io.atomic_write(tmp_path / "a", "ab"):
            pass
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with io.atomic_write(tmp_path / "no" / "such" / "dir.bin"):
            pass


def test_failed_writer_leaves_existing_file(tmp_path):
    """A writer that fails mid-way (here: an unserialisable value) keeps the old file."""
    target = tmp_path / "avg.mrc"
    io.write_mrc(target, np.ones((16, 16)), 1.0)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        io.write_mrc(target, np.zeros((16, 16), np.complex64), overwrite=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.mrc"]


# --------------------------------------------------------------------------
# MRC
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("ext", [".mrcs", ".mrc"])
def test_mrc_round_trip(rng, tmp_path, ext, dtype):
    data = random_stack(rng, dtype=dtype)
    path = tmp_path / f"parts{ext}"
    write_mrcfile(path, data, voxel=1.5)
    with io.open_stack(path) as s:
        check_stack(s, data, path)
        assert s.pixel_size_A == pytest.approx(1.5)
        assert s.image_names[0] == f"000001@{path}" and s.image_names[-1] == f"000007@{path}"
    assert s.closed
    with pytest.raises(ValueError, match="closed"):
        s.read(0, 1)


def test_mrc_path_kept_as_given(rng, tmp_path, monkeypatch):
    data = random_stack(rng, n=3)
    write_mrcfile(tmp_path / "p.mrcs", data)
    monkeypatch.chdir(tmp_path)
    with io.open_stack("p.mrcs") as s:
        assert s.path == "p.mrcs"
        assert s.image_names == ["000001@p.mrcs", "000002@p.mrcs", "000003@p.mrcs"]
        assert s.pixel_size_A is None  # header voxel size 0: unknown


def test_mrc_single_image(rng, tmp_path):
    img = rng.standard_normal((20, 18)).astype(np.float32)
    path = tmp_path / "one.mrc"
    write_mrcfile(path, img, voxel=2.0)
    with io.open_stack(path) as s:
        check_stack(s, img[None], path)
        assert s.pixel_size_A == 2.0


def test_mrcs_with_volume_header_is_a_stack(rng, tmp_path):
    data = random_stack(rng, n=5)
    path = tmp_path / "plain.mrcs"
    write_mrcfile(path, data, stack=False)  # mrcfile flags plain 3D data as a volume
    with mrcfile.open(str(path)) as m:
        assert m.is_volume()
    with io.open_stack(path) as s:
        check_stack(s, data, path)


def test_mrc_volume_refused(rng, tmp_path):
    path = tmp_path / "map.mrc"
    write_mrcfile(path, random_stack(rng, n=16, ny=16, nx=16), stack=False)
    with pytest.raises(ValueError, match=r"map\.mrc.*is a volume, not a stack"):
        io.open_stack(path)


def test_mrc_truncated(rng, tmp_path):
    path = tmp_path / "cut.mrcs"
    write_mrcfile(path, random_stack(rng))
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(ValueError, match=r"cut\.mrcs.*not a readable MRC file"):
        io.open_stack(path)
    with open(path, "r+b") as f:
        f.truncate(500)  # not even a whole header
    with pytest.raises(ValueError, match=r"cut\.mrcs.*not a readable MRC file"):
        io.open_stack(path)


@pytest.mark.parametrize("garbage", [b"\xff" * 16, b"\x00" * 12, b"\x07\x00\x00\x00"], ids=["ff", "zeros", "nx7"])
def test_mrc_corrupt_header(rng, tmp_path, garbage):
    path = tmp_path / "bad.mrcs"
    write_mrcfile(path, random_stack(rng))
    with open(path, "r+b") as f:
        f.write(garbage)
    with pytest.raises(ValueError, match=r"bad\.mrcs"):
        io.open_stack(path)


def test_mrc_huge_extended_header(rng, tmp_path):
    """A corrupt nsymbt is refused before anything tries to read that many bytes."""
    path = tmp_path / "ext.mrcs"
    write_mrcfile(path, random_stack(rng))
    with open(path, "r+b") as f:
        f.seek(92)  # nsymbt
        f.write(np.array(2**30, dtype="<i4").tobytes())
    with pytest.raises(ValueError, match="extended header is larger than the file"):
        io.open_stack(path)


def test_mrc_without_map_id_accepted_when_consistent(rng, tmp_path):
    data = random_stack(rng, n=3)
    path = tmp_path / "legacy.mrcs"
    write_mrcfile(path, data)
    with open(path, "r+b") as f:
        f.seek(208)  # 'MAP ' id and machine stamp, as in pre-2000 files
        f.write(b"\0" * 8)
    with io.open_stack(path) as s:
        check_stack(s, data, path)
    with open(path, "ab") as f:
        f.write(b"\0" * 4)  # no longer consistent
    with pytest.raises(ValueError, match=r"no 'MAP' identifier"):
        io.open_stack(path)


def test_mrc_not_an_mrc(tmp_path):
    path = tmp_path / "text.mrc"
    path.write_text("hello, I am not an image\n" * 100)
    with pytest.raises(ValueError, match=r"text\.mrc.*not a readable MRC file"):
        io.open_stack(path)


def test_mrc_complex_and_empty_refused(tmp_path):
    path = tmp_path / "c.mrcs"
    write_mrcfile(path, np.zeros((3, 16, 16), np.complex64))
    with pytest.raises(ValueError, match="complex"):
        io.open_stack(path)
    path = tmp_path / "empty.mrcs"
    write_mrcfile(path, np.zeros((0, 16, 16), np.float32))
    with pytest.raises(ValueError, match="empty stack"):
        io.open_stack(path)
    path = tmp_path / "tiny.mrcs"
    write_mrcfile(path, np.zeros((3, 16, 7), np.float32))
    with pytest.raises(ValueError, match=r"16 x 7 pixels; at least 8 x 8"):
        io.open_stack(path)


@pytest.mark.parametrize("shape", [(20, 22), (4, 20, 22)], ids=["2d", "3d"])
def test_write_mrc(rng, tmp_path, shape):
    data = rng.standard_normal(shape)  # float64 in, float32 out
    path = tmp_path / "out.mrcs"
    io.write_mrc(path, data, pixel_size_A=1.25)
    with mrcfile.open(str(path)) as m:
        assert m.data.dtype == np.float32 and m.data.shape == shape
        assert m.voxel_size.x == pytest.approx(1.25)
        assert len(shape) == 2 or m.is_image_stack()
    with io.open_stack(path) as s:
        np.testing.assert_array_equal(s.read_all(), data.reshape((-1,) + shape[-2:]).astype(np.float32))
        assert s.pixel_size_A == pytest.approx(1.25)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        io.write_mrc(path, data)
    io.write_mrc(path, 2 * data, overwrite=True)
    with mrcfile.open(str(path)) as m:
        np.testing.assert_array_equal(m.data, (2 * data).astype(np.float32))
        assert m.voxel_size.x == 0  # not given: unknown
    # A 3D stack written as .mrc reads back as a stack, not a volume.
    io.write_mrc(tmp_path / "stack.mrc", rng.standard_normal((3, 16, 16)))
    with io.open_stack(tmp_path / "stack.mrc") as s:
        assert s.shape == (3, 16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrcs", "stack.mrc"]


def test_write_mrc_errors(tmp_path):
    with pytest.raises(ValueError, match="2D.*or 3D"):
        io.write_mrc(tmp_path / "a.mrc", np.zeros(16))
    with pytest.raises(ValueError, match="pixel_size_A"):
        io.write_mrc(tmp_path / "a.mrc", np.zeros((16, 16)), pixel_size_A=-1)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# NumPy, TIFF, image directories
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16], ids=lambda d: np.dtype(d).name)
def test_npy_round_trip(rng, tmp_path, dtype):
    data = random_stack(rng, dtype=dtype)
    path = tmp_path / "p.npy"
    np.save(path, data)
    with io.open_stack(path) as s:
        check_stack(s, data, path)
        assert s.pixel_size_A is None
    np.save(path, data[0])
    with io.open_stack(path) as s:
        check_stack(s, data[:1], path)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((2, 16, 16), np.complex64), "complex"),
        (np.zeros((2, 16, 16), bool), "non-numeric"),
        (np.zeros((0, 16, 16), np.float32), "empty stack"),
        (np.zeros((3, 5, 16), np.float32), "at least 8 x 8"),
        (np.zeros((2, 2, 16, 16), np.float32), r"expected \(ny, nx\) or \(N, ny, nx\)"),
    ],
    ids=["complex", "bool", "empty", "tiny", "4d"],
)
def test_npy_refused(tmp_path, array, match):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=match):
        io.open_stack(path)


def test_npy_object_and_corrupt(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy"):
        io.open_stack(path)
    path = tmp_path / "junk.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"junk\.npy"):
        io.open_stack(path)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16], ids=lambda d: np.dtype(d).name)
def test_tiff_stack_round_trip(rng, tmp_path, dtype):
    data = random_stack(rng, dtype=np.float32)
    data = data if dtype == np.float32 else np.abs(data).astype(dtype)
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, data)
    with io.open_stack(path) as s:
        check_stack(s, data, path)
    path = tmp_path / "one.tiff"
    tifffile.imwrite(path, data[2])
    with io.open_stack(path) as s:
        check_stack(s, data[2:3], path)


def test_tiff_pages_written_one_by_one(rng, tmp_path):
    data = random_stack(rng, n=4)
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as w:
        for img in data:
            w.write(img, contiguous=False)
    with io.open_stack(path) as s:
        check_stack(s, data, path)


def test_tiff_rgb_to_luminance(rng, tmp_path):
    rgb = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    expected = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    with io.open_stack(path) as s:
        assert s.shape == (3, 16, 20)
        np.testing.assert_allclose(s.read(1, 3), expected[1:3], rtol=1e-6)


def test_image_directory(rng, tmp_path):
    data = np.round(rng.uniform(0, 255, (5, 20, 24))).astype(np.uint8)
    d = tmp_path / "imgs"
    d.mkdir()
    # written out of order, and with mixed formats and bit depths
    order = [3, 0, 4, 1, 2]
    for i in order:
        if i == 1:
            tifffile.imwrite(d / f"img_{i:02d}.tif", data[i].astype(np.float32))
        elif i == 2:
            Image.fromarray(data[i].astype(np.uint16) * 200).save(d / f"img_{i:02d}.png")
        else:
            Image.fromarray(data[i]).save(d / f"img_{i:02d}.png")
    (d / "notes.txt").write_text("ignored")
    (d / ".hidden.png").write_bytes(b"ignored")
    expected = data.astype(np.float32)
    expected[2] *= 200
    with io.open_stack(d) as s:
        check_stack(s, expected, d)
        assert s.image_names[1] == f"000001@{os.path.join(str(d), 'img_01.tif')}"


def test_image_directory_rgb(rng, tmp_path):
    rgb = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    for i, a in enumerate(rgb):
        Image.fromarray(a, "RGB").save(tmp_path / f"{i}.png")
    with io.open_stack(tmp_path) as s:
        np.testing.assert_allclose(s.read_all(), rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]), rtol=1e-6)


def test_image_directory_errors(rng, tmp_path):
    with pytest.raises(ValueError, match="no .png, .tif or .tiff images"):
        io.open_stack(tmp_path)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((16, 18), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"b\.png.*same shape"):
        io.open_stack(tmp_path)


def test_missing_and_unknown(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.mrcs"):
        io.open_stack(tmp_path / "nothere.mrcs")
    p = tmp_path / "x.hdf"
    p.write_bytes(b"1234")
    with pytest.raises(ValueError, match=r"x\.hdf.*unknown file type '\.hdf'.*\.mrcs"):
        io.open_stack(p)


def test_read_range_checked(rng, tmp_path):
    np.save(tmp_path / "p.npy", random_stack(rng, n=4))
    with io.open_stack(tmp_path / "p.npy") as s:
        for bad in [(-1, 2), (3, 2), (0, 5)]:
            with pytest.raises(ValueError, match="out of range"):
                s.read(*bad)
        with pytest.raises(TypeError):
            s.read(0.0, 2)
        assert s.read(np.int64(1), np.int32(3)).shape == (2, 24, 30)


# --------------------------------------------------------------------------
# STAR input
# --------------------------------------------------------------------------


def make_star_dataset(rng, tmp_path):
    """Two stacks and a RELION 3.1 STAR file referencing them out of order."""
    (tmp_path / "Extract").mkdir()
    a = random_stack(rng, n=4, ny=20, nx=20)
    b = random_stack(rng, n=3, ny=20, nx=20, dtype=np.int16)
    write_mrcfile(tmp_path / "Extract" / "a.mrcs", a, voxel=1.0)  # header value is not used
    write_mrcfile(tmp_path / "b.mrcs", b)
    b_abs = str(tmp_path / "b.mrcs")
    refs = [("a", 2), ("a", 1), (b_abs, 3), ("a", 3), ("a", 4), (b_abs, 1), ("a", 2)]
    names = [f"{i:06d}@Extract/a.mrcs" if s == "a" else f"{i:06d}@{s}" for s, i in refs]
    expected = np.array([a[i - 1] if s == "a" else b[i - 1] for s, i in refs], np.float32)
    return names, expected


def write_star31(path, names, apix=2.5, extra=None):
    optics = {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnImagePixelSize": [apix],
              "rlnImageSize": [20], "rlnImageDimensionality": [2]}
    particles = {"rlnImageName": names, "rlnOpticsGroup": [1] * len(names)}
    particles.update(extra or {})
    import pandas as pd

    starfile.write({"optics": pd.DataFrame(optics), "particles": pd.DataFrame(particles)}, path)


def test_star31_gathers_many_stacks(rng, tmp_path):
    names, expected = make_star_dataset(rng, tmp_path)
    path = tmp_path / "particles.star"
    write_star31(path, names)
    with io.open_stack(path) as s:
        check_stack(s, expected, path)
        assert s.image_names == names  # verbatim
        assert s.pixel_size_A == 2.5  # from data_optics, not the MRC header


def test_star30_pixel_size(rng, tmp_path):
    names, expected = make_star_dataset(rng, tmp_path)
    import pandas as pd

    df = pd.DataFrame({"rlnImageName": names, "rlnDetectorPixelSize": [14.0] * 7, "rlnMagnification": [100000.0] * 7})
    starfile.write(df, tmp_path / "p30.star")
    with io.open_stack(tmp_path / "p30.star") as s:
        check_stack(s, expected, tmp_path / "p30.star")
        assert s.pixel_size_A == pytest.approx(1.4)
    df = pd.DataFrame({"rlnImageName": names, "rlnImagePixelSize": [0.9] * 7})
    starfile.write(df, tmp_path / "p30b.star")
    with io.open_stack(tmp_path / "p30b.star") as s:
        assert s.pixel_size_A == pytest.approx(0.9)
    starfile.write(pd.DataFrame({"rlnImageName": names}), tmp_path / "p30c.star")
    with io.open_stack(tmp_path / "p30c.star") as s:
        assert s.pixel_size_A is None


def test_star_errors(rng, tmp_path):
    names, _ = make_star_dataset(rng, tmp_path)
    import pandas as pd

    starfile.write(pd.DataFrame({"rlnCoordinateX": [1.0, 2.0]}), tmp_path / "coords.star")
    with pytest.raises(ValueError, match=r"coords\.star.*no rlnImageName"):
        io.open_stack(tmp_path / "coords.star")

    write_star31(tmp_path / "range.star", names[:2] + ["000005@Extract/a.mrcs"])
    with pytest.raises(ValueError, match=r"range\.star.*particle 3.*image 5.*holds only 4 images"):
        io.open_stack(tmp_path / "range.star")

    write_star31(tmp_path / "missing.star", names[:2] + ["000001@Extract/gone.mrcs"])
    with pytest.raises(FileNotFoundError, match=r"Extract/gone\.mrcs.*missing\.star"):
        io.open_stack(tmp_path / "missing.star")

    write_star31(tmp_path / "zero.star", ["000000@Extract/a.mrcs"])
    with pytest.raises(ValueError, match="1-based"):
        io.open_stack(tmp_path / "zero.star")

    write_mrcfile(tmp_path / "big.mrcs", np.zeros((2, 24, 24), np.float32))
    write_star31(tmp_path / "mixed.star", names[:1] + ["000001@big.mrcs"])
    with pytest.raises(ValueError, match=r"big\.mrcs.*24 x 24.*same box"):
        io.open_stack(tmp_path / "mixed.star")


def test_star_many_stacks_beyond_handle_cache(rng, tmp_path, monkeypatch):
    monkeypatch.setattr(io.star, "MAX_OPEN_STACKS", 2)
    stacks = [random_stack(rng, n=2, ny=16, nx=16) for _ in range(5)]
    names = []
    for k, a in enumerate(stacks):
        write_mrcfile(tmp_path / f"s{k}.mrcs", a)
    order = [(k, i) for i in (1, 2) for k in range(5)]
    names = [f"{i:06d}@s{k}.mrcs" for k, i in order]
    write_star31(tmp_path / "p.star", names)
    with io.open_stack(tmp_path / "p.star") as s:
        got = np.concatenate([imgs for _, imgs in s.iter_chunks(3)])
    np.testing.assert_array_equal(got, np.array([stacks[k][i - 1] for k, i in order]))


# --------------------------------------------------------------------------
# Real files from other programs (shared/data)
# --------------------------------------------------------------------------


def test_real_sample_star_relion30():
    star = shared("real-particles", "sample.star")
    with io.open_stack(star) as s, io.open_stack(star.with_name("sample.mrcs")) as m:
        assert s.shape == (17, 200, 200) == m.shape
        assert s.image_names == [f"{i:06d}@sample.mrcs" for i in range(1, 18)]
        np.testing.assert_array_equal(s.read(0, 17), m.read_all())
        # 3.0 layout: rlnDetectorPixelSize (um) * 1e4 / rlnMagnification
        assert s.pixel_size_A == pytest.approx(5.0 * 1e4 / 37369.207031)
        assert m.pixel_size_A is None  # the stack's header has voxel size 0
        assert np.isfinite(s.read_all()).all()
    poses = io.read_particles_star(star)
    raw = starfile.read(star)
    np.testing.assert_allclose(poses["shifts"][:, 1], -raw["rlnOriginX"])  # px columns (3.0)
    np.testing.assert_allclose(poses["shifts"][:, 0], -raw["rlnOriginY"])
    np.testing.assert_allclose(poses["angles"], np.mod(-raw["rlnAnglePsi"], 360))
    np.testing.assert_array_equal(poses["half"], raw["rlnRandomSubset"])


def test_real_relion31_star():
    star = shared("real-particles", "relion31.star")
    with io.open_stack(star) as s:
        # rlnImageName points at the local stack; only rlnImageOriginalName names missing ones
        assert s.image_names == [f"{i:06d}@relion31.mrcs" for i in range(1, 6)]
        assert s.shape == (5, 256, 256)
        assert s.pixel_size_A == pytest.approx(2.806)  # data_optics, not the MRC header's 1.0
    # The stack has an old-style header (no 'MAP ' id, zero machine stamp): still readable.
    with io.open_stack(star.with_name("relion31.mrcs")) as m:
        assert m.shape == (5, 256, 256) and m.pixel_size_A == 1.0
        assert 0.5 < float(m.read_all().std()) < 2
    poses = io.read_particles_star(star)
    assert poses["pixel_size_A"] == pytest.approx(2.806)
    np.testing.assert_allclose(poses["shifts"][0], [0.64686 / 2.806, -0.019324 / 2.806])
    np.testing.assert_allclose(poses["angles"][0], 360 - 124.706463)


def test_real_relion31_star_with_missing_stacks(tmp_path):
    star = shared("real-particles", "relion31.star")
    blocks = starfile.read(star, always_dict=True)
    blocks["particles"]["rlnImageName"] = blocks["particles"]["rlnImageOriginalName"]
    starfile.write(blocks, tmp_path / "orig.star")
    with pytest.raises(FileNotFoundError, match=r"Extract/job133/Micrographs/.*_DW\.mrcs.*orig\.star"):
        io.open_stack(tmp_path / "orig.star")


@pytest.mark.parametrize("box", [64, 65])
def test_relion_offset_sign(box):
    """RELION's shifted projections are the centred ones moved by minus rlnOriginX/Y."""
    d = shared("relion-projections")
    poses = io.read_particles_star(d / f"rln_proj_{box}_shifted.star")
    assert poses["pixel_size_A"] == 1.0
    centred_poses = io.read_particles_star(d / f"rln_proj_{box}_centered.star")  # rlnOriginXAngst
    np.testing.assert_array_equal(centred_poses["shifts"], 0)
    with io.open_stack(d / f"rln_proj_{box}_centered.star") as c, io.open_stack(d / f"rln_proj_{box}_shifted.star") as s:
        centred, shifted = c.read_all(), s.read_all()
    raw = starfile.read(d / f"rln_proj_{box}_shifted.star")["particles"]
    np.testing.assert_array_equal(poses["shifts"], -raw[["rlnOriginY", "rlnOriginX"]].to_numpy())
    moved = cryocore.shift(centred, poses["shifts"])
    wrong = cryocore.shift(centred, -poses["shifts"])
    for i in range(len(shifted)):
        assert pearson(moved[i], shifted[i]) > 0.99
        assert pearson(wrong[i], shifted[i]) < 0.5


def test_shared_hand_stack():
    path = shared("hand", "hand.mrcs")
    with io.open_stack(path) as s:
        assert s.shape == (100, 64, 64)
        assert s.read(98, 100).shape == (2, 64, 64)


# --------------------------------------------------------------------------
# Pose files: STAR and CSV
# --------------------------------------------------------------------------


def random_poses(rng, n=9):
    return dict(
        image_names=[f"{i:06d}@Extract/job1/stack one.mrcs".replace(" ", "_") for i in range(1, n + 1)],
        shifts=rng.uniform(-10, 10, (n, 2)),
        angles=np.concatenate([[0.0, 90.0, 359.999999, 1e-13], rng.uniform(0, 360, n - 4)]),
        scores=np.concatenate([[-0.2, 1.0, 0.0], rng.uniform(-0.1, 0.9, n - 3)]),
        accepted=rng.integers(0, 2, n).astype(bool),
        half=rng.integers(1, 3, n),
    )


def test_star_write_columns_follow_relion(rng, tmp_path):
    p = random_poses(rng)
    path = tmp_path / "out.star"
    io.write_particles_star(path, **p, pixel_size_A=1.7, image_size=64)
    text = path.read_text()
    assert "data_optics" in text and "data_particles" in text and "# version 30001" in text
    blocks = starfile.read(path, always_dict=True)
    optics, parts = blocks["optics"], blocks["particles"]
    assert optics["rlnOpticsGroup"].tolist() == [1]
    assert optics["rlnOpticsGroupName"].tolist() == ["opticsGroup1"]
    assert optics["rlnImagePixelSize"].tolist() == [1.7]
    assert optics["rlnImageSize"].tolist() == [64]
    assert optics["rlnImageDimensionality"].tolist() == [2]
    assert parts["rlnImageName"].tolist() == p["image_names"]
    assert (parts["rlnOpticsGroup"] == 1).all() and (parts["rlnClassNumber"] == 1).all()
    np.testing.assert_allclose(parts["rlnOriginXAngst"], -p["shifts"][:, 1] * 1.7, rtol=1e-15)
    np.testing.assert_allclose(parts["rlnOriginYAngst"], -p["shifts"][:, 0] * 1.7, rtol=1e-15)
    assert (parts["rlnAngleRot"] == 0).all() and (parts["rlnAngleTilt"] == 0).all()
    psi = parts["rlnAnglePsi"].to_numpy()
    np.testing.assert_allclose(psi, np.mod(-p["angles"], 360), atol=1e-9)
    assert ((psi >= 0) & (psi < 360)).all()
    assert psi[1] == 270.0  # cryocore psi = +90 is RELION psi = -90
    np.testing.assert_array_equal(parts["rlnRandomSubset"], p["half"])
    np.testing.assert_array_equal(parts["rlnCryocoreScore"], p["scores"])
    np.testing.assert_array_equal(parts["rlnCryocoreAccepted"], p["accepted"].astype(int))
    np.testing.assert_array_equal(parts["rlnMaxValueProbDistribution"], np.clip(p["scores"], 0, 1))


def test_star_round_trip(rng, tmp_path):
    p = random_poses(rng, n=25)
    for apix in (2.806, None):
        path = tmp_path / f"rt_{apix}.star"
        io.write_particles_star(path, **p, pixel_size_A=apix, image_size=(48, 48))
        back = io.read_particles_star(path)
        assert back["pixel_size_A"] == (1.0 if apix is None else apix)
        assert back["image_names"] == p["image_names"]
        np.testing.assert_allclose(back["shifts"], p["shifts"], rtol=0, atol=1e-12)
        d = np.mod(back["angles"] - p["angles"] + 180, 360) - 180
        np.testing.assert_allclose(d, 0, atol=1e-12)
        assert ((back["angles"] >= 0) & (back["angles"] < 360)).all()
        np.testing.assert_array_equal(back["scores"], p["scores"])
        np.testing.assert_array_equal(back["accepted"], p["accepted"])
        np.testing.assert_array_equal(back["half"], p["half"])
    # with pixel size 1 the numbers are exactly the ones given
    path = tmp_path / "exact.star"
    io.write_particles_star(path, **p, pixel_size_A=1.0, image_size=48)
    np.testing.assert_array_equal(io.read_particles_star(path)["shifts"], p["shifts"])


def test_star_poses_move_images_onto_reference(rng, tmp_path):
    """Write poses, read them back, apply the inverse: images land on the reference."""
    from conftest import smooth_image

    ref = smooth_image(rng, (64, 64)).astype(np.float32)
    shifts = rng.uniform(-6, 6, (5, 2))
    images = cryocore.shift(np.repeat(ref[None], 5, axis=0), shifts)
    path = tmp_path / "poses.star"
    io.write_particles_star(
        path, image_names=[f"{i:06d}@x.mrcs" for i in range(1, 6)], shifts=shifts, angles=np.zeros(5),
        scores=np.ones(5), accepted=np.ones(5, bool), half=[1, 2, 1, 2, 1], pixel_size_A=1.3, image_size=64,
    )
    back = io.read_particles_star(path)
    aligned = cryocore.shift(images, -back["shifts"])
    for a in aligned:
        assert pearson(a, ref) > 0.9999
    # RELION's reading of the same file: the particle sits at minus its origin
    parts = starfile.read(path)["particles"]
    origin_px = parts[["rlnOriginYAngst", "rlnOriginXAngst"]].to_numpy() / 1.3
    np.testing.assert_allclose(origin_px, -shifts, atol=1e-12)


def test_star_write_errors(rng, tmp_path):
    p = random_poses(rng, n=4)
    path = tmp_path / "e.star"
    bad = [
        (dict(shifts=np.zeros((3, 2))), ValueError, r"shifts must have shape \(4, 2\)"),
        (dict(angles=np.array([0, 1, np.nan, 3.0])), ValueError, "NaN"),
        (dict(half=np.array([0, 1, 2, 1])), ValueError, "half must be 1 or 2"),
        (dict(accepted=np.array([0, 1, 2, 1])), ValueError, "accepted"),
        (dict(image_names="000001@a.mrcs"), TypeError, "sequence of strings"),
        (dict(image_names=["a b"] * 4), ValueError, "whitespace"),
    ]
    for change, exc, match in bad:
        with pytest.raises(exc, match=match):
            io.write_particles_star(path, **{**p, **change}, pixel_size_A=1.0, image_size=32)
    with pytest.raises(ValueError, match="square"):
        io.write_particles_star(path, **p, pixel_size_A=1.0, image_size=(32, 40))
    with pytest.raises(ValueError, match="pixel_size_A"):
        io.write_particles_star(path, **p, pixel_size_A=0.0, image_size=32)
    assert list(tmp_path.iterdir()) == []
    io.write_particles_star(path, **p, pixel_size_A=1.0, image_size=32)
    with pytest.raises(FileExistsError):
        io.write_particles_star(path, **p, pixel_size_A=1.0, image_size=32)
    io.write_particles_star(path, **p, pixel_size_A=2.0, image_size=32, overwrite=True)
    assert io.read_particles_star(path)["pixel_size_A"] == 2.0


def test_read_star_angst_offsets_need_pixel_size(tmp_path):
    import pandas as pd

    starfile.write(pd.DataFrame({"rlnImageName": ["000001@a.mrcs"], "rlnOriginXAngst": [3.0]}), tmp_path / "a.star")
    with pytest.raises(ValueError, match="no pixel size"):
        io.read_particles_star(tmp_path / "a.star")


def test_csv_round_trip(rng, tmp_path):
    p = random_poses(rng, n=12)
    p["image_names"][3] = "000004@dir,with,commas/x.mrcs"
    path = tmp_path / "poses.csv"
    io.write_particles_csv(path, **p)
    lines = path.read_text().splitlines()
    assert lines[0] == "image_name,dy_px,dx_px,psi_deg,score,accepted,half,class"
    assert len(lines) == 13
    back = io.read_particles_csv(path)
    assert back["image_names"] == p["image_names"]
    np.testing.assert_array_equal(back["shifts"], p["shifts"])  # cryocore's convention, no flips
    np.testing.assert_array_equal(back["angles"], p["angles"])
    np.testing.assert_array_equal(back["scores"], p["scores"])
    np.testing.assert_array_equal(back["accepted"], p["accepted"])
    np.testing.assert_array_equal(back["half"], p["half"])
    with pytest.raises(FileExistsError):
        io.write_particles_csv(path, **p)


def test_read_view_lends_float32_memory_maps_and_copies_the_rest(tmp_path):
    """read_view gives the images of a native float32 stack without a copy (read-only), and
    what read gives for other data types."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 16, 16)).astype(np.float32)
    io.write_mrc(str(tmp_path / "f.mrcs"), a)
    np.save(tmp_path / "i.npy", (a * 100).astype(np.int16))
    with io.open_stack(str(tmp_path / "f.mrcs")) as s:
        v = s.read_view(1, 4)
        np.testing.assert_array_equal(v, a[1:4])
        assert not v.flags.writeable and not v.flags.owndata
        with pytest.raises(ValueError):
            v[0, 0, 0] = 1.0
        assert s.read(1, 4).flags.writeable  # read() still gives a fresh array
    with io.open_stack(str(tmp_path / "i.npy")) as s:
        v = s.read_view(0, 6)
        assert v.dtype == np.float32 and v.flags.writeable  # converted: a copy
        np.testing.assert_array_equal(v, (a * 100).astype(np.int16).astype(np.float32))
        with pytest.raises(ValueError, match="out of range"):
            s.read_view(2, 9)


def test_star_and_mrc_pixel_sizes_must_agree(tmp_path):
    """A stack whose MRC header gives another pixel size than the STAR file is refused (the CLI:
    exit 2, nothing written); an unset header (0, or the placeholder 1.0) is not a disagreement."""
    import pandas as pd
    import starfile

    from cryocore.cli import main

    imgs = np.random.default_rng(0).standard_normal((4, 32, 32)).astype(np.float32)

    def star_for(stack, apix):
        particles = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@{stack}" for i in range(4)], "rlnOpticsGroup": 1})
        optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [apix], "rlnImageSize": [32],
                               "rlnImageDimensionality": [2]})
        path = tmp_path / f"{stack}.star"
        starfile.write({"optics": optics, "particles": particles}, path)
        return path

    for name, header in (("a.mrcs", 2.0), ("b.mrcs", 1.0), ("c.mrcs", None)):
        io.write_mrc(str(tmp_path / name), imgs, pixel_size_A=header)
    with pytest.raises(ValueError, match="MRC header"):
        io.open_stack(star_for("a.mrcs", 1.5))
    assert io.open_stack(star_for("a.mrcs", 2.01)).pixel_size_A == pytest.approx(2.01)  # within 1%
    assert io.open_stack(star_for("b.mrcs", 1.5)).pixel_size_A == 1.5  # placeholder header
    assert io.open_stack(star_for("c.mrcs", 1.5)).pixel_size_A == 1.5  # unset header
    out = tmp_path / "out"
    assert main(["align", str(star_for("a.mrcs", 1.5)), "-o", str(out), "--quiet"]) == 2
    assert not out.exists() or not any(out.iterdir())


def test_image_names_are_rebased_only_when_their_star_files_directory_resolves_them(tmp_path, monkeypatch):
    from cryocore.io.tables import rebase_image_names

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "s.mrcs").write_bytes(b"")
    (tmp_path / "a" / "both.mrcs").write_bytes(b"")
    (tmp_path / "both.mrcs").write_bytes(b"")
    (tmp_path / "a" / "one.mrc").write_bytes(b"")
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path)
    names = ["1@s.mrcs", "2@s.mrcs", f"3@{tmp_path / 'a' / 's.mrcs'}", "4@a/s.mrcs", "5@missing.mrcs",
             "6@both.mrcs", "one.mrc"]
    got = rebase_image_names(names, str(tmp_path / "a"), str(tmp_path / "b"))
    # relative to a/ -> relative to b/; absolute, working-directory-relative (RELION) and missing: as
    # they are; a stack in both a/ and the working directory is the one in a/, as the reader takes it
    assert got == ["1@../a/s.mrcs", "2@../a/s.mrcs", names[2], "4@a/s.mrcs", "5@missing.mrcs",
                   "6@../a/both.mrcs", "../a/one.mrc"]
    assert rebase_image_names(names, None, str(tmp_path / "b")) == names
    assert rebase_image_names(names, str(tmp_path / "a"), str(tmp_path / "a")) == names
