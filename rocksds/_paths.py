"""Build a dataset beside its final path, then rename it into place: the one way rocksds replaces a dataset.

Used by :func:`rocksds.create`, raster ingestion and the converters. The
guarantees are the same for all three:

- what is built lives in a hidden sibling directory until it is complete, so
  a crash leaves nothing at the final path but what was there before;
- only a rocksds dataset is ever replaced, and only when the caller allows it;
- a dataset being replaced is locked (the writer's RocksDB lock) while it is
  swapped out, so a dataset another writer has open is never deleted from
  under it (that writer's later flushes would land in the new directory):
  the swap refuses with :class:`~rocksds.errors.DatasetLockedError` instead.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ._leftovers import hold, release, remove_abandoned
from ._metadata import check_is_dataset
from ._storage import CFConfig, Storage
from .errors import DatasetExistsError, InvalidArgumentError, ReadOnlyError, RocksdsError
from .spec import DEFAULT_CF

__all__ = ["check_target", "beside", "place", "building", "dir_bytes", "remove_abandoned_builds"]

#: A build directory's owner file is the directory's name plus this (see rocksds._leftovers).
_OWNER_SUFFIX = ".owner"


def _lock(path: str) -> Storage:
    """Take the writer's lock on the dataset at ``path`` (DatasetLockedError if another writer has it)."""
    cfs = check_is_dataset(path)
    return Storage.open_writable(path, {cf: CFConfig() for cf in cfs if cf != DEFAULT_CF}, create=False)


def check_target(path: str, *, overwrite: bool, hint: str = "pass overwrite=True to replace a rocksds dataset") -> None:
    """Raise unless a dataset may be built for ``path``: its parent exists, and it is free or a replaceable dataset.

    Raises:
        DatasetExistsError: ``path`` exists and ``overwrite`` is false.
        NotADatasetError: ``path`` exists but is not a rocksds dataset (never replaced).
        DatasetLockedError: ``path`` is a dataset another writer has open.
        InvalidArgumentError: the parent directory does not exist.
    """
    if os.path.lexists(path):
        if not overwrite:
            raise DatasetExistsError(f"{path} already exists ({hint})")
        _lock(path).close()
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InvalidArgumentError(f"cannot create {path}: parent directory {parent} does not exist")


def beside(path: str, purpose: str) -> str:
    """A fresh hidden sibling of ``path`` (``.<name>.<purpose>-<random>``) to build in."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{purpose}-{uuid.uuid4().hex[:12]}")


def place(tmp: str, path: str) -> None:
    """Rename the complete dataset at ``tmp`` to ``path``, replacing the dataset there under its lock.

    The old dataset stays whole until the new one is complete; a crash
    between the two renames leaves nothing at ``path``, never a mix.
    """
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    lock = _lock(path)
    trash = beside(path, "replaced")
    try:
        os.rename(path, trash)
    finally:
        # RocksDB names its files by the path it opened. Released while nothing
        # is at ``path`` (after the rename) its last file operations fail
        # harmlessly; released after the new dataset is in place they would
        # land in it. Nothing was written through this handle, so nothing is lost.
        try:
            lock.close(flush=False)
        except RocksdsError:
            pass
    os.rename(tmp, path)
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def building(
    paths: Sequence[str], purpose: str, *, overwrite: bool, hint: str = "pass overwrite=True to replace a rocksds dataset"
) -> Iterator[list[str]]:
    """Yield one build directory per path; on success place each at its path, on failure remove them all.

    Every path is checked first (see :func:`check_target`), before any work is done.
    """
    for path in paths:
        check_target(path, overwrite=overwrite, hint=hint)
        remove_abandoned_builds(path, purpose)
    tmps = [beside(path, purpose) for path in paths]
    owners: list[int] = []
    try:
        for tmp in tmps:
            owners.append(hold(tmp + _OWNER_SUFFIX))
    except OSError as e:
        for fd in owners:
            release(fd)
        for tmp in tmps[: len(owners)]:
            os.remove(tmp + _OWNER_SUFFIX)
        where = os.path.dirname(tmps[len(owners)])
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ReadOnlyError(f"cannot write to {where}: {e.strerror}") from None
        raise RocksdsError(f"cannot build in {where}: {e.strerror or e}") from None
    try:
        yield tmps
        for tmp, path in zip(tmps, paths):
            place(tmp, path)
    except BaseException:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        for tmp, fd in zip(tmps, owners):
            try:
                os.remove(tmp + _OWNER_SUFFIX)
            except OSError:
                pass
            release(fd)


def remove_abandoned_builds(path: str, purpose: str) -> int:
    """Remove ``.NAME.<purpose>-*`` build directories of ``path`` whose builder died (see rocksds._leftovers).

    What such a build made beside itself (``..NAME.<purpose>-X.creating-*``, the
    dataset a converter creates inside its build) goes with it. A build that is
    still running holds its owner file and is left alone.
    """
    parent, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}.{purpose}-"
    try:
        owners = [n for n in os.listdir(parent) if n.startswith(prefix) and n.endswith(_OWNER_SUFFIX)]
    except OSError:
        return 0
    candidates = [(os.path.join(parent, n[: -len(_OWNER_SUFFIX)]), os.path.join(parent, n)) for n in owners]
    return remove_abandoned(candidates, extra=["."])


def dir_bytes(path: str) -> int:
    """Bytes of every file under ``path`` (files that vanish meanwhile count 0)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total
