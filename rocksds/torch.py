"""PyTorch datasets over rocksds: map-style, streamed, sharded and resumable.

Install with ``pip install 'rocksds[torch]'``; the rest of rocksds never
imports torch.

Map-style (random access, shuffled by the DataLoader's sampler)::

    from torch.utils.data import DataLoader
    from rocksds.torch import RocksDataset, collate

    ds = RocksDataset("chips.rds", fields=["image", "mask"], cache_gb=1.0)
    loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=4,
                        drop_last=True, collate_fn=collate)
    for batch in loader:            # {"image": FloatTensor[128, ...], "mask": ByteTensor[128, ...]}
        ...

Samples are dicts keyed by field name (name the fields ``image``, ``mask``,
``bounds``, ``crs`` to follow TorchGeo's conventions); numeric values become
tensors of the field's dtype, ``bytes`` and ``str`` values stay Python
objects. :class:`RocksDataset` implements ``__getitems__``, so the DataLoader
fetches each batch with one RocksDB MultiGet per field, already stacked. With
``collate_fn=rocksds.torch.collate`` that stacked batch is used as is (no
per-sample work at all); the stock ``default_collate`` also works and gives
the same tensors, at the cost of splitting and re-stacking. Variable-shape,
``bytes`` and ``str`` fields come back as lists from :func:`collate` (the
stock collate cannot stack tensors of different shapes).

``transform`` maps one sample dict to another; ``batch_transform`` maps the
stacked batch dict (after ``transform`` and stacking) to another, e.g. an
augmentation applied to the whole batch at once; both run in the worker
processes.

Tensors share memory with the fetched bytes where that is safe: a batch is
decoded once into writable memory and the tensors (and per-sample views) are
built over it without a copy. A single-sample read (``ds[i]``) gets read-only
bytes from RocksDB, so it is copied once: no tensor is ever a writable view
over a read-only buffer, and PyTorch prints no "non-writable array" warning.

The dataset object keeps only its path and options (it is picklable); each
process opens its own RocksDB handle on first use, so it works with the
``fork``, ``spawn`` and ``forkserver`` start methods and with
``persistent_workers=True``. The block cache (``cache_gb``) is per process.
The length is fixed when the dataset object is created: samples appended
later are not seen until you create it again.

Several processes or machines: :class:`torch.utils.data.DistributedSampler` works with
:class:`RocksDataset` unchanged::

    sampler = DistributedSampler(ds, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(ds, batch_size=128, sampler=sampler, num_workers=4, collate_fn=collate)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...

To stop and resume mid-epoch with a map-style dataset, use
:class:`ResumableSampler` (a seeded shuffle, optionally sharded over ranks,
with ``set_epoch``, ``state_dict`` and ``load_state_dict``)::

    sampler = ResumableSampler(ds, seed=0)            # ranks from torch.distributed, if initialized
    loader = DataLoader(ds, batch_size=128, sampler=sampler, num_workers=4, collate_fn=collate)
    ...
    state = sampler.state_dict(consumed=steps * 128)  # with workers, say what the loop consumed
    sampler.load_state_dict(state)                    # in the new process, before iterating

Streaming: :class:`RocksIterableDataset` reads each worker's share with
sequential RocksDB scans instead of point lookups. Each epoch's order is a
pure function of ``(seed, epoch)`` and the options: the order of blocks of
``block_size`` consecutive samples is shuffled, the epoch is split into one
contiguous stretch per rank and into batch-sized units dealt round robin to
the DataLoader workers, and each worker shuffles its stream within windows of
``buffer_size`` samples (see ``rocksds._schedule`` for the exact recipe)::

    ds = RocksIterableDataset("chips.rds", shuffle=True, seed=0, batch_size=128)
    loader = DataLoader(ds, batch_size=128, num_workers=4, collate_fn=collate)
    for epoch in range(epochs):
        ds.set_epoch(epoch)                     # reaches persistent workers too
        for batch in loader: ...

Every sample is seen exactly once per epoch across all workers and ranks.
When ``world_size`` does not divide the sample count, ``uneven="exact"`` (the
default) gives the first ``n % world_size`` ranks one sample more, so ranks
can differ by one batch (harmless for evaluation; DDP training prefers equal
batch counts), ``uneven="drop"`` skips the last ``n % world_size`` samples
of the epoch's order (different ones each epoch when shuffling) and
``uneven="pad"`` repeats the first samples of the epoch's order. Ranks come
from ``torch.distributed`` when it is initialized (create the dataset, or
call ``set_epoch``, after ``init_process_group``), or from explicit ``rank=``
and ``world_size=``.

Mid-epoch save and restore (:class:`RocksIterableDataset`)::

    ds.set_epoch(epoch)
    for step, batch in enumerate(loader, start=1):
        ...
        state = ds.state_dict(consumed=step * 128)    # samples this rank's loop has taken
    # later, in a new process:
    ds = RocksIterableDataset("chips.rds", shuffle=True, seed=0, batch_size=128)
    ds.load_state_dict(state)                         # also restores the epoch
    for batch in DataLoader(ds, batch_size=128, num_workers=4, collate_fn=collate):
        ...                                           # exactly the rest of that epoch

With ``num_workers=0`` ``ds.state_dict()`` counts by itself. With worker
processes the dataset cannot see what the training loop has consumed (the
workers run ahead), so pass ``consumed=`` yourself: with several workers it
must be a whole number of batches, ``batch_size`` must equal the
DataLoader's, the DataLoader must keep ``in_order=True`` (the default), and
the restarted DataLoader must use the same number of workers (the state
records it, and a mismatch raises). Under
torchdata's ``StatefulDataLoader`` plain ``state_dict()`` calls made inside
the workers record each worker's own position instead, which it restores
per worker. A loaded state applies to its own epoch until ``set_epoch``
moves to another; call ``load_state_dict`` before the DataLoader starts its
workers.

Timing the batch path against per-sample reads: ``RocksDataset(...,
use_getitems=False)`` hides ``__getitems__`` so the DataLoader falls back to
one ``__getitem__`` call per sample (use ``default_collate`` there).
"""

