import os
import pickle

import numpy as np
import pytest

import rocksds
from rocksds import spec
from rocksds.errors import (
    ArgumentTypeError,
    FieldNotFoundError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    NotADatasetError,
    SchemaError,
    UnsupportedVersionError,
)
from rocksds.keys import encode_count
from rocksds.testing import raw_writable

from test_writer import assert_same


def test_open_exposes_schema_and_attrs(small_dataset, small_schema):
    path, samples = small_dataset
    ds = rocksds.open(path, cache_gb=0.01)
    assert len(ds) == 50
    assert ds.attrs == small_schema.attrs
    assert ds.schema.fields == small_schema.fields
    assert ds.schema.writer["name"] == "rocksds" and ds.schema.writer["rocksdb"].startswith("9.")
    assert "image" in repr(ds)


def test_indexing(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path)
    assert_same(ds[-1], samples[-1])
    assert_same(ds[np.int64(3)], samples[3])
    sample = ds[10]
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (3, 8, 8)
    assert sample["label"].shape == () and sample["label"].dtype == np.int64
    assert not sample["image"].flags.writeable
    for bad in (50, -51):
        with pytest.raises(IndexOutOfRangeError):
            ds[bad]
    with pytest.raises(ArgumentTypeError):
        ds[1.5]


def test_slices_and_batches(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path)
    batch = ds[5:9]
    assert batch["image"].shape == (4, 3, 8, 8) and batch["image"].flags.writeable
    assert batch["label"].tolist() == [s["label"] for s in samples[5:9]]
    assert isinstance(batch["points"], list) and len(batch["points"]) == 4
    idx = [3, 7, 11, 3, -1]
    b = ds.get_batch(idx)
    for j, i in enumerate(idx):
        assert np.array_equal(b["image"][j], samples[i]["image"])
        assert np.array_equal(b["points"][j], samples[i]["points"])
    b2 = ds.get_batch(np.array(idx))
    assert np.array_equal(b2["mask"], b["mask"])
    assert ds[::10]["label"].tolist() == [samples[i]["label"] for i in range(0, 50, 10)]
    assert ds.get_batch([])["image"].shape == (0, 3, 8, 8)
    with pytest.raises(IndexOutOfRangeError):
        ds.get_batch([0, 50])
    with pytest.raises(IndexOutOfRangeError):
        ds.get_batch(np.array([0, 99]))


def test_iteration_is_in_order_and_complete(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path)
    seen = list(ds)
    assert len(seen) == 50
    for a, b in zip(seen, samples):
        assert_same(a, b)
    part = list(ds.iter(45, 100))
    assert len(part) == 5
    assert_same(part[0], samples[45])


def test_fields_subset_opens_only_those(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path, fields=["label", "image"])
    assert ds.field_names == ("label", "image")
    assert list(ds[4]) == ["label", "image"]
    assert ds.full_schema.names == ("image", "mask", "label", "points")
    with pytest.raises(FieldNotFoundError, match="nope"):
        rocksds.open(path, fields=["nope"])


def test_open_never_modifies_the_dataset(small_dataset):
    path, _ = small_dataset

    def snapshot():
        return {n: (os.stat(os.path.join(path, n)).st_mtime_ns, os.path.getsize(os.path.join(path, n)))
                for n in sorted(os.listdir(path))}

    before = snapshot()
    ds = rocksds.open(path)
    ds[3], ds[0:4], list(ds)
    ds.refresh()
    ds.close()
    assert snapshot() == before


def test_open_errors(tmp_path, small_dataset):
    with pytest.raises(NotADatasetError, match="does not exist"):
        rocksds.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotADatasetError, match="not a RocksDB database"):
        rocksds.open(tmp_path / "plain")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADatasetError):
        rocksds.open(tmp_path / "file")
    with pytest.raises(InvalidArgumentError):
        rocksds.open(small_dataset[0], mode="w")
    for bad in (-1, float("nan"), float("inf"), 1e9):
        with pytest.raises(InvalidArgumentError):
            rocksds.open(small_dataset[0], cache_gb=bad)
    with pytest.raises(ArgumentTypeError):
        rocksds.open(small_dataset[0], cache_gb="2")
    assert not (tmp_path / "missing").exists()


def _raw_db(path, meta: dict):
    with raw_writable(path, [spec.META_CF, "a"], create=True) as s:
        s.write([(spec.META_CF, k, v) for k, v in meta.items()])


def test_plain_rocksdb_database_is_not_a_dataset(tmp_path):
    with raw_writable(tmp_path / "db", ["a"], create=True):
        pass
    with pytest.raises(NotADatasetError, match="not a rocksds dataset"):
        rocksds.open(tmp_path / "db")
    _raw_db(tmp_path / "noschema", {spec.COUNT_KEY: encode_count(0)})
    with pytest.raises(NotADatasetError, match="no schema"):
        rocksds.open(tmp_path / "noschema")


