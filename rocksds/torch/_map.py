"""The map-style :class:`RocksDataset` (public through :mod:`rocksds.torch`), and the
per-process read handle the torch datasets share.
"""

from __future__ import annotations

import multiprocessing.util
import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset as _MapDataset
from torch.utils.data import get_worker_info

from ._batch import Batch, Sample, _as_tensor, stack_samples
from ..errors import ArgumentTypeError, IndexOutOfRangeError, InvalidArgumentError
from ..reader import DEFAULT_CACHE_GB, Dataset, open_dataset

__all__ = ["RocksDataset"]

Transform = Callable[[Sample], Sample]

#: Handles inherited through fork: RocksDB handles must not be closed in a
#: child, so they are kept alive here instead of being garbage-collected.
_INHERITED: list[Dataset] = []


def _check_transform(name: str, fn: Any) -> None:
    if fn is not None and not callable(fn):
        raise ArgumentTypeError(f"{name} must be callable or None, got {type(fn).__name__}")


class _Handle:
    """One read handle per process, opened on first use (never shared across a fork)."""

    def __init__(self, path: str, fields: Optional[list[str]], cache_gb: float) -> None:
        self.path, self.fields, self.cache_gb = path, fields, cache_gb
        self._ds: Optional[Dataset] = None
        self._pid = -1

    def get(self) -> Dataset:
        ds = self._ds
        if ds is None or self._pid != os.getpid():
            if ds is not None:
                _INHERITED.append(ds)
            ds = open_dataset(self.path, fields=self.fields, cache_gb=self.cache_gb)
            if get_worker_info() is not None:
                # Worker processes end with os._exit, which skips weakref finalizers: close explicitly.
                multiprocessing.util.Finalize(ds, ds.close, exitpriority=0)
            self._ds, self._pid = ds, os.getpid()
        return ds

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "fields": self.fields, "cache_gb": self.cache_gb}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


def _probe(path: Any, fields: Optional[Sequence[str]], cache_gb: float) -> tuple[str, Optional[list[str]], int]:
    """Validate path and options once, up front: (path, fields, sample count)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if isinstance(fields, str):
        raise ArgumentTypeError(f"fields must be a list of field names, got the string {fields!r}")
    field_list = None if fields is None else list(fields)
    with open_dataset(path, fields=field_list, cache_gb=cache_gb) as ds:  # the cache fills lazily: cheap
        return os.fspath(path), field_list, len(ds)


class RocksDataset(_MapDataset):
    """A map-style dataset of sample dicts (see the module docstring).

    Args:
        path: the rocksds dataset directory.
        fields: fields to read (default: all, in schema order).
        transform: called on each sample dict; returns the sample to use.
        batch_transform: called on each stacked batch dict (after
            ``transform``) inside ``__getitems__``; requires ``use_getitems``.
        cache_gb: RocksDB block cache per process, in GiB.
        use_getitems: offer ``__getitems__`` to the DataLoader (one MultiGet
            per field and batch). ``False`` makes the DataLoader call
            ``__getitem__`` once per sample; useful for comparisons.

    Raises:
        NotADatasetError: ``path`` is not a rocksds dataset.
        FieldNotFoundError: a name in ``fields`` is not in the schema.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        fields: Optional[Sequence[str]] = None,
        transform: Optional[Transform] = None,
        batch_transform: Optional[Transform] = None,
        *,
        cache_gb: float = DEFAULT_CACHE_GB,
        use_getitems: bool = True,
    ) -> None:
        _check_transform("transform", transform)
        _check_transform("batch_transform", batch_transform)
        if batch_transform is not None and not use_getitems:
            raise InvalidArgumentError(
                "batch_transform runs inside __getitems__; pass use_getitems=True or apply it in your collate_fn"
            )
        self.path, self.fields, self._len = _probe(path, fields, cache_gb)
        self.transform = transform
        self.batch_transform = batch_transform
        self.cache_gb = cache_gb
        self.use_getitems = bool(use_getitems)
        self._handle = _Handle(self.path, self.fields, cache_gb)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"RocksDataset({self.path!r}, n={self._len}, fields={self.fields})"

    def _index(self, index: Any) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise ArgumentTypeError(f"sample indices must be integers, got {type(index).__name__}") from None
        # Only samples present when this object was created: later appends stay invisible.
        if not -self._len <= i < self._len:
            raise IndexOutOfRangeError(f"index {i} out of range for dataset of {self._len} samples")
        return i % self._len

    def __getitem__(self, index: int) -> Sample:
        raw = self._handle.get().get(self._index(index))
        sample = {k: _as_tensor(v) for k, v in raw.items()}
        return sample if self.transform is None else self.transform(sample)

    @property
    def __getitems__(self) -> Optional[Callable[[Sequence[int]], Batch]]:  # type: ignore[override]
        """The batch fetch the DataLoader uses, or ``None`` when ``use_getitems=False``."""
        return self.get_batch if self.use_getitems else None

    def get_batch(self, indices: Sequence[int]) -> Batch:
        """Samples at ``indices`` with one MultiGet per field, as a :class:`Batch`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            bad = idx[(idx < -self._len) | (idx >= self._len)][0]
            raise IndexOutOfRangeError(f"index {int(bad)} out of range for dataset of {self._len} samples")
        idx %= max(self._len, 1)
        raw = self._handle.get().get_batch(idx)
        n = len(idx)
        stacked: Sample = {}
        for key, value in raw.items():
            stacked[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else [_as_tensor(v) for v in value]
        if self.transform is not None:
            stacked = stack_samples([self.transform(s) for s in Batch(stacked, n)])
        if self.batch_transform is not None:
            stacked = self.batch_transform(stacked)
            if not isinstance(stacked, Mapping):
                raise InvalidArgumentError(
                    f"batch_transform must return a dict of batched values, got {type(stacked).__name__}"
                )
            stacked = dict(stacked)
        return Batch(stacked, n)
