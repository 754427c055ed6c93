"""Concurrency: one writer at a time, any number of readers, read-only storage.

A second writer, in this process or another, gets DatasetLockedError with a
message that says what to do. Readers open read-only, see the snapshot they
opened (even while a writer commits more), follow new commits through
``Dataset.refresh()``, work from read-only file systems and directories, and
never modify the dataset directory.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import rocksds
from _consistency import assert_samples, assert_valid, dir_state
from _crash_writer import crash_schema, expected_sample, write_expected

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parents[1]  # tests/, where the shared helpers are
SCRIPT = HERE / "_crash_writer.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_expected(tmp_path / "ds.rds", 40)


def _start_writer(
    path: Path, op: str = "extend", mode: str = "wal", pause: float = 0.004, flush_every: int = 8
) -> subprocess.Popen:
    """``_crash_writer.py`` appending to ``path`` until killed; returns once it holds the lock."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(path), mode, op, "5", str(pause), str(flush_every)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("ready"):
        proc.kill()
        raise AssertionError(f"writer did not start: {proc.communicate()[1]}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


# ---------------------------------------------------------------------------------------------
# One writer at a time


def _assert_clear_lock_message(err: BaseException, path: Path, where: str) -> None:
    msg = str(err)
    assert isinstance(err, rocksds.DatasetLockedError) and isinstance(err, BlockingIOError)
    assert f"dataset {path} is locked by another writer (already open for writing {where})" in msg
    assert "mode='r'" in msg  # says what to do instead
    assert "IO error" not in msg and "LOCK" not in msg  # not a raw RocksDB status


def test_second_writer_in_same_process_is_refused(dataset: Path) -> None:
    with rocksds.open(dataset, mode="a") as w:
        w.extend([expected_sample(40)])
        with pytest.raises(rocksds.DatasetLockedError) as info:
            rocksds.open(dataset, mode="a")
        _assert_clear_lock_message(info.value, dataset, "in this process")
        with pytest.raises(rocksds.DatasetLockedError):
            rocksds.create(dataset, crash_schema(), overwrite=True)
        w.extend([expected_sample(41)])
    assert assert_valid(dataset) == 42
    assert_samples(dataset, 42)


def test_second_writer_in_another_process_is_refused(dataset: Path) -> None:
    proc = _start_writer(dataset)
    try:
        with pytest.raises(rocksds.DatasetLockedError) as info:
            rocksds.open(dataset, mode="a")
        _assert_clear_lock_message(info.value, dataset, "in another process")
        # overwrite=True must not delete a dataset another process is writing
        with pytest.raises(rocksds.DatasetLockedError):
            rocksds.create(dataset, crash_schema(), overwrite=True)
    finally:
        _stop(proc)
    count = assert_valid(dataset)
    assert count >= 40
    assert_samples(dataset, count)
    with rocksds.open(dataset, mode="a") as w:  # the lock dies with its process
        assert len(w) == count


def _assert_untouched_while_written(dataset: Path, replace) -> None:
    """``replace()`` (an overwrite of ``dataset``) is refused while another process writes it; nothing is lost."""
    proc = _start_writer(dataset)
    try:
        with pytest.raises(rocksds.DatasetLockedError, match="locked by another writer"):
            replace()
    finally:
        _stop(proc)
    count = assert_valid(dataset)
    assert count >= 40
    assert_samples(dataset, count)
    assert not [n for n in os.listdir(dataset.parent) if n.startswith(".")], "a build directory was left behind"


def test_ingest_raster_overwrite_refuses_a_dataset_another_process_writes(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("rasterio")
    from rocksds.raster import ingest_raster
    from rocksds.testing import write_synthetic_geotiff

    scene = write_synthetic_geotiff(str(tmp_path / "scene.tif"), 64, 64, block=32)
    _assert_untouched_while_written(dataset, lambda: ingest_raster(dataset, {"image": scene}, chip=32, overwrite=True))


def test_convert_overwrite_refuses_a_dataset_another_process_writes(dataset: Path, tmp_path: Path) -> None:
    from rocksds.convert import from_npy_folder

    src = tmp_path / "npy"
    src.mkdir()
    for i in range(3):
        np.save(src / f"{i}.npy", np.arange(4) + i)
    _assert_untouched_while_written(dataset, lambda: from_npy_folder(str(src), str(dataset), overwrite=True))


def _assert_cli_refuses_while_written(dataset: Path, argv: list[str]) -> None:
    """``rocksds ARGV`` (an ``--overwrite`` of ``dataset``) run as a user runs it, while another process writes."""
    proc = _start_writer(dataset)
    try:
        done = subprocess.run([sys.executable, "-m", "rocksds.cli", *argv], capture_output=True, text=True, env=ENV,
                              timeout=120)
    finally:
        _stop(proc)
    assert done.returncode != 0, done.stdout
    assert "locked by another writer" in done.stderr and "Traceback" not in done.stderr
    count = assert_valid(dataset)
    assert count >= 40
    assert_samples(dataset, count)
    assert not [n for n in os.listdir(dataset.parent) if n.startswith(".")], "a build directory was left behind"


def test_cli_convert_overwrite_refuses_a_dataset_another_process_writes(dataset: Path, tmp_path: Path) -> None:
    src = tmp_path / "npy"
    src.mkdir()
    for i in range(3):
        np.save(src / f"{i}.npy", np.arange(4) + i)
    _assert_cli_refuses_while_written(dataset, ["convert", "npy", str(src), str(dataset), "--overwrite", "--quiet"])


def test_cli_ingest_raster_overwrite_refuses_a_dataset_another_process_writes(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("rasterio")
    from rocksds.testing import write_synthetic_geotiff

    scene = write_synthetic_geotiff(str(tmp_path / "scene.tif"), 64, 64, block=32)
    _assert_cli_refuses_while_written(
        dataset, ["ingest-raster", str(dataset), "--input", f"image={scene}", "--chip", "32", "--overwrite"])


def test_overwrite_replaces_a_closed_dataset(dataset: Path) -> None:
    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="uint8", shape=(2,))})
    with rocksds.create(dataset, schema, overwrite=True) as w:
        w.append({"x": np.array([1, 2], np.uint8)})
    with rocksds.open(dataset) as ds:
        assert ds.field_names == ("x",) and len(ds) == 1
    assert [n for n in os.listdir(dataset.parent) if n != dataset.name] == []  # no leftovers


