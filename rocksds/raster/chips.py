"""Cut the chips of one task of a :class:`~rocksds.raster.plan.ChipPlan`, through block-aligned windowed reads.

The one step both build branches share: :func:`iter_task` yields
``(split_index, sample)`` in row-major order, reading pixels through
:mod:`rocksds.raster._rasterio` under the plan's GDAL cache budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._rasterio import WindowReader
from .grid import chip_georef, chip_split, window_groups
from .plan import ChipPlan, SourceInfo, Task

__all__ = ["TaskStats", "iter_task"]


@dataclass
class TaskStats:
    """What one task did: samples kept per split and chips dropped, by reason."""

    kept: list[int]
    grid: int = 0
    invalid: int = 0
    straddling: int = 0


def iter_task(plan: ChipPlan, task: Task, stats: Optional[TaskStats] = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Chip one task: yields ``(split_index, sample)`` in row-major order; the serial and parallel paths share it.

    Reads are grouped so one read of all inputs holds at most ``plan.batch_bytes``
    (at least one chip), and expanded to whole blocks of the first input.
    """
    src = plan.sources[task.source]
    rows, cols = plan.grid(task.source)
    blocks = plan.block_splits(task.source)
    c = plan.chip
    names = list(src.inputs)
    px_bytes = sum(i.bands * np.dtype(i.dtype).itemsize for i in src.inputs.values())
    bh, bw = src.inputs[names[0]].block_shape
    stats = stats if stats is not None else TaskStats([0] * len(plan.splits))
    with WindowReader(src.inputs, plan.cache_bytes) as reader:
        full_row_cols = min(-(-(src.width) // bw) * bw, src.width)
        row_cap = max(1, plan.batch_bytes // max(1, full_row_cols * px_bytes))
        for ri0, ri1, ylo, yhi in window_groups(rows[task.row0 : task.row1], c, bh, src.height, row_cap):
            col_cap = max(1, plan.batch_bytes // max(1, (yhi - ylo) * px_bytes))
            for ci0, ci1, xlo, xhi in window_groups(cols, c, bw, src.width, col_cap):
                datas, valid = {}, None
                for n in names:
                    d, v = reader.read(n, ylo, yhi, xlo, xhi, True)  # every chip records its valid fraction
                    datas[n] = d
                    if v is not None:
                        valid = v if valid is None else (valid & v)
                for y in rows[task.row0 + ri0 : task.row0 + ri1]:
                    for x in cols[ci0:ci1]:
                        stats.grid += 1
                        k = chip_split(blocks, plan.split_block, c, src.height, src.width, y, x)
                        if k < 0:
                            stats.straddling += 1
                            continue
                        sample = _cut(plan, src, datas, valid, ylo, xlo, y, x)
                        if sample is None:
                            stats.invalid += 1
                            continue
                        sample["transform"], sample["bounds"] = chip_georef(src.transform, y, x, c)
                        sample["source"] = np.int32(src.index)
                        stats.kept[k] += 1
                        yield k, sample
                del datas, valid


def _cut(
    plan: ChipPlan, src: SourceInfo, datas: dict[str, np.ndarray], valid: Optional[np.ndarray],
    ylo: int, xlo: int, y: int, x: int,
) -> Optional[dict[str, Any]]:
    """The chip at (y, x) from arrays read at (ylo, xlo), padded where it leaves the raster, with its content
    fields (``valid`` fraction, per-class counts of mask inputs); None if too invalid."""
    c = plan.chip
    h = min(c, src.height - y)
    w = min(c, src.width - x)
    sy, sx = y - ylo, x - xlo
    n_valid = h * w if valid is None else int(valid[sy : sy + h, sx : sx + w].sum())
    if n_valid < plan.min_valid_pixels:
        return None
    out: dict[str, Any] = {"valid": np.float32(n_valid / (c * c))}
    for n, d in datas.items():
        part = d[:, sy : sy + h, sx : sx + w]
        if h == c and w == c:
            out[n] = part
        else:
            nd = src.inputs[n].nodata
            full = np.full((d.shape[0], c, c), 0 if nd is None else nd, dtype=d.dtype)
            full[:, :h, :w] = part
            out[n] = full
    for n, n_classes in plan.class_counts.items():
        out[f"{n}_counts"] = _class_pixels(datas[n][0, sy : sy + h, sx : sx + w], src.inputs[n].nodata, n_classes)
    return out


def _class_pixels(mask: np.ndarray, nodata: Optional[float], n_classes: int) -> np.ndarray:
    """Pixels of each class ``0 .. n_classes-1`` in one chip's mask (nodata and other values not counted)."""
    values = mask.ravel().astype(np.int64)
    keep = (values >= 0) & (values < n_classes)
    if nodata is not None:
        keep &= values != nodata
    return np.bincount(values[keep], minlength=n_classes).astype(np.uint32)
