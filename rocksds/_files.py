"""Small files of a dataset directory: read them as hostile input, replace them atomically.

Every byte of a dataset may be hostile (SPEC.md 9), RocksDB's ``CURRENT`` and
MANIFEST and rocksds's own witness file included: a file read here must be a
regular file of bounded size, never a device, a FIFO or a sparse giant read
whole. Writing goes the other way: :func:`replace_atomically` puts a file in
place so that a crash leaves the old bytes or the new ones, never a mix.
Standard library only.
"""

from __future__ import annotations

import os
import stat
from typing import Optional

from .errors import CorruptionError

__all__ = ["REPLACING_SUFFIX", "open_regular", "read_regular", "copy_regular", "replace_atomically"]

#: :func:`replace_atomically` writes ``path`` + this, then renames it over ``path``.
REPLACING_SUFFIX = ".tmp"


def open_regular(path: str, limit: int) -> tuple[int, int]:
    """A descriptor on ``path`` and its size, or CorruptionError unless it is a regular file of at most ``limit`` bytes.

    ``O_NONBLOCK`` keeps a FIFO planted in the dataset from blocking the open; the checks are made
    on the open descriptor, so the file cannot be swapped for another between check and read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CorruptionError(f"{path} is not a regular file (a device, FIFO or directory); the dataset is damaged "
                                  "or hostile, so it is not opened")
        if st.st_size > limit:
            raise CorruptionError(f"{path} is {st.st_size} bytes, more than a dataset holds there "
                                  f"({limit}); the dataset is damaged or hostile, so it is not opened")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def read_regular(path: str, limit: int) -> Optional[bytes]:
    """The bytes of a small regular file (see :func:`open_regular`), ``None`` if it does not exist."""
    try:
        fd, size = open_regular(path, limit)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(size)


def copy_regular(src: str, dst: str, limit: int) -> None:
    """Copy the regular file ``src`` (see :func:`open_regular`) to ``dst``: its size when opened, no more."""
    fd, size = open_regular(src, limit)
    with os.fdopen(fd, "rb") as fin, open(dst, "wb") as fout:
        left = size
        while left > 0:
            chunk = fin.read(min(left, 2**20))
            if not chunk:
                break
            fout.write(chunk)
            left -= len(chunk)


def replace_atomically(path: str, data: bytes, *, sync_directory: bool) -> None:
    """Make ``data`` the content of ``path``: written beside it, fsynced, renamed over it.

    A crash at any moment leaves ``path`` with its old bytes or the new ones,
    whole (the new file is on disk before the rename can be). The rename
    itself reaches the disk with the directory's next fsync, done here only
    when ``sync_directory``: a caller for whom the old bytes are still true
    after a power loss can skip it (one fsync less).

    The caller must be the only one writing ``path`` (the writer's lock): the
    file beside it has a fixed name (``path`` + ``REPLACING_SUFFIX``), so one a
    crash left behind is simply overwritten by the next call.
    """
    tmp = path + REPLACING_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_directory:
        folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
