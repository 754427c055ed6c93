"""Normalize from stored statistics, and the class-balanced sampler from stored per-class counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import rocksds
from rocksds import Field, Schema
from rocksds.torch import ClassBalancedSampler, Normalize, RocksDataset, class_balanced_weights, collate

N = 120


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    """Chips with a 3-band uint16 image and per-class counts where class 2 is rare (about 3% of pixels)."""
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 400.0, (N, 3, 16, 16)).astype(np.uint16) + np.array([0, 1000, 3000], np.uint16)[:, None, None]
    counts = np.zeros((N, 3), np.uint32)
    counts[:, 0] = rng.integers(100, 150, N)
    counts[:, 1] = 256 - counts[:, 0]
    rare = rng.choice(N, 12, replace=False)
    counts[rare, 2] = 80
    counts[rare, 1] -= 80
    path = tmp_path_factory.mktemp("train") / "t.rds"
    schema = Schema(fields={"image": Field(dtype="uint16", shape=(3, 16, 16)),
                            "mask_counts": Field(dtype="uint32", shape=(3,))})
    with rocksds.create(path, schema, stats=["image"]) as w:
        w.extend({"image": image, "mask_counts": counts})
    return str(path), image, counts


def test_normalize_meanstd_gives_zero_mean_unit_std(chips) -> None:
    path, image, _ = chips
    norm = Normalize(path)
    out = torch.stack([norm({"image": image[i], "other": 1})["image"] for i in range(N)])
    assert out.dtype == torch.float32 and out.shape == (N, 3, 16, 16)
    per_band = out.transpose(0, 1).reshape(3, -1).double()
    np.testing.assert_allclose(per_band.mean(1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_band.std(1, unbiased=False).numpy(), 1.0, atol=1e-5)


def test_normalize_percentile_stretch_and_batched_equals_per_sample(chips) -> None:
    path, image, _ = chips
    norm = Normalize(path, mode="percentile")
    one = torch.stack([norm({"image": image[i]})["image"] for i in range(N)])
    assert float(one.min()) == 0.0 and float(one.max()) == 1.0
    for b in range(3):
        band = image[:, b].astype(np.float64)
        lo, hi = np.percentile(band, [2, 98], method="inverted_cdf")
        assert abs(float((one[:, b] == 0).double().mean()) - float((band <= lo).mean())) < 1e-9
        expect = np.clip((band - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(one[:, b].numpy(), expect, rtol=1e-5, atol=1e-6)
    ds = RocksDataset(path, fields=["image"], batch_transform=Normalize(path, mode="percentile", batched=True))
    loader = DataLoader(ds, batch_size=40, num_workers=2, collate_fn=collate)
    batched = torch.cat([b["image"] for b in loader])
    torch.testing.assert_close(batched, one)
    with pytest.raises(rocksds.InvalidArgumentError):
        norm({"image": torch.zeros(2, 16, 16)})


def test_weights_follow_inverse_class_frequency(chips) -> None:
    _, _, counts = chips
    w = class_balanced_weights(counts)
    share = counts.sum(0) / counts.sum()
    np.testing.assert_allclose(w, (counts / counts.sum(1, keepdims=True)) @ (1 / share))
    assert np.all(class_balanced_weights(counts, power=0.0) == 1.0)


def test_balanced_sampler_raises_the_rare_class_share_measured_over_many_batches(chips) -> None:
    path, _, counts = chips
    sampler = ClassBalancedSampler(RocksDataset(path), seed=3, num_samples=4 * N)
    ds = RocksDataset(path, fields=["mask_counts"])
    loader = DataLoader(ds, batch_size=32, sampler=sampler, num_workers=2, collate_fn=collate)
    seen = np.zeros(3)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        for batch in loader:
            seen += batch["mask_counts"].double().sum(0).numpy()
    measured = seen / seen.sum()
    uniform = counts.sum(0) / counts.sum()
    w = sampler.weights / sampler.weights.sum()
    expected = (w @ counts) / (w @ counts).sum()
    np.testing.assert_allclose(measured, expected, atol=0.02)
    assert uniform[2] < 0.04 and measured[2] > 3 * uniform[2]
    harder = ClassBalancedSampler(path, seed=3, num_samples=40 * N, power=2.0).indices()
    assert counts[harder, 2].sum() / counts[harder].sum() > 2 * measured[2]


def test_balanced_sampler_is_seeded_and_shards_like_distributed_sampler(chips) -> None:
    path, _, counts = chips
    whole = ClassBalancedSampler(path, seed=5, num_samples=101, rank=0, world_size=1)
    parts = [ClassBalancedSampler(path, seed=5, num_samples=101, rank=r, world_size=2) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == 51
    drawn = ClassBalancedSampler(path, seed=5, num_samples=102, rank=0, world_size=1).indices()
    assert list(parts[0]) == drawn[0::2].tolist() and list(parts[1]) == drawn[1::2].tolist()
    assert list(whole) == list(ClassBalancedSampler(path, seed=5, num_samples=101, rank=0, world_size=1))
    other = ClassBalancedSampler(path, seed=5, num_samples=101, rank=0, world_size=1)
    other.set_epoch(1)
    assert list(other) != list(whole)
    subset = np.flatnonzero(counts[:, 2] == 0)
    only = ClassBalancedSampler(counts, indices=subset, seed=0)
    assert set(only.indices().tolist()) <= set(subset.tolist())
