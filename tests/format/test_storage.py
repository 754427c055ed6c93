import glob
import os
import re

import numpy as np
import pytest

import rocksds
from rocksds import spec


def _table_options(path):
    newest = sorted(glob.glob(os.path.join(path, "OPTIONS-*")))[-1]
    text = open(newest).read()
    sections = re.split(r"\n(?=\[)", text)
    out = {}
    for sec in sections:
        m = re.match(r'\[TableOptions/BlockBasedTable "(.*?)"\]', sec)
        if m:
            out[m.group(1)] = dict(
                line.strip().split("=", 1) for line in sec.splitlines()[1:] if "=" in line
            )
    return out


def test_tables_use_portable_format_version_and_checksum(small_dataset):
    path, _ = small_dataset
    opts = _table_options(str(path))
    for cf in ["__rocksds__", "image", "mask", "label", "points"]:
        assert opts[cf]["format_version"] == str(spec.TABLE_FORMAT_VERSION)
        assert opts[cf]["checksum"] == "kxxHash64"


def test_close_flushes_every_column_family_to_tables(small_dataset):
    path, _ = small_dataset
    logs = [f for f in os.listdir(path) if f.endswith(".log")]
    assert all(os.path.getsize(os.path.join(path, f)) == 0 for f in logs)
    assert glob.glob(os.path.join(path, "*.sst"))


def test_rocksdb6_binding_reads_records(tmp_path, rng):
    """RocksDB 6.14 (the `rocksdb` module) opens the tables rocksdict 9.x wrote."""
    rocksdb = pytest.importorskip("rocksdb")
    schema = rocksds.Schema(fields={"a": rocksds.Field(dtype="int32", shape=(5,), compression="lz4"),
                                    "z": rocksds.Field(dtype="int32", shape=(5,), compression="zstd")})
    data = rng.integers(0, 100, (20, 5), dtype=np.int32)
    with rocksds.create(tmp_path / "d.rds", schema) as w:
        w.extend({"a": data, "z": data})
    # The zstd column family is left closed: RocksDB 6.14 here has no zstd.
    db = rocksdb.DB(str(tmp_path / "d.rds"), rocksdb.Options(),
                    column_families={b"a": rocksdb.ColumnFamilyOptions(),
                                     spec.META_CF.encode(): rocksdb.ColumnFamilyOptions()},
                    read_only=True)
    cf = db.get_column_family(b"a")
    for i in (0, 7, 19):
        rec = db.get((cf, i.to_bytes(8, "big")))
        assert np.array_equal(np.frombuffer(rec, "<i4"), data[i])
    meta = db.get_column_family(spec.META_CF.encode())
    assert int.from_bytes(db.get((meta, spec.COUNT_KEY)), "big") == 20
