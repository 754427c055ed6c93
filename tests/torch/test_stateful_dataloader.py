"""torchdata's real StatefulDataLoader: save after k batches, resume in a new process, one exact epoch.

Each leg runs in a fresh interpreter (``_stateful_run.py``), as a restarted training job would: the state
travels only through the file ``torch.save`` wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torchdata.stateful_dataloader")

import rocksds  # noqa: E402

N = 42  # not a multiple of the batch (4) nor of the block (8): ragged ends on every worker
SCRIPT = Path(__file__).resolve().parent / "_stateful_run.py"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("stateful") / "idx.rds"
    schema = rocksds.Schema(fields={"idx": rocksds.Field(dtype="int64", shape=())})
    with rocksds.create(path, schema) as w:
        w.extend({"idx": np.arange(N, dtype=np.int64)})
    return str(path)


def _leg(tmp_path: Path, dataset: str, kind: str, workers: int, name: str, *stop: int) -> list[int]:
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, str(SCRIPT), dataset, kind, str(workers), str(tmp_path / "state.pt"), str(out),
           *map(str, stop)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["iterable", "map"])
def test_resume_in_new_process_gives_exactly_one_epoch(tmp_path, dataset, kind, workers):
    k = 3
    before = _leg(tmp_path, dataset, kind, workers, "before", k)
    after = _leg(tmp_path, dataset, kind, workers, "after")
    assert len(before) == 4 * k
    assert sorted(before + after) == list(range(N))  # every sample once: nothing lost, nothing repeated


@pytest.mark.parametrize("kind", ["iterable", "map"])
def test_resume_continues_the_uninterrupted_order(tmp_path, dataset, kind):
    # Without workers the order is fully determined: the resumed run must continue the epoch exactly.
    whole = _leg(tmp_path, dataset, kind, 0, "whole", 10**6)
    before = _leg(tmp_path, dataset, kind, 0, "before", 5)
    after = _leg(tmp_path, dataset, kind, 0, "after")
    assert before + after == whole
