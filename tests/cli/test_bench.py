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
        assert {"rocksds", "rocksds-nowal", "h5py-naive", "h5py-best", "lmdb", "npy-files", "memmap"} <= set(write)
        for name, v in write.items():
            assert v["verified"] is True, (wname, name)
            assert _rate_ok(v["samples_per_s"]) and v["disk_bytes"] > 0, (wname, name)
        assert set(r["read"]) == {"rocksds", "h5py-naive", "h5py-best", "lmdb", "npy-files", "memmap"}
        for name, v in r["read"].items():
            expected = {"single", "batch", "dl_w0_per-sample", "dl_w0_batched", "dl_w2_per-sample",
                        "dl_w2_batched", "dl_w2_batched_persistent"}
            if name == "rocksds":  # the cache-fits epoch exists only where there is a cache knob
                expected.add("dl_w2_batched_persistent_cached")
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
    assert _rate_ok(res["reader"]["raw_get_per_s"]) and _rate_ok(res["reader"]["get_batch_per_s"])
    assert res["machine"]["usable_cores"] >= 1 and res["machine"]["rocksds"]


def test_report_and_plots_written_and_work_dir_cleaned(quick_run):
    out, res, work = quick_run
    report = (out / "REPORT.md").read_text()
    assert "How to reproduce" in report and "## Goals" in report and "Partial caching" in report
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
