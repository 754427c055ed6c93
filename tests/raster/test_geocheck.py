"""validate --geo: bounds agree with transforms, attrs are consistent, splits do not overlap."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

import rocksds  # noqa: E402
from rocksds.cli import main  # noqa: E402
from rocksds.raster import ingest_raster  # noqa: E402
from rocksds.testing import raw_writable, write_synthetic_geotiff  # noqa: E402
from rocksds.keys import encode_key  # noqa: E402
from rocksds.tools.geocheck import GEO_CODES, check_geometry  # noqa: E402


@pytest.fixture()
def splits(tmp_path):
    tif = write_synthetic_geotiff(str(tmp_path / "s.tif"), 320, 320, bands=2, seed=4)
    return ingest_raster(tmp_path / "out", [{"image": tif}], chip=32, stride=16, split={"a": 0.5, "b": 0.5},
                         split_block=128)["datasets"], tif, tmp_path


def test_ingested_splits_pass(splits, capsys) -> None:
    ds, _, _ = splits
    assert check_geometry(ds["a"], [ds["b"]]) == []
    assert main(["validate", ds["a"], "--geo", "--against", ds["b"]]) == 0
    assert "geometry: OK" in capsys.readouterr().out


def test_overlapping_splits_and_bad_bounds_are_found(splits, capsys) -> None:
    ds, tif, tmp = splits
    other = ingest_raster(tmp / "again", [{"image": tif}], chip=32, stride=16)["datasets"][""]  # every chip
    issues = check_geometry(ds["a"], [other])
    assert issues and {i.code for i in issues} == {"split-overlap"}
    with rocksds.open(ds["a"]) as d:
        b = d[3]["bounds"].copy()
    b[0] += 5.0
    with raw_writable(ds["a"]) as st:
        st.write([("bounds", encode_key(3), b.astype("<f8").tobytes())])
    issues = check_geometry(ds["a"])
    assert [(i.code, i.index) for i in issues] == [("bounds-transform-mismatch", 3)]
    assert main(["validate", ds["a"], "--geo", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["geo"][0]["code"] == "bounds-transform-mismatch"
    assert set(GEO_CODES) >= {i.code for i in issues}


def test_a_dataset_without_geometry_is_reported(tmp_path) -> None:
    with rocksds.create(tmp_path / "x.rds", rocksds.Schema(fields={"x": rocksds.Field(dtype="int8")})) as w:
        w.append({"x": np.int8(1)})
    assert [i.code for i in check_geometry(str(tmp_path / "x.rds"))] == ["geo-attrs"]
