"""Shared fixtures; tests run against this checkout's ``rocksds``."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rocksds  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def small_schema() -> rocksds.Schema:
    return rocksds.Schema(
        fields={
            "image": rocksds.Field(dtype="float32", shape=(3, 8, 8), compression="zstd"),
            "mask": rocksds.Field(dtype="uint8", shape=(1, 8, 8), compression="lz4"),
            "label": rocksds.Field(dtype="int64", shape=()),
            "points": rocksds.Field(dtype="float32", shape=(None, 2)),
        },
        attrs={"crs": "EPSG:32633", "bands": ["B4", "B3", "B2"], "classes": ["bg", "field"]},
    )


def make_samples(rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` random samples matching ``small_schema``."""
    return [
        {
            "image": rng.standard_normal((3, 8, 8)).astype(np.float32),
            "mask": rng.integers(0, 2, (1, 8, 8), dtype=np.uint8),
            "label": int(rng.integers(0, 10)),
            "points": rng.standard_normal((int(rng.integers(0, 6)), 2)).astype(np.float32),
        }
        for _ in range(n)
    ]


@pytest.fixture
def small_dataset(tmp_path, rng, small_schema):
    """(path, samples): a 50-sample dataset written with ``small_schema``."""
    samples = make_samples(rng, 50)
    path = tmp_path / "small.rds"
    with rocksds.create(path, small_schema) as w:
        w.extend(samples[:20])
        for s in samples[20:]:
            w.append(s)
    return path, samples
