"""The committed-count witness (SPEC.md 7.1): written only where the count is durable, never lowered
but by a salvage, checked by every open, and hostile bytes in it give reports, never tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import rocksds
import rocksds._shadow
from _consistency import assert_samples, dir_state
from _crash_writer import crash_schema, expected_sample, stacked
from rocksds import spec
from rocksds._witness import decode_witness, encode_witness, read_witness, write_witness
from rocksds.cli import main

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}


def _witnessed(path: Path) -> int | None:
    witness = read_witness(str(path))
    assert witness.problem is None, witness.problem
    return witness.count


def _closed(path: Path, n: int) -> Path:
    with rocksds.create(path, crash_schema()) as w:
        w.extend([expected_sample(i) for i in range(n)])
    return path


# ---------------------------------------------------------------------- the bytes


def test_the_witness_layout_is_what_spec_md_says() -> None:
    body = b"RDSCOUNT" + (1).to_bytes(4, "big") + (300).to_bytes(8, "big")
    assert encode_witness(300) == body + zlib.crc32(body).to_bytes(4, "big")
    assert len(encode_witness(0)) == spec.WITNESS_BYTES
    assert decode_witness(encode_witness(spec.MAX_COUNT)) == spec.MAX_COUNT
    with pytest.raises(ValueError):
        encode_witness(2**63)


def test_every_single_bit_flip_of_a_witness_is_refused() -> None:
    good = encode_witness(123_456)
    for bit in range(8 * len(good)):
        flipped = bytearray(good)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ValueError):
            decode_witness(bytes(flipped))


@pytest.mark.parametrize("data, why", [
    (b"", "0 bytes"),
    (encode_witness(5)[:-1], "23 bytes"),
    (encode_witness(5) + b"\x00", "25 bytes"),
    (b"RDSCOUNX" + encode_witness(5)[8:], "does not start"),
    (b"RDSCOUNT" + (2).to_bytes(4, "big") + (5).to_bytes(8, "big") + b"\x00" * 4, "layout 2"),
])
def test_malformed_witness_bytes_say_what_is_wrong(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_witness(data)


def test_a_count_of_2_63_or_more_is_refused_even_with_a_good_checksum() -> None:
    body = b"RDSCOUNT" + (1).to_bytes(4, "big") + (2**63).to_bytes(8, "big")
    with pytest.raises(ValueError, match="below 2\\*\\*63"):
        decode_witness(body + zlib.crc32(body).to_bytes(4, "big"))


# ---------------------------------------------------------------------- when writers write it


def test_the_witness_follows_the_durable_count_only(tmp_path: Path) -> None:
    path = tmp_path / "ds.rds"
    w = rocksds.create(path, crash_schema())
    w.extend([expected_sample(i) for i in range(5)])
    assert _witnessed(path) is None  # unsynced: in the log only, not witnessed
    w.flush()
    assert _witnessed(path) == 5
    w.extend([expected_sample(i) for i in range(5, 9)])
    assert _witnessed(path) == 5
    w.close()
    assert _witnessed(path) == 9
    inode = os.stat(path / spec.WITNESS_FILE).st_ino
    with rocksds.open(path, mode="a") as w:
        assert len(w) == 9
    assert os.stat(path / spec.WITNESS_FILE).st_ino == inode, "an unchanged count was written again"
    assert not (path / (spec.WITNESS_FILE + ".tmp")).exists()


@pytest.mark.parametrize("options", [{"sync": True}, {"bulk": True}])
def test_synced_commits_are_witnessed_at_once(tmp_path: Path, options: dict) -> None:
    path = tmp_path / "ds.rds"
    with rocksds.create(path, crash_schema(), **options) as w:
        for n in (4, 4, 3):
            w.extend(stacked(len(w), n))
            assert _witnessed(path) == len(w)
    assert _witnessed(path) == 11


def test_a_dataset_without_a_witness_stays_valid_and_gets_one_when_written(tmp_path: Path) -> None:
    path = _closed(tmp_path / "ds.rds", 6)
    os.remove(path / spec.WITNESS_FILE)  # as a 1.2 writer leaves it
    assert rocksds.validate(path, deep=True).ok
    with rocksds.open(path) as ds:
        assert len(ds) == 6
    with rocksds.open(path, mode="a") as w:
        w.extend([expected_sample(6)])
    assert _witnessed(path) == 7
    assert_samples(path, 7)


def test_readers_never_write_the_witness(tmp_path: Path) -> None:
    path = _closed(tmp_path / "ds.rds", 3)
    os.remove(path / spec.WITNESS_FILE)
    before = dir_state(path)
    with rocksds.open(path) as ds:
        ds[2]
    rocksds.validate(path, deep=True)
    assert dir_state(path) == before


# ---------------------------------------------------------------------- a witness above count


def _assert_rolled_back_refused(path: Path) -> None:
    before = dir_state(path)
    with pytest.raises(rocksds.CorruptionError, match="MANIFEST was rolled back"):
        rocksds.open(path)
    report = rocksds.validate(path, deep=True)
    assert "rolled-back-count" in report.codes() and not report.ok, report.to_dict()
    with pytest.raises(rocksds.CorruptionError, match="MANIFEST was rolled back"):
        rocksds.open(path, mode="a")
    with pytest.raises(rocksds.CorruptionError, match="MANIFEST was rolled back"):
        rocksds.open(path, mode="a", salvage_log=True)  # the log is whole: a salvage would drop nothing
    assert dir_state(path) == before, "a refused open changed the dataset"


def test_an_older_copy_of_the_whole_dataset_under_a_newer_witness_is_refused(tmp_path: Path) -> None:
    """CURRENT, MANIFEST and table files all brought back from a backup: RocksDB's files agree on
    the smaller dataset, and only the witness, which the backup did not overwrite, tells."""
    ds, backup = tmp_path / "ds.rds", tmp_path / "backup"
    _closed(ds, 30)
    shutil.copytree(ds, backup)
    with rocksds.open(ds, mode="a") as w:
        w.extend([expected_sample(i) for i in range(30, 60)])
    witness = (ds / spec.WITNESS_FILE).read_bytes()
    shutil.rmtree(ds)
    shutil.copytree(backup, ds)
    (ds / spec.WITNESS_FILE).write_bytes(witness)
    _assert_rolled_back_refused(ds)


def test_a_crafted_witness_above_count_is_refused(tmp_path: Path) -> None:
    path = _closed(tmp_path / "ds.rds", 4)
    write_witness(str(path), 5)
    _assert_rolled_back_refused(path)
    write_witness(str(path), 4)
    with rocksds.open(path) as ds:
        assert len(ds) == 4


def _swap_on_witness_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, when) -> tuple[Path, list]:
    """A 40-sample dataset that ``overwrite`` swaps for a 10-sample one inside the first witness read for
    which ``when(counts read so far)`` holds; returns its path and the counts every witness read gave."""
    path, smaller = tmp_path / "ds.rds", tmp_path / "smaller.rds"
    _closed(path, 40)
    _closed(smaller, 10)
    real = rocksds._shadow.read_witness
    calls: list = []
    swapped: list = []

    def read_then_replace(where: str):
        witness = real(where)
        calls.append(witness.count)
        if not swapped and when(calls):
            swapped.append(True)
            os.rename(path, tmp_path / "old.rds")
            os.rename(smaller, path)
        return witness

    monkeypatch.setattr(rocksds._shadow, "read_witness", read_then_replace)
    return path, calls


def test_a_dataset_replaced_between_the_witness_and_the_snapshot_is_no_false_alarm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``overwrite`` swaps a 40-sample dataset for a 10-sample one right after a reader read the old
    witness: the reader looks again and opens the new dataset."""
    path, calls = _swap_on_witness_read(monkeypatch, tmp_path, lambda calls: len(calls) == 1)
    with rocksds.open(path) as ds:
        assert len(ds) == 10 and int(ds[9]["label"]) == 9
    assert calls == [40, 10]


