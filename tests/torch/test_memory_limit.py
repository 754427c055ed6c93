"""A DataLoader with workers stays within a container's memory limit (a memory cgroup, page cache charged).

The situation the project's readers must survive: 200 chips of float32 (4, 256, 256) read by a plain
``DataLoader(RocksDataset(path), num_workers=2)`` in a 400 MiB cgroup. Each worker once had a private
0.25 GiB block cache and the loop was OOM-killed; the cache is now an eighth of the limit, split across
the workers, and uncompressed chips come from the shared page cache.
"""

from __future__ import annotations

import numpy as np
import pytest

import rocksds
from rocksds.cli import bench

bench.load_harness()  # puts benchmarks/ on sys.path
import memlimit  # noqa: E402

pytestmark = pytest.mark.skipif(not memlimit.available(), reason="needs root and a cgroup v1 memory controller")

N = 200
LIMIT = 400 << 20


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "chips.rds"
    rng = np.random.default_rng(11)
    schema = rocksds.Schema(fields={"image": rocksds.Field(dtype="float32", shape=(4, 256, 256)),
                                    "mask": rocksds.Field(dtype="uint8", shape=(1, 256, 256)),
                                    "label": rocksds.Field(dtype="int64")})
    with rocksds.create(path, schema) as w:
        for lo in range(0, N, 50):
            w.extend({"image": rng.random((50, 4, 256, 256), dtype=np.float32),
                      "mask": rng.integers(0, 4, (50, 1, 256, 256), dtype=np.uint8),
                      "label": np.arange(lo, lo + 50, dtype=np.int64)})
    return str(path)


def _epoch(path: str) -> dict:
    from torch.utils.data import DataLoader

    from rocksds.reader import default_cache_bytes
    from rocksds.torch import RocksDataset

    seen = []
    for batch in DataLoader(RocksDataset(path), batch_size=16, shuffle=True, num_workers=2):
        assert batch["image"].shape[1:] == (4, 256, 256)
        seen.extend(batch["label"].tolist())
    return {"labels": sorted(seen), "cache": default_cache_bytes()}


def test_dataloader_with_workers_finishes_in_a_400_mib_cgroup(chips):
    result = memlimit.run_in_memory_limit(lambda: _epoch(chips), LIMIT, timeout=300)
    assert result.rc == 0 and not result.oom_killed, (result.rc, result.oom_kills, result.stderr[-2000:])
    assert result.value["labels"] == list(range(N))  # every sample exactly once
    assert result.value["cache"] == LIMIT // 8  # the default cache follows the cgroup's limit
    assert result.peak_bytes <= LIMIT
