"""The map-style :class:`RocksDataset` (public through :mod:`rocksds.torch`)."""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset as _MapDataset
from torch.utils.data import get_worker_info

from . import _shm
from ._batch import Batch, Sample, as_tensor, collate_takes_batches, shared_block, stack_samples
from ._handle import Handle, Transform, check_transform, probe
from ..errors import ArgumentTypeError, IndexOutOfRangeError, InvalidArgumentError
from ..reader import Dataset

__all__ = ["RocksDataset"]

class RocksDataset(_MapDataset):
    """A map-style dataset of sample dicts (see the module docstring).

    Args:
        path: the rocksds dataset directory.
        fields: fields to read (default: all, in schema order).
        transform: called on each sample dict; returns the sample to use.
        batch_transform: called on each stacked batch dict (after
            ``transform``) inside ``__getitems__``; requires ``use_getitems``.
        cache_gb: RocksDB block cache in GiB for the whole DataLoader: each of
            ``num_workers`` workers gets ``cache_gb / num_workers`` (default:
            see :class:`rocksds.Dataset`). It holds
            decompressed blocks of compressed fields; uncompressed fields are
            read straight from the OS page cache, which all workers share, so
            memory use stays bounded whatever the number of workers.
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
        cache_gb: Optional[float] = None,
        use_getitems: bool = True,
    ) -> None:
        check_transform("transform", transform)
        check_transform("batch_transform", batch_transform)
        if batch_transform is not None and not use_getitems:
            raise InvalidArgumentError(
                "batch_transform runs inside __getitems__; pass use_getitems=True or apply it in your collate_fn"
            )
        self.path, self.field_names, self._len = probe(path, fields, cache_gb)
        self.transform = transform
        self.batch_transform = batch_transform
        self.cache_gb = cache_gb
        self.use_getitems = bool(use_getitems)
        self._handle = Handle(self.path, self.field_names, cache_gb)
        #: (name, record shape, torch dtype) of the fixed-shape fields, worked out on the first batch.
        self._fixed: Optional[list[tuple[str, tuple[int, ...], torch.dtype]]] = None

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"RocksDataset({self.path!r}, n={self._len}, fields={self.field_names})"

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
        sample = {k: as_tensor(v) for k, v in raw.items()}
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
        ds = self._handle.get()
        n = len(idx)
        block, shared = self._shared_out(ds, n)
        raw = ds.get_batch(idx, out={k: t.numpy() for k, t in shared.items()})
        stacked: Sample = {}
        for key, value in raw.items():
            if key in shared:
                stacked[key] = shared[key]
            else:
                stacked[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else [as_tensor(v) for v in value]
        if self.transform is not None:
            stacked = stack_samples([self.transform(s) for s in Batch(stacked, n)])
        if self.batch_transform is not None:
            stacked = self.batch_transform(stacked)
            if not isinstance(stacked, Mapping):
                raise InvalidArgumentError(
                    f"batch_transform must return a dict of batched values, got {type(stacked).__name__}"
                )
            stacked = dict(stacked)
        return Batch(stacked, n, block)

    def _shared_out(self, ds: Dataset, n: int) -> tuple[Optional[_shm.Block], dict[str, torch.Tensor]]:
        """In a DataLoader worker, tensors in one shared-memory block for the fixed-shape fields.

        The reader writes the records straight into them, and :func:`collate`
        sends the block to the main process as is: each byte is copied once
        between RocksDB and the training loop. Empty outside workers, or when
        a per-sample ``transform`` rebuilds the batch anyway, or before
        :func:`collate` (or ``default_collate``, which hands it batches) has
        taken a batch in this worker (a ``collate_fn`` that restacks samples
        puts them in shared memory of its own).
        """
        if self.transform is not None or get_worker_info() is None or not collate_takes_batches():
            return None, {}
        if self._fixed is None:
            self._fixed = [(name, tuple(f.shape), torch.from_numpy(np.empty(0, f.numpy_dtype)).dtype)
                           for name, f in ds.schema.fields.items() if not f.is_variable]
        if not self._fixed:
            return None, {}
        block, tensors = shared_block([((n, *shape), dtype) for _name, shape, dtype in self._fixed])
        return block, {name: t for (name, _shape, _dtype), t in zip(self._fixed, tensors)}
