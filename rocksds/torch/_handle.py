"""What the torch datasets share: argument checks, the up-front probe, and the per-process read handle."""

from __future__ import annotations

import multiprocessing.util
import os
from collections.abc import Sequence
from typing import Any, Callable, Optional

from torch.utils.data import get_worker_info

from ..errors import ArgumentTypeError
from ..reader import Dataset, default_cache_bytes, fork_generation, open_dataset
from ._batch import Sample

__all__ = ["Transform", "check_transform", "probe", "Handle"]

Transform = Callable[[Sample], Sample]


def check_transform(name: str, fn: Any) -> None:
    """Raise ArgumentTypeError unless ``fn`` is callable or None."""
    if fn is not None and not callable(fn):
        raise ArgumentTypeError(f"{name} must be callable or None, got {type(fn).__name__}")


def probe(path: Any, fields: Optional[Sequence[str]], cache_gb: Optional[float]) -> tuple[str, Optional[list[str]], int]:
    """Validate path and options once, up front: (path, field names, sample count)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if isinstance(fields, str):
        raise ArgumentTypeError(f"fields must be a list of field names, got the string {fields!r}")
    field_list = None if fields is None else list(fields)
    with open_dataset(path, fields=field_list, cache_gb=cache_gb) as ds:  # the cache fills lazily: cheap
        return os.fspath(path), field_list, len(ds)


class Handle:
    """One read handle per process, opened on first use.

    A forked child (a DataLoader worker) never uses its parent's RocksDB
    handle: the :class:`~rocksds.Dataset` notices the fork through the
    reader's generation counter and reopens itself, the one fork-reopen
    mechanism. This class only adds what a worker needs on top: worker
    processes end with ``os._exit``, which skips weakref finalizers, so the
    dataset is closed explicitly there. Pickling (spawned workers) keeps the
    options only.
    """

    def __init__(self, path: str, names: Optional[list[str]], cache_gb: Optional[float]) -> None:
        self.path, self.names, self.cache_gb = path, names, cache_gb
        self._ds: Optional[Dataset] = None
        self._generation = -1

    def get(self) -> Dataset:
        ds = self._ds
        generation = fork_generation()
        if ds is None or self._generation != generation:
            worker = get_worker_info()
            if ds is not None and worker is not None:
                # The parent's handle: closing it here keeps its RocksDB alive, unused (see Dataset);
                # the worker opens its own with its share of the cache.
                ds.close()
                ds = None
            if ds is None:
                ds = self._ds = open_dataset(self.path, fields=self.names, cache_gb=self._cache_gb(worker))
            if worker is not None:
                multiprocessing.util.Finalize(ds, ds.close, exitpriority=0)
            self._generation = generation
        return ds

    def _cache_gb(self, worker: Any) -> Optional[float]:
        """``cache_gb`` is the budget of the whole DataLoader: each worker gets its share."""
        if worker is None:
            return self.cache_gb
        total = default_cache_bytes() / 2**30 if self.cache_gb is None else self.cache_gb
        return total / max(1, worker.num_workers)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "names": self.names, "cache_gb": self.cache_gb}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]
