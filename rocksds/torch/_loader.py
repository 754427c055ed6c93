"""A seeded, shuffled ``DataLoader`` over a dataset: the read path the demo and quick checks use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch.utils.data import DataLoader

from ._batch import collate
from ._map import RocksDataset

__all__ = ["shuffled_loader"]


def shuffled_loader(
    path: Union[str, "os.PathLike[str]"],
    *,
    fields: Optional[Sequence[str]] = None,
    batch_size: int = 32,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    """A ``DataLoader`` over :class:`RocksDataset` ``path``: shuffled with ``seed``, batched by :func:`collate`,
    with persistent workers when ``num_workers > 0``."""
    ds = RocksDataset(path, fields=fields)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=num_workers > 0)