# ---------------------------------------------------------------------------------------------
# Many readers


def _reader_process(path: str, count: int) -> int:
    """Open ``path`` read-only and check every sample; run in a spawned process."""
    assert_samples(path, count)
    with rocksds.open(path, fields=["label", "name"]) as ds:
        return int(sum(int(s["label"]) for s in ds))


def test_many_reader_processes_at_once(dataset: Path) -> None:
    before = dir_state(dataset)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_reader_process, [(str(dataset), 40)] * 3)
    assert results == [sum(range(40))] * 3
    assert dir_state(dataset) == before


def test_reader_keeps_its_snapshot_while_a_writer_commits(dataset: Path) -> None:
    w = rocksds.open(dataset, mode="a")
    try:
        w.extend([expected_sample(i) for i in range(40, 50)])
        ds = rocksds.open(dataset)
        assert len(ds) == 50
        w.extend([expected_sample(i) for i in range(50, 70)])
        w.flush()  # memtables become table files; the reader must not notice
        w.extend([expected_sample(i) for i in range(70, 75)])
        assert len(ds) == 50
        with pytest.raises(rocksds.IndexOutOfRangeError):
            ds[50]
        batch = ds[0:50]
        assert batch["label"].tolist() == list(range(50))
        assert [int(s["label"]) for s in ds] == list(range(50))
        ds.refresh()  # how a reader follows a growing dataset
        assert len(ds) == 75
        np.testing.assert_array_equal(ds[74]["image"], expected_sample(74)["image"])
        ds.close()
    finally:
        w.close()
    assert_samples(dataset, 75)