from __future__ import annotations

import multiprocessing.util
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, Optional, Union

import numpy as np

from .errors import ArgumentTypeError, DependencyNotFoundError, IndexOutOfRangeError, InvalidArgumentError

try:
    import torch
    from torch.utils.data import Dataset as _MapDataset
    from torch.utils.data import IterableDataset as _IterDataset
    from torch.utils.data import Sampler as _Sampler
    from torch.utils.data import get_worker_info
except ImportError as _e:  # pragma: no cover - exercised only without torch
    raise DependencyNotFoundError(
        "rocksds.torch needs PyTorch; install it with: pip install 'rocksds[torch]'"
    ) from _e

from ._schedule import UNEVEN_MODES, Schedule, key_runs
from .reader import DEFAULT_CACHE_GB, Dataset, open_dataset

__all__ = ["RocksDataset", "RocksIterableDataset", "ResumableSampler", "Batch", "collate", "stack_samples"]

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]

#: Handles inherited through fork: RocksDB handles must not be closed in a
#: child, so they are kept alive here instead of being garbage-collected.
_INHERITED: list[Dataset] = []

#: Version of the dictionaries made by the ``state_dict`` methods of this module.
STATE_VERSION = 1


def _as_tensor(value: Any) -> Any:
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
            values = [_as_tensor(v) for v in values]
            first = values[0]
        if isinstance(first, torch.Tensor) and all(
            isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values
        ):
            stackable[key] = values
        out[key] = values
    if shared and stackable:
        specs = [((len(v), *v[0].shape), v[0].dtype) for v in stackable.values()]
        for (key, values), dest in zip(stackable.items(), _shared_block(specs)):
            out[key] = torch.stack(values, out=dest)
        return _SharedBatch(out)
    for key, values in stackable.items():
        out[key] = torch.stack(values)
    return out


