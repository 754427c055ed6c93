"""Damaged RocksDB files are reported, never opened as a smaller dataset, and never made permanent.

Trials in the style of the crash tests: a dataset whose last commits live
only in the write-ahead log (its writer was killed), then single-bit flips
and truncations of that log or of the MANIFEST at seeded offsets. A damaged
file must give a rocksds error on every open and a failing ``validate``; a
writable open must refuse and leave every file as it was.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rocksds
from _consistency import assert_samples, dir_state

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}

#: Samples in a dataset the fixtures build, committed ten at a time.
N = 300

_KILLED_WRITER = """
import os, sys
import rocksds
from _crash_writer import crash_schema, expected_sample
w = rocksds.create(sys.argv[1], crash_schema())
for start in range(0, int(sys.argv[2]), 10):
    w.extend([expected_sample(i) for i in range(start, start + 10)])
os._exit(0)  # like a SIGKILL: no close, no flush, the commits live in the write-ahead log only
"""


def _killed_writer(path: Path, n: int) -> Path:
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path), str(n)], check=True, env=ENV, timeout=120)
    return path


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of N samples whose commits are all in its write-ahead log."""
    return _killed_writer(tmp_path_factory.mktemp("damage") / "logged.rds", N)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _only(path: Path, suffix: str) -> Path:
    (name,) = [n for n in os.listdir(path) if n.endswith(suffix)]
    return path / name


def _flip(file: Path, offset: int, bit: int) -> None:
    with open(file, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ (1 << bit)]))


def _assert_refused_everywhere(path: Path, code: str) -> None:
    """Every open fails with a rocksds error, validate names ``code``, and nothing in ``path`` changes."""
    before = dir_state(path)
    with pytest.raises(rocksds.CorruptionError):
        rocksds.open(path)
    report = rocksds.validate(path, deep=True)
    assert not report.ok and code in report.codes(), [(i.code, i.message) for i in report.issues]
    with pytest.raises(rocksds.CorruptionError):
        rocksds.open(path, mode="a")
    assert dir_state(path) == before, "a refused open changed the dataset"


# ---------------------------------------------------------------------- the write-ahead log


def test_every_bit_flip_in_the_log_is_reported_and_nothing_is_dropped(logged: Path, tmp_path: Path) -> None:
    log = _only(logged, ".log")
    size = os.path.getsize(log)
    rng = random.Random(12)
    for trial in range(12):
        ds = _copy(logged, tmp_path / f"flip{trial}.rds")
        _flip(_only(ds, ".log"), rng.randrange(size), rng.randrange(8))
        _assert_refused_everywhere(ds, "damaged-log")
        shutil.rmtree(ds)


