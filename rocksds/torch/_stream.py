"""Streaming and resuming: :class:`RocksIterableDataset` and :class:`ResumableSampler`.

Public through :mod:`rocksds.torch`; the epoch plan itself lives in
``rocksds.torch._schedule`` (no torch there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import IterableDataset as _IterDataset
from torch.utils.data import Sampler as _Sampler
from torch.utils.data import get_worker_info

from ._schedule import UNEVEN_MODES, Schedule, key_runs
from ._batch import Sample, as_tensor
from ._handle import Handle, Transform, check_transform, probe
from ..errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["RocksIterableDataset", "ResumableSampler", "STATE_VERSION"]

#: Version of the dictionaries made by the ``state_dict`` methods of this module.
STATE_VERSION = 1


@dataclass
class _StreamProgress:
    """Where one process's iteration of a :class:`RocksIterableDataset` epoch stands."""

    epoch: int
    worker: int  # this DataLoader worker's id (0 without workers)
    num_workers: int  # of the DataLoader iterating
    role: int  # which share of the epoch's schedule this worker streams
    yielded: int  # samples of that share given out so far (the skip it resumed from included)


@dataclass
class _SamplerProgress:
    """Where an iteration of a :class:`ResumableSampler` epoch stands."""

    epoch: int
    consumed: int  # indices given out so far (the resumed start included)


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
        cache_gb: RocksDB block cache in GiB for the whole DataLoader, split across its workers
            (as for :class:`RocksDataset`).
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
        cache_gb: Optional[float] = None,
    ) -> None:
        check_transform("transform", transform)
        for name, value in (("seed", seed), ("block_size", block_size), ("buffer_size", buffer_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))):
            raise ArgumentTypeError(f"batch_size must be an integer or None, got {type(batch_size).__name__}")
        if (rank is None) != (world_size is None):
            raise InvalidArgumentError("pass rank and world_size together (or neither, to use torch.distributed)")
        if uneven not in UNEVEN_MODES:
            raise InvalidArgumentError(f"uneven must be one of {UNEVEN_MODES}, got {uneven!r}")
        self.path, self.field_names, self._n = probe(path, fields, cache_gb)
        self.transform = transform
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.block_size = int(block_size)
        self.buffer_size = int(buffer_size)
        self.uneven = uneven
        self.cache_gb = cache_gb
        self._explicit_rank = rank is not None
        self.rank, self.world_size = (int(rank), int(world_size)) if rank is not None else dist_rank()  # type: ignore[arg-type]
        self._handle = Handle(self.path, self.field_names, cache_gb)
        # Shared with worker processes (fork or spawn, persistent or not): [0] the epoch,
        # [1] 1 once a worker has started iterating it, [2] that DataLoader's num_workers.
        self._shared = torch.zeros(3, dtype=torch.int64).share_memory_()
        self._pending: Optional[dict[str, Any]] = None
        self._progress: Optional[_StreamProgress] = None
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
            self.rank, self.world_size = dist_rank()
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
        # Recorded now, not when the generator first runs: torchdata's StatefulDataLoader asks a worker for
        # its state right after calling iter(), before the first sample.
        progress = _StreamProgress(epoch, worker, num_workers, role, skip)
        self._progress = progress
        return self._stream(sched, progress)

    def _stream(self, sched: Schedule, progress: _StreamProgress) -> Iterator[Sample]:
        ds = self._handle.get()
        names = list(ds.field_names)
        variable = [ds.schema.fields[name].is_variable for name in names]
        transform = self.transform
        skip = progress.yielded  # where this share resumes (0 for a fresh epoch)
        for keys, emit in sched.windows(progress.role, skip):
            samples = [s for start, stop in key_runs(keys) for s in ds.iter(start, stop)]
            # Samples were read in key order; emit them in the window's order.
            order = np.searchsorted(np.sort(keys), keys[emit]).tolist()
            columns = []
            for name, is_var in zip(names, variable):
                picked = [samples[j][name] for j in order]
                if is_var:
                    columns.append([as_tensor(v) for v in picked])
                else:
                    columns.append(torch.from_numpy(np.stack(picked)).unbind(0))
            del samples
            for row in zip(*columns):
                sample = dict(zip(names, row))
                progress.yielded += 1
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
        progress = self._progress if self._progress is not None and self._progress.epoch == epoch else None
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
                state["num_workers"] = progress.num_workers
        elif info is not None:
            if progress is None:
                raise InvalidArgumentError("state_dict() inside a worker before it has started iterating")
            state["worker"] = {"id": progress.worker, "num_workers": progress.num_workers, "role": progress.role,
                               "yielded": progress.yielded}
        elif int(self._shared[1]):
            raise InvalidArgumentError(
                "this epoch is being read in DataLoader worker processes, which run ahead of the training loop; "
                "pass consumed=<samples the loop has taken this epoch> (e.g. steps * batch_size)"
            )
        elif progress is not None:
            state["consumed"] = progress.yielded
            state["num_workers"] = progress.num_workers
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
            self.rank, self.world_size = dist_rank()
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
        self.rank, self.world_size = (int(rank), int(world_size)) if rank is not None else dist_rank()  # type: ignore[arg-type]
        if not 0 <= self.rank < self.world_size:
            raise InvalidArgumentError(f"rank must be in 0..{self.world_size - 1}, got {self.rank}")
        self.epoch = 0
        self._pending: Optional[dict[str, Any]] = None
        self._progress: Optional[_SamplerProgress] = None

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
        progress = _SamplerProgress(epoch, start)
        self._progress = progress
        for i in self.indices()[start:].tolist():
            progress.consumed += 1
            yield i

    def _config(self) -> dict[str, Any]:
        return {"n": self.n, "seed": self.seed, "shuffle": self.shuffle, "rank": self.rank,
                "world_size": self.world_size, "uneven": self.uneven}

    def state_dict(self, consumed: Optional[int] = None) -> dict[str, Any]:
        """Where this rank stands in the current epoch (see the class docstring for ``consumed``)."""
        if consumed is None:
            if self._progress is not None and self._progress.epoch == self.epoch:
                consumed = self._progress.consumed
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


def dist_rank() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed when initialized, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
