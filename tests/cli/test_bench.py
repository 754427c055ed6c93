"""Smoke test of the benchmark harness (``rocksds bench``): it runs and its numbers are sane.

Never a timing threshold: only that every measurement is a positive, finite
rate and that every backend read back exactly what was written.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from rocksds import cli
from rocksds.cli import bench

bench.load_harness()  # puts benchmarks/ on sys.path
import memlimit  # noqa: E402
import peers  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    work = tmp_path_factory.mktemp("bench-work")
    status = cli.main(["bench", "--quick", "--samples", "16", "--out", str(out), "--work-dir", str(work)])
    assert status == 0
    with open(out / "results.json") as fh:
        return out, json.load(fh), work


def _rate_ok(x) -> bool:
    return isinstance(x, (int, float)) and x > 0 and math.isfinite(x)


def test_every_backend_written_verified_and_read(quick_run):
    _out, res, _work = quick_run
    assert set(res["workloads"]) == {"mnist", "chips", "big"}
    for wname, r in res["workloads"].items():
        assert r["n"] == 16
        write = r["write"]
        base = {"h5py-naive", "h5py-chunked", "h5py-best", "lmdb", "npy-files", "memmap"}
        new_peers = {b.name for b in peers.peer_backends()}
        assert {"rocksds", "rocksds-zstd"} | base | new_peers <= set(write)
        assert write["rocksds"]["tuned"] is False and write["rocksds-zstd"]["tuned"] is True
        for name, v in write.items():
            assert v["verified"] is True, (wname, name)
            assert _rate_ok(v["samples_per_s"]) and v["disk_bytes"] > 0, (wname, name)
        assert set(r["read"]) == {"rocksds"} | base | new_peers
        for name, v in r["read"].items():
            own_loader = name in ("litdata", "mosaic-stream", "webdataset")
            expected = {"dl_w0", "dl_w2"} if name == "webdataset" else {"single", "batch", "dl_w0", "dl_w2"}
            if not own_loader:
                expected |= {"dl_w2_batched", "dl_w2_persistent"}
            if name == "rocksds":  # the cached epoch exists only where there is a cache knob
                expected.add("dl_w2_persistent_cached")
            assert set(v) == expected, (wname, name)
            assert all(_rate_ok(x) for x in v.values()), (wname, name, v)
        fracs = [c["cache_fraction"] for c in r["cache"] if c["backend"] == "rocksds"]
        assert fracs[0] == 0 and fracs[-1] > 1
        assert all(_rate_ok(c["samples_per_s"]) for c in r["cache"])


def test_ratios_goals_and_reader_microbenchmark(quick_run):
    _out, res, _work = quick_run
    rd = res["workloads"]["mnist"]
    ratio = res["ratios"]["mnist"]["read"]["batch"]["memmap"]
    assert ratio == pytest.approx(rd["read"]["rocksds"]["batch"] / rd["read"]["memmap"]["batch"])
    assert res["goals"] and all(g["measured"] is not None and g["met"] in (True, False) for g in res["goals"])
    peers_goaled = {g["peer"] for g in res["goals"] if g["workload"] == "chips" and g["metric"] == "dl_w2"}
    assert {"lmdb", "memmap"} | ({"zarr"} if peers.available("zarr") else set()) <= peers_goaled
    assert _rate_ok(res["reader"]["raw_get_per_s"]) and _rate_ok(res["reader"]["get_batch_per_s"])
    assert res["machine"]["usable_cores"] >= 1 and res["machine"]["rocksds"]


def test_report_and_plots_written_and_work_dir_cleaned(quick_run):
    out, res, work = quick_run
    report = (out / "REPORT.md").read_text()
    assert "How to reproduce" in report and "## Goals" in report and "Partial caching" in report
    assert report.index("### Default path") < report.index("### Tuned modes")
    for wname in res["workloads"]:
        for kind in ("write", "read", "cache"):
            png = out / f"{wname}-{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert os.listdir(work) == []


def test_verification_catches_a_backend_that_reads_back_wrong_data():
    harness = bench.load_harness()
    import workloads

    w = workloads.make("mnist", 20)

    class Wrong:
        def get(self, i):
            return {k: a[i] for k, a in w.arrays.items()}

        def get_batch(self, idx):
            out = {k: a[idx].copy() for k, a in w.arrays.items()}
            out["image"][-1, 0, 0, 0] += 1  # one pixel off
            return out

    with pytest.raises(AssertionError, match="differs from the source"):
        harness._verify(Wrong(), w, "wrong")


def test_page_cache_eviction_runs_on_every_file(tmp_path):
    harness = bench.load_harness()
    import backends

    (tmp_path / "d").mkdir()
    for name in ("a", "d/b"):
        (tmp_path / name).write_bytes(np.arange(1000, dtype=np.int64).tobytes())
    backends.drop_page_cache(str(tmp_path))
    assert backends.dir_bytes(str(tmp_path)) >= 16000
    assert harness.CACHE_FRACTIONS[0] == 0 and max(harness.CACHE_FRACTIONS) > 1


def test_default_output_is_a_temporary_folder_not_the_published_results(tmp_path, capsys):
    results = os.path.join(bench.benchmarks_dir(), "results")
    before = {n: os.stat(os.path.join(results, n)).st_mtime_ns for n in os.listdir(results)}
    status = cli.main(["bench", "--quick", "--samples", "4", "--workloads", "mnist", "--no-dataloader",
                       "--no-cache-curve", "--work-dir", str(tmp_path)])
    assert status == 0
    after = {n: os.stat(os.path.join(results, n)).st_mtime_ns for n in os.listdir(results)}
    assert after == before
    out_dir = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("results in ").strip()
    try:
        assert os.path.dirname(os.path.abspath(out_dir)) != os.path.abspath(bench.benchmarks_dir())
        assert os.path.isfile(os.path.join(out_dir, "REPORT.md"))
    finally:
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)


needs_cgroup = pytest.mark.skipif(not memlimit.available(), reason="needs root and a cgroup v1 memory controller")


@needs_cgroup
def test_memory_limit_run_returns_value_and_peak():
    r = memlimit.run_in_memory_limit(lambda: int(np.ones(8 << 20, np.uint8).sum()), 256 << 20)
    assert r.ok and r.rc == 0 and not r.oom_killed and r.value == 8 << 20
    assert 8 << 20 <= r.peak_bytes <= 256 << 20


@needs_cgroup
def test_memory_limit_oom_kill_is_reported_as_such():
    import sys

    cmd = [sys.executable, "-c", "import numpy as np; a = np.ones(300 << 20, np.uint8); print(a.sum())"]
    r = memlimit.run_in_memory_limit(cmd, 96 << 20)
    assert r.oom_killed and r.oom_kills >= 1 and r.rc != 0 and not r.ok
    assert r.peak_bytes <= 96 << 20
    ok = memlimit.run_in_memory_limit(cmd, 1 << 30)
    assert ok.ok and ok.stdout.strip() == str(300 << 20)


@needs_cgroup
def test_larger_than_memory_reads_every_sample_under_a_limit(tmp_path):
    import larger

    res = larger.run(8, [1024], out_dir=str(tmp_path / "out"), work_dir=str(tmp_path),
                     names=("rocksds", "memmap"), batch=4, log=lambda *a: None)
    assert {r["backend"] for r in res["runs"]} == {"rocksds", "memmap"}
    for r in res["runs"]:
        assert r["ok"] and not r["oom_killed"] and _rate_ok(r["samples_per_s"]), r
        assert 0 < r["peak_bytes"] <= 1 << 30
    assert (tmp_path / "out" / "larger.png").read_bytes()[:4] == b"\x89PNG"
    assert "Larger than memory" in (tmp_path / "out" / "LARGER.md").read_text()
    assert [p for p in os.listdir(tmp_path) if p != "out"] == []


def test_peers_read_back_what_was_written(tmp_path):
    import workloads

    w = workloads.make("chips", 6)
    for b in peers.peer_backends():
        path = str(tmp_path / b.name)
        b.write(path, w.arrays)
        reader = b.reader(path, list(w.arrays))
        bench.load_harness()._verify(reader, w, b.name)
        reader.close()
