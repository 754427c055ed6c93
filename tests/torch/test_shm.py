"""Shared-memory blocks reused across a worker's batches (rocksds/torch/_shm.py)."""

from __future__ import annotations

import gc
import io
import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.multiprocessing  # noqa: E402,F401  (registers the reducers that pass storages by descriptor)
from multiprocessing.reduction import ForkingPickler  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import rocksds  # noqa: E402
from rocksds.torch import RocksDataset, _batch, _shm  # noqa: E402

SPECS = [((4, 3, 5), torch.float32), ((4,), torch.int64), ((4, 2), torch.bool)]


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(_shm, "_pool", [])
    monkeypatch.setattr(_shm, "_pool_pid", os.getpid())
    return _shm._pool


def send(obj) -> bytes:
    """What a DataLoader worker's queue does to a batch: pickle it, storages passed by descriptor."""
    buf = io.BytesIO()
    ForkingPickler(buf).dump(obj)
    return buf.getvalue()


def fill(tensors, seed):
    g = torch.Generator().manual_seed(seed)
    tensors[0].copy_(torch.rand(tensors[0].shape, generator=g))
    tensors[1].copy_(torch.randint(0, 1000, tensors[1].shape, generator=g))
    tensors[2].copy_(torch.rand(tensors[2].shape, generator=g) > 0.5)
    return [t.clone() for t in tensors]


def test_layout_is_aligned_and_typed(pool):
    block, tensors = _shm.take(SPECS)
    assert block.storage.is_shared() and pool == [block]
    for t, (shape, dtype) in zip(tensors, SPECS):
        assert t.shape == shape and t.dtype == dtype and t.is_contiguous()
        assert block.offset_of(t) is not None and block.offset_of(t) % 64 == 0
    assert block.offset_of(torch.zeros(3)) is None  # ordinary memory is not inside the block
    assert block.offset_of(tensors[0].transpose(0, 1)) is None  # nor a non-contiguous view


def test_a_block_is_reused_only_once_both_sides_let_go(pool):
    block, tensors = _shm.take(SPECS)
    want = fill(tensors, 0)
    message = send(_batch._SharedBatch({"a": tensors[0], "b": tensors[1], "c": tensors[2]}, block))
    del tensors
    gc.collect()
    assert not block.free  # sent, not yet returned by the receiver
    other, more = _shm.take(SPECS)
    assert other is not block
    fill(more, 1)
    got = pickle.loads(message)
    assert type(got) is dict and list(got) == ["a", "b", "c"]
    for key, w in zip("abc", want):
        assert torch.equal(got[key], w)
    kept = got["a"][1]  # a view keeps the whole block held
    del got
    gc.collect()
    assert not block.free
    assert torch.equal(kept, want[0][1])
    del kept, more
    gc.collect()
    assert block.free and other.free
    again, tensors = _shm.take(SPECS)
    assert again is block  # refilled, not made anew
    assert len(pool) == 2


def test_a_short_or_larger_batch_gets_a_block_of_its_size(pool):
    block, tensors = _shm.take(SPECS)
    del tensors
    gc.collect()
    small, tensors = _shm.take([((1,), torch.uint8)])
    assert small is not block and block not in pool  # the free, far too big block was let go
    big, more = _shm.take([((1000, 1000), torch.uint8)])
    assert big.capacity >= 10**6 and len(pool) == 2


def test_a_pool_keeps_a_bounded_number_of_blocks(pool):
    held = [_shm.take(SPECS) for _ in range(_shm.POOL_BLOCKS + 2)]
    assert len({id(b) for b, _ in held}) == _shm.POOL_BLOCKS + 2
    assert pool == [b for b, _ in held[-_shm.POOL_BLOCKS:]]  # the newest; the others are freed with their batch


def test_plain_pickling_copies(pool):
    block, tensors = _shm.take(SPECS)
    want = fill(tensors, 2)
    got = pickle.loads(pickle.dumps(_batch._SharedBatch({"a": tensors[0]}, block)))
    assert torch.equal(got["a"], want[0])
    tensors[0].zero_()
    assert torch.equal(got["a"], want[0])  # a copy, not the block itself


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("shm") / "chips.rds")
    rng = np.random.default_rng(0)
    n = 96
    image = rng.random((n, 2, 16, 16), dtype=np.float32)
    schema = rocksds.Schema(fields={"image": rocksds.Field(dtype="float32", shape=(2, 16, 16)), "idx": rocksds.Field(dtype="int64", shape=())})
    with rocksds.create(path, schema) as w:
        w.extend({"image": image, "idx": np.arange(n)})
    return path, image


def test_dataloader_batches_stay_intact_while_held_and_blocks_are_reused(chips, monkeypatch):
    path, image = chips
    inodes: list[int] = []
    receive = _shm.receive

    def recording(whole, specs, offsets):
        fd, _size = whole.untyped_storage()._share_fd_cpu_()
        inodes.append(os.fstat(fd).st_ino)
        return receive(whole, specs, offsets)

    monkeypatch.setattr(_shm, "receive", recording)  # runs in this (the main) process only
    loader = DataLoader(RocksDataset(path), batch_size=4, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    held = []
    for step, batch in enumerate(loader):
        idx = batch["idx"].tolist()
        np.testing.assert_array_equal(batch["image"].numpy(), image[idx])
        if step % 4 == 0:
            held.append((idx, batch))  # held for the whole epoch: its block must never be refilled
    for idx, batch in held:
        np.testing.assert_array_equal(batch["image"].numpy(), image[idx])
    batches = len(image) // 4
    # Every batch travels in a block (a worker's first is read into ordinary memory and copied
    # there, see collate_takes_batches), and the blocks released come back round.
    assert len(inodes) == batches
    assert len(set(inodes)) < batches - len(held)


def test_a_forked_child_dropping_an_inherited_batch_returns_nothing(pool):
    block, tensors = _shm.take(SPECS)
    message = send(_batch._SharedBatch({"a": tensors[0]}, block))
    del tensors
    got = pickle.loads(message)
    pid = os.fork()
    if pid == 0:  # the child frees its copy of the parent's batch
        del got
        gc.collect()
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    gc.collect()
    assert not block.free  # the parent still holds it
    del got
    gc.collect()
    assert block.free
