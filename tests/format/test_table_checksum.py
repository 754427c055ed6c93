"""Table checksums: the type written, corruption detection, and RocksDB 6 portability."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import rocksds
from rocksds import spec


def _write(path, n=20):
    rng = np.random.default_rng(3)
    images = rng.random((n, 4, 64, 64), dtype=np.float32)
    schema = rocksds.Schema(fields={"image": rocksds.Field(dtype="float32", shape=(4, 64, 64), compression="none")})
    with rocksds.create(path, schema) as w:
        w.extend({"image": images})
    return images


def _options_checksum(path) -> str:
    text = open(sorted(glob.glob(os.path.join(path, "OPTIONS-*")))[-1]).read()
    kinds = {line.split("=", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("checksum=")}
    return ",".join(sorted(kinds))


def test_tables_use_the_spec_checksum(tmp_path):
    path = str(tmp_path / "d.rds")
    _write(path)
    assert _options_checksum(path) == {"xxhash64": "kxxHash64", "crc32c": "kCRC32c"}[spec.TABLE_CHECKSUM]


@pytest.mark.parametrize("mode", ["mapped", "pread", "cached"])
def test_flipped_byte_in_a_value_is_detected(tmp_path, monkeypatch, mode):
    # Readers map the tables (the default in memory), pread them (larger than memory) or keep every
    # block in a cache that holds the dataset: each verifies the block before returning a value.
    if mode == "pread":
        monkeypatch.setattr(rocksds.reader, "MMAP_MAX_FRACTION", 0.0)
    path = str(tmp_path / "d.rds")
    images = _write(path)
    needle = images[7].tobytes()[1000:1032]
    hits = []
    for sst in glob.glob(os.path.join(path, "*.sst")):
        data = open(sst, "rb").read()
        if needle in data:
            hits.append((sst, data.index(needle)))
    assert hits, "sample 7 not found in any table file"
    sst, at = hits[0]
    with open(sst, "r+b") as fh:
        fh.seek(at)
        fh.write(bytes([needle[0] ^ 0xFF]))
    with rocksds.open(path, cache_gb=1.0 if mode == "cached" else 0) as ds:
        np.testing.assert_array_equal(ds[3]["image"], images[3])
        with pytest.raises(rocksds.CorruptionError):
            ds[7]


def test_rocksdb6_reads_the_tables(tmp_path):
    rocksdb = pytest.importorskip("rocksdb")  # faust-streaming-rocksdb, RocksDB 6.14 (installed in CI)
    path = str(tmp_path / "d.rds")
    images = _write(path)
    names = rocksdb.list_column_families(path, rocksdb.Options())
    assert b"image" in names
    db = rocksdb.DB(path, rocksdb.Options(), column_families={n: rocksdb.ColumnFamilyOptions() for n in names},
                    read_only=True)
    cf = db.get_column_family(b"image")
    value = db.get((cf, (11).to_bytes(8, "big")))
    np.testing.assert_array_equal(np.frombuffer(value, "<f4").reshape(4, 64, 64), images[11])


def test_validator_reports_a_table_with_a_non_portable_footer(tmp_path):
    path = str(tmp_path / "d.rds")
    _write(path)
    assert rocksds.validate(path).ok
    sst = sorted(glob.glob(os.path.join(path, "*.sst")))[0]
    with open(sst, "r+b") as fh:  # footer: ..., format_version (4 bytes LE), magic (8 bytes)
        fh.seek(-12, os.SEEK_END)
        fh.write((6).to_bytes(4, "little"))
    assert "non-portable-table" in rocksds.validate(path).codes()

