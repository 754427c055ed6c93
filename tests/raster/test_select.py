"""ds.select on ingested chips: by bounding box, source scene and scalar fields, equal to a brute-force filter."""

from __future__ import annotations

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

import rocksds  # noqa: E402
from rocksds.raster import ingest_raster  # noqa: E402
from rocksds.testing import DEMO_ORIGIN, write_synthetic_geotiff  # noqa: E402


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    d = tmp_path_factory.mktemp("sel")
    scenes = []
    for k in range(2):
        origin = (DEMO_ORIGIN[0] + 1500.0 * k, DEMO_ORIGIN[1])
        image = write_synthetic_geotiff(str(d / f"img{k}.tif"), 200, 180, bands=2, seed=k, nodata_corner=0.6,
                                        origin=origin)
        mask = write_synthetic_geotiff(str(d / f"mask{k}.tif"), 200, 180, classes=3, seed=10 + k, nodata=None,
                                       origin=origin)
        scenes.append({"image": image, "mask": mask})
    path = ingest_raster(d / "c.rds", scenes, chip=40, classes=["a", "b", "c"])["datasets"][""]
    return path, scenes


def _all(path):
    with rocksds.open(path, fields=["bounds", "source", "valid", "mask_counts"]) as ds:
        return ds.get_batch(range(len(ds)))


def test_bbox_selection_equals_brute_force(chips) -> None:
    path, _ = chips
    rows = _all(path)
    box = (DEMO_ORIGIN[0] + 300.0, DEMO_ORIGIN[1] - 1200.0, DEMO_ORIGIN[0] + 1900.0, DEMO_ORIGIN[1] - 500.0)
    b = rows["bounds"]
    overlap = [i for i in range(len(b)) if b[i][0] < box[2] and b[i][2] > box[0] and b[i][1] < box[3] and b[i][3] > box[1]]
    inside = [i for i in range(len(b)) if b[i][0] >= box[0] and b[i][1] >= box[1] and b[i][2] <= box[2]
              and b[i][3] <= box[3]]
    with rocksds.open(path) as ds:
        got = ds.select(bbox=box)
        assert got.dtype == np.int64 and got.tolist() == overlap
        assert ds.select(bbox=box, within=True).tolist() == inside
        assert 0 < len(inside) < len(overlap) < len(ds)
        assert ds.select(bbox=box, crs=ds.attrs["crs"]).tolist() == overlap


def test_source_and_where_selection_equal_brute_force(chips) -> None:
    path, scenes = chips
    rows = _all(path)
    with rocksds.open(path) as ds:
        want = [i for i in range(len(ds)) if rows["source"][i] == 1 and rows["valid"][i] >= 0.9]
        assert ds.select(source=1, where={"valid": (">=", 0.9)}).tolist() == want
        assert ds.select(source=scenes[1]["image"], where={"valid": (">=", 0.9)}).tolist() == want
        rare = [i for i in range(len(ds)) if rows["mask_counts"][i][2] > 400]
        assert ds.select(where={"mask_counts": lambda c: c[:, 2] > 400}).tolist() == rare
        assert ds.select(where={"source": 0}).tolist() == [i for i in range(len(ds)) if rows["source"][i] == 0]
        assert ds.select().tolist() == list(range(len(ds)))
        with pytest.raises(rocksds.InvalidArgumentError):
            ds.select(where={"image": (">", 0)})  # the pixels are not a small field
        with pytest.raises(rocksds.InvalidArgumentError):
            ds.select(where={"valid": lambda c: 3})
        with pytest.raises(rocksds.InvalidArgumentError):
            ds.select(bbox=(1, 2, 0, 3))


def test_bbox_in_another_crs_needs_pyproj_or_transforms(chips) -> None:
    path, _ = chips
    with rocksds.open(path) as ds:
        try:
            import pyproj
        except ImportError:
            with pytest.raises(rocksds.DependencyNotFoundError, match=r"pip install 'rocksds\[geo\]'"):
                ds.select(bbox=(14.9, 41.0, 15.1, 41.6), crs="EPSG:4326")
            return
        t = pyproj.Transformer.from_crs(ds.attrs["crs"], "EPSG:4326", always_xy=True)
        b = ds.read_column("bounds", 0, len(ds))
        lon0, lat0, lon1, lat1 = t.transform_bounds(*(b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))
        assert ds.select(bbox=(lon0 - 1, lat0 - 1, lon1 + 1, lat1 + 1), crs="EPSG:4326").tolist() == list(range(len(ds)))


def test_selection_is_cached_and_follows_refresh(chips, monkeypatch) -> None:
    path, _ = chips
    with rocksds.open(path) as ds:
        first = ds.select(where={"valid": (">", 0.5)})
        calls = []
        real = ds.read_column
        monkeypatch.setattr(ds, "read_column", lambda *a: calls.append(a) or real(*a))
        assert ds.select(where={"valid": (">", 0.5)}).tolist() == first.tolist()
        assert calls == []
        sub = torch_subset(ds, first)
        assert sub == len(first)


def torch_subset(ds, idx) -> int:
    torch = pytest.importorskip("torch")
    return len(torch.utils.data.Subset(ds, idx))
