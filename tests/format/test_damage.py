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
