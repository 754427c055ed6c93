"""Handles release what they hold: descriptors after close, the writer's lock after an error.

Counts open descriptors through ``/proc/self/fd`` and runs children under a
descriptor limit (``resource.setrlimit``), as a user's ``ulimit -n`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rocksds
from _crash_writer import expected_sample, write_expected

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_expected(tmp_path / "ds.rds", 40)


def test_closed_handles_hold_no_descriptors(dataset: Path) -> None:
    with rocksds.open(dataset) as ds:  # the first open loads what stays loaded (libraries, caches)
        ds[0]
    before = _fds()
    handles = []
    for _ in range(30):
        ds = rocksds.open(dataset)
        ds[3], ds.get_batch([1, 2]), next(iter(ds))
        handles.append(ds)
    assert _fds() > before + 30
    for ds in handles:
        ds.close()
    assert _fds() <= before + 2
    for _ in range(20):
        with rocksds.open(dataset) as ds:
            ds[5]
    with rocksds.open(dataset, mode="a") as w:
        w.extend([expected_sample(40)])
    assert _fds() <= before + 2


_MANY_OPENS = """
import resource, sys
import rocksds
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
kept = []
for i in range(120):
    ds = rocksds.open(sys.argv[1])
    assert int(ds[i % 40]["label"]) == i % 40
    ds.close()
    kept.append(ds)  # closed handles that stay referenced must not hold descriptors either
print("ok")
"""


def test_opening_and_closing_many_handles_under_a_descriptor_limit(dataset: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _MANY_OPENS, str(dataset)], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (a disk that fills up); skipped where mounting needs privileges we lack."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _fill(disk: Path) -> Path:
    st = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        try:
            fh.write(b"\0" * (st.f_bavail * st.f_frsize - 4096))
        except OSError:
            pass
    return filler


_APPEND_ONE = """
import sys
import rocksds
from _crash_writer import expected_sample
with rocksds.open(sys.argv[1], mode="a") as w:
    w.extend([expected_sample(len(w))])
print(len(w))
"""


@pytest.mark.parametrize("bulk", [None, True])
def test_disk_full_gives_a_rocksds_error_and_releases_the_lock(small_disk: Path, bulk) -> None:
    from _crash_writer import crash_schema, stacked

    path = small_disk / "ds.rds"
    rocksds.create(path, crash_schema()).close()
    w = rocksds.open(path, mode="a", wal=False, bulk=bulk)
    w.extend(stacked(0, 100))
    filler = _fill(small_disk)
    with pytest.raises(rocksds.RocksdsError, match="No space left"):
        w.extend(stacked(100, 2000))
        w.flush()
    with pytest.raises(rocksds.RocksdsError, match="No space left") as info:
        w.close()  # commits what is pending: the disk is still full
    kept = info.value  # the exception stays referenced, as in a user's `except ... as e` or a traceback
    with pytest.raises(rocksds.ClosedError):
        w.extend(stacked(100, 1))
    os.remove(filler)
    done = subprocess.run([sys.executable, "-c", _APPEND_ONE, str(path)], capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert int(done.stdout) >= 1
    assert rocksds.validate(path).ok
    del kept


def _bulk_dataset(path: Path, commits: int) -> Path:
    from _crash_writer import crash_schema, stacked

    with rocksds.create(path, crash_schema(), bulk=True) as w:
        for i in range(commits):
            w.extend(stacked(i * 20, 20))
    return path


def _tables(path: Path) -> int:
    return sum(1 for n in os.listdir(path) if n.endswith(".sst"))


_OPEN_UNDER_LIMIT = """
import resource, sys
import rocksds
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    with rocksds.open(sys.argv[1]) as ds:
        n = len(ds)
        assert int(ds[n - 1]["label"]) == n - 1
    print("opened", n)
except rocksds.RocksdsError as e:
    print("refused", e)
report = rocksds.validate(sys.argv[1])
print("valid" if report.ok else "invalid", [i.code for i in report.issues])
"""


def _open_under_limit(path: Path, limit: int) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _OPEN_UNDER_LIMIT, str(path), str(limit)], capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_bulk_commits_keep_the_table_files_bounded(tmp_path: Path) -> None:
    path = _bulk_dataset(tmp_path / "bulk.rds", 200)  # 5 fields: 1,000 ingested files without compaction
    assert _tables(path) <= 5 * (200 // rocksds.writer.MERGE_AFTER_FILES + rocksds.writer.MERGE_AFTER_FILES) + 10
    assert rocksds.validate(path, deep=True).ok
    from _consistency import assert_samples
    assert_samples(path, 4000)
    out = _open_under_limit(path, 256)
    assert out == ["opened 4000", "valid []"], out


def test_running_out_of_descriptors_is_a_rocksds_error_that_says_what_to_do(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rocksds.writer, "MERGE_AFTER_FILES", 10**9)  # as the writer did before compacting
    path = _bulk_dataset(tmp_path / "many.rds", 60)
    assert _tables(path) > 200
    out = _open_under_limit(path, 128)
    assert out[0].startswith("refused") and "file descriptors" in out[0] and "ulimit -n" in out[0], out
    assert out[1].startswith("invalid"), out


def test_closed_handles_of_large_records_hold_no_descriptors(tmp_path: Path) -> None:
    # Records above the MultiGet threshold are batch-read through per-field point getters.
    import numpy as np

    from rocksds.reader import MULTIGET_MAX_RECORD_BYTES

    path = tmp_path / "big.rds"
    image = np.zeros((8, 4, 32, 32), np.float32)
    assert image[0].nbytes > MULTIGET_MAX_RECORD_BYTES
    with rocksds.create(path, rocksds.Schema(fields={"image": rocksds.Field(dtype="float32", shape=(4, 32, 32))})) as w:
        w.extend({"image": image})
    with rocksds.open(path) as ds:
        ds.get_batch([0, 1])
    before = _fds()
    handles = []
    for _ in range(30):
        ds = rocksds.open(path)
        ds.get_batch([1, 2])
        handles.append(ds)
    assert _fds() > before + 30
    for ds in handles:
        ds.close()
    assert _fds() <= before + 2
