"""The serial build branch: chip every task in this process and append the samples through :class:`rocksds.Writer`.

It writes one dataset per split at the paths it is given; where they are
built and how they are placed is :mod:`rocksds.raster.ingest`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

from ..writer import Writer, create
from .bandstats import TaskBandStats, merge_tasks
from .chips import TaskStats, iter_task
from .plan import ChipPlan, split_schema

__all__ = ["build"]


def build(plan: ChipPlan, paths: Sequence[str], progress: Optional[Callable[[int], None]] = None) -> list[TaskStats]:
    """Chip ``plan`` into one new dataset per split at ``paths`` (in ``plan.splits`` order); one TaskStats per task.

    ``progress`` is called with a task's number of chip rows as each task ends.
    On an error the writers are discarded and closed; the caller removes the paths.
    Band statistics (``plan.stats``) are accumulated per task and merged in task
    order, as the parallel build does, and stored before the writers close;
    nobody sees the datasets before the caller places them.
    """
    commit = max(4 * 2**20, plan.batch_bytes // 2)
    writers: list[Writer] = []
    all_stats = []
    band_stats: list[list] = []
    try:
        for k, path in enumerate(paths):
            writers.append(create(path, split_schema(plan, k), wal=False, commit_bytes=commit))
        for task in plan.tasks:
            stats = TaskStats([0] * len(plan.splits))
            bands = TaskBandStats(plan) if plan.stats is not None else None
            for k, sample in iter_task(plan, task, stats):
                writers[k].append(sample)
                if bands is not None:
                    bands.add(k, sample)
            all_stats.append(stats)
            if bands is not None:
                band_stats.append(bands.finish())
            if progress is not None:
                progress(task.row1 - task.row0)
        for k, w in enumerate(writers):
            if plan.stats is not None:
                w.set_stats(merge_tasks(plan, k, [per_split[k] for per_split in band_stats]))
            w.close()
    except BaseException:
        for w in writers:
            try:
                w.discard()
                w.close()
            except Exception:
                pass
        raise
    return all_stats
