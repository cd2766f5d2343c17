"""NumPy arrays, TIFF stacks and folders of PNG/TIFF images as particle stacks."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from .stack import ParticleStack, _array_stack, _check_dtype, _check_geometry, _index_name_width, _to_gray

TIFF_EXTENSIONS = (".tif", ".tiff")
IMAGE_DIR_EXTENSIONS = (".png",) + TIFF_EXTENSIONS

# --------------------------------------------------------------------------
# NumPy, TIFF, image directories
# --------------------------------------------------------------------------


def _open_npy(path: str) -> ParticleStack:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path!r} is not a readable .npy array of real numbers: {err}") from err
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of .npy gives an array
        raise ValueError(f"{path!r} does not hold a single array")
    _check_dtype(arr.dtype, repr(path))
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{path!r} holds an array of shape {arr.shape}; expected (ny, nx) or (N, ny, nx)")
    return _array_stack(path, arr, None, lambda: None)


def _tiff_series_layout(series: Any, path: str) -> tuple[int, tuple[int, ...], bool]:
    """(number of images, shape of one image as stored, RGB?) of a tifffile series."""
    shape, axes = tuple(series.shape), series.axes
    rgb = axes.endswith("S") and shape[-1] in (2, 3, 4)
    img_shape = shape[:-1] if rgb else shape
    if len(img_shape) == 2:
        n = 1
    elif len(img_shape) == 3:
        n = img_shape[0]
    else:
        raise ValueError(
            f"{path!r} holds images of shape {shape} (axes {axes}); expected a 2D image or a"
            " stack of 2D images, one per page"
        )
    per_image = tuple(shape[-3:]) if rgb else tuple(shape[-2:])
    return n, per_image, rgb


def _open_tiff(path: str) -> ParticleStack:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as err:
        raise ValueError(f"{path!r} is not a readable TIFF file: {err}") from err
    try:
        if not tif.series:
            raise ValueError(f"{path!r} contains no images")
        layouts = [_tiff_series_layout(s, path) for s in tif.series]
        for s in tif.series:
            _check_dtype(np.dtype(s.dtype), repr(path))
        n = sum(lay[0] for lay in layouts)
        per_image, rgb = layouts[0][1], layouts[0][2]
        dtype = np.dtype(tif.series[0].dtype)
        if len(tif.series) > 1:
            # e.g. pages written one at a time: fine if every page is one image of the same shape
            same = all(lay[1:] == (per_image, rgb) for lay in layouts) and all(
                np.dtype(s.dtype) == dtype and len(s.pages) == lay[0] for s, lay in zip(tif.series, layouts)
            )
            if not same:
                shapes = ", ".join(f"{s.shape} {s.dtype}" for s in tif.series[:4])
                raise ValueError(
                    f"{path!r} holds {len(tif.series)} image series of different shapes or types"
                    f" ({shapes}); expected pages that all hold one image of the same shape"
                )
        ny, nx = per_image[:2]
        _check_geometry(n, ny, nx, repr(path))
        series = tif.series[0]
        pages = [pg for s in tif.series for pg in s.pages] if len(tif.series) > 1 else None
        paged = len(series.pages) == n
        cache: dict[str, np.ndarray] = {}
        lock = threading.Lock()

        def reader(start: int, stop: int) -> np.ndarray:
            with lock:
                if pages is not None:
                    raw = np.stack([np.asarray(pages[i].asarray()) for i in range(start, stop)])  # type: ignore[union-attr]
                elif paged:
                    raw = tif.asarray(key=list(range(start, stop)), series=0)
                else:  # e.g. one page holding the whole stack: read once
                    if "all" not in cache:
                        cache["all"] = np.asarray(series.asarray()).reshape((n,) + per_image)
                    raw = cache["all"][start:stop]
                raw = np.asarray(raw).reshape((stop - start,) + per_image)
            return _to_gray(raw, repr(path)) if rgb else raw

        width = _index_name_width(n)
        return ParticleStack(
            path=path, shape=(n, ny, nx), pixel_size_A=None,
            image_names=[f"{i:0{width}d}@{path}" for i in range(1, n + 1)],
            dtype=dtype, reader=reader, closer=tif.close,
        )
    except BaseException:
        tif.close()
        raise


def _read_image_file(path: str) -> np.ndarray:
    """One 2D grayscale image from a .png/.tif/.tiff file (RGB -> luminance)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in TIFF_EXTENSIONS:
        import tifffile

        try:
            a = np.asarray(tifffile.imread(path))
        except Exception as err:
            raise ValueError(f"{path!r} is not a readable TIFF image: {err}") from err
    else:
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX", "RGBa", "La"):
                    im = im.convert("RGBA" if "A" in im.mode or "a" in im.mode else "RGB")  # type: ignore[assignment]
                a = np.asarray(im)
        except Exception as err:
            raise ValueError(f"{path!r} is not a readable image: {err}") from err
    if a.dtype == bool:
        a = a.astype(np.uint8)
    _check_dtype(a.dtype, repr(path))
    a = _to_gray(a, repr(path))
    if a.ndim != 2:
        raise ValueError(f"{path!r} holds data of shape {a.shape}; expected one 2D (grayscale or RGB) image per file")
    return a


def _open_image_dir(path: str) -> ParticleStack:
    files = sorted(
        f for f in os.listdir(path)
        if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_DIR_EXTENSIONS
        and os.path.isfile(os.path.join(path, f))
    )
    if not files:
        raise ValueError(f"directory {path!r} contains no .png, .tif or .tiff images (an empty stack)")
    paths = [os.path.join(path, f) for f in files]
    first = _read_image_file(paths[0])
    ny, nx = first.shape
    for p in paths[1:]:
        shape = _image_file_shape(p)
        if shape != (ny, nx):
            raise ValueError(
                f"image {p!r} is {shape[0]} x {shape[1]} but {paths[0]!r} is {ny} x {nx};"
                f" all images in directory {path!r} must have the same shape"
            )
    _check_geometry(len(paths), ny, nx, f"directory {path!r}")
    width = _index_name_width(1)

    def reader(start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, ny, nx), np.float32)
        for k, p in enumerate(paths[start:stop]):
            img = _read_image_file(p)
            if img.shape != (ny, nx):
                raise ValueError(f"image {p!r} changed shape to {img.shape} since the stack was opened")
            out[k] = img
        return out

    return ParticleStack(
        path=path, shape=(len(paths), ny, nx), pixel_size_A=None,
        image_names=[f"{1:0{width}d}@{p}" for p in paths],
        dtype=first.dtype, reader=reader, closer=lambda: None,
    )


def _image_file_shape(path: str) -> tuple[int, ...]:
    """(ny, nx) of an image file, from its header where possible."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        from PIL import Image

        try:
            with Image.open(path) as im:
                return (im.size[1], im.size[0])
        except Exception as err:
            raise ValueError(f"{path!r} is not a readable image: {err}") from err
    return _read_image_file(path).shape