#: Byte alignment of each tensor inside a shared batch block.
_ALIGN = 64


def _shared_block(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
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
        return [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(n)]


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
    shared = get_worker_info() is not None
    if not isinstance(batch, Batch):
        return _stack(batch, shared=shared)
    if not shared:
        return dict(batch.stacked)
    # In a worker, copy the fetched tensors into one shared-memory block: the
    # copy PyTorch would make per tensor when sending them, done once.
    tensors = {k: v for k, v in batch.stacked.items() if isinstance(v, torch.Tensor)}
    out = dict(batch.stacked)
    for (key, value), dest in zip(tensors.items(), _shared_block([(tuple(v.shape), v.dtype) for v in tensors.values()])):
        out[key] = dest.copy_(value)
    return _SharedBatch(out)


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


class RocksIterableDataset(_IterDataset):
    """Samples streamed with sequential scans, sharded over workers and ranks.

    See the module docstring for the epoch recipe, the ``uneven`` modes and
    saving and restoring mid-epoch.

    Args:
        path: the rocksds dataset directory.
        fields: fields to read (default: all, in schema order).
        transform: called on each sample dict; returns the sample to use.
        shuffle: shuffle block order and within each worker's buffer.
        seed: base seed (integer >= 0); the order depends on ``(seed, epoch)``.
        batch_size: the DataLoader's batch size. Units of this many samples
            are dealt round robin to workers, so the training loop sees a
            known order and a restart from ``consumed`` samples is exact.
            Needed to restore mid-epoch with several workers; without it
            workers get units of ``block_size`` samples.
        block_size: consecutive samples kept together by the block shuffle
            (larger: longer sequential scans, coarser shuffle).
        buffer_size: samples each worker holds and shuffles at a time
            (memory: about ``buffer_size`` samples per worker).
        rank: this process's rank; with ``world_size``, overrides torch.distributed.
        world_size: number of ranks sharing each epoch.
        uneven: ``"exact"``, ``"drop"`` or ``"pad"``: how to split an epoch
            that ``world_size`` does not divide (module docstring).
        cache_gb: RocksDB block cache per process, in GiB.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        fields: Optional[Sequence[str]] = None,
        transform: Optional[Transform] = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        batch_size: Optional[int] = None,
        block_size: int = 256,
        buffer_size: int = 2048,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        uneven: str = "exact",
        cache_gb: float = DEFAULT_CACHE_GB,
    ) -> None:
        _check_transform("transform", transform)
        for name, value in (("seed", seed), ("block_size", block_size), ("buffer_size", buffer_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))):
            raise ArgumentTypeError(f"batch_size must be an integer or None, got {type(batch_size).__name__}")
        if (rank is None) != (world_size is None):
            raise InvalidArgumentError("pass rank and world_size together (or neither, to use torch.distributed)")
        if uneven not in UNEVEN_MODES:
            raise InvalidArgumentError(f"uneven must be one of {UNEVEN_MODES}, got {uneven!r}")
        self.path, self.fields, self._n = _probe(path, fields, cache_gb)
        self.transform = transform
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.block_size = int(block_size)
        self.buffer_size = int(buffer_size)
        self.uneven = uneven
        self.cache_gb = cache_gb
        self._explicit_rank = rank is not None
        self.rank, self.world_size = (int(rank), int(world_size)) if rank is not None else _dist_rank()  # type: ignore[arg-type]
        self._handle = _Handle(self.path, self.fields, cache_gb)
        # Shared with worker processes (fork or spawn, persistent or not): [0] the epoch,
        # [1] 1 once a worker has started iterating it, [2] that DataLoader's num_workers.
        self._shared = torch.zeros(3, dtype=torch.int64).share_memory_()
        self._pending: Optional[dict[str, Any]] = None
        self._progress: Optional[list[int]] = None
        self._schedule(0, 1)  # validate the options now rather than in a worker

    # ------------------------------------------------------------------ plan

    @property
    def epoch(self) -> int:
        """The epoch the next iteration streams."""
        return int(self._shared[0])

    def set_epoch(self, epoch: int) -> None:
        """Stream epoch ``epoch`` next (reaches already-running persistent workers)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise InvalidArgumentError(f"epoch must be an integer >= 0, got {epoch!r}")
        if not self._explicit_rank:
            self.rank, self.world_size = _dist_rank()
        self._shared[0] = int(epoch)
        self._shared[1] = 0
        self._progress = None
        if self._pending is not None and self._pending["epoch"] != epoch:
            self._pending = None

    def _schedule(self, epoch: int, num_workers: int) -> Schedule:
        return Schedule(
            n=self._n,
            rank=self.rank,
            world_size=self.world_size,
            num_workers=num_workers,
            unit=self.batch_size or self.block_size,
            block_size=self.block_size,
            buffer_size=self.buffer_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            uneven=self.uneven,
        )

    def __len__(self) -> int:
        """Samples this rank streams per epoch."""
        return self._schedule(0, 1).rank_len

    def __repr__(self) -> str:
        return (
            f"RocksIterableDataset({self.path!r}, n={self._n}, rank={self.rank}/{self.world_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})"
        )

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            self._shared[1] = 1
            self._shared[2] = num_workers
        epoch = self.epoch
        sched = self._schedule(epoch, num_workers)
        role, skip = worker, 0
        state = self._pending if self._pending is not None and self._pending["epoch"] == epoch else None
        if state is not None and "worker" in state:
            own = state["worker"]
            if (own["id"], own["num_workers"]) != (worker, num_workers):
                raise InvalidArgumentError(
                    f"state was saved by worker {own['id']} of {own['num_workers']}; it cannot resume worker "
                    f"{worker} of {num_workers}"
                )
            role, skip = own["role"], own["yielded"]
        elif state is not None:
            consumed = state["consumed"]
            saved_workers = state.get("num_workers")
            if 0 < consumed < sched.rank_len and saved_workers not in (None, num_workers):
                raise InvalidArgumentError(
                    f"state was saved while {saved_workers} reader(s) streamed this epoch; resume with the same "
                    f"DataLoader num_workers ({saved_workers}, or 0 for 1), not {num_workers}"
                )
            if num_workers > 1 and self.batch_size is None and 0 < consumed < sched.rank_len:
                raise InvalidArgumentError(
                    "restoring mid-epoch with several DataLoader workers needs batch_size= (equal to the "
                    "DataLoader's) on RocksIterableDataset"
                )
            shift, skips = sched.resume(consumed)
            role = (worker + shift) % num_workers
            skip = skips[role]
        return self._stream(sched, worker, role, skip)

    def _stream(self, sched: Schedule, worker: int, role: int, skip: int) -> Iterator[Sample]:
        ds = self._handle.get()
        names = list(ds.fields)
        variable = [ds.schema.fields[name].is_variable for name in names]
        progress = [sched.epoch, worker, sched.num_workers, role, skip]
        self._progress = progress
        transform = self.transform
        for keys, emit in sched.windows(role, skip):
            samples = [s for start, stop in key_runs(keys) for s in ds.iter(start, stop)]
            # Samples were read in key order; emit them in the window's order.
            order = np.searchsorted(np.sort(keys), keys[emit]).tolist()
            columns = []
            for name, is_var in zip(names, variable):
                picked = [samples[j][name] for j in order]
                if is_var:
                    columns.append([_as_tensor(v) for v in picked])
                else:
                    columns.append(torch.from_numpy(np.stack(picked)).unbind(0))
            del samples
            for row in zip(*columns):
                sample = dict(zip(names, row))
                progress[4] += 1
                yield sample if transform is None else transform(sample)

    # ------------------------------------------------------------------ state

    def _config(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "block_size": self.block_size,
            "buffer_size": self.buffer_size,
            "uneven": self.uneven,
        }

    def state_dict(self, consumed: Optional[int] = None) -> dict[str, Any]:
        """Where this rank stands in the current epoch.

        Args:
            consumed: samples of this rank's epoch the training loop has taken
                from the DataLoader. Required when the DataLoader has worker
                processes; counted automatically with ``num_workers=0``.
                Inside a worker (torchdata's StatefulDataLoader calls it
                there) the state records that worker's own position.

        Raises:
            InvalidArgumentError: workers iterate this epoch and ``consumed`` was not given.
        """
        epoch = self.epoch
        state: dict[str, Any] = {"version": STATE_VERSION, "epoch": epoch, **self._config()}
        info = get_worker_info()
        progress = self._progress if self._progress is not None and self._progress[0] == epoch else None
        pending = self._pending if self._pending is not None and self._pending["epoch"] == epoch else None
        if consumed is not None:
            if isinstance(consumed, bool) or not isinstance(consumed, (int, np.integer)):
                raise ArgumentTypeError(f"consumed must be an integer, got {type(consumed).__name__}")
            if not 0 <= consumed <= len(self):
                raise InvalidArgumentError(f"consumed must be in 0..{len(self)} for this rank, got {consumed}")
            state["consumed"] = int(consumed)
            if int(self._shared[1]):
                state["num_workers"] = int(self._shared[2])
            elif progress is not None:
                state["num_workers"] = progress[2]
        elif info is not None:
            if progress is None:
                raise InvalidArgumentError("state_dict() inside a worker before it has started iterating")
            _epoch, worker, num_workers, role, yielded = progress
            state["worker"] = {"id": worker, "num_workers": num_workers, "role": role, "yielded": yielded}
        elif int(self._shared[1]):
            raise InvalidArgumentError(
                "this epoch is being read in DataLoader worker processes, which run ahead of the training loop; "
                "pass consumed=<samples the loop has taken this epoch> (e.g. steps * batch_size)"
            )
        elif progress is not None:
            state["consumed"] = progress[4]
            state["num_workers"] = progress[2]
        elif pending is not None:
            return dict(pending)
        else:
            state["consumed"] = 0
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration of its epoch yields only what was not consumed.

        Also sets the epoch to the saved one. The options that shape the
        epoch (seed, shuffle, sizes, rank, world size, sample count) must match.

        Raises:
            InvalidArgumentError: the state comes from a different setup.
        """
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise InvalidArgumentError(f"not a RocksIterableDataset state (version {STATE_VERSION}): {state!r}")
        if not self._explicit_rank:
            self.rank, self.world_size = _dist_rank()
        _check_config(state, self._config())
        if ("consumed" in state) == ("worker" in state):
            raise InvalidArgumentError("state must hold either 'consumed' or 'worker'")
        if "consumed" in state and not 0 <= state["consumed"] <= len(self):
            raise InvalidArgumentError(f"state consumed={state['consumed']} is outside 0..{len(self)}")
        self._pending = dict(state)
        self._progress = None
        self._shared[0] = int(state["epoch"])
        self._shared[1] = 0


class ResumableSampler(_Sampler[int]):
    """A seeded, epoch-aware sampler for :class:`RocksDataset` that can stop and resume mid-epoch.

    Epoch ``e`` visits a permutation of ``0..n-1`` drawn from ``(seed, e)``
    (or ``0..n-1`` in order without shuffling); with several ranks, rank
    ``r`` takes every ``world_size``-th index of it starting at ``r``, like
    :class:`~torch.utils.data.DistributedSampler`. ``uneven`` has the same
    meaning as for :class:`RocksIterableDataset`.

    The DataLoader consumes a sampler in order, so a state counted in
    samples the training loop has taken is exact. With ``num_workers=0``
    :meth:`state_dict` counts by itself; with worker processes the DataLoader
    draws indices ahead of the loop, so pass ``consumed=``.

    Args:
        data_source: the dataset (anything with ``len``), or the sample count.
        shuffle: permute each epoch.
        seed: base seed (integer >= 0).
        rank: this rank; with ``world_size``, overrides torch.distributed.
        world_size: number of ranks.
        uneven: ``"exact"``, ``"drop"`` or ``"pad"`` (see the module docstring).
    """

    def __init__(
        self,
        data_source: Any,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        uneven: str = "exact",
    ) -> None:
        n = data_source if isinstance(data_source, (int, np.integer)) else len(data_source)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidArgumentError(f"seed must be an integer >= 0, got {seed!r}")
        if (rank is None) != (world_size is None):
            raise InvalidArgumentError("pass rank and world_size together (or neither, to use torch.distributed)")
        if uneven not in UNEVEN_MODES:
            raise InvalidArgumentError(f"uneven must be one of {UNEVEN_MODES}, got {uneven!r}")
        self.n, self.shuffle, self.seed, self.uneven = int(n), bool(shuffle), int(seed), uneven
        self.rank, self.world_size = (int(rank), int(world_size)) if rank is not None else _dist_rank()  # type: ignore[arg-type]
        if not 0 <= self.rank < self.world_size:
            raise InvalidArgumentError(f"rank must be in 0..{self.world_size - 1}, got {self.rank}")
        self.epoch = 0
        self._pending: Optional[dict[str, Any]] = None
        self._progress: Optional[list[int]] = None

    def set_epoch(self, epoch: int) -> None:
        """Visit epoch ``epoch`` next."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise InvalidArgumentError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)
        self._progress = None
        if self._pending is not None and self._pending["epoch"] != epoch:
            self._pending = None

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, in order."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n, dtype=np.int64)
        ws = self.world_size
        if self.uneven == "drop":
            order = order[: self.n - self.n % ws]
        elif self.uneven == "pad" and self.n % ws:
            order = np.resize(order, self.n + ws - self.n % ws)  # repeats from the start
        return order[self.rank :: ws]

    def __len__(self) -> int:
        q, r = divmod(self.n, self.world_size)
        return {"exact": q + (self.rank < r), "drop": q, "pad": q + (r > 0)}[self.uneven]

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        pending = self._pending if self._pending is not None and self._pending["epoch"] == epoch else None
        start = pending["consumed"] if pending is not None else 0
        progress = [epoch, start]
        self._progress = progress
        for i in self.indices()[start:].tolist():
            progress[1] += 1
            yield i

    def _config(self) -> dict[str, Any]:
        return {"n": self.n, "seed": self.seed, "shuffle": self.shuffle, "rank": self.rank,
                "world_size": self.world_size, "uneven": self.uneven}

    def state_dict(self, consumed: Optional[int] = None) -> dict[str, Any]:
        """Where this rank stands in the current epoch (see the class docstring for ``consumed``)."""
        if consumed is None:
            if self._progress is not None and self._progress[0] == self.epoch:
                consumed = self._progress[1]
            elif self._pending is not None and self._pending["epoch"] == self.epoch:
                consumed = self._pending["consumed"]
            else:
                consumed = 0
        elif isinstance(consumed, bool) or not isinstance(consumed, (int, np.integer)) or not 0 <= consumed <= len(self):
            raise InvalidArgumentError(f"consumed must be an integer in 0..{len(self)}, got {consumed!r}")
        return {"version": STATE_VERSION, "epoch": self.epoch, **self._config(), "consumed": int(consumed)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration of its epoch skips what was consumed.

        Raises:
            InvalidArgumentError: the state comes from a different setup.
        """
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION or "consumed" not in state:
            raise InvalidArgumentError(f"not a ResumableSampler state (version {STATE_VERSION}): {state!r}")
        _check_config(state, self._config())
        if not 0 <= state["consumed"] <= len(self):
            raise InvalidArgumentError(f"state consumed={state['consumed']} is outside 0..{len(self)}")
        self._pending = dict(state)
        self._progress = None
        self.epoch = int(state["epoch"])


def _check_config(state: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
    for key, value in mine.items():
        if state.get(key) != value:
            raise InvalidArgumentError(
                f"state was saved with {key}={state.get(key)!r} but this one has {key}={value!r}; "
                "create it with the same options (and the same data) to resume"
            )


def _dist_rank() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed when initialized, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