def test_validate_looks_again_when_the_dataset_is_replaced_under_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same swap during ``validate``, right after its metadata snapshot read the old witness:
    validate looks again, as readers do, and reports no false ``rolled-back-count``."""
    real_manifest = rocksds.validation._check_manifest
    armed: list = []

    def manifest_checked(*args, **kwargs):
        real_manifest(*args, **kwargs)
        armed.append(True)  # the next snapshot is the metadata's

    monkeypatch.setattr(rocksds.validation, "_check_manifest", manifest_checked)
    path, calls = _swap_on_witness_read(monkeypatch, tmp_path, lambda calls: bool(armed))
    report = rocksds.validate(path)
    assert "rolled-back-count" not in report.codes(), report.to_dict()
    assert report.count == 10 and 40 in calls and calls[-1] == 10


def test_validate_reports_a_count_below_the_witness_twice_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _closed(tmp_path / "ds.rds", 10)
    stale = read_witness(str(_closed(tmp_path / "bigger.rds", 11)))
    monkeypatch.setattr(rocksds._shadow, "read_witness", lambda where: stale)
    assert "rolled-back-count" in rocksds.validate(path).codes()


def test_a_count_below_the_witness_twice_running_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _closed(tmp_path / "ds.rds", 10)
    stale = read_witness(str(_closed(tmp_path / "bigger.rds", 11)))
    monkeypatch.setattr(rocksds._shadow, "read_witness", lambda where: stale)
    with pytest.raises(rocksds.CorruptionError, match="give 10 samples, but 11 were committed"):
        rocksds.open(path)


# ---------------------------------------------------------------------- salvage lowers it on purpose

_SYNCED_KILLED = """
import os, sys
import rocksds
from _crash_writer import crash_schema, expected_sample
w = rocksds.create(sys.argv[1], crash_schema(), sync=True)
for start in range(0, 200, 10):
    w.extend([expected_sample(i) for i in range(start, start + 10)])
