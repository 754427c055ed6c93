"""The serial build branch: chip every task in this process and append the samples through :class:`rocksds.Writer`.

It writes one dataset per split at the paths it is given; where they are
built and how they are placed is :mod:`rocksds.raster.ingest`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

from ..writer import Writer, create
from .chips import TaskStats, iter_task
from .plan import ChipPlan, split_schema

__all__ = ["build"]


def build(plan: ChipPlan, paths: Sequence[str], progress: Optional[Callable[[int], None]] = None) -> list[TaskStats]:
    """Chip ``plan`` into one new dataset per split at ``paths`` (in ``plan.splits`` order); one TaskStats per task.

    ``progress`` is called with a task's number of chip rows as each task ends.
    On an error the writers are discarded and closed; the caller removes the paths.
    """
    commit = max(4 * 2**20, plan.batch_bytes // 2)
    writers: list[Writer] = []
    all_stats = []
    try:
        for k, path in enumerate(paths):
            writers.append(create(path, split_schema(plan, k), wal=False, commit_bytes=commit))
        for task in plan.tasks:
            stats = TaskStats([0] * len(plan.splits))
            for k, sample in iter_task(plan, task, stats):
                writers[k].append(sample)
            all_stats.append(stats)
            if progress is not None:
                progress(task.row1 - task.row0)
        for w in writers:
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
