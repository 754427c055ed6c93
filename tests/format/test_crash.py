"""Crash consistency: a writer killed or interrupted at any moment loses no commit.

A subprocess running ``_crash_writer.py`` ingests samples and is killed with
SIGKILL after a random delay (seeded). After every kill the dataset must open,
pass :func:`_consistency.assert_valid`, hold every sample the writer reported
as durable, hold exactly what ``expected_sample`` says for every committed
index, and accept appends again at ``count``. Reading it must not change its
directory. Durable means: a ``commit``/``extend`` that returned, with the
write-ahead log on (default); a ``flush`` that returned, with ``wal=False``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import rocksds
from _consistency import assert_samples, assert_valid, dir_state
from _crash_writer import crash_schema, expected_sample, stacked, write_expected
from rocksds._witness import read_witness

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parents[1] / "_crash_writer.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

#: (write-ahead log, how samples go in); every configuration gets TRIALS kills.
CONFIGS = [("wal", "append"), ("wal", "extend"), ("nowal", "append"), ("nowal", "stacked"),
           ("wal+tables", "stacked"), ("nowal+tables", "extend"), ("wal+sync", "extend")]
TRIALS = 5


@dataclass
class Report:
    """What the killed writer said on stdout before it died."""

    first: str
    committed: list[int] = field(default_factory=list)
    flushed: list[int] = field(default_factory=list)
    created: bool = False


def run_and_kill(path: Path, mode: str, op: str, seed: int, delay: float) -> Report:
    """Start the writer, wait for its first line, sleep ``delay`` s, SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(path), mode, op, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A killed process cannot remove its private read-only shadow directories; keep them out of /tmp.
        env={**ENV, "TMPDIR": str(path.parent)},
    )
    try:
        first = proc.stdout.readline().strip()  # type: ignore[union-attr]
        if first:
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first and proc.returncode == -signal.SIGKILL, f"writer died by itself ({proc.returncode}):\n{err}"
    report = Report(first=first)
    for line in rest.splitlines():
        word, _, num = line.partition(" ")
        if word == "committed":
            report.committed.append(int(num))
        elif word == "flushed":
            report.flushed.append(int(num))
        elif word == "created":
            report.created = True
    return report


@pytest.mark.slow
@pytest.mark.parametrize("mode,op", CONFIGS)
def test_sigkill_during_ingest_loses_no_commit(tmp_path: Path, mode: str, op: str) -> None:
    rng = np.random.default_rng([20261124, CONFIGS.index((mode, op))])
    path = tmp_path / "crash.rds"
    resumed = 0  # count after the previous trial's resume
    progressed = 0
    for trial in range(TRIALS):
        delay = float(rng.uniform(0.05, 0.5))
        report = run_and_kill(path, mode, op, int(rng.integers(2**31)), delay)
        assert report.first == f"ready {resumed}", report.first
        wal = mode.split("+")[0] == "wal"
        durable = (report.committed if wal else report.flushed) or [resumed]

        before = dir_state(path)
        # Without the WAL, a kill inside Writer.flush may leave records beyond count; so may a
        # kill between ingesting a commit's table files and writing its count.
        count = assert_valid(path, tail_ok=not wal or mode.endswith("+tables"))
        where = f"trial {trial} ({mode}/{op}, killed after {delay * 1000:.0f} ms)"
        assert count >= max(durable), f"{where}: count {count} < {max(durable)} reported durable"
        assert count >= resumed, where
        witness = read_witness(str(path))  # a kill while it was being replaced leaves the old one or the new
        assert witness.problem is None and (witness.count or 0) <= count, f"{where}: {witness}"
        if mode.endswith("+sync") and report.committed:  # a synced commit returns once witnessed
            assert witness.count is not None and witness.count >= report.committed[-1], where
        assert_samples(path, count)
        assert dir_state(path) == before, f"{where}: reading changed the dataset directory"
        progressed += count - resumed

        with rocksds.open(path, mode="a", wal=wal) as w:
            assert len(w) == count, where
            if op == "stacked":
                w.extend(stacked(count, 3))
            else:
                w.extend([expected_sample(i) for i in range(count, count + 3)])
        resumed = count + 3
        assert assert_valid(path) == resumed
        assert_samples(path, resumed, start=count)
    # The kills must land while samples are going in, not only before the first commit.
    assert progressed > 0


def test_sigkill_during_create_leaves_nothing_or_an_empty_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for trial in range(8):
        path = tmp_path / f"new{trial}.rds"
        report = run_and_kill(path, "wal", "create", trial, float(rng.uniform(0.0, 0.12)))
        if os.path.lexists(path):
            assert assert_valid(path) == 0
            with rocksds.open(path) as ds:
                assert len(ds) == 0 and ds.schema.fields == crash_schema().fields
        else:
            assert not report.created, "create() returned but nothing is at the path"
        with rocksds.create(path, crash_schema(), overwrite=os.path.lexists(path)) as w:
            w.extend([expected_sample(i) for i in range(2)])
        assert assert_valid(path) == 2  # and a new create (or overwrite) works after the crash


# ---------------------------------------------------------------------------------------------
# Interrupted by an exception: the dataset stays as it was before the failed batch.


@pytest.fixture
def ten(tmp_path: Path) -> Path:
    return write_expected(tmp_path / "ten.rds", 10)


