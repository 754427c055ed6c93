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
from . import _shm

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
        block, dests = shared_block(specs)
        for (key, values), dest in zip(stackable.items(), dests):
            out[key] = torch.stack(values, out=dest)
        return _SharedBatch(out, block)
    for key, values in stackable.items():
        out[key] = torch.stack(values)
    return out


def shared_block(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> tuple[_shm.Block, list[torch.Tensor]]:
    """Empty contiguous tensors of the given (shape, dtype), all in one shared-memory block of this
    worker (reused across batches: see :mod:`rocksds.torch._shm`), and that block."""
    return _shm.take(specs)


class _SharedBatch(dict):
    """A batch dict made in a DataLoader worker, whose tensors lie in one shared-memory block.

    PyTorch sends each tensor storage between processes separately (one file
    descriptor handed over a socket per storage), which dominates the cost of
    small batches. This dict pickles its block once and unpickles as a plain
    ``dict`` of tensors over it, so the training loop never sees this class;
    the block goes back to the worker when those tensors are freed.
    """

    __slots__ = ("block",)

    def __init__(self, items: Mapping[str, Any], block: _shm.Block) -> None:
        super().__init__(items)
        self.block = block

    def __reduce__(self) -> tuple[Any, ...]:
        keys: list[str] = []
        specs: list[tuple[tuple[int, ...], torch.dtype]] = []
        offsets: list[int] = []
        others: dict[str, Any] = {}
        for key, value in self.items():
            offset = self.block.offset_of(value) if isinstance(value, torch.Tensor) else None
            if offset is None:
                others[key] = value  # replaced or added after stacking: pickled the usual way
                continue
            keys.append(key)
            specs.append((tuple(value.shape), value.dtype))
            offsets.append(offset)
        whole = self.block.sent() if keys else None
        return (_unpack_batch, (whole, list(self), keys, specs, offsets, others))


def _unpack_batch(whole: Optional[torch.Tensor], order: list[str], keys: list[str],
                  specs: list[tuple[tuple[int, ...], torch.dtype]], offsets: list[int], others: Sample) -> Sample:
    placed = dict(zip(keys, _shm.receive(whole, specs, offsets))) if whole is not None else {}
    return {key: placed[key] if key in placed else others[key] for key in order}


class Batch(Sequence):
    """What :meth:`RocksDataset.__getitems__` returns: a sequence of per-sample dicts.

    It also carries the whole batch, already stacked, as :attr:`stacked`;
    :func:`collate` returns that directly. Per-sample dicts (views into the
    stacked tensors, no copies) are only built if something indexes or
    iterates the batch, as ``default_collate`` does.
    """

    __slots__ = ("stacked", "_n", "_views", "block")

    def __init__(self, stacked: Sample, n: int, block: Optional[_shm.Block] = None) -> None:
        self.stacked = stacked
        self._n = n
        self._views: Optional[list[Sample]] = None
        #: The shared-memory block the stacked tensors were read into (in a DataLoader worker), if any.
        self.block = block

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
    block = batch.block
    if block is not None and all(block.offset_of(v) is not None for v in tensors.values()):
        return _SharedBatch(batch.stacked, block)  # RocksDataset read the records straight into shared memory
    # In a worker, copy the fetched tensors into one shared-memory block: the
    # copy PyTorch would make per tensor when sending them, done once.
    out = dict(batch.stacked)
    block, dests = shared_block([(tuple(v.shape), v.dtype) for v in tensors.values()])
    for (key, value), dest in zip(tensors.items(), dests):
        out[key] = dest.copy_(value)
    return _SharedBatch(out, block)
