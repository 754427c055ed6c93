"""Which samples each reader of a streamed epoch reads, and in which order.

This is the arithmetic behind :class:`rocksds.torch.RocksIterableDataset`,
kept free of torch and of storage so it can be checked on its own. An epoch
is built in four deterministic steps, each a pure function of the dataset
size and the options (never of timing or of which process asks):

1. **Blocks.** Keys ``0..n-1`` are cut into blocks of ``block_size``
   consecutive keys. With shuffling, the order of the blocks is permuted by a
   generator seeded with ``(seed, epoch)``; the concatenated blocks form the
   epoch's *global order* G, the same on every rank.
2. **Ranks.** Rank ``r`` takes one contiguous stretch of G (so it reads whole
   runs of neighbouring keys). ``uneven`` decides what happens when
   ``world_size`` does not divide ``n``: ``"exact"`` gives the first
   ``n % world_size`` ranks one sample more (every sample exactly once);
   ``"drop"`` gives every rank ``n // world_size`` and skips the last
   ``n % world_size`` samples of G; ``"pad"`` gives every rank
   ``ceil(n / world_size)``, repeating samples from the start of G.
3. **Workers.** The rank's stretch R is cut into *units* of ``unit`` samples
   (the DataLoader's batch size) and unit ``j`` goes to worker ``j % W``. A
   DataLoader with ``in_order=True`` hands its workers batch requests round
   robin, so batch ``j`` of the epoch is exactly unit ``j`` of R: the order the
   training loop sees is known in advance, which is what makes a restart
   from "samples consumed so far" exact.
4. **Buffer.** Each worker reads its stream in windows of ``buffer_size``
   samples (one sequential scan per run of adjacent keys) and, with
   shuffling, emits each window in an order drawn from
   ``(seed, epoch, rank, worker, window)``. Memory stays bounded by one
   window, and a restart skips whole windows without reading them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["Schedule", "UNEVEN_MODES", "key_runs"]

#: How an epoch is split when ``world_size`` does not divide the sample count.
UNEVEN_MODES = ("exact", "drop", "pad")

# Seed-sequence tags, so the block order and window orders never share a stream.
_BLOCK_TAG = 0
_WINDOW_TAG = 1


@dataclass(frozen=True)
class Schedule:
    """The epoch plan of one rank, for ``num_workers`` readers.

    Args:
        n: samples in the dataset.
        rank: this rank, ``0 <= rank < world_size``.
        world_size: number of ranks sharing the epoch.
        num_workers: readers on this rank (DataLoader workers, or 1).
        unit: samples per unit handed to one worker (the DataLoader batch size).
        block_size: consecutive keys kept together by the block shuffle.
        buffer_size: samples per shuffle window of one worker.
        shuffle: permute blocks and windows.
        seed: base seed (an integer >= 0).
        epoch: epoch number (an integer >= 0).
        uneven: one of :data:`UNEVEN_MODES`.
    """

    n: int
    rank: int
    world_size: int
    num_workers: int
    unit: int
    block_size: int
    buffer_size: int
    shuffle: bool
    seed: int
    epoch: int
    uneven: str = "exact"

    def __post_init__(self) -> None:
        for name in ("unit", "block_size", "buffer_size", "world_size", "num_workers"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n", "seed", "epoch"):
            if getattr(self, name) < 0:
                raise InvalidArgumentError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.rank < self.world_size:
            raise InvalidArgumentError(f"rank must be in 0..{self.world_size - 1}, got {self.rank}")
        if self.uneven not in UNEVEN_MODES:
            raise InvalidArgumentError(f"uneven must be one of {UNEVEN_MODES}, got {self.uneven!r}")

    # ------------------------------------------------------------------ ranks

    @property
    def rank_len(self) -> int:
        """Samples this rank reads per epoch."""
        q, r = divmod(self.n, self.world_size)
        if self.uneven == "exact":
            return q + (self.rank < r)
        if self.uneven == "drop":
            return q
        return q + (r > 0)

    @property
    def rank_start(self) -> int:
        """Position in the global order G where this rank's stretch starts."""
        q, r = divmod(self.n, self.world_size)
        if self.uneven == "exact":
            return self.rank * q + min(self.rank, r)
        return self.rank * self.rank_len

    # ------------------------------------------------------------------ workers

    @property
    def units(self) -> int:
        """Units (batches) of this rank per epoch, the last one possibly short."""
        return math.ceil(self.rank_len / self.unit)

    def worker_len(self, worker: int) -> int:
        """Samples in the stream of ``worker``."""
        units, w_count = self.units, self.num_workers
        owned = max(0, math.ceil((units - worker) / w_count))
        size = owned * self.unit
        if owned and (units - 1) % w_count == worker:
            size -= units * self.unit - self.rank_len
        return size

    def resume(self, consumed: int) -> tuple[int, list[int]]:
        """Where each worker restarts after the loop consumed ``consumed`` samples of this rank.

        Returns:
            ``(shift, skips)``: DataLoader worker ``d`` must play worker
            ``(d + shift) % num_workers`` of this schedule, because the
            restarted DataLoader asks worker 0 first; ``skips[w]`` samples of
            worker ``w``'s stream were already consumed.

        Raises:
            InvalidArgumentError: ``consumed`` is negative, beyond the epoch,
                or (with several workers) not a whole number of batches.
        """
        m = self.rank_len
        if not 0 <= consumed <= m:
            raise InvalidArgumentError(f"consumed must be in 0..{m} (samples of this rank's epoch), got {consumed}")
        w_count = self.num_workers
        if w_count == 1:
            return 0, [consumed]
        if consumed == m:
            return 0, [self.worker_len(w) for w in range(w_count)]
        if consumed % self.unit:
            raise InvalidArgumentError(
                f"with {w_count} workers a restart must fall on a batch boundary: consumed={consumed} is not a "
                f"multiple of batch_size={self.unit} (save the state between batches)"
            )
        done = consumed // self.unit
        rounds, extra = divmod(done, w_count)
        skips = [min(self.worker_len(w), (rounds + (w < extra)) * self.unit) for w in range(w_count)]
        return done % w_count, skips

    # ------------------------------------------------------------------ keys

    @cached_property
    def _blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """(block ids in global order, start of each in G, with G's length appended)."""
        nblocks = math.ceil(self.n / self.block_size)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, _BLOCK_TAG])
            order = rng.permutation(nblocks)
        else:
            order = np.arange(nblocks, dtype=np.int64)
        sizes = np.full(nblocks, self.block_size, dtype=np.int64)
        if nblocks:
            sizes[-1] = self.n - (nblocks - 1) * self.block_size
        starts = np.zeros(nblocks + 1, dtype=np.int64)
        np.cumsum(sizes[order], out=starts[1:])
        return order.astype(np.int64), starts

    def keys(self, worker: int, lo: int, hi: int) -> np.ndarray:
        """Sample keys at positions ``lo..hi-1`` of ``worker``'s stream, before the window shuffle."""
        pos = np.arange(lo, hi, dtype=np.int64)
        unit_idx, offset = np.divmod(pos, self.unit)
        g = self.rank_start + (worker + self.num_workers * unit_idx) * self.unit + offset
        if self.uneven == "pad" and self.n:
            g %= self.n
        if not self.shuffle:
            return g
        order, starts = self._blocks
        slot = np.searchsorted(starts, g, side="right") - 1
        return order[slot] * self.block_size + (g - starts[slot])

    def windows(self, worker: int, skip: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(keys, emit)`` per window of ``worker``'s stream from position ``skip`` on.

        ``keys`` are the window's keys in stream order (what to read);
        ``emit`` are indices into ``keys`` in the order samples leave the
        buffer, with the first ``skip`` positions of the stream left out.
        """
        size = self.worker_len(worker)
        k = self.buffer_size
        for first in range(skip // k * k, size, k):
            keys = self.keys(worker, first, min(first + k, size))
            if self.shuffle:
                rng = np.random.default_rng(
                    [self.seed, self.epoch, _WINDOW_TAG, self.rank, worker, first // k]
                )
                emit = rng.permutation(len(keys))
            else:
                emit = np.arange(len(keys))
            if first < skip:
                emit = emit[skip - first :]
            if len(emit):
                yield keys, emit


def key_runs(keys: np.ndarray) -> list[tuple[int, int]]:
    """Distinct ``keys`` -> maximal ``(start, stop)`` ranges of consecutive keys, in key order."""
    if len(keys) == 0:
        return []
    order = np.sort(keys)
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [len(order)]))
    return [(int(order[a]), int(order[b - 1]) + 1) for a, b in zip(starts, stops)]
