"""DataLoader epochs over any backend (imports torch; the harness imports this only when needed).

The default epoch is what a new user writes: ``DataLoader(ds, batch_size=B,
shuffle=True, num_workers=W)`` with the default collate, where ``ds`` is
``rocksds.torch.RocksDataset(path)`` with no arguments for rocksds and, for a
peer, the few lines a user writes around its reader (``__getitem__`` only).
Every backend gets the same shuffled order: the sampler's generator is seeded
the same way. One untimed warm-up epoch runs first, then the timed epoch with
a new DataLoader (so fresh workers, as without ``persistent_workers``).
Backends with a loader of their own (LitData's ``StreamingDataLoader``,
MosaicML's ``StreamingDataset``, WebDataset's ``WebLoader``) use it instead,
with its own shuffle.

Tuned epochs, reported apart: ``batched`` feeds a whole batch through
``__getitems__`` (rocksds: ``RocksDataset`` + ``rocksds.torch.collate``);
``persistent`` times the second epoch of one DataLoader with
``persistent_workers=True``; rocksds can add a block cache (``cache_gb``).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["default_epoch", "tuned_epoch", "rocksds_torch_available"]


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


def _count(loader: Any, label: str) -> tuple[float, int, int]:
    seen, total = 0, 0
    t0 = time.perf_counter()
    for b in loader:
        y = torch.as_tensor(np.asarray(b[label]) if not isinstance(b[label], torch.Tensor) else b[label])
        seen += len(y)
        total += int(y.sum(dtype=torch.int64))
    return time.perf_counter() - t0, seen, total


def _seeded(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def default_epoch(reader: Any, n: int, *, batch: int, workers: int, label: str, seed: int,
                  rocks_path: Optional[str] = None, warmup: bool = True) -> tuple[float, int, int]:
    """The default-path epoch (see the module docstring); returns (seconds, samples seen, label sum).

    ``warmup=False`` times the first epoch (a cold read, as in the larger-than-memory runs).
    """
    make: Callable[[int], Any]
    if hasattr(reader, "loader"):
        def make(s: int) -> Any:
            return reader.loader(batch, workers, s)
    else:
        if rocks_path is not None:
            from rocksds.torch import RocksDataset

            ds: Any = RocksDataset(rocks_path)
        else:
            ds = _PerSample(reader, n)

        def make(s: int) -> Any:
            return DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, generator=_seeded(s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warmup:
            _count(make(seed), label)  # warm-up epoch: page cache, imports, lazily built state
        loader = make(seed + 1)
        out = _count(loader, label)
    del loader
    return out


def tuned_epoch(reader: Any, n: int, *, batch: int, workers: int, label: str, seed: int,
                rocks_path: Optional[str] = None, persistent: bool = False,
                cache_gb: Optional[float] = None, warmup: bool = True) -> tuple[float, int, int]:
    """A batched epoch (``__getitems__``); with ``persistent``, the 2nd epoch of one persistent DataLoader.

    Without ``persistent`` it runs after a warm-up epoch, as :func:`default_epoch`.
    """
    if rocks_path is not None:
        from rocksds.torch import RocksDataset, collate

        ds: Any = RocksDataset(rocks_path) if cache_gb is None else RocksDataset(rocks_path, cache_gb=cache_gb)
        fn: Any = collate
    else:
        ds, fn = _Batched(reader, n), _collate_batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if persistent:
            gen = _seeded(seed)
            loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=fn,
                                generator=gen, persistent_workers=True)
            _count(loader, label)
            gen.manual_seed(seed + 1)
        else:
            if warmup:
                _count(DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=fn,
                                  generator=_seeded(seed)), label)
            loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=fn,
                                generator=_seeded(seed + 1))
        out = _count(loader, label)
    del loader
    return out
