"""Per-band statistics of one task's chips, the same way in the serial and the parallel build.

Each task accumulates its own :class:`~rocksds.stats.DatasetStats` per split,
adding chips in groups of :data:`GROUP` in sample order; the build merges the
tasks' statistics in task order. Both build branches run exactly these
steps, so they store the same numbers, bit for bit (float64 means and ``m2``
depend on the order of the merges; integer inputs of at most 16 bits are
exact whatever the order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from ..stats import DatasetStats, stats_options
from .plan import ChipPlan

__all__ = ["TaskBandStats", "merge_tasks", "GROUP"]

#: Chips stacked per statistics update: large enough that the per-band histogram pass is amortised.
GROUP = 64


class TaskBandStats:
    """Band statistics of the chips one task keeps, per split."""

    def __init__(self, plan: ChipPlan) -> None:
        assert plan.stats is not None
        empty = DatasetStats.empty(plan.schema, stats_options(plan.schema, plan.stats))
        self.splits = [empty.fresh() for _ in plan.splits]
        self._pending: list[list[Mapping[str, Any]]] = [[] for _ in plan.splits]

    def add(self, split: int, sample: Mapping[str, Any]) -> None:
        pending = self._pending[split]
        pending.append({n: sample[n] for n in self.splits[split].fields})
        if len(pending) >= GROUP:
            self._flush(split)

    def _flush(self, split: int) -> None:
        pending = self._pending[split]
        if pending:
            stats = self.splits[split]
            stats.add({n: np.stack([s[n] for s in pending]) for n in stats.fields}, len(pending))
            pending.clear()

    def finish(self) -> list[DatasetStats]:
        for k in range(len(self.splits)):
            self._flush(k)
        return self.splits

    def documents(self) -> list[dict[str, Any]]:
        """The finished statistics as plain data (for a task's JSON marker)."""
        return [s.to_document() for s in self.finish()]


def merge_tasks(plan: ChipPlan, split: int, per_task: Sequence[Optional[DatasetStats]]) -> DatasetStats:
    """The statistics of one split: its tasks' statistics merged in task order."""
    assert plan.stats is not None
    total = DatasetStats.empty(plan.schema, stats_options(plan.schema, plan.stats))
    for stats in per_task:
        if stats is not None:
            total.merge(stats)
    return total
