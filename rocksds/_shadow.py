"""The read-only "shadow": open a database for reading without touching its directory.

RocksDB would rotate its info ``LOG`` in the database directory and rocksdict
writes ``rocksdict-config.json`` on every open, which fails on read-only
storage and modifies shared datasets. So a read-only open builds a private
directory of symbolic links to the dataset's files and opens that instead,
retrying when a writer adds or deletes files at the same moment. Used by
:mod:`rocksds._storage` only; knows nothing of RocksDB's binding.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from typing import Optional, TypeVar

from ._files import copy_regular, read_regular
from ._leftovers import STALE_AFTER_S, hold, release, remove_abandoned
from ._witness import WITNESS_FILES, Witness, read_witness
from .errors import CorruptionError, NotADatasetError, RocksdsError

__all__ = ["Shadow", "with_shadow"]

#: Files of a RocksDB directory a read-only open does not need.
_PRIVATE_FILES = ("LOCK", "LOG", "rocksdict-config.json", *WITNESS_FILES)
T = TypeVar("T")
_PROC_FD = "/proc/self/fd"


#: Shadow directories are ``<TMPDIR>/rocksds-ro-*``, each with an owner file (see rocksds._leftovers).
_PREFIX = "rocksds-ro-"
_OWNER = ".owner"
_last_sweep = -float("inf")

#: CURRENT holds one line, the MANIFEST's name.
_MAX_CURRENT_BYTES = 4096
#: RocksDB starts a new MANIFEST once one exceeds max_manifest_file_size (1 GiB by default).
_MAX_MANIFEST_BYTES = 2 * 2**30
_MANIFEST_NAME = re.compile(r"MANIFEST-[0-9]{1,20}")

#: Attempts at a read-only open while a writer adds and deletes files (see with_shadow).
_OPEN_ATTEMPTS = 8


def with_shadow(
    path: str, fn: Callable[["Shadow"], T], translate: Callable[[BaseException, str, Optional[str]], Exception], *,
    keep: bool
) -> tuple[T, Optional["Shadow"]]:
    """Run ``fn`` on a fresh shadow of ``path``, retrying when a file vanished or appeared meanwhile.

    A writer may roll its MANIFEST, write a table file or compact away old
    ones between our listing the directory and RocksDB reading the MANIFEST;
    the shadow then lacks a file the MANIFEST names. That is a race, not
    damage, so take a new listing and try again; a file still missing after
    a few attempts is reported as corruption. ``translate(error, path, shadow)``
    turns the binding's error into the rocksds one (the storage layer's).
    """
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            shadow = Shadow(path)
        except RocksdsError:
            raise
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                raise translate(e, path, None) from None
            raise RocksdsError(f"cannot open {path} for reading: {e}") from None
        try:
            result = fn(shadow)
        except RocksdsError:
            shadow.remove()  # already a verdict (not a dataset, damaged schema): no retry
            raise
        except Exception as e:
            shadow.remove()
            if attempt + 1 < _OPEN_ATTEMPTS and "no such file" in str(e).lower():
                time.sleep(0.005 * (attempt + 1))
                continue
            raise translate(e, path, shadow.path) from None
        if not keep:
            shadow.remove()
            return result, None
        shadow.unpin()
        return result, shadow
    raise AssertionError("unreachable")


class Shadow:
    """A private directory of symlinks to a database's files (see the module docstring).

    A writer may be adding and deleting files meanwhile, so ``CURRENT`` and
    its MANIFEST are copied (fixing which table files the open will need)
    between two passes that link every other file. On Linux each link first
    points at ``/proc/self/fd/N``, a descriptor we hold, so a table file that
    a writer compacts away before RocksDB opens it stays readable;
    :meth:`unpin` swaps in plain links and closes those descriptors once
    RocksDB holds its own.

    :attr:`witness` is the dataset's committed-count witness (rocksds._witness),
    read before anything else: it only grows once the count it names is
    durable, so the MANIFEST copied after it holds at least that many samples.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(os.path.join(path, "CURRENT")):
            raise NotADatasetError(f"{path} is not a RocksDB database (no CURRENT file)")
        self.witness: Witness = read_witness(path)
        _sweep()
        self.path = tempfile.mkdtemp(prefix=_PREFIX)
        try:
            self._owner = hold(os.path.join(self.path, _OWNER))
        except OSError:
            shutil.rmtree(self.path, True)
            raise
        self._src = os.path.abspath(path)
        self._pins: dict[str, int] = {}
        self._links: dict[str, str] = {}
        self._can_pin = os.path.isdir(_PROC_FD)
        self._copied: Optional[tuple[str, int]] = None  # (name, size) of the MANIFEST copied
        self._finalizer = weakref.finalize(self, _remove_shadow, self.path, self._pins, self._owner, os.getpid())
        try:
            # Every table file the copied MANIFEST names existed when it was
            # copied, so one of the two passes holds it, unless a compaction
            # deleted it in the instant between the copy and the second pass
            # (the open then fails with a missing file and is retried).
            self._pin_all()
            copied = self._copy_manifest()
            self._pin_all()
            for name in list(self._links):
                if name in copied:
                    self._unhold(name)
                    continue
                os.symlink(self._links[name], os.path.join(self.path, name))
        except OSError:
            self.remove()
            raise

    def _pin_all(self) -> None:
        for name in os.listdir(self._src):
            if name in _PRIVATE_FILES or name.startswith("LOG") or name in self._links:
                continue
            target = os.path.join(self._src, name)
            if self._can_pin and os.path.isfile(target):
                try:
                    fd = os.open(target, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except FileNotFoundError:
                    continue  # deleted since the listing
                except OSError:
                    self._can_pin = False  # e.g. out of descriptors: plain links from here on
                else:
                    self._pins[name] = fd
                    target = f"{_PROC_FD}/{fd}"
            self._links[name] = target

    def _unhold(self, name: str) -> None:
        del self._links[name]
        fd = self._pins.pop(name, None)
        if fd is not None:
            os.close(fd)

    def _copy_manifest(self) -> set[str]:
        # Every byte of a dataset may be hostile (SPEC.md 9): CURRENT and the MANIFEST must be
        # regular files of bounded size, never a device, a FIFO or a sparse giant read whole.
        current = read_regular(os.path.join(self._src, "CURRENT"), _MAX_CURRENT_BYTES)
        if current is None:
            return set()  # replaced meanwhile: a retry follows
        manifest = current.decode("ascii", "replace").strip()
        if not _MANIFEST_NAME.fullmatch(manifest):
            raise NotADatasetError(f"{self._src} is not a RocksDB database (CURRENT names {manifest[:40]!r})")
        try:
            copy_regular(os.path.join(self._src, manifest), os.path.join(self.path, manifest), _MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            return set()  # rolled over since CURRENT was read: link the new one, a retry may follow
        with open(os.path.join(self.path, "CURRENT"), "wb") as fh:
            fh.write(current)
        self._copied = (manifest, os.path.getsize(os.path.join(self.path, manifest)))
        return {"CURRENT", manifest}

    def outdated(self) -> bool:
        """Whether the dataset's MANIFEST has changed since this shadow copied it (a writer has moved on)."""
        if self._copied is None:
            return True
        manifest, size = self._copied
        try:
            with open(os.path.join(self._src, "CURRENT"), "rb") as fh:
                current = fh.read(256).decode("ascii", "replace").strip()
            return current != manifest or os.path.getsize(os.path.join(self._src, manifest)) != size
        except OSError:
            return True

    def unpin(self) -> None:
        """Point every link at the dataset's file again and close our descriptors."""
        for name, fd in list(self._pins.items()):
            tmp = os.path.join(self.path, f".{name}.relink")
            os.symlink(os.path.join(self._src, name), tmp)
            os.replace(tmp, os.path.join(self.path, name))
            os.close(fd)
            del self._pins[name]

    def remove(self) -> None:
        self._finalizer()


def _remove_shadow(path: str, pins: dict[str, int], owner: int, owner_pid: int) -> None:
    for fd in pins.values():
        os.close(fd)
    pins.clear()
    # A forked child that drops an inherited handle must not delete the
    # parent's shadow directory from under it (closing its copy of the owner
    # descriptor leaves the parent's lock in place).
    if os.getpid() == owner_pid:
        shutil.rmtree(path, True)
    release(owner)


def _sweep() -> None:
    """Remove shadows whose process died without removing them (killed, ``os._exit``), at most every few seconds."""
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < STALE_AFTER_S:
        return
    _last_sweep = now
    tmp = tempfile.gettempdir()
    try:
        with os.scandir(tmp) as it:
            found = [e.path for e in it if e.name.startswith(_PREFIX) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    remove_abandoned((d, os.path.join(d, _OWNER)) for d in found)
