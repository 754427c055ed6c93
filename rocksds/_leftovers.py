"""Private directories whose owner may die: mark them as owned, and remove the ones nobody owns any more.

Read-only shadows (``rocksds-ro-*`` in the temporary directory) and build
directories (``.NAME.creating-*``, ``.converting-*``, ``.building-*`` beside
a dataset) are removed by the process that made them, unless it is killed or
leaves through ``os._exit`` (as forked DataLoader workers do). Each such
directory therefore has an *owner file*, on which its maker holds a
``flock`` for as long as the directory is in use. The kernel drops the lock
when the process dies, however it dies, and only then can another process
take it: a directory whose owner file is unlocked is abandoned and removed at
the next opportunity (the next shadow, or the next build of the same path).
``flock`` works across PID namespaces, where a test of process IDs would not.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterable

__all__ = ["hold", "release", "remove_abandoned", "STALE_AFTER_S"]

#: A directory younger than this is never removed (its maker may be between creating it and locking).
STALE_AFTER_S = 5.0


def hold(owner_file: str) -> int:
    """Create ``owner_file`` and lock it for this process; returns the descriptor to keep open."""
    fd = os.open(owner_file, os.O_CREAT | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def release(fd: int) -> None:
    """Close the descriptor :func:`hold` returned (dropping the lock)."""
    try:
        os.close(fd)
    except OSError:
        pass


def _abandoned(directory: str, owner_file: str, now: float) -> bool:
    try:
        st = os.lstat(directory)
    except OSError:
        try:
            st = os.lstat(owner_file)  # killed before it made the directory
        except OSError:
            return False
    if now - st.st_mtime < STALE_AFTER_S:
        return False
    try:
        fd = os.open(owner_file, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False  # no owner file: made by an older version, or not ours; left alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its owner is alive
    finally:
        os.close(fd)
    return True


def remove_abandoned(candidates: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> int:
    """Remove each ``(directory, owner_file)`` whose owner is gone; returns how many were removed.

    ``extra``: name prefixes (in the directory's parent) of what also goes with an
    abandoned directory, as ``<prefix><directory name>``.
    """
    now, removed = time.time(), 0
    extras = tuple(extra)
    for directory, owner_file in candidates:
        if not _abandoned(directory, owner_file, now):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        parent, name = os.path.split(directory)
        for prefix in extras:
            for other in _names(parent, prefix + name):
                shutil.rmtree(os.path.join(parent, other), ignore_errors=True)
        try:
            os.remove(owner_file)
        except OSError:
            pass
        removed += 1
    return removed


def _names(parent: str, prefix: str) -> list[str]:
    try:
        return [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return []