@pytest.mark.parametrize("mode", ["wal", "nowal"])
def test_readers_follow_a_writer_in_another_process(tmp_path: Path, mode: str) -> None:
    """Readers open, read and refresh while another process commits.

    With the WAL, readers replay a log the writer is appending to; with
    ``wal=False`` the writer flushes every third commit, so table files come
    and go (flushes, compactions) while readers open.
    """
    path = tmp_path / "live.rds"
    proc = _start_writer(path, op="extend", mode=mode, pause=0.02, flush_every=3)
    seen = []
    try:
        ds = rocksds.open(path, cache_gb=0)
        deadline = time.monotonic() + 30
        # At least three rounds, and on until a refresh has shown new commits (a loaded machine
        # may let readers run several rounds between two of the writer's flushes).
        while len(seen) < 3 or (seen[-1] == seen[0] and time.monotonic() < deadline):
            n = len(ds)
            assert_samples_handle(ds, n)
            ds.refresh()
            assert len(ds) >= n
            seen.append(len(ds))
            fresh = rocksds.open(path, fields=["label"])  # opening while files come and go
            assert len(fresh) >= n
            assert fresh[0:len(fresh)]["label"].tolist() == list(range(len(fresh)))
            fresh.close()
        ds.close()
    finally:
        _stop(proc)
    assert seen[-1] > seen[0]  # the readers did see new commits


def assert_samples_handle(ds: rocksds.Dataset, n: int) -> None:
    """Check samples of an open handle twice: the snapshot must not move between reads."""
    assert len(ds) == n
    if n:
        first = ds[0:n]
        assert first["label"].tolist() == list(range(n))
        again = ds.get_batch(np.arange(n))
        np.testing.assert_array_equal(first["image"], again["image"])
        np.testing.assert_array_equal(first["image"][-1], expected_sample(n - 1)["image"])
    assert len(ds) == n


# ---------------------------------------------------------------------------------------------
# Read-only storage; opening never writes


def _read_everything(path: Path) -> None:
    with rocksds.open(path) as ds:
        n = len(ds)
        ds[0], ds[n - 1], ds[3:9], ds.get_batch([5, 1]), list(ds)
        ds.refresh()
    with rocksds.open(path, fields=["name"], cache_gb=0) as ds:
        assert ds[2]["name"] == expected_sample(2)["name"]


def test_opening_and_reading_never_modify_the_directory(dataset: Path) -> None:
    w = rocksds.open(dataset, mode="a")
    w.extend([expected_sample(i) for i in range(40, 45)])  # un-flushed, in the WAL only
    before = dir_state(dataset)
    _read_everything(dataset)
    assert_samples(dataset, 45)
    assert dir_state(dataset) == before
    w.close()
    before = dir_state(dataset)
    _read_everything(dataset)
    assert dir_state(dataset) == before


