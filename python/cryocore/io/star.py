"""RELION particle STAR files as stacks: tables, optics groups, pixel sizes, image names."""

from __future__ import annotations

import collections
import os
import threading
from typing import Any, Optional

import numpy as np

from .mrc import _mrc_images, _mrc_pixel_size, _open_mrc
from .stack import ParticleStack, _check_geometry, _mapped, unmap, will_need
from .tables import (ParticleTable, _common_pixel_size, _read_star_blocks, _resolve_stack, _star_pixel_sizes,
                     _star_tables)

# Most stacks a STAR-file stack keeps memory-mapped at once (each holds a file descriptor).
MAX_OPEN_STACKS = 64

# --------------------------------------------------------------------------
# RELION STAR files
# --------------------------------------------------------------------------


def _parse_image_name(entry: str, star_path: str, row: int) -> tuple[int, str]:
    """``'000012@Extract/x.mrcs'`` -> (12, 'Extract/x.mrcs'); a name without '@' is image 1 of its file."""
    entry = str(entry).strip()
    if "@" in entry:
        idx_s, stack = entry.split("@", 1)
        try:
            idx = int(idx_s)
        except ValueError:
            raise ValueError(
                f"STAR file {star_path!r}, particle {row + 1}: rlnImageName {entry!r} is not of the form index@stack"
            ) from None
    else:
        idx, stack = 0, entry  # 0: the whole file, which must hold a single image
    if not stack:
        raise ValueError(f"STAR file {star_path!r}, particle {row + 1}: rlnImageName {entry!r} names no stack")
    if "@" in entry and idx < 1:
        raise ValueError(
            f"STAR file {star_path!r}, particle {row + 1}: rlnImageName {entry!r} has index {idx};"
            " indices are 1-based"
        )
    return idx, stack


class _MrcCache:
    """Memory-mapped MRC stacks, opened on demand, at most MAX_OPEN_STACKS at once."""

    def __init__(self, where: str) -> None:
        self._open: "collections.OrderedDict[str, tuple[Any, np.ndarray]]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._where = where

    def get(self, path: str) -> np.ndarray:
        with self._lock:
            hit = self._open.get(path)
            if hit is not None:
                self._open.move_to_end(path)
                return hit[1]
            mrc = _open_mrc(path, where=self._where)
            try:
                data = _mrc_images(mrc, path, allow_volume=True, where=self._where)
            except BaseException:
                mrc.close()
                raise
            self._open[path] = (mrc, data)
            while len(self._open) > MAX_OPEN_STACKS:
                _, (old, _) = self._open.popitem(last=False)
                old.close()
            return data

    def header_pixel_size(self, path: str) -> Optional[float]:
        """The pixel size (Å) in the stack's MRC header, or None where it is unset (0, or the
        placeholder 1.0 that many programs write, RELION's extraction among them)."""
        self.get(path)
        with self._lock:
            apix = _mrc_pixel_size(self._open[path][0])
        return None if apix is None or abs(apix - 1.0) < 1e-6 else apix

    def close(self) -> None:
        with self._lock:
            while self._open:
                _, (mrc, _) = self._open.popitem()
                mrc.close()


