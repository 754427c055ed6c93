"""Batches for the rocksds torch datasets: :class:`Batch`, :func:`collate`, :func:`stack_samples`.

Public through :mod:`rocksds.torch`. Also owns the one-block shared-memory
layout that lets a DataLoader worker hand a whole batch to the main process
as a single storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import get_worker_info
from torch.utils.data._utils import collate as _torch_collate

from ..errors import InvalidArgumentError

__all__ = ["Batch", "collate", "collate_takes_batches", "stack_samples", "Sample", "as_tensor", "shared_block"]

Sample = dict[str, Any]


def as_tensor(value: Any) -> Any:
    """A decoded value -> tensor; copies read-only arrays, keeps ``bytes``/``str``."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value if value.flags.writeable else value.copy())
    return value


def stack_samples(samples: Sequence[Mapping[str, Any]]) -> Sample:
    """Per-sample dicts -> one batch dict.

    Tensors and arrays of one shape and dtype are stacked along a new first
    axis; anything else (variable shapes, ``bytes``, ``str``, numbers) becomes
    a list with one entry per sample.
    """
    return _stack(samples, shared=False)


def _stack(samples: Sequence[Mapping[str, Any]], *, shared: bool) -> Sample:
    if len(samples) == 0:
        return {}
    out: Sample = {}
    stackable: dict[str, list[torch.Tensor]] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, np.ndarray) and all(
            isinstance(v, np.ndarray) and v.shape == first.shape and v.dtype == first.dtype for v in values
        ):
            values = [as_tensor(v) for v in values]
            first = values[0]
        if isinstance(first, torch.Tensor) and all(
            isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values
        ):
            stackable[key] = values
        out[key] = values
    if shared and stackable:
        specs = [((len(v), *v[0].shape), v[0].dtype) for v in stackable.values()]
        for (key, values), dest in zip(stackable.items(), shared_block(specs)):
            out[key] = torch.stack(values, out=dest)
        return _SharedBatch(out)
    for key, values in stackable.items():
        out[key] = torch.stack(values)
    return out


#: Byte alignment of each tensor inside a shared batch block.
_ALIGN = 64