@pytest.fixture
def ro_mount(dataset: Path):
    """The dataset's parent directory bind-mounted read-only; yields the dataset path in it."""
    mnt = Path(tempfile.mkdtemp(prefix="rocksds-ro-mnt-"))
    proc = subprocess.run(["mount", "--bind", "-o", "ro", str(dataset.parent), str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"cannot bind-mount read-only here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mnt / dataset.name
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        os.rmdir(mnt)


def test_read_only_file_system(ro_mount: Path, dataset: Path) -> None:
    before = dir_state(dataset)
    _read_everything(ro_mount)
    assert_samples(ro_mount, 40)
    with pytest.raises(rocksds.ReadOnlyError, match="cannot write"):
        rocksds.open(ro_mount, mode="a")
    with pytest.raises(rocksds.ReadOnlyError):
        rocksds.create(ro_mount, crash_schema(), overwrite=True)
    with pytest.raises(rocksds.ReadOnlyError):
        rocksds.create(ro_mount.parent / "new.rds", crash_schema())
    assert dir_state(dataset) == before
    assert_samples(dataset, 40)


_UNPRIVILEGED = r"""
import sys
import rocksds
path = sys.argv[1]
with rocksds.open(path) as ds:
    assert len(ds) == 40 and int(ds[39]["label"]) == 39
try:
    rocksds.open(path, mode="a")
except rocksds.ReadOnlyError as e:
    print("ReadOnlyError:", e)
"""


def test_read_only_directory(dataset: Path) -> None:
    """A chmod a-w dataset directory: reads work, a writer gets ReadOnlyError.

    root ignores permission bits, so as root the check runs in a process
    without the capabilities that bypass them (``setpriv``).
    """
    base = Path(tempfile.mkdtemp(prefix="rocksds-chmod-"))
    try:
        path = base / "ds.rds"
        shutil.copytree(dataset, path)
        os.chmod(base, 0o755)
        for p in [path, *path.iterdir()]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        before = dir_state(path)
        cmd = [sys.executable, "-c", _UNPRIVILEGED, str(path)]
        if os.getuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root and setpriv is missing, so permission bits cannot be enforced")
            drop = "-dac_override,-dac_read_search,-fowner"
            cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd="/", timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "ReadOnlyError: cannot write to" in proc.stdout
        assert dir_state(path) == before
    finally:
        for root, dirs, _files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(base)


_BIG_COMMITS = """
import sys
import rocksds
from _crash_writer import crash_schema, stacked
bulk = {"bulk": True, "default": None, "wal": False}[sys.argv[2]]
w = rocksds.create(sys.argv[1], crash_schema(), bulk=bulk)
print("ready", flush=True)
while True:
    w.extend(stacked(len(w), 1000))
    print("committed", len(w), flush=True)
"""


@pytest.mark.parametrize("mode", ["bulk", "default"])
def test_readers_opening_during_large_commits_never_miss_a_committed_sample(tmp_path: Path, mode: str) -> None:
    """Readers opened while a writer appends 1,000-sample commits (``bulk=True``: every field through
    ingested table files; default: the large columns so) each see a whole snapshot."""
    path = tmp_path / "big.rds"
    proc = subprocess.Popen([sys.executable, "-c", _BIG_COMMITS, str(path), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().startswith("ready"), proc.stderr.read()  # type: ignore[union-attr]
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < 12 and time.monotonic() < deadline:
            with rocksds.open(path) as ds:
                n = len(ds)
                if n:
                    assert int(ds[n - 1]["label"]) == n - 1
                    assert ds.get_batch(list(range(max(0, n - 1000), n)))["label"].tolist() == list(
                        range(max(0, n - 1000), n))
                seen.append(n)
            time.sleep(0.02)
    finally:
        _stop(proc)
    assert len(seen) == 12 and seen[-1] > 0, seen


_WITNESSED_COMMITS = """
import sys, time
import rocksds
from _crash_writer import crash_schema, stacked
w = rocksds.create(sys.argv[1], crash_schema(), sync=True)
print("ready", flush=True)
while True:
    w.extend(stacked(len(w), 5))
    if len(w) % 20 == 0:
        w.flush()
    time.sleep(0.005)
"""


def test_readers_opening_while_the_witness_moves_never_raise_a_false_alarm(tmp_path: Path) -> None:
    """A writer whose every commit is synced, so witnessed (SPEC.md 7.1), and every fourth one flushed:
    readers and the validator opening meanwhile never find ``count`` below the witness."""
    path = tmp_path / "witnessed.rds"
    proc = subprocess.Popen([sys.executable, "-c", _WITNESSED_COMMITS, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    seen = []
    try:
        assert proc.stdout.readline().startswith("ready"), proc.stderr.read()  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while (len(seen) < 30 or seen[-1] == seen[0]) and time.monotonic() < deadline:
            with rocksds.open(path, fields=["label"]) as ds:
                n = len(ds)
                assert ds[0:n]["label"].tolist() == list(range(n))
            seen.append(n)
            if len(seen) % 10 == 0:
                codes = rocksds.validate(path).codes()
                assert not codes & {"rolled-back-count", "malformed-witness"}, codes
    finally:
        _stop(proc)
    assert seen == sorted(seen) and seen[-1] > seen[0], seen
