"""Parallel builds: process pool and Dask give the serial dataset; crashes leave nothing and re-runs complete."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("rasterio")  # the raster extra; installed in CI

import rocksds  # noqa: E402
from rocksds.raster import parallel  # noqa: E402
from rocksds.testing import raw_readable  # noqa: E402
from rocksds.keys import encode_key  # noqa: E402
from rocksds.raster import ingest_raster, output_paths  # noqa: E402
from rocksds.raster.plan import geometric_counts, plan_chips  # noqa: E402

from raster_data import assert_same_dataset, make_scene, samples  # noqa: E402

# scene "b" is striped on purpose (it must still chip correctly); its layout warning is tested in test_raster.
pytestmark = pytest.mark.filterwarnings("ignore::rocksds.raster.RasterLayoutWarning")

KW = dict(chip=32, stride=24, split={"train": 0.7, "val": 0.3}, split_block=64, min_valid=0.4, seed=3)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    return [make_scene(d, "a", seed=1), make_scene(d, "b", seed=2, tiled=False, width=120, height=200)]


@pytest.fixture(scope="module")
def serial(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "ds"
    return ingest_raster(out, scenes, **KW)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _check_same(report, serial):
    assert report["counts"] == serial["counts"]
    assert report["invalid"] == serial["invalid"] and report["straddling"] == serial["straddling"]
    for k, path in serial["datasets"].items():
        assert_same_dataset(path, report["datasets"][k])


def test_serial_build_has_both_scenes_and_filters(serial):
    assert serial["counts"]["train"] > 0 and serial["counts"]["val"] > 0 and serial["invalid"] > 0
    sources = [int(s["source"]) for s in samples(serial["datasets"]["train"])]
    assert sources == sorted(sources) and set(sources) == {0, 1}


def test_process_pool_build_equals_serial(scenes, serial, tmp_path):
    report = ingest_raster(tmp_path / "ds", scenes, workers=2, **KW)
    _check_same(report, serial)
    assert not os.path.exists(str(tmp_path / "ds" / "train.rds") + ".rocksds-staging")
    assert sorted(os.listdir(tmp_path / "ds")) == ["train.rds", "val.rds"]


def test_direct_tables_without_pixel_filtering_equal_serial(scenes, tmp_path):
    kw = {**KW, "min_valid": 0.0}
    ser = ingest_raster(tmp_path / "s", scenes, **kw)
    plan = plan_chips(scenes, tasks=16, **kw)
    offsets = parallel._direct_offsets(plan)
    assert offsets is not None and offsets[0] == [0, 0]  # keys known before any pixel is read
    out = str(tmp_path / "p")
    os.makedirs(out)
    staging = str(tmp_path / "stage")
    stats = parallel.build(plan, output_paths(out, plan), workers=2, staging_dir=staging, keep_staging=True)
    files = os.listdir(staging)
    assert not [f for f in files if ".spool" in f], "no spool step without pixel filtering"
    assert len([f for f in files if f.endswith(".sst")]) == 0  # all moved into the datasets by ingestion
    assert [s.kept for s in stats] == [geometric_counts(plan, t) for t in plan.tasks]
    for k, path in ser["datasets"].items():
        assert_same_dataset(path, os.path.join(out, f"{k}.rds"))


def test_dask_build_equals_serial(scenes, serial, tmp_path, dask_client):
    report = ingest_raster(tmp_path / "ds", scenes, scheduler=dask_client, staging_dir=str(tmp_path / "stage"), **KW)
    _check_same(report, serial)
    addr = dask_client.scheduler.address.replace("tcp://", "dask://")
    again = ingest_raster(tmp_path / "ds2", scenes, scheduler=addr, **KW)
    _check_same(again, serial)
    assert dask_client.status == "running"  # a client we passed in is not closed for us


def test_dead_worker_leaves_no_dataset_and_rerun_completes(scenes, serial, tmp_path):
    out = str(tmp_path / "ds")
    plan = plan_chips(scenes, tasks=8, **KW)
    assert len(plan.tasks) > 4
    finals = output_paths(out, plan)
    staging = str(tmp_path / "stage")
    os.makedirs(out)
    parallel._prepare_staging(staging, parallel.plan_fingerprint(plan))
    # A first run finished half the tasks, then a worker died half-way through writing a spool.
    done = plan.tasks[: len(plan.tasks) // 2]
    for t in done:
        parallel._chip_task(plan, t.index, staging)
    with open(parallel._spool(staging, plan.tasks[-1].index, 0) + ".tmp", "wb") as fh:
        fh.write(b"\x07\x00\x00\x00partial")
    assert not any(os.path.exists(p) for p in finals), "nothing is placed before the ingest step"
    stamps = {t.index: os.stat(parallel._chip_marker(staging, t.index)).st_mtime_ns for t in done}
    # Re-running completes the build from the staged work, without chipping finished tasks again.
    parallel.build(plan, finals, workers=2, staging_dir=staging, keep_staging=True)
    assert stamps == {t.index: os.stat(parallel._chip_marker(staging, t.index)).st_mtime_ns for t in done}
    for k, path in serial["datasets"].items():
        assert_same_dataset(path, os.path.join(out, f"{k}.rds"))


def test_staging_fingerprint_ignores_the_recorded_command(scenes):
    # a re-run of the same build with another command line must find its staged work
    p1 = plan_chips(scenes, tasks=16, command="one", **KW)
    p2 = plan_chips(scenes, tasks=16, command="two", **KW)
    assert parallel.plan_fingerprint(p1) == parallel.plan_fingerprint(p2)


def test_changed_plan_discards_staging(scenes, tmp_path):
    plan = plan_chips(scenes, tasks=4, **KW)
    staging = str(tmp_path / "stage")
    parallel._prepare_staging(staging, parallel.plan_fingerprint(plan))
    parallel._chip_task(plan, 0, staging)
    other = plan_chips(scenes, tasks=4, **{**KW, "seed": 4})
    assert parallel.plan_fingerprint(other) != parallel.plan_fingerprint(plan)
    parallel._prepare_staging(staging, parallel.plan_fingerprint(other))
    assert os.listdir(staging) == ["plan.sha256"]


def test_crash_during_ingest_leaves_records_beyond_count_that_append_removes(scenes, tmp_path):
    plan = plan_chips(scenes[:1], tasks=1, chip=32)
    staging = str(tmp_path / "stage")
    parallel._prepare_staging(staging, parallel.plan_fingerprint(plan))
    n = parallel._chip_task(plan, 0, staging)["kept"][0]
    tables = parallel._table_task(plan, 0, 0, 0, n, staging)["files"]
    path = str(tmp_path / "ds.rds")
    w = rocksds.create(path, plan.schema)
    # Crash after the image field's tables were ingested, before count was written.
    w._live().ingest(plan.schema["image"].column_family, [tables["image"]])
    w._storage.close()
    w._storage = None
    with rocksds.open(path) as ds:
        assert len(ds) == 0
    with raw_readable(path, ["image"]) as probe:
        assert next(probe.iterate("image", encode_key(0)), None) is not None  # orphans are there
    with rocksds.open(path, mode="a") as w2:
        assert len(w2) == 0
    with raw_readable(path, ["image"]) as probe:
        assert next(probe.iterate("image", encode_key(0)), None) is None  # and gone after an open for append


def test_ingest_tables_refuses_incomplete_tables(scenes, tmp_path):
    plan = plan_chips(scenes[:1], chip=64)
    with rocksds.create(tmp_path / "x.rds", plan.schema) as w:
        with pytest.raises(rocksds.InvalidArgumentError, match="no SST files"):
            w.ingest_tables({"image": ["/nonexistent.sst"]}, 3)
        with pytest.raises(rocksds.InvalidArgumentError):
            w.ingest_tables({"nope": []}, 1)
        w.append({"image": np.zeros((4, 64, 64), np.uint16), "mask": np.zeros((1, 64, 64), np.uint8),
                  "bounds": np.zeros(4), "transform": np.zeros(6), "source": 0, "valid": 1.0,
                  "mask_counts": np.zeros(256, np.uint32)})
        with pytest.raises(rocksds.InvalidArgumentError, match="pending"):
            w.ingest_tables({}, 1)
        w.discard()


def test_missing_dask_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(rocksds.DependencyNotFoundError, match=r"pip install 'rocksds\[dask\]'"):
        parallel.dask_client("dask://127.0.0.1:1")


def test_bulk_built_dataset_reads_with_rocksdb_6(scenes, serial, tmp_path):
    rocksdb = pytest.importorskip("rocksdb")  # faust-streaming-rocksdb: RocksDB 6.14, the portability extra
    report = ingest_raster(tmp_path / "ds", scenes, workers=2, **KW)
    path = report["datasets"]["val"]
    opts = rocksdb.Options()
    cfs = rocksdb.list_column_families(path, opts)
    db = rocksdb.DB(path, opts, read_only=True,
                    column_families={c: rocksdb.ColumnFamilyOptions() for c in cfs if c != b"default"})
    want = samples(serial["datasets"]["val"])
    for name in ("image", "mask", "bounds"):
        cf = db.get_column_family(name.encode())
        for i in (0, len(want) - 1):
            raw = db.get((cf, encode_key(i)))
            assert raw == np.ascontiguousarray(want[i][name]).astype(want[i][name].dtype.newbyteorder("<")).tobytes()
    db.close()


def _exit_on_two(i: int) -> int:
    if i == 2:
        os._exit(9)  # a worker dying without a Python exception (as if killed)
    return i


def test_dead_worker_process_raises_worker_lost_error():
    runner = parallel._Runner(2, None)
    try:
        assert runner.map(_exit_on_two, [(0,), (1,)]) == [0, 1]
        with pytest.raises(parallel.WorkerLostError, match="re-run the same command"):
            runner.map(_exit_on_two, [(i,) for i in range(4)])
    finally:
        runner.close()
