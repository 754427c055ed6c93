"""Band statistics of ingested rasters: equal to numpy's over the stored pixels (nodata left out), serial = parallel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

import rocksds  # noqa: E402
from rocksds.raster import ingest_raster  # noqa: E402
from rocksds.testing import DEMO_ORIGIN, write_synthetic_geotiff  # noqa: E402
from rocksds.validation import validate  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::rocksds.raster.RasterLayoutWarning")

RGB = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "RGB.byte.tif")


def _stored_bands(path: str, field: str = "image") -> np.ndarray:
    with rocksds.open(path, fields=[field]) as ds:
        chips = ds.get_batch(range(len(ds)))[field]
    return np.moveaxis(chips, 1, 0).reshape(chips.shape[1], -1)


def _assert_numpy_stats(path: str, nodata, field: str = "image") -> None:
    with rocksds.open(path) as ds:
        fs = ds.stats[field]
        assert ds.stats.count == len(ds)
    for b, band in enumerate(_stored_bands(path, field)):
        v = band if nodata is None else band[band != nodata]
        assert fs.bands[b].count == v.size
        assert (fs.min[b], fs.max[b]) == (v.min(), v.max())
        assert fs.mean[b] == pytest.approx(v.astype(np.float64).mean(), rel=1e-14)
        assert fs.std[b] == pytest.approx(v.astype(np.float64).std(), rel=1e-12)
        np.testing.assert_array_equal(fs.percentile([2, 50, 98])[b], np.percentile(v, [2, 50, 98], method="inverted_cdf"))


@pytest.fixture(scope="module")
def rgb_builds(tmp_path_factory):
    out = tmp_path_factory.mktemp("rgb")
    serial = ingest_raster(out / "serial.rds", [{"image": RGB}], chip=128, min_valid=0.5)
    parallel = ingest_raster(out / "parallel.rds", [{"image": RGB}], chip=128, min_valid=0.5, workers=2)
    return serial["datasets"][""], parallel["datasets"][""]


def test_rgb_byte_stats_equal_numpy_without_nodata(rgb_builds) -> None:
    serial, parallel = rgb_builds
    _assert_numpy_stats(serial, nodata=0)
    with rocksds.open(serial) as ds:
        assert ds.stats["image"].nodata == 0 and len(ds.stats["image"].bands) == 3
        assert set(ds.stats.fields) == {"image"}
    assert validate(serial).ok_strict


def test_serial_and_parallel_builds_store_identical_stats(rgb_builds) -> None:
    serial, parallel = rgb_builds
    with rocksds.open(serial) as a, rocksds.open(parallel) as b:
        assert len(a) == len(b) > 0
        assert a.stats.to_bytes() == b.stats.to_bytes()
    for path in (serial, parallel):  # both branches witness their count (SPEC.md 7.1) through the Writer
        witness = (Path(path) / rocksds.spec.WITNESS_FILE).read_bytes()
        assert int.from_bytes(witness[12:20], "big") == len(a)


def test_float_scene_with_splits_serial_equals_parallel(tmp_path) -> None:
    tif = str(tmp_path / "f.tif")
    write_synthetic_geotiff(tif, 300, 260, bands=2, dtype="float32", seed=3)
    split = {"train": 0.7, "val": 0.3}
    a = ingest_raster(tmp_path / "s", [{"image": tif}], chip=32, split=split, split_block=64)
    b = ingest_raster(tmp_path / "p", [{"image": tif}], chip=32, split=split, split_block=64, workers=2)
    for name in split:
        pa, pb = a["datasets"][name], b["datasets"][name]
        with rocksds.open(pa) as x, rocksds.open(pb) as y:
            assert x.stats.to_bytes() == y.stats.to_bytes()
        fs = rocksds.open(pa).stats["image"]
        bands = _stored_bands(pa).astype(np.float64)
        np.testing.assert_allclose(fs.mean, bands.mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(fs.std, bands.std(axis=1), rtol=1e-10)


def test_appending_to_an_ingested_dataset_keeps_stats_exact(tmp_path) -> None:
    tif = str(tmp_path / "u.tif")
    write_synthetic_geotiff(tif, 200, 200, bands=3, dtype="uint16", seed=5, nodata_corner=0.4)
    path = ingest_raster(tmp_path / "u.rds", [{"image": tif}], chip=50)["datasets"][""]
    with rocksds.open(path) as ds:
        first = ds.get_batch(range(4))
    with rocksds.open(path, mode="a") as w:
        w.extend(first)
    _assert_numpy_stats(path, nodata=0)
    assert (_stored_bands(path) == 0).any()


def test_no_stats_when_asked(tmp_path) -> None:
    path = ingest_raster(tmp_path / "n.rds", [{"image": RGB}], chip=256, stats=False)["datasets"][""]
    with rocksds.open(path) as ds:
        assert ds.stats is None


# ---------------------------------------------------------------------- per-chip content fields


@pytest.fixture(scope="module")
def masked_scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("masked")
    image = write_synthetic_geotiff(str(d / "image.tif"), 230, 210, bands=2, dtype="uint16", seed=7,
                                    nodata_corner=0.5)
    mask = write_synthetic_geotiff(str(d / "mask.tif"), 230, 210, classes=5, seed=8, nodata=None)
    return {"image": image, "mask": mask}


@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_valid_fraction_and_class_counts_equal_brute_force(masked_scene, tmp_path, edge) -> None:
    path = ingest_raster(tmp_path / "c.rds", [masked_scene], chip=64, edge=edge,
                         classes=[f"c{i}" for i in range(5)])["datasets"][""]
    with rasterio.open(masked_scene["image"]) as src:
        image = src.read()
    with rasterio.open(masked_scene["mask"]) as src:
        mask = src.read(1)
    with rocksds.open(path) as ds:
        assert ds.schema.fields["valid"].dtype == "float32"
        assert ds.schema.fields["mask_counts"].shape == (5,)
        batch = ds.get_batch(range(len(ds)))
    fractions = set()
    for i in range(len(batch["valid"])):
        _a, _b, c, _d, _e, f = batch["transform"][i]  # 10 m pixels from DEMO_ORIGIN
        x0, y0 = int(round((c - DEMO_ORIGIN[0]) / 10.0)), int(round((DEMO_ORIGIN[1] - f) / 10.0))
        window = image[:, y0:y0 + 64, x0:x0 + 64]
        good = (window != 0).all(axis=0).sum()  # outside the raster counts as invalid
        assert batch["valid"][i] == np.float32(good / 64**2)
        labels = mask[y0:y0 + 64, x0:x0 + 64]
        np.testing.assert_array_equal(batch["mask_counts"][i], np.bincount(labels.ravel(), minlength=5))
        fractions.add(float(batch["valid"][i]))
    assert len(fractions) > 2 and 1.0 in fractions  # some chips are partly nodata


def test_class_counts_need_classes_for_wide_masks_and_a_mask_input(masked_scene, tmp_path) -> None:
    with pytest.raises(rocksds.InvalidArgumentError, match="one integer band"):
        ingest_raster(tmp_path / "x.rds", [masked_scene], chip=64, class_counts=["image"])
    path = ingest_raster(tmp_path / "y.rds", [masked_scene], chip=64, class_counts=[])["datasets"][""]
    with rocksds.open(path) as ds:
        assert "mask_counts" not in ds.schema.fields and "valid" in ds.schema.fields


def test_band_names_from_colour_interpretation_and_head_bands(rgb_builds, tmp_path, capsys) -> None:
    pytest.importorskip("PIL")
    from rocksds.cli import main

    serial, _ = rgb_builds
    with rocksds.open(serial) as ds:
        assert ds.attrs["inputs"]["image"]["bands"] == ["red", "green", "blue"]
        assert ds.attrs["inputs"]["image"]["nodata"] == 0
    assert main(["head", serial, "-n", "1", "--png", str(tmp_path / "p"), "--bands", "blue,green,red"]) == 0
    assert os.path.getsize(tmp_path / "p-0.png") > 0
    assert main(["stats", serial]) == 0
    out = capsys.readouterr().out
    assert "red" in out and "blue" in out


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_readme_training_example_runs(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    pathlib = __import__("pathlib")
    monkeypatch.chdir(tmp_path)
    write_synthetic_geotiff("scene.tif", 600, 600, bands=3, seed=1, nodata_corner=0.3)
    write_synthetic_geotiff("labels.tif", 600, 600, classes=4, seed=2, nodata=None)
    ingest_raster("out", {"image": "scene.tif", "mask": "labels.tif"}, chip=64, split={"train": .8, "val": .2},
                  split_block=256)
    text = (pathlib.Path(__file__).parent.parent.parent / "README.md").read_text()
    start = text.index("```python\n# train on out/train.rds") + len("```python\n")
    code = text[start:text.index("```", start)]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    batch = next(iter(scope["loader"]))
    assert batch["image"].dtype.is_floating_point and float(batch["image"].max()) <= 1.0
    assert tuple(batch["image"].shape[1:]) == (3, 64, 64)
    assert len(scope["aoi"]) > 0
