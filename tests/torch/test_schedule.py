"""rocksds._schedule: the epoch plan behind RocksIterableDataset (pure arithmetic, no torch)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from rocksds.torch._schedule import Schedule, key_runs
from rocksds.errors import InvalidArgumentError


def plan(n, rank=0, world_size=1, num_workers=1, unit=5, block_size=4, buffer_size=7, epoch=2, uneven="exact", shuffle=True):
    return Schedule(n, rank, world_size, num_workers, unit, block_size, buffer_size, shuffle, 1, epoch, uneven)


def emitted(s: Schedule, worker: int, skip: int = 0) -> list[int]:
    return [int(k) for keys, emit in s.windows(worker, skip) for k in keys[emit]]


def loader_order(streams: list[list[int]], batch: int) -> list[int]:
    """What an in-order DataLoader yields when worker d produces streams[d] in batches of ``batch``."""
    chunks = [[s[i : i + batch] for i in range(0, len(s), batch)] for s in streams]
    out: list[int] = []
    for r in range(max((len(c) for c in chunks), default=0)):
        for c in chunks:
            if r < len(c):
                out += c[r]
    return out


@pytest.mark.parametrize("uneven", ["exact", "drop", "pad"])
def test_every_sample_once_per_epoch(uneven):
    for n, world_size, num_workers in itertools.product([0, 1, 7, 64, 101], [1, 2, 3, 5], [1, 2, 4]):
        seen, lengths = [], []
        for rank in range(world_size):
            s = plan(n, rank, world_size, num_workers, uneven=uneven)
            streams = [emitted(s, w) for w in range(num_workers)]
            assert [len(x) for x in streams] == [s.worker_len(w) for w in range(num_workers)]
            lengths.append(sum(map(len, streams)))
            assert lengths[-1] == s.rank_len
            seen += [k for x in streams for k in x]
        q, r = divmod(n, world_size)
        if uneven == "exact":
            assert sorted(seen) == list(range(n))
        elif uneven == "drop":
            assert lengths == [q] * world_size and max(Counter(seen).values(), default=1) == 1
        else:
            assert lengths == [q + (r > 0)] * world_size and set(seen) == set(range(n))


def test_order_depends_on_seed_and_epoch_only():
    a = emitted(plan(200, epoch=3), 0)
    assert a == emitted(plan(200, epoch=3), 0)
    assert a != emitted(plan(200, epoch=4), 0)
    assert emitted(plan(50, shuffle=False), 0) == list(range(50))
    with pytest.raises(InvalidArgumentError):
        plan(10, rank=2, world_size=2)
    with pytest.raises(InvalidArgumentError):
        plan(10, uneven="round")


def test_resume_reproduces_the_loader_order():
    for n, world_size, num_workers, unit in [(101, 1, 2, 5), (64, 2, 3, 4), (97, 3, 2, 8), (30, 1, 4, 3)]:
        for rank in range(world_size):
            s = plan(n, rank, world_size, num_workers, unit=unit)
            full = loader_order([emitted(s, w) for w in range(num_workers)], unit)
            assert sorted(full) == sorted(k for w in range(num_workers) for k in emitted(s, w))
            for done in range(0, s.units + 1):
                consumed = min(done * unit, s.rank_len)
                shift, skips = s.resume(consumed)
                streams = [emitted(s, (d + shift) % num_workers, skips[(d + shift) % num_workers]) for d in range(num_workers)]
                assert loader_order(streams, unit) == full[consumed:], (n, world_size, num_workers, rank, done)
            if unit + 1 < s.rank_len:  # several workers: restarts fall on batch boundaries
                with pytest.raises(InvalidArgumentError, match="batch boundary"):
                    s.resume(unit + 1)
    single = plan(40, unit=6)
    assert single.resume(13) == (0, [13])  # one reader: any sample count


def test_key_runs():
    assert key_runs(np.array([5, 3, 4, 9, 10, 0])) == [(0, 1), (3, 6), (9, 11)]
    assert key_runs(np.array([], dtype=np.int64)) == []
