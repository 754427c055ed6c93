"""Training helpers built on what the store knows: :class:`Normalize` and :class:`ClassBalancedSampler`.

:class:`Normalize` takes per-band mean/std or a percentile stretch from the
statistics stored with the dataset (``ds.stats``, SPEC.md 2.1), so no pass
over the data is needed. :class:`ClassBalancedSampler` weighs chips by the
per-class pixel counts that ingestion stores (``mask_counts``), so chips
holding rare classes are drawn more often.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import Sampler

from ..errors import InvalidArgumentError
from ..reader import Dataset
from ..stats import DatasetStats
from ._stream import dist_rank

__all__ = ["Normalize", "ClassBalancedSampler", "class_balanced_weights"]

PathLike = Union[str, "os.PathLike[str]"]


def _path_of(source: Any) -> str:
    path = getattr(source, "path", source)
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(f"expected a dataset path or a dataset with .path, got {type(source).__name__}")
    return os.fspath(path)


def _stored_stats(source: Any) -> DatasetStats:
    if isinstance(source, DatasetStats):
        return source
    with Dataset(_path_of(source), fields=None, cache_gb=0) as ds:
        stats = ds.stats
    if stats is None:
        raise InvalidArgumentError(f"{_path_of(source)} stores no statistics; run `rocksds stats PATH --recompute`")
    return stats


class Normalize:
    """Normalise one field of a sample (or of a stacked batch) per band, from the stored statistics.

    ``mode="meanstd"``: ``(x - mean) / std``. ``mode="percentile"``:
    ``(x - p_lo) / (p_hi - p_lo)``, clipped to ``[0, 1]`` unless ``clip=False``
    (the 2-98 % stretch of remote-sensing previews, robust to outliers).
    Values become float32 tensors; other fields pass through. Deterministic and
    picklable (it holds two small arrays), so it runs in DataLoader workers as
    ``RocksDataset(..., transform=Normalize(path))``, or on whole stacked
    batches as ``batch_transform=Normalize(path, batched=True)``.

    Args:
        source: the dataset path, a dataset with ``.path`` (``RocksDataset``), or :class:`DatasetStats`.
        field: the field to normalise (default ``image``).
        mode: ``"meanstd"`` or ``"percentile"``.
        percentiles: ``(lo, hi)`` for ``mode="percentile"``.
        clip: clip the percentile stretch to ``[0, 1]``.
        batched: values carry a leading sample axis (a stacked batch), so the band axis is one further in.
    """

    def __init__(self, source: Any, field: str = "image", *, mode: str = "meanstd",
                 percentiles: tuple[float, float] = (2.0, 98.0), clip: bool = True, batched: bool = False) -> None:
        stats = _stored_stats(source)
        if field not in stats:
            raise InvalidArgumentError(f"no statistics of field {field!r}; the dataset has them for {list(stats.fields)}")
        fs = stats[field]
        if fs.axis is None:
            raise InvalidArgumentError(f"statistics of {field!r} have no band axis; Normalize works per band")
        if mode == "meanstd":
            shift, scale = fs.mean, fs.std
        elif mode == "percentile":
            lo, hi = fs.percentile(list(percentiles)).T
            shift, scale = lo, hi - lo
        else:
            raise InvalidArgumentError(f"mode must be 'meanstd' or 'percentile', got {mode!r}")
        if not (np.all(np.isfinite(shift)) and np.all(np.isfinite(scale))):
            raise InvalidArgumentError(f"statistics of {field!r} have an empty band; cannot normalise it")
        self.field, self.mode, self.clip = field, mode, bool(clip) and mode == "percentile"
        self.band_axis = fs.axis + 1 if batched else fs.axis
        self.shift = torch.as_tensor(shift, dtype=torch.float32)
        #: Constant bands (scale 0) are only shifted.
        self.scale = torch.as_tensor(np.where(scale > 0, scale, 1.0), dtype=torch.float32)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        value = out[self.field]
        x = (value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))).to(torch.float32)
        if not 0 <= self.band_axis < x.dim() or x.shape[self.band_axis] != len(self.shift):
            raise InvalidArgumentError(
                f"{self.field!r} of shape {tuple(x.shape)} has no axis {self.band_axis} of {len(self.shift)} bands "
                "(batched=True for stacked batches)"
            )
        shape = [1] * x.dim()
        shape[self.band_axis] = -1
        y = (x - self.shift.view(shape)) / self.scale.view(shape)
        out[self.field] = y.clamp_(0.0, 1.0) if self.clip else y
        return out

    def __repr__(self) -> str:
        return f"Normalize({self.field!r}, mode={self.mode!r}, shift={self.shift.tolist()}, scale={self.scale.tolist()})"


def class_balanced_weights(counts: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Per-sample weights from per-class pixel counts ``(n, classes)``.

    Class ``c`` gets weight ``(1 / f_c) ** power``, ``f_c`` its share of all
    counted pixels; a chip's weight is the mean class weight of its pixels
    (``sum_c counts[i, c] / sum(counts[i]) * w_c``), which raises the share of
    rare classes among the drawn pixels (a class of 3 % of the pixels, in a
    tenth of the chips, reaches about 12 % with ``power=1``); a larger
    ``power`` balances harder. Chips without counted pixels get weight 0;
    absent classes are ignored.
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 2 or counts.shape[0] == 0:
        raise InvalidArgumentError(f"counts must be (samples, classes) with at least one sample, got {counts.shape}")
    totals = counts.sum(axis=0)
    if totals.sum() <= 0:
        raise InvalidArgumentError("no counted pixels in any sample; nothing to balance")
    share = totals / totals.sum()
    class_w = np.where(share > 0, np.power(np.where(share > 0, share, 1.0), -float(power)), 0.0)
    per_chip = counts.sum(axis=1)
    return np.where(per_chip > 0, (counts @ class_w) / np.where(per_chip > 0, per_chip, 1.0), 0.0)


class ClassBalancedSampler(Sampler[int]):
    """Draws sample indices with probability proportional to :func:`class_balanced_weights`.

    Each epoch draws ``num_samples`` indices (with replacement) from a
    generator seeded by ``(seed, epoch)``, the same on every rank; rank ``r``
    of ``world_size`` takes every ``world_size``-th draw starting at ``r``,
    like :class:`~torch.utils.data.DistributedSampler` (the total is rounded
    up to a multiple of ``world_size`` so ranks get equal counts). DataLoader
    workers receive indices from the sampler in the main process, so they need
    nothing more. Call :meth:`set_epoch` for a new draw.

    Args:
        source: the dataset path, a dataset with ``.path`` (``RocksDataset``), or
            an array of per-class counts ``(n, classes)``.
        counts_field: the field holding the counts (ingestion's ``<mask>_counts``).
        num_samples: draws per epoch over all ranks (default: the dataset size).
        power: how hard to balance: 0 is uniform over counted chips, 1 inverse frequency.
        indices: restrict to these samples (e.g. from ``ds.select``); drawn indices are dataset indices.
        seed, rank, world_size: as :class:`ResumableSampler`.
    """

    def __init__(self, source: Any, counts_field: str = "mask_counts", *, num_samples: Optional[int] = None,
                 power: float = 1.0, indices: Optional[Sequence[int]] = None, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None) -> None:
        if isinstance(source, np.ndarray):
            counts = source
        else:
            with Dataset(_path_of(source), fields=[counts_field], cache_gb=0) as ds:
                counts = ds.read_column(counts_field, 0, len(ds))
        counts = np.asarray(counts)
        self._subset = None if indices is None else np.asarray(indices, np.int64)
        if self._subset is not None:
            counts = counts[self._subset]
        self.weights = class_balanced_weights(counts.reshape(len(counts), -1), power)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidArgumentError(f"seed must be an integer >= 0, got {seed!r}")
        if (rank is None) != (world_size is None):
            raise InvalidArgumentError("pass rank and world_size together (or neither, to use torch.distributed)")
        self.rank, self.world_size = (int(rank), int(world_size)) if rank is not None else dist_rank()  # type: ignore[arg-type]
        if not 0 <= self.rank < self.world_size:
            raise InvalidArgumentError(f"rank must be in 0..{self.world_size - 1}, got {self.rank}")
        total = len(self.weights) if num_samples is None else int(num_samples)
        if total <= 0:
            raise InvalidArgumentError(f"num_samples must be positive, got {num_samples!r}")
        self.total = -(-total // self.world_size) * self.world_size
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's draws for the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        drawn = rng.choice(len(self.weights), size=self.total, replace=True, p=self.weights / self.weights.sum())
        if self._subset is not None:
            drawn = self._subset[drawn]
        return drawn[self.rank :: self.world_size]

    def __len__(self) -> int:
        return self.total // self.world_size

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())
