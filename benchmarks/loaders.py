"""DataLoader epochs over any backend reader (imports torch; the harness imports this only when needed).

Two ways to feed a DataLoader, both measured for every backend:

* ``per-sample``: a map-style dataset with ``__getitem__`` only; the
  DataLoader calls it 128 times per batch and ``default_collate`` stacks.
* ``batched``: the dataset also has ``__getitems__`` (torch >= 2.0 calls it
  with the whole batch of indices), so a backend can fetch a batch at once.

rocksds is fed through ``rocksds.torch.RocksDataset`` (``use_getitems=False``
for per-sample) with ``rocksds.torch.collate`` for batched, when that module
exists, else through the same generic wrapper as the peers.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["epoch", "rocksds_torch_available"]


class _PerSample(Dataset):
    def __init__(self, reader: Any, n: int) -> None:
        self.reader = reader
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.reader.get(int(i))


class _Batched(_PerSample):
    def __getitems__(self, idx: list[int]) -> Any:
        return self.reader.get_batch(np.asarray(idx, dtype=np.int64))


def _collate_batch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def rocksds_torch_available() -> bool:
    try:
        import rocksds.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _dataset(reader: Any, n: int, mode: str, rocks_path: str | None, cache_gb: float) -> tuple[Any, Any]:
    if rocks_path is not None and rocksds_torch_available():
        from rocksds.torch import RocksDataset, collate

        if mode == "per-sample":
            return RocksDataset(rocks_path, cache_gb=cache_gb, use_getitems=False), None
        return RocksDataset(rocks_path, cache_gb=cache_gb), collate
    if mode == "per-sample":
        return _PerSample(reader, n), None
    return _Batched(reader, n), _collate_batch


def epoch(reader: Any, n: int, order: np.ndarray, *, batch: int, workers: int, mode: str, label: str,
          rocks_path: str | None = None, cache_gb: float = 0.25, persistent: bool = False) -> tuple[float, int, int]:
    """One epoch in the order ``order``; returns (seconds, samples seen, sum of the ``label`` field).

    With ``persistent`` (needs ``workers``), one untimed epoch in the reverse
    order runs first with ``persistent_workers=True``, and the second epoch is
    timed: workers keep their open handles and caches, as in epoch 2 onwards
    of a training run.
    """
    ds, collate = _dataset(reader, n, mode, rocks_path, cache_gb)
    kwargs: dict[str, Any] = {"batch_size": batch, "num_workers": workers}
    if collate is not None:
        kwargs["collate_fn"] = collate
    if workers:
        kwargs["multiprocessing_context"] = "fork"
    sampler = _Order(order[::-1].tolist() if persistent else order.tolist())
    loader = DataLoader(ds, sampler=sampler, persistent_workers=persistent, **kwargs)
    seen, total = 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if persistent:
            for _b in loader:
                pass
            sampler.order = order.tolist()
        t0 = time.perf_counter()
        for b in loader:
            y = b[label]
            seen += len(y)
            total += int(y.sum(dtype=torch.int64))
        dt = time.perf_counter() - t0
    del loader
    return dt, seen, total


class _Order:
    """A sampler whose order can change between epochs (persistent workers keep the loader)."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def __iter__(self) -> Any:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
