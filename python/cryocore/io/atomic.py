"""One atomic writer for every file cryocore writes: complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Write a file all at once: the new content appears at ``path`` only on success.

    The ``with`` body writes to a temporary file in the same directory as
    ``path`` (named ``.<name>.<random>.partial``). When the body finishes
    without an exception the file is flushed, ``fsync``-ed and moved onto
    ``path`` with :func:`os.replace` (atomic on POSIX and Windows), and the
    directory is ``fsync``-ed where the platform allows. If the body raises,
    the temporary file is removed, any existing file at ``path`` is left
    untouched, and the exception propagates.

    Parameters
    ----------
    path : str or path-like
        Destination. Its directory must exist.
    mode : {"wb", "w", "wt"}
        Binary or text mode of the file object handed to the body.
    **open_kwargs
        Passed to :func:`open` (for example ``encoding="utf-8"`` or
        ``newline=""`` in text mode). Text mode defaults to UTF-8.

    Yields
    ------
    file object open for writing.
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_write mode must be 'wb', 'w' or 'wt', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a directory")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.partial")
    # O_EXCL: never clobber anything; 0o666 lets the umask set the usual permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make a rename durable (POSIX); silently skipped where directories cannot be opened."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _check_overwrite(path: PathLike, overwrite: bool) -> str:
    p = os.fspath(path)
    if os.path.exists(p) and not overwrite:
        raise FileExistsError(f"{p!r} already exists; pass overwrite=True to replace it")
    return p