os._exit(0)  # the commits are synced in the log, no flush
"""


def test_a_salvage_that_drops_commits_lowers_the_witness_to_what_it_kept(tmp_path: Path) -> None:
    path = tmp_path / "synced.rds"
    subprocess.run([sys.executable, "-c", _SYNCED_KILLED, str(path)], check=True, env=ENV, timeout=120)
    assert _witnessed(path) == 200
    (log,) = [n for n in os.listdir(path) if n.endswith(".log")]
    with open(path / log, "r+b") as fh:
        fh.seek(os.path.getsize(path / log) // 2)
        byte = fh.read(1)[0]
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte ^ 0x10]))
    with pytest.raises(rocksds.CorruptionError):
        rocksds.open(path)
    with rocksds.open(path, mode="a", salvage_log=True) as w:
        kept = len(w)
    assert 0 < kept < 200
    assert _witnessed(path) == kept
    report = rocksds.validate(path, deep=True)
    assert report.ok, report.to_dict()
    assert_samples(path, kept)


# ---------------------------------------------------------------------- hostile witness files


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    os.symlink("/dev/zero", path)


def _sparse_giant(path: Path) -> None:
    with open(path, "wb") as fh:
        fh.truncate(300 * 2**20)


def _directory(path: Path) -> None:
    path.mkdir()


def _garbage(path: Path) -> None:
    path.write_bytes(b"\xff" * 24)


def _flipped(path: Path) -> None:
    data = bytearray(encode_witness(3))
    data[14] ^= 0x04
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    path.write_bytes(encode_witness(3)[:12])


@pytest.mark.parametrize("plant", [_fifo, _dev_zero, _sparse_giant, _directory, _garbage, _flipped, _truncated])
def test_a_hostile_witness_gives_reports_not_tracebacks(tmp_path: Path, plant, capsys: pytest.CaptureFixture) -> None:
    path = _closed(tmp_path / "ds.rds", 3)
    os.remove(path / spec.WITNESS_FILE)
    plant(path / spec.WITNESS_FILE)
    before = dir_state(path)
    with pytest.raises(rocksds.CorruptionError, match="witness"):
        rocksds.open(path)
    with pytest.raises(rocksds.CorruptionError, match="witness"):
        rocksds.open(path, mode="a")
    report = rocksds.validate(path, deep=True)
    assert report.codes() == {"malformed-witness"}, report.to_dict()
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "malformed-witness" in out + err and "Traceback" not in out + err
    assert dir_state(path) == before
    # Deleting the file, as the message says, makes the dataset readable again.
    if (path / spec.WITNESS_FILE).is_dir() and not (path / spec.WITNESS_FILE).is_symlink():
        (path / spec.WITNESS_FILE).rmdir()
    else:
        os.remove(path / spec.WITNESS_FILE)
    with rocksds.open(path) as ds:
        assert len(ds) == 3


def test_an_append_racing_a_replacement_opens_the_new_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's probe looks again too, when a rename swapped the dataset after it read the witness."""
    # The probe's snapshot is the third witness read (the first two list the column families).
    path, calls = _swap_on_witness_read(monkeypatch, tmp_path, lambda calls: len(calls) == 3)
    with rocksds.open(path, mode="a") as w:
        assert len(w) == 10
        w.extend([expected_sample(10)])
    assert calls == [40, 40, 40, 10] and _witnessed(path) == 11
