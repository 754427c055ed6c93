"""The top step of raster ingestion, the only one that knows both build branches.

inputs (:mod:`~rocksds.raster.inputs`) -> plan (:mod:`~rocksds.raster.plan`) ->
chips (:mod:`~rocksds.raster.chips`) -> serial Writer (:mod:`~rocksds.raster.serial`)
or parallel build (:mod:`~rocksds.raster.parallel`) -> placed (``rocksds._paths``).
See :mod:`rocksds.raster` for what a sample holds and the grid, split and memory rules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

from .._paths import building
from . import parallel, serial
from .inputs import Inputs, expand_inputs
from .plan import DEFAULT_BATCH_BYTES, DEFAULT_CACHE_BYTES, ChipPlan, plan_chips

__all__ = ["ingest_raster", "output_paths"]


def output_paths(out: str, plan: ChipPlan) -> list[str]:
    """Dataset path of each split: ``out`` itself without splits, else ``out/<split>.rds``."""
    if plan.splits == [""]:
        return [out]
    return [os.path.join(out, f"{name}.rds") for name in plan.splits]


def ingest_raster(
    out: Union[str, os.PathLike[str]],
    inputs: Inputs,
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
    stats: bool = True,
    class_counts: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """Chip rasters into one dataset (or one per split) and return a report.

    With ``workers <= 1`` and no ``scheduler`` chips are written in one
    process through :class:`rocksds.Writer`; otherwise tasks run in a process
    pool of ``workers`` (or on a Dask cluster: ``scheduler`` is a
    ``dask.distributed.Client`` or ``"dask://host:port"``) and are
    ingested as SST files (:mod:`rocksds.raster.parallel`). Both give identical datasets.
    Each dataset is built beside its final path and renamed into place when
    complete, so a crash never leaves a partial dataset at ``out``.

    Args:
        out: dataset path, or (with ``split``) a directory receiving ``<split>.rds``.
        inputs: scenes; see :func:`expand_inputs`.
        workers, scheduler, staging_dir: parallel build (see :func:`rocksds.raster.parallel.build`).
        progress: called as ``progress(rows, total_rows)`` with the chip rows of each finished task.
        overwrite: replace existing datasets at the output paths.
        stats: store per-band statistics of every input with each dataset (SPEC.md 2.1; nodata left out;
            ``ds.stats``); the serial and parallel builds store the same numbers.
        Others (``class_counts`` too): see :func:`plan_chips`.

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
    in_parallel = scheduler is not None or workers > 1
    plan = plan_chips(
        scenes, chip=chip, stride=stride, edge=edge, min_valid=min_valid, split=split, split_block=split_block,
        seed=seed, classes=classes, compression=compression, batch_bytes=batch_bytes, cache_bytes=cache_bytes,
        tasks=max(16, 4 * max(1, workers)), command=command, stats=stats, class_counts=class_counts,
    )
    finals = output_paths(out, plan)
    if plan.splits != [""]:
        os.makedirs(out, exist_ok=True)
    phases: dict[str, float] = {"plan": time.perf_counter() - t0}
    if progress is not None:
        total_rows = sum(t.row1 - t.row0 for t in plan.tasks)
        report, progress = progress, (lambda rows: report(rows, total_rows))  # type: ignore[assignment]
    with building(finals, "building", overwrite=overwrite,
                  hint="pass overwrite=True / --overwrite to replace it") as tmps:
        if in_parallel:
            stats = parallel.build(plan, tmps, workers=workers, scheduler=scheduler, staging_dir=staging_dir,
                                   progress=progress, timings=phases)
        else:
            stats = serial.build(plan, tmps, progress)
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