def _resolve_stacks(path: str, names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every particle's stack, resolved up front so that a missing file fails now, not mid-run:
    (the stacks' paths, each particle's stack number, its 0-based index in it; -1: a whole
    single-image file)."""
    star_dir = os.path.dirname(path)
    n = len(names)
    resolved: dict[str, str] = {}
    stack_of = np.empty(n, dtype=np.int64)
    index_of = np.empty(n, dtype=np.int64)
    stack_list: list[str] = []
    stack_ids: dict[str, int] = {}
    for row, entry in enumerate(names):
        idx, stack = _parse_image_name(entry, path, row)
        if stack not in resolved:
            found = _resolve_stack(stack, star_dir)
            if found is None:
                tried = stack if os.path.isabs(stack) else os.path.join(star_dir, stack)
                raise FileNotFoundError(
                    f"stack {stack!r} (rlnImageName {entry!r}, particle {row + 1} of STAR file {path!r})"
                    f" does not exist: looked for {tried!r}"
                    + ("" if os.path.isabs(stack) else " and relative to the working directory")
                )
            resolved[stack] = found
        real = resolved[stack]
        if real not in stack_ids:
            stack_ids[real] = len(stack_list)
            stack_list.append(real)
        stack_of[row] = stack_ids[real]
        index_of[row] = idx - 1
    return stack_list, stack_of, index_of


def _check_stacks(path: str, names: list[str], apix: Optional[float], cache: _MrcCache, stack_list: list[str],
                  stack_of: np.ndarray, index_of: np.ndarray) -> tuple[tuple[int, int], np.dtype]:
    """Open every stack once and check it against the STAR file: the pixel size in its header,
    one box for all, every index within its stack (whole-file entries become index 0, in place).
    Returns (box, dtype of the first stack)."""
    where = f" (referenced by STAR file {path!r})"
    box: Optional[tuple[int, int]] = None
    dtype = np.dtype(np.float32)
    for k, real in enumerate(stack_list):
        data = cache.get(real)
        header = cache.header_pixel_size(real)
        if apix is not None and header is not None and abs(header - apix) > 0.01 * apix:
            raise ValueError(
                f"stack {real!r}{where} says {header:g} Å/px in its MRC header but the STAR file says"
                f" {apix:g} Å/px; make them agree (or set the header's pixel size to 0)"
            )
        sn, sy, sx = data.shape
        if box is None:
            box, dtype = (sy, sx), data.dtype
        elif (sy, sx) != box:
            raise ValueError(
                f"stack {real!r}{where} holds {sy} x {sx} images but other stacks hold"
                f" {box[0]} x {box[1]}; all particles must have the same box"
            )
        rows = np.nonzero(stack_of == k)[0]
        whole = np.asarray(index_of[rows] < 0)
        if whole.any():
            if sn != 1:
                r = int(rows[np.argmax(whole)])
                raise ValueError(
                    f"STAR file {path!r}, particle {r + 1}: rlnImageName {names[r]!r} has no index@"
                    f" but {real!r} holds {sn} images"
                )
            index_of[rows[whole]] = 0
        bad = index_of[rows] >= sn
        if bad.any():
            r = int(rows[np.argmax(bad)])
            raise ValueError(
                f"STAR file {path!r}, particle {r + 1}: rlnImageName {names[r]!r} asks for image"
                f" {index_of[r] + 1} but stack {real!r} holds only {sn} images"
            )
    assert box is not None
    _check_geometry(len(names), box[0], box[1], f"STAR file {path!r}")
    return box, dtype


def _open_star(path: str) -> ParticleStack:
    particles, optics = _star_tables(path, _read_star_blocks(path))
    n = len(particles)
    if n == 0:
        raise ValueError(f"STAR file {path!r} lists no particles (an empty stack)")
    names = [str(v) for v in particles["rlnImageName"].tolist()]
    apix = _common_pixel_size(path, _star_pixel_sizes(path, particles, optics))
    stack_list, stack_of, index_of = _resolve_stacks(path, names)
    cache = _MrcCache(f" (referenced by STAR file {path!r})")
    try:
        box, dtype = _check_stacks(path, names, apix, cache, stack_list, stack_of, index_of)
    except BaseException:
        cache.close()
        raise

    def reader(start: int, stop: int) -> np.ndarray:
        # each stack's images in the order they lie in its file (one forward sweep per stack)
        out = np.empty((stop - start, box[0], box[1]), np.float32)
        sid = stack_of[start:stop]
        idx = index_of[start:stop]
        for k in np.unique(sid):
            sel = np.nonzero(sid == k)[0]
            data = cache.get(stack_list[int(k)])
            sel = sel[np.argsort(idx[sel], kind="stable")]
            wanted = idx[sel]
            if wanted.size > 1 and np.all(np.diff(wanted) == 1):
                out[sel] = data[wanted[0]: wanted[-1] + 1]  # contiguous run: one slice
            else:
                out[sel] = data[wanted]
            if _mapped(data):  # copied: the mapped pages are not needed (see unmap)
                unmap(data[int(wanted.min()) : int(wanted.max()) + 1])
        return out

    def prefetch(start: int, stop: int) -> None:
        sid = stack_of[start:stop]
        idx = index_of[start:stop]
        for k in np.unique(sid):
            wanted = idx[sid == k]
            data = cache.get(stack_list[int(k)])
            if _mapped(data):
                will_need(data[int(wanted.min()) : int(wanted.max()) + 1])

    return ParticleStack(
        path=path, shape=(n, box[0], box[1]), pixel_size_A=apix, image_names=names,
        dtype=dtype, reader=reader, closer=cache.close, table=ParticleTable(particles, optics, os.path.dirname(os.path.abspath(path))),
        prefetcher=prefetch,
    )