def test_malformed_and_future_schema(tmp_path):
    _raw_db(tmp_path / "bad", {spec.SCHEMA_KEY: b"\xc1garbage", spec.COUNT_KEY: encode_count(0)})
    with pytest.raises(SchemaError, match="msgpack"):
        rocksds.open(tmp_path / "bad")
    doc = rocksds.Schema(fields={"a": rocksds.Field(dtype="int8")}).to_document()
    doc["version"] = "2.0"
    import msgpack

    _raw_db(tmp_path / "v2", {spec.SCHEMA_KEY: msgpack.packb(doc), spec.COUNT_KEY: encode_count(0)})
    with pytest.raises(UnsupportedVersionError):
        rocksds.open(tmp_path / "v2")


def test_pickle_keeps_path_and_options(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path, fields=["label"], cache_gb=0.01)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.field_names == ("label",) and clone[7]["label"] == samples[7]["label"]


def test_handle_reopens_after_fork(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path)
    ds[0]
    parent_storage = ds._storage
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = int(ds[5]["label"]) == samples[5]["label"] and ds._storage is not parent_storage
        except BaseException:
            ok = False
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert ds._storage is parent_storage
    assert ds[5]["label"] == samples[5]["label"]


def test_refresh_sees_new_commits(small_dataset, rng):
    from conftest import make_samples

    path, _ = small_dataset
    ds = rocksds.open(path)
    with rocksds.open(path, mode="a") as w:
        w.extend(make_samples(rng, 3))
        assert len(ds) == 50
        ds.refresh()
        assert len(ds) == 53


def test_closed_dataset(small_dataset):
    ds = rocksds.open(small_dataset[0])
    ds.close()
    with pytest.raises(rocksds.ClosedError):
        ds[0]


def test_missing_field_column_family_is_named(tmp_path):
    import msgpack

    doc = rocksds.Schema(fields={"a": rocksds.Field(dtype="int8"), "b": rocksds.Field(dtype="int8")}).to_document()
    _raw_db(tmp_path / "d", {spec.SCHEMA_KEY: msgpack.packb(doc), spec.COUNT_KEY: encode_count(0)})  # has CF "a" only
    with pytest.raises(rocksds.CorruptionError, match="field 'b' has no column family 'b'"):
        rocksds.open(tmp_path / "d")
    assert rocksds.open(tmp_path / "d", fields=["a"]).field_names == ("a",)


@pytest.fixture
def chips(tmp_path):
    """A dataset whose image records (8 KiB) are batch-read by point lookups, beside MultiGet fields."""
    rng = np.random.default_rng(5)
    data = {"image": rng.random((40, 2, 32, 32), dtype=np.float32),
            "mask": rng.integers(0, 4, (40, 1, 32, 32), dtype=np.uint8),
            "flag": rng.integers(0, 2, (40, 64, 64)).astype(bool),
            "label": np.arange(40, dtype=np.int64)}
    schema = rocksds.Schema(fields={k: rocksds.Field(dtype=v.dtype.name, shape=v.shape[1:]) for k, v in data.items()})
    path = tmp_path / "chips.rds"
    with rocksds.create(path, schema) as w:
        w.extend(data)
    return path, data


def test_batches_of_large_and_small_records_equal_the_source(chips):
    from rocksds.reader import MULTIGET_MAX_RECORD_BYTES

    path, data = chips
    assert data["image"][0].nbytes > MULTIGET_MAX_RECORD_BYTES >= data["label"][0].nbytes
    idx = np.array([39, 0, 17, 17, -1, 5])
    with rocksds.open(path) as ds:
        batch = ds.get_batch(idx)
        for name, column in data.items():
            np.testing.assert_array_equal(batch[name], column[idx])
            assert batch[name].flags.writeable and batch[name].dtype == column.dtype


def test_get_batch_fills_the_arrays_it_is_given(chips):
    path, data = chips
    idx = [3, 1, 4, 1, 5]
    with rocksds.open(path) as ds:
        out = {"image": np.zeros((5, 2, 32, 32), np.float32), "label": np.zeros(5, np.int64)}
        batch = ds.get_batch(idx, out=out)
        assert batch["image"] is out["image"] and batch["label"] is out["label"]
        np.testing.assert_array_equal(out["image"], data["image"][idx])
        np.testing.assert_array_equal(out["label"], data["label"][idx])
        np.testing.assert_array_equal(batch["mask"], data["mask"][idx])
        for bad in ({"image": np.zeros((4, 2, 32, 32), np.float32)}, {"image": np.zeros((5, 2, 32, 32), np.float64)},
                    {"image": np.zeros((5, 2, 32, 64), np.float32)[..., :32]}, {"nope": np.zeros(5)}):
            with pytest.raises(InvalidArgumentError):
                ds.get_batch(idx, out=bad)


def test_a_count_ahead_of_the_records_fails_at_open(chips):
    # What a reader would see if its snapshot had the new count but not the tables of that commit.
    path, data = chips
    with rocksds.open(path, mode="a", bulk=False) as w:
        w.extend({k: v[:2] for k, v in data.items()})
    with raw_writable(path) as storage:
        storage.delete_range("mask", (41).to_bytes(8, "big"), (42).to_bytes(8, "big"))
    with pytest.raises(rocksds.CorruptionError, match="'mask' has no record for sample 41"):
        rocksds.open(path)
    assert len(rocksds.open(path, fields=["image"])) == 42