def test_a_damaged_log_is_salvaged_only_on_request(logged: Path, tmp_path: Path) -> None:
    ds = _copy(logged, tmp_path / "salvage.rds")
    log = _only(ds, ".log")
    _flip(log, os.path.getsize(log) // 2, 3)
    (issue,) = [i for i in rocksds.validate(ds).issues if i.code == "damaged-log"]
    assert "salvage_log=True" in issue.message
    kept = int(issue.message.split("holds ")[1].split()[0])
    assert 0 < kept < N
    with rocksds.open(ds, mode="a", salvage_log=True) as w:
        assert len(w) == kept
    assert rocksds.validate(ds, deep=True).ok
    assert_samples(ds, kept)


def test_an_incomplete_last_log_record_is_what_a_crash_leaves_and_opens(logged: Path, tmp_path: Path) -> None:
    for cut in (1, 9, 200):
        ds = _copy(logged, tmp_path / f"torn{cut}.rds")
        log = _only(ds, ".log")
        os.truncate(log, os.path.getsize(log) - cut)
        with rocksds.open(ds) as r:
            assert len(r) == N - 10  # the last commit was being written: it never returned
        assert rocksds.validate(ds).ok
        assert_samples(ds, N - 10)
        shutil.rmtree(ds)


# ---------------------------------------------------------------------- the MANIFEST

#: Commits of the MANIFEST trials' dataset, each flushed to table files of its own.
FLUSHES = 10


@pytest.fixture(scope="module")
def flushed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed dataset of N samples written in FLUSHES flushed commits (so its MANIFEST has many edits)."""
    from _crash_writer import crash_schema, expected_sample

    path = tmp_path_factory.mktemp("damage") / "flushed.rds"
    step = N // FLUSHES
    with rocksds.create(path, crash_schema()) as w:
        for start in range(0, N, step):
            w.extend([expected_sample(i) for i in range(start, start + step)])
            w.flush()
    return path


def _outcome(path: Path) -> str:
    """What a reader makes of ``path``: ``refused`` (a rocksds error) or ``count N``."""
    try:
        with rocksds.open(path) as ds:
            return f"count {len(ds)}"
    except rocksds.RocksdsError:
        return "refused"


def _truncations(flushed: Path, tmp_path: Path, *, witness: bool):
    """Copies of ``flushed`` with the MANIFEST cut at every 388th byte (4 x 97); without the witness
    file when ``witness`` is false (a dataset written before format 1.3). Yields (cut, copy)."""
    manifest = next(n for n in os.listdir(flushed) if n.startswith("MANIFEST-"))
    for cut in range(0, os.path.getsize(flushed / manifest), 4 * 97):
        ds = _copy(flushed, tmp_path / f"cut{cut}.rds")
        if not witness:
            os.remove(ds / rocksds.spec.WITNESS_FILE)
        os.truncate(ds / manifest, cut)
        yield cut, ds
        shutil.rmtree(ds)


def test_a_truncated_manifest_of_a_witnessed_dataset_is_always_refused(flushed: Path, tmp_path: Path) -> None:
    """With the committed-count witness (SPEC.md 7.1) no cut point opens as a smaller dataset, the
    loss of the last flush included: every open refuses, validate reports, and nothing changes."""
    assert rocksds.validate(flushed).ok
    outcomes = {"refused by RocksDB": 0, "rolled-back-count": 0}
    for cut, ds in _truncations(flushed, tmp_path, witness=True):
        before = dir_state(ds)
        with pytest.raises(rocksds.RocksdsError) as refused:
            rocksds.open(ds)
        codes = rocksds.validate(ds).codes()
        assert codes - {"uncommitted-record"}, f"truncation at {cut}: validate found nothing"
        if "rolled back" in str(refused.value):
            assert "rolled-back-count" in codes, (cut, codes)
            outcomes["rolled-back-count"] += 1
        else:
            outcomes["refused by RocksDB"] += 1
        with pytest.raises(rocksds.RocksdsError):
            rocksds.open(ds, mode="a")
        assert dir_state(ds) == before, f"truncation at {cut}: a refused open changed the dataset"
    assert outcomes["rolled-back-count"] > 0, outcomes


def test_a_truncated_manifest_never_loses_commits_for_good(flushed: Path, tmp_path: Path) -> None:
    """Without the witness: every cut point is refused, whole, or flagged and left unchanged.

    Only the loss of the very last flush is not detected from RocksDB's files alone (see
    ``Storage.rolled_back_tables``); the trial checks that this is the only case, and that every
    other smaller dataset is reported by ``validate`` and refused by ``open(mode="a")`` without
    deleting a file.
    """
    outcomes = {"refused": 0, "whole": 0, "flagged": 0, "last flush lost": 0}
    for cut, ds in _truncations(flushed, tmp_path, witness=False):
        seen = _outcome(ds)
        if seen == "refused":
            outcomes["refused"] += 1
            assert not rocksds.validate(ds).ok
        elif seen == f"count {N}":
            outcomes["whole"] += 1
        elif "unnamed-table" in rocksds.validate(ds).codes():
            outcomes["flagged"] += 1
            _assert_append_refused(ds)
        else:
            assert seen == f"count {N - N // FLUSHES}", f"truncation at {cut} opened as a smaller dataset: {seen}"
            outcomes["last flush lost"] += 1
    assert outcomes["flagged"] > outcomes["last flush lost"], outcomes


def _assert_append_refused(ds: Path) -> None:
    before = dir_state(ds)
    with pytest.raises(rocksds.CorruptionError, match="MANIFEST was rolled back"):
        rocksds.open(ds, mode="a")
    assert dir_state(ds) == before, "a refused open deleted or changed files"


def test_an_older_manifest_restored_over_a_newer_one_is_refused_for_appending(tmp_path: Path) -> None:
    """CURRENT and MANIFEST brought back from an older backup, the table files left as they are."""
    from _crash_writer import crash_schema, expected_sample

    ds = tmp_path / "restored.rds"
    backup = tmp_path / "backup"
    with rocksds.create(ds, crash_schema()) as w:
        w.extend([expected_sample(i) for i in range(30)])
    _copy(ds, backup)
    for start in range(30, 90, 30):
        with rocksds.open(ds, mode="a") as w:
            w.extend([expected_sample(i) for i in range(start, start + 30)])
    old_manifest = next(n for n in os.listdir(backup) if n.startswith("MANIFEST-"))
    newer = {n: (ds / n).read_bytes() for n in os.listdir(ds) if n.startswith(("MANIFEST-", "CURRENT"))}
    for name in ("CURRENT", old_manifest):
        shutil.copyfile(backup / name, ds / name)
    with pytest.raises(rocksds.CorruptionError, match="MANIFEST was rolled back"):
        rocksds.open(ds)  # RocksDB alone makes 30 samples of it; the witness says 90 were committed
    report = rocksds.validate(ds)
    assert {"unnamed-table", "rolled-back-count"} <= report.codes() and not report.ok
    _assert_append_refused(ds)
    for name, data in newer.items():  # restoring the newer MANIFEST restores everything
        (ds / name).write_bytes(data)
    with rocksds.open(ds, mode="a") as w:
        assert len(w) == 90
    assert_samples(ds, 90)


def test_bit_flips_in_a_witnessed_manifest_never_open_a_smaller_dataset(flushed: Path, tmp_path: Path) -> None:
    """Seeded single-bit flips of the MANIFEST: the dataset opens whole or is refused, never smaller
    (RocksDB checksums each MANIFEST record, and the witness catches what a checksum would let through)."""
    manifest = next(n for n in os.listdir(flushed) if n.startswith("MANIFEST-"))
    size = os.path.getsize(flushed / manifest)
    rng = random.Random(97)
    outcomes = {"refused": 0, "whole": 0}
    for trial in range(24):
        ds = _copy(flushed, tmp_path / f"flip{trial}.rds")
        _flip(ds / manifest, rng.randrange(size), rng.randrange(8))
        seen = _outcome(ds)
        assert seen in ("refused", f"count {N}"), f"flip {trial} opened as a smaller dataset: {seen}"
        if seen == "refused":
            assert not rocksds.validate(ds).ok
        outcomes["refused" if seen == "refused" else "whole"] += 1
        shutil.rmtree(ds)
    assert outcomes["refused"] > 0, outcomes
