"""Chip georeferenced rasters into a rocksds dataset, in windows, without loading whole rasters.

Install with ``pip install 'rocksds[raster]'`` (rasterio). The core package
never imports rasterio; this module imports it lazily.

This module is the entry point: it normalizes the inputs (globs, lists, a CSV
of scenes), plans the chips, prepares the output paths, builds each dataset
beside its final path (serially through :class:`rocksds.Writer`, or in
parallel through :mod:`rocksds.bulk`) and renames it into place. Inspecting
and chipping rasters lives in :mod:`rocksds.chipping`, the pure grid
arithmetic in :mod:`rocksds.grid`.

>>> from rocksds.raster import ingest_raster
>>> ingest_raster("out.rds", {"image": "scene.tif", "mask": "labels.tif"}, chip=256, stride=128,
...               split={"train": 0.8, "val": 0.2}, split_block=2048, min_valid=0.5)  # doctest: +SKIP

What a sample holds (keys follow TorchGeo):

- one field per input (``image``, ``mask``, ...): the chip's pixels of every
  band, ``(bands, chip, chip)`` in the input's own dtype;
- ``bounds``: float64 ``[left, bottom, right, top]`` (rasterio's order) in the CRS;
- ``transform``: float64 ``[a, b, c, d, e, f]``, the chip's affine pixel->CRS transform;
- ``source``: int32 index into ``attrs["sources"]``.

What is constant per dataset goes into ``attrs``: ``crs`` (WKT, or
``"EPSG:n"`` when it has an EPSG code), the chip geometry, ``sources``,
per-input ``bands`` (descriptions), ``nodata``, ``scales``, ``offsets`` and
``dtype``, ``classes`` (when given), the ``split`` and the ``command`` that
built the dataset.

Grid (see :func:`rocksds.grid.chip_count`): chips start every ``stride`` pixels. The last
row/column either shifts back inside the raster (``edge="shift"``, default: no
padding, the last chips overlap their neighbours a little more) or runs past
the edge and is padded with nodata (``edge="pad"``). Either way every pixel is
in at least one chip and every chip is emitted exactly once, row-major.

Inputs: several rasters on the same grid (same CRS, transform, width and
height) become fields of one sample. Inputs that differ are refused, never
resampled: warp them onto one grid first (``gdalwarp -tap -tr ...``). Many
scenes can be chipped in one run; each contributes a contiguous range of
sample indices, in the order given. All scenes must share one CRS.

Splits: with ``split={"train": .8, "val": .2}`` each split becomes its own
dataset (``out/train.rds``, ``out/val.rds``), not a ``split`` field: a
training loop then opens one dataset and needs no filtering, sizes and
indices are per split, and a held-out split can be shipped or withheld on its
own. The raster is cut into square blocks of ``split_block`` pixels, blocks
are shuffled (seeded) and dealt to splits in the given proportions (of
blocks, not of chips). A chip belongs to the split of the blocks it touches;
a chip touching blocks of two different splits is dropped, so no pixel is in
two splits even with overlapping chips.

Filtering: with ``min_valid > 0`` a chip is kept only when at least that
fraction of its pixels is valid in every band of every input. Validity comes
from the rasters' nodata values, internal masks or alpha bands (GDAL's
dataset masks); padding is invalid.

Memory: reads are windowed and expanded to whole blocks (tiles or strips),
grouped so one read holds at most ``batch_bytes``, and GDAL's block cache is
capped at ``cache_bytes`` per process (``GDAL_CACHEMAX``). Each chipping
process needs about ``2 * batch_bytes + cache_bytes`` plus the interpreter
(~100 MB); a serial build adds RocksDB's memtables (up to 2 x 64 MiB) in the
writing process. None of it depends on the raster's size. Striped rasters,
or blocks larger than ``batch_bytes``, still work but raise
:class:`RasterLayoutWarning`.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

from .errors import DatasetExistsError, InvalidArgumentError
from .chipping import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_CACHE_BYTES,
    ChipPlan,
    GridMismatchError,
    RasterLayoutWarning,
    TaskStats,
    iter_task,
    plan_chips,
    split_schema,
)
from .grid import chip_count, chip_georef, chip_offsets

__all__ = [
    "ingest_raster",
    "plan_chips",
    "chip_count",
    "chip_offsets",
    "chip_georef",
    "RasterLayoutWarning",
    "GridMismatchError",
    "read_sources_csv",
    "expand_inputs",
    "output_paths",
    "building_path",
    "place_dataset",
]


# ---------------------------------------------------------------------- sources


def read_sources_csv(path: str) -> list[dict[str, str]]:
    """Scenes from a CSV whose header names the inputs (``image,mask``) and each row gives one scene's paths.

    Relative paths are taken relative to the CSV's directory.
    """
    import csv

    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InvalidArgumentError(f"{path} has no scenes (expected a header naming inputs, then one row per scene)")
    return [{k.strip(): os.path.join(base, v.strip()) for k, v in row.items()} for row in rows]


def expand_inputs(inputs: Union[Mapping[str, Union[str, Sequence[str]]], Sequence[Mapping[str, str]]]) -> list[dict[str, str]]:
    """Normalize inputs to one dict per scene.

    Accepts a list of scene dicts, or one dict of input name -> path, glob
    pattern or list of paths; globs expand sorted, and the i-th match of each
    input forms scene i (every input must match the same number of files).
    """
    if isinstance(inputs, Mapping):
        expanded: dict[str, list[str]] = {}
        for name, v in inputs.items():
            if isinstance(v, (str, os.PathLike)):
                v = os.fspath(v)
                paths = sorted(glob.glob(v)) if glob.has_magic(v) else [v]
                if not paths:
                    raise InvalidArgumentError(f"input {name!r}: pattern {v!r} matches no file")
            else:
                paths = [os.fspath(p) for p in v]
            expanded[name] = paths
        counts = {k: len(v) for k, v in expanded.items()}
        if len(set(counts.values())) > 1:
            raise InvalidArgumentError(f"inputs match different numbers of files {counts}; pair them with a CSV")
        n = next(iter(counts.values()), 0)
        return [{k: v[i] for k, v in expanded.items()} for i in range(n)]
    return [{k: os.fspath(p) for k, p in s.items()} for s in inputs]


# ---------------------------------------------------------------------- build


def output_paths(out: str, plan: ChipPlan) -> list[str]:
    """Dataset path of each split: ``out`` itself without splits, else ``out/<split>.rds``."""
    if plan.splits == [""]:
        return [out]
    return [os.path.join(out, f"{name}.rds") for name in plan.splits]


def _prepare_outputs(out: str, plan: ChipPlan, overwrite: bool) -> list[str]:
    paths = output_paths(out, plan)
    for p in paths:
        if os.path.lexists(p):
            if not overwrite:
                raise DatasetExistsError(f"{p} already exists (pass overwrite=True / --overwrite to replace it)")
            from ._metadata import check_is_dataset

            check_is_dataset(p)
    if plan.splits != [""]:
        os.makedirs(out, exist_ok=True)
    return paths


def place_dataset(tmp: str, final: str) -> None:
    """Rename a dataset built at ``tmp`` to ``final``, replacing an old dataset there.

    The caller has checked that what ``final`` holds is a dataset (as :func:`ingest_raster` does before building).
    """
    if os.path.lexists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)


def building_path(final: str) -> str:
    """Where a dataset is built before it is renamed to ``final``."""
    parent, name = os.path.split(os.path.abspath(final))
    return os.path.join(parent, f".{name}.building-{uuid.uuid4().hex[:8]}")


def ingest_raster(
    out: Union[str, os.PathLike[str]],
    inputs: Union[Mapping[str, Union[str, Sequence[str]]], Sequence[Mapping[str, str]]],
    *,
    chip: int = 256,
    stride: Optional[int] = None,
    edge: str = "shift",
    min_valid: float = 0.0,
    split: Optional[Mapping[str, float]] = None,
    split_block: int = 2048,
    seed: int = 0,
    classes: Optional[Sequence[str]] = None,
    compression: Optional[str] = None,
    workers: int = 1,
    scheduler: Any = None,
    staging_dir: Optional[str] = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    overwrite: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    command: Optional[str] = None,
) -> dict[str, Any]:
    """Chip rasters into one dataset (or one per split) and return a report.

    With ``workers <= 1`` and no ``scheduler`` chips are written in one
    process through :class:`rocksds.Writer`; otherwise tasks run in a process
    pool of ``workers`` (or on a Dask cluster: ``scheduler`` is a
    ``dask.distributed.Client`` or ``"dask://host:port"``) and are bulk
    ingested as SST files (:mod:`rocksds.bulk`). Both give identical datasets.
    Each dataset is built beside its final path and renamed into place when
    complete, so a crash never leaves a partial dataset at ``out``.

    Args:
        out: dataset path, or (with ``split``) a directory receiving ``<split>.rds``.
        inputs: scenes; see :func:`expand_inputs`.
        workers, scheduler, staging_dir: parallel build (see :func:`rocksds.bulk.build`).
        progress: called as ``progress(rows, total_rows)`` with the chip rows of each finished task.
        overwrite: replace existing datasets at the output paths.
        Others: see :func:`plan_chips`.

    Parallel builds start worker processes with ``spawn``: call this from a
    script under ``if __name__ == "__main__":``.

    Returns:
        ``{"datasets": {split: path}, "counts": {split: n}, "grid": chips in the grids,
        "invalid": dropped by min_valid, "straddling": dropped at split boundaries, "seconds": s,
        "chips_per_s": grid chips per second, "phases": seconds per step (plan, and chip/tables/ingest
        for parallel builds)}``.
    """
    t0 = time.perf_counter()
    out = os.fspath(out)
    scenes = expand_inputs(inputs)
    if command is None:
        command = f"rocksds.raster.ingest_raster({out!r}, {scenes!r}, chip={chip}, stride={stride}, edge={edge!r}, " \
                  f"min_valid={min_valid}, split={dict(split) if split else None}, split_block={split_block}, seed={seed})"
    parallel = scheduler is not None or workers > 1
    plan = plan_chips(
        scenes, chip=chip, stride=stride, edge=edge, min_valid=min_valid, split=split, split_block=split_block,
        seed=seed, classes=classes, compression=compression, batch_bytes=batch_bytes, cache_bytes=cache_bytes,
        tasks=max(16, 4 * max(1, workers)), command=command,
    )
    finals = _prepare_outputs(out, plan, overwrite)
    phases: dict[str, float] = {"plan": time.perf_counter() - t0}
    if progress is not None:
        total_rows = sum(t.row1 - t.row0 for t in plan.tasks)
        report, progress = progress, (lambda rows: report(rows, total_rows))  # type: ignore[assignment]
    if parallel:
        from .bulk import build

        stats = build(plan, finals, workers=workers, scheduler=scheduler, staging_dir=staging_dir, progress=progress,
                      timings=phases)
    else:
        stats = _build_serial(plan, finals, progress)
    kept = [sum(s.kept[k] for s in stats) for k in range(len(plan.splits))]
    seconds = time.perf_counter() - t0
    return {
        "datasets": dict(zip(plan.splits, finals)) if plan.splits != [""] else {"": finals[0]},
        "counts": dict(zip(plan.splits, kept)),
        "grid": plan.grid_total,
        "invalid": sum(s.invalid for s in stats),
        "straddling": sum(s.straddling for s in stats),
        "seconds": seconds,
        "chips_per_s": plan.grid_total / seconds if seconds > 0 else 0.0,
        "phases": phases,
    }


def _build_serial(plan: ChipPlan, finals: list[str], progress: Optional[Callable[[int], None]]) -> list[TaskStats]:
    from .writer import create

    tmps = [building_path(f) for f in finals]
    commit = max(4 * 2**20, plan.batch_bytes // 2)
    writers = []
    all_stats = []
    try:
        for k, tmp in enumerate(tmps):
            writers.append(create(tmp, split_schema(plan, k), wal=False, commit_bytes=commit))
        for task in plan.tasks:
            stats = TaskStats([0] * len(plan.splits))
            for k, sample in iter_task(plan, task, stats):
                writers[k].append(sample)
            all_stats.append(stats)
            if progress is not None:
                progress(task.row1 - task.row0)
        for w in writers:
            w.close()
        for tmp, final in zip(tmps, finals):
            place_dataset(tmp, final)
    except BaseException:
        for w in writers:
            try:
                w.discard()
                w.close()
            except Exception:
                pass
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return all_stats