def shared_block(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
    """Empty contiguous tensors of the given (shape, dtype), all in one shared-memory block."""
    offsets, total = [], 0
    for shape, dtype in specs:
        offsets.append(total)
        total += -(-_numel(shape) * dtype.itemsize // _ALIGN) * _ALIGN
    block = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(max(total, 1)))
    return [
        block[o : o + _numel(shape) * dtype.itemsize].view(dtype).view(shape)
        for o, (shape, dtype) in zip(offsets, specs)
    ]


def _in_one_shared_block(tensors: Any) -> bool:
    """Whether every tensor is a contiguous view into one shared-memory storage."""
    ptr = None
    for t in tensors:
        if not (t.is_shared() and t.is_contiguous()):
            return False
        p = t.untyped_storage().data_ptr()
        if ptr is not None and p != ptr:
            return False
        ptr = p
    return ptr is not None


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class _SharedBatch(dict):
    """A batch dict made in a DataLoader worker, whose tensors share one shared-memory block.

    PyTorch sends each tensor storage between processes separately (one file
    descriptor handed over a socket per storage), which dominates the cost of
    small batches. This dict pickles its block once and unpickles as a plain
    ``dict`` of views, so the training loop never sees this class.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        block = None
        layout: dict[str, tuple[int, tuple[int, ...], torch.dtype]] = {}
        others: dict[str, Any] = {}
        for key, value in self.items():
            if isinstance(value, torch.Tensor) and value.is_contiguous() and value.is_shared():
                storage = value.untyped_storage()
                if block is None or storage.data_ptr() == block.data_ptr():
                    block = storage
                    layout[key] = (value.storage_offset() * value.dtype.itemsize, tuple(value.shape), value.dtype)
                    continue
            others[key] = value  # replaced or added after stacking: pickled the usual way
        return (_unpack_batch, (torch.empty(0, dtype=torch.uint8).set_(block) if block is not None else None,
                                list(self), layout, others))


def _unpack_batch(block: Optional[torch.Tensor], order: list[str], layout: dict[str, Any], others: Sample) -> Sample:
    out: Sample = {}
    for key in order:
        if key in layout:
            offset, shape, dtype = layout[key]
            out[key] = block[offset : offset + _numel(shape) * dtype.itemsize].view(dtype).view(shape)  # type: ignore[index]
        else:
            out[key] = others[key]
    return out


class Batch(Sequence):
    """What :meth:`RocksDataset.__getitems__` returns: a sequence of per-sample dicts.

    It also carries the whole batch, already stacked, as :attr:`stacked`;
    :func:`collate` returns that directly. Per-sample dicts (views into the
    stacked tensors, no copies) are only built if something indexes or
    iterates the batch, as ``default_collate`` does.
    """

    __slots__ = ("stacked", "_n", "_views")

    def __init__(self, stacked: Sample, n: int) -> None:
        self.stacked = stacked
        self._n = n
        self._views: Optional[list[Sample]] = None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if self._views is None:
            self._views = self._split()
        return self._views[i]

    def _split(self) -> list[Sample]:
        n = self._n
        columns = []
        for key, value in self.stacked.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == n:
                columns.append(value.unbind(0))
            elif isinstance(value, (list, tuple)) and len(value) == n:
                columns.append(value)
            else:
                raise InvalidArgumentError(
                    f"batch entry {key!r} has no leading batch axis of {n} samples, so it cannot be split into "
                    "samples for the DataLoader's collate_fn; use collate_fn=rocksds.torch.collate, or make "
                    "batch_transform keep the batch axis"
                )
        names = list(self.stacked)
        return [_Row(zip(names, row)) for row in zip(*columns)] if columns else [_Row() for _ in range(n)]


class _Row(dict):
    """One sample of a :class:`Batch`: views into its stacked tensors.

    Its type is registered in PyTorch's ``default_collate_fn_map`` (the extension
    point ``default_collate`` documents), so the stock ``default_collate`` handed a
    whole :class:`Batch` returns the batch as it was read, as :func:`collate` does,
    instead of splitting it into samples and stacking them again (a full copy of
    the batch, and in a worker a second one into shared memory).
    """


def _collate_rows(batch: Sequence[Mapping[str, Any]], *, collate_fn_map: Optional[dict] = None) -> Any:
    """``default_collate`` for sequences of :class:`_Row`: a whole :class:`Batch` goes to :func:`collate`;
    rows gathered any other way are collated as the plain dicts they are."""
    if isinstance(batch, Batch):
        return collate(batch)
    return _torch_collate.collate([dict(row) for row in batch], collate_fn_map=collate_fn_map)


_torch_collate.default_collate_fn_map[_Row] = _collate_rows


#: Set in a worker once :func:`collate` (directly, or through the stock ``default_collate``) has sent
#: a :class:`Batch`: from then on RocksDataset reads batches straight into shared memory. Until then
#: (and for good with a ``collate_fn`` that rebuilds batches from samples, stacking them into shared
#: memory of its own) batches stay in ordinary memory, so no batch is held in shared memory twice.
_collate_takes_batches = False


def collate_takes_batches() -> bool:
    """Whether :func:`collate` has sent a :class:`Batch` from this process (see above)."""
    return _collate_takes_batches


def collate(batch: Sequence[Mapping[str, Any]]) -> Sample:
    """``collate_fn`` for rocksds datasets: a stacked batch dict.

    A :class:`Batch` from :meth:`RocksDataset.__getitems__` is already stacked
    and is returned without touching its samples; any other sequence of
    sample dicts (e.g. from :class:`RocksIterableDataset`) is stacked like
    :func:`stack_samples`, with lists for values that cannot be stacked.
    Inside a DataLoader worker the batch's tensors are placed in one
    shared-memory block, so the batch crosses to the main process as one
    piece rather than one per field (the main process gets a plain dict).
    """
    global _collate_takes_batches
    shared = get_worker_info() is not None
    if not isinstance(batch, Batch):
        return _stack(batch, shared=shared)
    if not shared:
        return dict(batch.stacked)
    _collate_takes_batches = True
    tensors = {k: v for k, v in batch.stacked.items() if isinstance(v, torch.Tensor)}
    if _in_one_shared_block(tensors.values()):
        return _SharedBatch(batch.stacked)  # RocksDataset read the records straight into shared memory
    # In a worker, copy the fetched tensors into one shared-memory block: the
    # copy PyTorch would make per tensor when sending them, done once.
    out = dict(batch.stacked)
    for (key, value), dest in zip(tensors.items(), shared_block([(tuple(v.shape), v.dtype) for v in tensors.values()])):
        out[key] = dest.copy_(value)
    return _SharedBatch(out)