def _bad_at(k: int, n: int):
    for i in range(n):
        s = expected_sample(10 + i)
        if i == k:
            s["image"] = np.zeros((3, 5, 6), np.float32)  # wrong shape
        yield s


def test_bad_sample_mid_batch_writes_nothing(ten: Path) -> None:
    with rocksds.open(ten, mode="a") as w:
        w.append(expected_sample(10))
        with pytest.raises(rocksds.SampleError, match="sample 3 of the batch"):
            w.extend(_bad_at(3, 6))
        assert len(w) == 10 and w.pending == 1  # the earlier append is still pending, nothing committed
        assert assert_valid(ten) == 10
        w.discard()
        cols = stacked(10, 4)
        cols["label"] = np.array([1.5, 2.5, 3.5, 4.5])  # float64 cannot be cast safely to int64
        with pytest.raises(rocksds.SampleError):
            w.extend(cols)
        assert len(w) == 10 and w.pending == 0
        w.extend([expected_sample(i) for i in range(10, 12)])  # the writer is still usable
    assert assert_valid(ten) == 12
    assert_samples(ten, 12)


def test_keyboard_interrupt_inside_extend_iterable_writes_nothing(ten: Path) -> None:
    def interrupted():
        yield expected_sample(10)
        yield expected_sample(11)
        raise KeyboardInterrupt

    w = rocksds.open(ten, mode="a")
    with pytest.raises(KeyboardInterrupt):
        w.extend(interrupted())
    assert len(w) == 10 and w.pending == 0
    with rocksds.open(ten) as ds:  # a second handle sees the dataset as before
        assert len(ds) == 10
    w.close()
    assert assert_valid(ten) == 10
    assert_samples(ten, 10)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_inside_with_block_keeps_only_commits(tmp_path: Path, exc: BaseException) -> None:
    path = tmp_path / "with.rds"
    with pytest.raises(type(exc)):
        with rocksds.create(path, crash_schema()) as w:
            w.extend([expected_sample(i) for i in range(5)])
            w.append(expected_sample(5))  # buffered, never committed
            raise exc
    assert assert_valid(path) == 5
    assert_samples(path, 5)
    with pytest.raises(type(exc)):
        with rocksds.open(path, mode="a") as w:
            w.extend([expected_sample(i) for i in range(5, 7)])
            w.append(expected_sample(7))
            raise exc
    assert assert_valid(path) == 7
    with rocksds.open(path, mode="a") as w:
        assert len(w) == 7
        w.append(expected_sample(7))
    assert_samples(path, 8)


# ---------------------------------------------------------------------------------------------
# What "committed" means, seen from a second handle opened after each step.


def _fresh_count(path: Path) -> int:
    with rocksds.open(path, cache_gb=0) as ds:
        return len(ds)


def test_wal_commit_is_visible_to_a_new_reader_at_once(tmp_path: Path) -> None:
    path = tmp_path / "wal.rds"
    w = rocksds.create(path, crash_schema())
    w.append(expected_sample(0))
    assert _fresh_count(path) == 0  # appended, not committed
    w.commit()
    assert _fresh_count(path) == 1  # in the write-ahead log: survives a process crash
    w.extend([expected_sample(1)])
    assert _fresh_count(path) == 2
    w.close()
    assert_samples(path, 2)


def test_without_wal_commits_reach_disk_at_flush(tmp_path: Path) -> None:
    path = tmp_path / "nowal.rds"
    w = rocksds.create(path, crash_schema(), wal=False)
    w.extend([expected_sample(i) for i in range(3)])
    assert len(w) == 3
    assert _fresh_count(path) == 0  # committed in memory only: a crash now loses it
    w.flush()
    assert _fresh_count(path) == 3
    w.extend([expected_sample(3)])
    assert _fresh_count(path) == 3
    w.close()  # close flushes
    assert _fresh_count(path) == 4
    assert assert_valid(path) == 4


_DIE_DURING_FLUSH = r"""
import os, sys
import rocksds
from _crash_writer import crash_schema, expected_sample

path, k = sys.argv[1], int(sys.argv[2])
w = rocksds.create(path, crash_schema(), wal=False)
w.extend([expected_sample(i) for i in range(5)])
w.flush()
w.extend([expected_sample(i) for i in range(5, 10)])
storage = w._storage
calls = []

class DieAfterK:
    def __init__(self, cf):
        self._cf = cf
    def flush(self, wait=True):
        if len(calls) == k:
            os._exit(9)  # the process dies between two column families' flushes
        calls.append(1)
        return self._cf.flush(wait)
    def __getattr__(self, name):
        return getattr(self._cf, name)

storage._cfs = {name: DieAfterK(cf) for name, cf in storage._cfs.items()}
w.flush()
os._exit(0)
"""


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_death_between_column_family_flushes_never_puts_count_ahead(tmp_path: Path, k: int) -> None:
    """``wal=False``: dying after ``k`` of the 5 column families flushed keeps ``count`` <= records."""
    path = tmp_path / "flush.rds"
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_DURING_FLUSH, str(path), str(k)],
        capture_output=True, text=True, env=ENV, cwd=SCRIPT.parent, timeout=120,
    )
    assert proc.returncode == 9, proc.stderr
    count = assert_valid(path, tail_ok=True)
    assert count == 5  # the second batch was never durable: the metadata flushes last
    assert_samples(path, count)
    with rocksds.open(path, mode="a") as w:  # opening a writer drops the records beyond count
        assert len(w) == 5
    assert assert_valid(path) == 5
