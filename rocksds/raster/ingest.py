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
from ..errors import EmptyOutputError
from . import parallel, serial
from .inputs import Inputs, expand_inputs
from .plan import DEFAULT_BATCH_BYTES, DEFAULT_CACHE_BYTES, ChipPlan, plan_chips

__all__ = ["ingest_raster", "output_paths", "describe_drops"]


def describe_drops(plan: ChipPlan, invalid: int, straddling: int) -> str:
    """What was dropped and why, in words: the line the CLI prints and the report keeps."""
    if plan.min_valid > 0:
        rule = f"with under {plan.min_valid:g} of their pixels valid (--min-valid)"
    elif plan.min_valid_pixels:
        rule = "without a single valid pixel (the default; --min-valid 0 keeps them)"
    else:
        rule = "for their pixels (--min-valid 0)"
    parts = [f"dropped {invalid} chip(s) {rule}"]
    if plan.splits != [""]:
        parts.append(f"{straddling} straddling two splits' {plan.split_block} px blocks")
    return ", ".join(parts)


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
    min_valid: Optional[float] = None,
    split: Optional[Mapping[str, float]] = None,
    split_block: Optional[int] = None,
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
        Others (``class_counts`` too): see :func:`plan_chips` (by default chips without a single valid
            pixel are dropped and the split block is derived from the scene size).

    Raises:
        EmptyOutputError: a dataset (or split) would hold no samples; the message says how many chips were
            dropped and why. Nothing is left at the output paths.

    Parallel builds start worker processes with ``spawn``: call this from a
    script under ``if __name__ == "__main__":``.

    Returns:
        ``{"datasets": {split: path}, "counts": {split: n}, "grid": chips in the grids,
        "invalid": dropped by min_valid, "straddling": dropped at split boundaries,
        "dropped": one line saying what was dropped and why, "split_block": the block side used, "seconds": s,
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
    made_dir = plan.splits != [""] and not os.path.exists(out)
    if made_dir:
        os.makedirs(out)
    try:
        return _build(out, plan, finals, workers, scheduler, staging_dir, progress, overwrite, in_parallel, t0)
    except BaseException:
        if made_dir and os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)  # a failed build leaves nothing behind, not even the folder it made for the splits
        raise


def _build(out: str, plan: ChipPlan, finals: list[str], workers: int, scheduler: Any, staging_dir: Optional[str],
           progress: Optional[Callable[[int, int], None]], overwrite: bool, in_parallel: bool,
           t0: float) -> dict[str, Any]:
    """Build every split beside its final path, check none is empty, place them; the report."""
    phases: dict[str, float] = {"plan": time.perf_counter() - t0}
    if progress is not None:
        total_rows = sum(t.row1 - t.row0 for t in plan.tasks)
        report, progress = progress, (lambda rows: report(rows, total_rows))  # type: ignore[assignment]
    with building(finals, "building", overwrite=overwrite,
                  hint="pass overwrite=True / --overwrite to replace it") as tmps:
        if in_parallel:
            # Staged beside the final path, not the random build directory, so a re-run finds finished tasks.
            staging_dir = staging_dir or finals[0].rstrip(os.sep) + ".rocksds-staging"
            stats = parallel.build(plan, tmps, workers=workers, scheduler=scheduler, staging_dir=staging_dir,
                                   progress=progress, timings=phases)
        else:
            stats = serial.build(plan, tmps, progress)
        kept = [sum(s.kept[k] for s in stats) for k in range(len(plan.splits))]
        invalid, straddling = sum(s.invalid for s in stats), sum(s.straddling for s in stats)
        dropped = describe_drops(plan, invalid, straddling)
        empty = [name or "the dataset" for name, n, f in zip(plan.splits, kept, plan.fractions) if n == 0 and f > 0]
        if empty:  # raised inside `building`: the half-built datasets are removed
            raise EmptyOutputError(
                f"{', '.join(empty)} would hold no samples ({plan.grid_total} chips in the grid; {dropped}); "
                "nothing was written. Lower min_valid / --min-valid, or use fewer or larger splits"
            )
    seconds = time.perf_counter() - t0
    return {
        "datasets": dict(zip(plan.splits, finals)) if plan.splits != [""] else {"": finals[0]},
        "counts": dict(zip(plan.splits, kept)),
        "grid": plan.grid_total,
        "invalid": invalid,
        "straddling": straddling,
        "dropped": dropped,
        "split_block": plan.split_block if plan.splits != [""] else None,
        "seconds": seconds,
        "chips_per_s": plan.grid_total / seconds if seconds > 0 else 0.0,
        "phases": phases,
    }
