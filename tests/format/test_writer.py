import os

import numpy as np
import pytest

import rocksds
from rocksds.errors import DatasetExistsError, DatasetLockedError, NotADatasetError, SampleError

from conftest import make_samples


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray) or isinstance(b[k], np.ndarray):
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
        else:
            assert a[k] == b[k], k


def test_append_extend_roundtrip(small_dataset):
    path, samples = small_dataset
    ds = rocksds.open(path)
    assert len(ds) == len(samples)
    for i in (0, 19, 20, 49):
        assert_same(ds[i], samples[i])


def test_extend_with_stacked_arrays(tmp_path, rng, small_schema):
    samples = make_samples(rng, 7)
    stacked = {
        "image": np.stack([s["image"] for s in samples]),
        "mask": np.stack([s["mask"] for s in samples]),
        "label": np.array([s["label"] for s in samples]),
        "points": [s["points"] for s in samples],
    }
    with rocksds.create(tmp_path / "d.rds", small_schema) as w:
        w.extend(stacked)
        assert len(w) == 7
    ds = rocksds.open(tmp_path / "d.rds")
    for i, s in enumerate(samples):
        assert_same(ds[i], s)


def test_len_is_committed_count(tmp_path, rng, small_schema):
    w = rocksds.create(tmp_path / "d.rds", small_schema)
    w.append(make_samples(rng, 1)[0])
    assert len(w) == 0 and w.pending == 1
    w.commit()
    assert len(w) == 1 and w.pending == 0
    w.close()
    assert len(rocksds.open(tmp_path / "d.rds")) == 1


def test_append_commits_itself_past_commit_bytes(tmp_path, rng, small_schema):
    w = rocksds.create(tmp_path / "d.rds", small_schema, commit_bytes=1000)
    for s in make_samples(rng, 5):
        w.append(s)
    assert len(w) >= 3  # each sample is ~1 KB
    w.close()


def _count_and_first(path):
    with rocksds.open(path) as ds:
        return len(ds), [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda s: s.pop("mask"), "lacks field 'mask'"),
        (lambda s: s.update(extra=1), "not in the schema"),
        (lambda s: s.update(image=np.zeros((3, 8, 9), np.float32)), "expects shape"),
        (lambda s: s.update(image=np.zeros((3, 8, 8), np.float64)), "cannot cast float64"),
        (lambda s: s.update(points=np.zeros((3, 3), np.float32)), "expects shape"),
    ],
)
def test_invalid_sample_in_batch_writes_nothing(small_dataset, rng, mutate, fragment):
    path, samples = small_dataset
    before = _count_and_first(path)
    batch = make_samples(rng, 4)
    mutate(batch[2])
    with rocksds.open(path, mode="a") as w:
        with pytest.raises(SampleError, match=fragment) as exc:
            w.extend(batch)
        assert "sample 2" in str(exc.value)
        assert len(w) == len(samples) and w.pending == 0
    after = _count_and_first(path)
    assert before[0] == after[0]
    for a, b in zip(before[1], after[1]):
        assert_same(a, b)


def test_invalid_append_leaves_pending_untouched(tmp_path, rng, small_schema):
    with rocksds.create(tmp_path / "d.rds", small_schema) as w:
        good = make_samples(rng, 2)
        w.append(good[0])
        with pytest.raises(SampleError):
            w.append({**good[1], "label": "x"})
        assert w.pending == 1
    assert len(rocksds.open(tmp_path / "d.rds")) == 1


def test_exception_in_with_block_discards_uncommitted(tmp_path, rng, small_schema):
    path = tmp_path / "d.rds"
    samples = make_samples(rng, 3)
    with pytest.raises(RuntimeError):
        with rocksds.create(path, small_schema) as w:
            w.extend(samples[:2])
            w.append(samples[2])
            raise RuntimeError("boom")
    assert len(rocksds.open(path)) == 2


def test_append_resumes_after_last_committed(small_dataset, rng):
    path, samples = small_dataset
    more = make_samples(rng, 5)
    with rocksds.open(path, mode="a") as w:
        assert len(w) == 50
        w.extend(more)
        assert len(w) == 55
    ds = rocksds.open(path)
    assert len(ds) == 55
    assert_same(ds[49], samples[49])
    assert_same(ds[50], more[0])


def test_create_refuses_existing(small_dataset, small_schema, tmp_path):
    path, _ = small_dataset
    with pytest.raises(DatasetExistsError):
        rocksds.create(path, small_schema)
    other = tmp_path / "plain"
    other.mkdir()
    (other / "f.txt").write_text("keep me")
    with pytest.raises(DatasetExistsError):
        rocksds.create(other, small_schema)
    with pytest.raises(NotADatasetError):
        rocksds.create(other, small_schema, overwrite=True)
    assert (other / "f.txt").read_text() == "keep me"


def test_overwrite_replaces_dataset(small_dataset, small_schema):
    path, _ = small_dataset
    rocksds.create(path, small_schema, overwrite=True).close()
    assert len(rocksds.open(path)) == 0


def test_create_leaves_no_temporary_directory(tmp_path, small_schema):
    rocksds.create(tmp_path / "d.rds", small_schema).close()
    assert sorted(os.listdir(tmp_path)) == ["d.rds"]


def test_second_writer_is_refused(small_dataset):
    path, _ = small_dataset
    with rocksds.open(path, mode="a"):
        with pytest.raises(DatasetLockedError, match="locked by another writer"):
            rocksds.open(path, mode="a")


def test_closed_writer_refuses_writes(tmp_path, small_schema, rng):
    w = rocksds.create(tmp_path / "d.rds", small_schema)
    w.close()
    w.close()
    with pytest.raises(rocksds.ClosedError):
        w.append(make_samples(rng, 1)[0])


@pytest.mark.parametrize("wal", [True, False])
def test_wal_modes_persist_after_close(tmp_path, rng, small_schema, wal):
    samples = make_samples(rng, 10)
    with rocksds.create(tmp_path / "d.rds", small_schema, wal=wal, sync=wal) as w:
        w.extend(samples)
    ds = rocksds.open(tmp_path / "d.rds")
    assert len(ds) == 10
    assert_same(ds[9], samples[9])
