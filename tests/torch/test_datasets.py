"""rocksds.torch: real DataLoaders (fork and spawn), sharding, shuffling, resume, torch.distributed."""

from __future__ import annotations

import json
import os
import socket
import warnings
from types import SimpleNamespace
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.multiprocessing as torch_mp  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler, default_collate  # noqa: E402

import rocksds  # noqa: E402
from rocksds.torch import _batch, _handle, _map, _stream  # noqa: E402
from rocksds.torch import Batch, RocksDataset, RocksIterableDataset, ResumableSampler, collate  # noqa: E402

N = 300


def _samples(n: int) -> list[dict]:
    rng = np.random.default_rng(42)
    return [
        {
            "image": rng.standard_normal((2, 4, 4)).astype(np.float32),
            "mask": rng.integers(0, 255, (1, 4, 4), dtype=np.uint8),
            "idx": i,
            "points": rng.standard_normal((i % 4, 2)).astype(np.float32),
            "name": f"chip-{i}",
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(path, samples): N samples with fixed, variable-shape and str fields; field idx holds the index."""
    schema = rocksds.Schema(
        fields={
            "image": rocksds.Field(dtype="float32", shape=(2, 4, 4)),
            "mask": rocksds.Field(dtype="uint8", shape=(1, 4, 4)),
            "idx": rocksds.Field(dtype="int64", shape=()),
            "points": rocksds.Field(dtype="float32", shape=(None, 2)),
            "name": rocksds.Field(dtype="str"),
        }
    )
    samples = _samples(N)
    path = tmp_path_factory.mktemp("torch") / "chips.rds"
    with rocksds.create(path, schema) as w:
        w.extend(samples)
    return str(path), samples


@pytest.fixture(autouse=True)
def _no_warnings():
    # A writable tensor over read-only bytes makes torch warn; any warning fails the test.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


FIXED = ["image", "mask", "idx"]


def in_shared_block(batch: dict, block, fields=FIXED) -> bool:
    """Whether every fixed-shape field of ``batch`` lies inside ``block``, a worker's shared-memory block."""
    return block is not None and block.storage.is_shared() and all(block.offset_of(batch[k]) is not None for k in fields)


def check_batch(batch: dict, samples: list[dict], fields=FIXED) -> list[int]:
    """Assert a collated batch matches what was written; return its indices."""
    idx = batch["idx"].tolist()
    for name in fields:
        value = batch[name]
        for row, i in enumerate(idx):
            got = value[row]
            want = samples[i][name]
            if isinstance(want, np.ndarray):
                assert got.dtype == torch.from_numpy(want).dtype
                np.testing.assert_array_equal(got.numpy(), want)
            else:
                assert (got.item() if isinstance(got, torch.Tensor) else got) == want
    return idx


def fake_worker_info(monkeypatch, info) -> None:
    """Make rocksds.torch believe it runs in a DataLoader worker described by ``info()``."""
    for module in (_batch, _handle, _map, _stream):
        monkeypatch.setattr(module, "get_worker_info", info)


def checking_collate(batch):
    """collate_fn that proves the DataLoader went through __getitems__ (runs in the workers)."""
    if not isinstance(batch, Batch):
        raise AssertionError(f"DataLoader did not use __getitems__: got {type(batch).__name__}")
    return collate(batch)


# ---------------------------------------------------------------- map-style


def test_getitem_sample_dict(data):
    path, samples = data
    ds = RocksDataset(path)
    assert len(ds) == N
    s = ds[7]
    assert set(s) == {"image", "mask", "idx", "points", "name"}
    assert s["image"].dtype == torch.float32 and s["mask"].dtype == torch.uint8
    np.testing.assert_array_equal(s["image"].numpy(), samples[7]["image"])
    np.testing.assert_array_equal(s["points"].numpy(), samples[7]["points"])
    assert s["name"] == "chip-7" and s["idx"].item() == 7
    s["image"] += 1  # writable, and a private copy: the next read is unchanged
    np.testing.assert_array_equal(ds[7]["image"].numpy(), samples[7]["image"])
    assert ds[-1]["idx"].item() == N - 1
    with pytest.raises(IndexError):
        ds[N]
    with pytest.raises(rocksds.FieldNotFoundError):
        RocksDataset(path, fields=["nope"])


def test_getitems_equals_getitem(data):
    path, samples = data
    ds = RocksDataset(path)
    idx = [5, 0, 299, 17, 17, -3]
    batch = ds.__getitems__(idx)
    assert isinstance(batch, Batch) and len(batch) == len(idx)
    fast = collate(batch)
    slow = [ds[i] for i in idx]
    for name in FIXED:
        assert torch.equal(fast[name], default_collate([s[name] for s in slow]))
        assert torch.equal(fast[name], default_collate([s[name] for s in batch]))
    assert fast["name"] == [s["name"] for s in slow]
    assert all(torch.equal(a, b["points"]) for a, b in zip(fast["points"], slow))
    # Per-sample views share the stacked batch's memory (no copies), and it is writable.
    image = fast["image"]
    assert image.is_contiguous() and batch[1]["image"].data_ptr() == image[1].data_ptr()
    image[0] += 1
    # The stock default_collate works on the same Batch (fixed-shape fields only).
    fixed = RocksDataset(path, fields=FIXED)
    stock = default_collate(fixed.__getitems__(idx))
    assert check_batch(stock, samples) == [i % N for i in idx]


def test_use_getitems_false_is_per_item(data):
    path, samples = data
    ds = RocksDataset(path, fields=FIXED, use_getitems=False)
    assert ds.__getitems__ is None
    per_item = list(DataLoader(ds, batch_size=64))
    batched = list(DataLoader(RocksDataset(path, fields=FIXED), batch_size=64, collate_fn=checking_collate))
    for a, b in zip(per_item, batched, strict=True):
        for name in FIXED:
            assert torch.equal(a[name], b[name])
    with pytest.raises(rocksds.InvalidArgumentError, match="use_getitems"):
        RocksDataset(path, batch_transform=lambda b: b, use_getitems=False)


def add_one(sample):
    return {**sample, "image": sample["image"] + 1, "extra": sample["idx"] * 2}


def double_image(batch):
    return {**batch, "image": batch["image"] * 2}


def test_transform_and_batch_transform(data):
    path, samples = data
    ds = RocksDataset(path, fields=FIXED, transform=add_one, batch_transform=double_image)
    idx = [3, 1, 4, 1, 5]
    for batch in (collate(ds.__getitems__(idx)), default_collate(ds.__getitems__(idx))):
        want = np.stack([(samples[i]["image"] + 1) * 2 for i in idx])
        np.testing.assert_allclose(batch["image"].numpy(), want)
        assert batch["extra"].tolist() == [2 * i for i in idx]
    assert ds[2]["extra"].item() == 4  # per-item path: transform only
    bad = RocksDataset(path, fields=FIXED, batch_transform=lambda b: {"image": b["image"].sum()})
    assert collate(bad.__getitems__([0, 1]))["image"].dim() == 0
    with pytest.raises(rocksds.InvalidArgumentError, match="batch axis"):
        default_collate(bad.__getitems__([0, 1]))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_every_index_once(data, context):
    path, samples = data
    ds = RocksDataset(path, fields=["image", "mask", "idx", "points"])
    loader = DataLoader(
        ds,
        batch_size=32,
        shuffle=True,
        num_workers=2,
        collate_fn=checking_collate,
        multiprocessing_context=context,
        persistent_workers=True,
    )
    for _epoch in range(2):
        seen: list[int] = []
        for batch in loader:
            assert type(batch) is dict  # the worker's one-block batch arrives as a plain dict
            assert batch["image"].shape[1:] == (2, 4, 4) and batch["mask"].dtype == torch.uint8
            seen += check_batch(batch, samples)
            for pts, i in zip(batch["points"], batch["idx"].tolist()):
                np.testing.assert_array_equal(pts.numpy(), samples[i]["points"])
        assert sorted(seen) == list(range(N))
    if context == "fork":  # the stock collate through the same workers
        stock = DataLoader(RocksDataset(path, fields=FIXED), batch_size=32, shuffle=True, num_workers=2)
        assert sorted(i for b in stock for i in check_batch(b, samples)) == list(range(N))


def test_worker_batches_share_one_block(data, monkeypatch):
    import pickle

    path, samples = data
    ds = RocksDataset(path)
    fake_worker_info(monkeypatch, lambda: SimpleNamespace(id=0, num_workers=1))  # collate as if in a worker
    packed = [collate(ds.__getitems__([4, 2, 9])), collate([ds[4], ds[2], ds[9]])]
    monkeypatch.undo()
    for batch in packed:
        storages = {batch[k].untyped_storage().data_ptr() for k in FIXED}
        assert len(storages) == 1 and in_shared_block(batch, batch.block)
        batch["extra"] = torch.ones(3)  # what a wrapping collate_fn might add or replace
        batch["idx"] = batch["idx"] + 0
        back = pickle.loads(pickle.dumps(batch))
        assert type(back) is dict and list(back) == list(batch)
        assert check_batch(back, samples) == [4, 2, 9] and back["name"] == ["chip-4", "chip-2", "chip-9"]
        assert torch.equal(back["extra"], torch.ones(3))
        for pts, i in zip(back["points"], [4, 2, 9]):
            np.testing.assert_array_equal(pts.numpy(), samples[i]["points"])


def test_workers_read_straight_into_shared_memory_once_collate_takes_batches(data, monkeypatch):
    from rocksds.torch import _batch

    path, samples = data
    ds = RocksDataset(path)
    monkeypatch.setattr(_batch, "_collate_takes_batches", False)
    fake_worker_info(monkeypatch, lambda: SimpleNamespace(id=0, num_workers=2))
    first = ds.__getitems__([1, 2])
    # The stock default_collate stacks into shared memory of its own: until collate has taken a
    # batch in this worker, batches stay in ordinary memory (never two shared copies of one batch).
    assert first.block is None and not first.stacked["image"].is_shared()
    collate(first)
    second = ds.__getitems__([3, 5])
    storages = {second.stacked[k].untyped_storage().data_ptr() for k in FIXED}
    assert in_shared_block(second.stacked, second.block) and len(storages) == 1
    sent = collate(second)
    assert all(sent[k].data_ptr() == second.stacked[k].data_ptr() for k in FIXED)  # sent as read, no copy
    assert check_batch(sent, samples) == [3, 5]


def test_stock_default_collate_takes_the_batch_as_read(data, monkeypatch):
    from rocksds.torch import _batch

    path, samples = data
    ds = RocksDataset(path, fields=FIXED)
    batch = ds.__getitems__([7, 3, 3])
    stock = default_collate(batch)
    assert all(stock[k].data_ptr() == batch.stacked[k].data_ptr() for k in FIXED)  # not stacked again
    assert check_batch(stock, samples) == [7, 3, 3]
    # Rows gathered by hand are still collated sample by sample.
    rows = default_collate([batch[2], batch[0]])
    assert rows["image"].data_ptr() != batch.stacked["image"].data_ptr()
    assert check_batch(rows, samples) == [3, 7]
    # In a worker, default_collate also switches reads straight into shared memory.
    monkeypatch.setattr(_batch, "_collate_takes_batches", False)
    fake_worker_info(monkeypatch, lambda: SimpleNamespace(id=0, num_workers=2))
    default_collate(ds.__getitems__([1, 2]))
    second = ds.__getitems__([4, 6])
    assert in_shared_block(second.stacked, second.block)
    sent = default_collate(second)
    assert all(sent[k].data_ptr() == second.stacked[k].data_ptr() for k in FIXED)
    assert check_batch(sent, samples) == [4, 6]


def test_distributed_sampler_unchanged(data):
    path, samples = data
    ds = RocksDataset(path, fields=FIXED)
    seen = []
    for rank in range(3):
        sampler = DistributedSampler(ds, num_replicas=3, rank=rank, shuffle=True, seed=1)
        sampler.set_epoch(2)
        loader = DataLoader(ds, batch_size=16, sampler=sampler, collate_fn=checking_collate)
        seen += [i for b in loader for i in check_batch(b, samples)]
    assert sorted(seen) == list(range(N))


@pytest.mark.parametrize("uneven", ["exact", "drop", "pad"])
def test_resumable_sampler_shards(uneven):
    n, ws = 29, 4
    parts = [ResumableSampler(n, rank=r, world_size=ws, seed=3, uneven=uneven) for r in range(ws)]
    for p in parts:
        p.set_epoch(1)
    got = [list(p) for p in parts]
    assert [len(g) for g in got] == [len(p) for p in parts]
    flat = sorted(i for g in got for i in g)
    want = {"exact": list(range(n)), "drop": None, "pad": None}[uneven]
    if want is not None:
        assert flat == want
    elif uneven == "drop":
        assert len(set(flat)) == len(flat) == 28
    else:
        assert set(flat) == set(range(n)) and len(flat) == 32
    parts[0].set_epoch(2)
    assert list(parts[0]) != got[0]


def test_resumable_sampler_resume(data):
    path, samples = data
    ds = RocksDataset(path, fields=["idx"])
    sampler = ResumableSampler(ds, seed=4)
    sampler.set_epoch(6)
    full = [i for b in DataLoader(ds, batch_size=16, sampler=sampler, collate_fn=collate) for i in b["idx"].tolist()]
    assert sorted(full) == list(range(N))
    # num_workers=0: the sampler counts what the loop took.
    loader = DataLoader(ds, batch_size=16, sampler=sampler, collate_fn=collate)
    taken = [i for _, b in zip(range(5), loader) for i in b["idx"].tolist()]
    state = sampler.state_dict()
    assert state["consumed"] == 80 and state["epoch"] == 6
    fresh = ResumableSampler(ds, seed=4)
    fresh.load_state_dict(state)
    rest = [i for b in DataLoader(ds, batch_size=16, sampler=fresh, collate_fn=collate) for i in b["idx"].tolist()]
    assert taken + rest == full
    # Workers prefetch ahead of the loop: pass what the loop consumed.
    loader = DataLoader(ds, batch_size=16, sampler=sampler, num_workers=2, collate_fn=collate)
    taken = [i for _, b in zip(range(3), loader) for i in b["idx"].tolist()]
    assert sampler.state_dict()["consumed"] > len(taken)
    fresh = ResumableSampler(ds, seed=4)
    fresh.load_state_dict(sampler.state_dict(consumed=len(taken)))
    rest = [i for b in DataLoader(ds, batch_size=16, sampler=fresh, num_workers=2, collate_fn=collate) for i in b["idx"].tolist()]
    assert taken + rest == full
    with pytest.raises(rocksds.InvalidArgumentError, match="seed"):
        ResumableSampler(ds, seed=5).load_state_dict(state)


# ---------------------------------------------------------------- iterable


class FakeWorker:
    """Stands in for torch's worker info, to play worker ``id`` of ``num_workers`` in-process."""

    def __init__(self, monkeypatch, num_workers: int) -> None:
        self.monkeypatch, self.num_workers, self.id = monkeypatch, num_workers, 0

    def __call__(self):
        return self

    def play(self, worker: int) -> None:
        self.id = worker
        fake_worker_info(self.monkeypatch, self)


def stream(ds, fake=None, worker=0):
    if fake is not None:
        fake.play(worker)
    return [int(s["idx"]) for s in ds]


@pytest.mark.parametrize("uneven", ["exact", "drop", "pad"])
def test_iterable_sharding(data, monkeypatch, uneven):
    path, samples = data
    for world_size, num_workers in [(1, 3), (2, 2), (3, 2), (7, 3)]:
        fake = FakeWorker(monkeypatch, num_workers)
        seen, lengths = [], []
        for rank in range(world_size):
            ds = RocksIterableDataset(
                path, fields=["idx"], shuffle=True, seed=5, batch_size=8, block_size=16, buffer_size=40,
                rank=rank, world_size=world_size, uneven=uneven,
            )
            ds.set_epoch(3)
            mine = [i for w in range(num_workers) for i in stream(ds, fake, w)]
            assert len(mine) == len(ds)
            lengths.append(len(mine))
            seen += mine
        q, r = divmod(N, world_size)
        counts = Counter(seen)
        if uneven == "exact":
            assert sorted(seen) == list(range(N)) and max(lengths) - min(lengths) <= 1
        elif uneven == "drop":
            assert lengths == [q] * world_size and max(counts.values()) == 1
        else:
            assert lengths == [q + (r > 0)] * world_size and set(counts) == set(range(N))
            assert sum(c - 1 for c in counts.values()) == (world_size - r) % world_size
    monkeypatch.undo()


def test_iterable_shuffle_is_seeded_and_per_epoch(data):
    path, samples = data
    plain = RocksIterableDataset(path)
    assert stream(plain) == list(range(N))
    first = next(iter(plain))
    assert set(first) == {"image", "mask", "idx", "points", "name"}
    np.testing.assert_array_equal(first["image"].numpy(), samples[0]["image"])

    def order(seed, epoch):
        ds = RocksIterableDataset(path, fields=["idx"], shuffle=True, seed=seed, block_size=8, buffer_size=64)
        ds.set_epoch(epoch)
        return stream(ds)

    a = order(0, 0)
    assert sorted(a) == list(range(N)) and a != list(range(N))
    assert a == order(0, 0)
    assert a != order(0, 1) and a != order(1, 0)
    # Bounded buffer: a sample leaves at most one window (64) away from its block's slot.
    blocks = [i // 8 for i in a]
    assert len({tuple(blocks[k : k + 64]) for k in range(0, N, 64)}) > 1


def test_iterable_real_dataloader_and_persistent_epochs(data):
    path, samples = data
    ds = RocksIterableDataset(path, fields=FIXED, shuffle=True, seed=2, batch_size=16, block_size=8, buffer_size=48)
    loader = DataLoader(
        ds, batch_size=16, num_workers=2, collate_fn=collate, persistent_workers=True,
        multiprocessing_context="spawn",
    )
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)  # must reach the persistent workers
        order = [i for b in loader for i in check_batch(b, samples)]
        assert sorted(order) == list(range(N))
        orders.append(order)
    assert orders[0] != orders[1]
    # The order the loop sees is planned: unit j of the rank's stretch comes from worker j % 2.
    fresh = RocksIterableDataset(path, fields=["idx"], shuffle=True, seed=2, batch_size=16, block_size=8, buffer_size=48)
    fresh.set_epoch(1)
    again = [i for b in DataLoader(fresh, batch_size=16, num_workers=2, collate_fn=collate) for i in b["idx"].tolist()]
    assert again == orders[1]
    with pytest.raises(rocksds.InvalidArgumentError, match="consumed="):
        ds.state_dict()


def _iterable(path, **kw):
    opts = dict(fields=["idx"], shuffle=True, seed=7, batch_size=8, block_size=16, buffer_size=40)
    opts.update(kw)
    return RocksIterableDataset(path, **opts)


def test_resume_with_workers_reproduces_the_epoch(data, monkeypatch):
    path, samples = data
    ds = _iterable(path)
    ds.set_epoch(4)
    full = [i for b in DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate) for i in b["idx"].tolist()]
    assert sorted(full) == list(range(N))
    for steps in (0, 1, 3, 18, len(full) // 8):
        loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate)
        taken = []
        for step, batch in enumerate(loader, start=1):
            if step > steps:
                break
            taken += batch["idx"].tolist()
        state = json.loads(json.dumps(ds.state_dict(consumed=len(taken))))  # plain data, survives JSON
        resumed = _iterable(path)
        resumed.load_state_dict(state)
        assert resumed.epoch == 4
        rest = [i for b in DataLoader(resumed, batch_size=8, num_workers=2, collate_fn=collate) for i in b["idx"].tolist()]
        assert taken + rest == full
        resumed.set_epoch(5)  # a new epoch starts from its beginning
        assert sorted(stream(resumed)) == list(range(N))
    # Refusals are checked in-process: an exception in a DataLoader worker makes torch wait
    # 5 s per worker when it later shuts the loader down.
    mid = _iterable(path)
    mid.load_state_dict({**state, "consumed": 16})
    assert state["num_workers"] == 2
    with pytest.raises(rocksds.InvalidArgumentError, match="num_workers"):
        iter(mid)  # one reader instead of two
    bad = _iterable(path)
    bad.load_state_dict({**state, "consumed": 3})
    FakeWorker(monkeypatch, 2).play(0)
    with pytest.raises(rocksds.InvalidArgumentError, match="batch boundary"):
        iter(bad)
    monkeypatch.undo()


def test_resume_in_process_and_per_worker_state(data, monkeypatch):
    path, samples = data
    # num_workers=0: the dataset counts what it yielded.
    ds = _iterable(path, rank=1, world_size=2)
    ds.set_epoch(2)
    full = stream(ds)
    it = iter(ds)
    head = [int(next(it)["idx"]) for _ in range(37)]
    state = ds.state_dict()
    assert state["consumed"] == 37
    resumed = _iterable(path, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state  # saving again before iterating changes nothing
    assert head + stream(resumed) == full
    # Inside workers (as torchdata's StatefulDataLoader calls it), each worker saves its own position.
    fake = FakeWorker(monkeypatch, 3)
    for worker in range(3):
        ds = _iterable(path)
        fake.play(worker)
        whole = stream(ds)
        it = iter(ds)
        head = [int(next(it)["idx"]) for _ in range(min(11, len(whole)))]
        state = ds.state_dict()
        assert state["worker"] == {"id": worker, "num_workers": 3, "role": worker, "yielded": len(head)}
        resumed = _iterable(path)
        resumed.load_state_dict(state)
        assert head + stream(resumed) == whole
    monkeypatch.undo()
    with pytest.raises(rocksds.InvalidArgumentError, match="seed"):
        _iterable(path, seed=8).load_state_dict(_iterable(path).state_dict())
    with pytest.raises(rocksds.InvalidArgumentError):
        _iterable(path).load_state_dict({"version": 99})


# ---------------------------------------------------------------- torch.distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_rank_main(rank: int, world_size: int, port: int, path: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        ds = RocksIterableDataset(path, fields=["idx"], shuffle=True, seed=11, batch_size=8, block_size=16)
        ds.set_epoch(1)
        streamed = [int(i) for b in DataLoader(ds, batch_size=8, collate_fn=collate) for i in b["idx"]]
        mapped = RocksDataset(path, fields=["idx"])
        sampler = DistributedSampler(mapped, shuffle=True, seed=11)
        sampled = [int(i) for b in DataLoader(mapped, batch_size=8, sampler=sampler, collate_fn=collate) for i in b["idx"]]
        gathered: list = [None] * world_size
        dist.all_gather_object(gathered, {"rank": ds.rank, "streamed": streamed, "sampled": sampled})
        if rank == 0:
            with open(out, "w") as fh:
                json.dump(gathered, fh)
    finally:
        dist.destroy_process_group()


def test_torch_distributed_two_ranks(data, tmp_path):
    path, samples = data
    out = str(tmp_path / "ranks.json")
    torch_mp.start_processes(
        _dist_rank_main, args=(2, _free_port(), path, out), nprocs=2, join=True, start_method="spawn"
    )
    with open(out) as fh:
        ranks = json.load(fh)
    assert [r["rank"] for r in ranks] == [0, 1]
    a, b = ranks[0]["streamed"], ranks[1]["streamed"]
    assert not set(a) & set(b) and sorted(a + b) == list(range(N)) and len(a) == len(b) == N // 2
    sa, sb = ranks[0]["sampled"], ranks[1]["sampled"]
    assert not set(sa) & set(sb) and sorted(sa + sb) == list(range(N))


# ---------------------------------------------------------------- example


def test_train_tiny_cnn_example_learns(tmp_path):
    import importlib.util

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples", "train_tiny_cnn.py")
    spec = importlib.util.spec_from_file_location("train_tiny_cnn", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = str(tmp_path / "bars.rds")
    accuracy = module.main(["--data", path, "--samples", "1024", "--epochs", "1", "--steps", "25"])
    assert accuracy >= 0.5  # chance is 0.1
    assert len(rocksds.open(path)) == 1024
    accuracy = module.main(["--data", path, "--epochs", "1", "--steps", "25", "--stream"])
    assert accuracy >= 0.5  # chance is 0.1
