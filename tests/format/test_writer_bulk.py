"""Writer(bulk=True): commits as ingested table files, same dataset as WriteBatch commits."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import rocksds

from conftest import make_samples


def _read_all(path):
    with rocksds.open(path, cache_gb=0) as ds:
        return len(ds), [ds[i] for i in range(len(ds))]


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        else:
            assert a[k] == b[k]


def test_bulk_commits_equal_writebatch_commits(tmp_path, rng, small_schema):
    samples = make_samples(rng, 40)
    with rocksds.create(tmp_path / "bulk.rds", small_schema, bulk=True) as w:
        w.extend(samples[:25])
        assert len(w) == 25
        for s in samples[25:]:
            w.append(s)
    n, got = _read_all(tmp_path / "bulk.rds")
    assert n == 40
    for g, s in zip(got, samples):
        _same(g, {k: (np.asarray(v) if k == "label" else v) for k, v in s.items()})
    assert not glob.glob(str(tmp_path / "bulk.rds" / ".bulk-*")), "staging tables left behind"


def test_bulk_and_plain_appends_mix(tmp_path, rng, small_schema):
    samples = make_samples(rng, 30)
    path = tmp_path / "mix.rds"
    with rocksds.create(path, small_schema) as w:
        w.extend(samples[:10])
    with rocksds.open(path, mode="a", bulk=True) as w:
        w.extend(samples[10:20])
    with rocksds.open(path, mode="a") as w:
        w.extend(samples[20:])
    n, got = _read_all(path)
    assert n == 30
    np.testing.assert_array_equal(got[15]["image"], samples[15]["image"])
    np.testing.assert_array_equal(got[29]["points"], samples[29]["points"])
    with rocksds.open(path, cache_gb=0) as ds:
        batch = ds.get_batch(np.arange(30))
    np.testing.assert_array_equal(batch["image"], np.stack([s["image"] for s in samples]))


def test_failed_bulk_commit_keeps_samples_pending_and_leaves_no_files(tmp_path, rng, small_schema, monkeypatch):
    samples = make_samples(rng, 8)
    path = tmp_path / "fail.rds"
    w = rocksds.create(path, small_schema, bulk=True)
    w.extend(samples[:4])

    def broken(self, cf, files):
        raise OSError("disk full")

    from rocksds._storage import Storage

    monkeypatch.setattr(Storage, "ingest", broken)
    for s in samples[4:]:
        w.append(s)
    with pytest.raises(OSError):
        w.commit()
    assert len(w) == 4 and w.pending == 4
    assert not [f for f in os.listdir(path) if f.startswith(".bulk-")]
    monkeypatch.undo()
    w.close()
    n, got = _read_all(path)
    assert n == 8
    np.testing.assert_array_equal(got[7]["image"], samples[7]["image"])


def test_open_for_append_removes_tables_a_killed_bulk_commit_left(tmp_path):
    import os

    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="int32", shape=(3,))})
    path = tmp_path / "d.rds"
    with rocksds.create(path, schema, bulk=True) as w:
        w.extend({"x": np.arange(12, dtype=np.int32).reshape(4, 3)})
    stray = path / ".bulk-deadbeef0000-0.sst"
    stray.write_bytes(b"not a table")
    with rocksds.open(path, mode="a") as w:
        assert len(w) == 4
    assert not stray.exists()
    assert sorted(n for n in os.listdir(path) if n.startswith(".bulk-")) == []
    assert rocksds.open(path)[0:4]["x"].tolist() == np.arange(12).reshape(4, 3).tolist()
