"""Chipping rasters: pixels, georeferencing, filtering, splits, inputs, CLI and demo (grid arithmetic: test_grid)."""

from __future__ import annotations

import itertools
import re
import json
import os
import warnings

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")  # the raster extra; installed in CI
from rasterio.windows import Window  # noqa: E402
from rasterio.windows import bounds as window_bounds  # noqa: E402

import rocksds  # noqa: E402
from rocksds.cli import main  # noqa: E402
from rocksds.testing import write_synthetic_geotiff  # noqa: E402
from rocksds.raster import (  # noqa: E402
    GridMismatchError,
    RasterLayoutWarning,
    chip_count,
    chip_offsets,
    ingest_raster,
    plan_chips,
)

from raster_data import HEIGHT, WIDTH, assert_same_dataset, chip_origin, make_scene, samples  # noqa: E402

# rasterio's own window helpers (used here as the reference) still multiply Affines with ``*``.
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"))


# ---------------------------------------------------------------------- pixels and georeferencing


@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_chips_equal_direct_window_reads(tmp_path, scene, edge):
    out = tmp_path / "chips.rds"
    report = ingest_raster(out, scene, chip=64, stride=48, edge=edge, batch_bytes=40_000,  # many small reads
                           min_valid=0)  # every grid chip, all-nodata ones included
    rows, cols = chip_count(HEIGHT, 64, 48, edge), chip_count(WIDTH, 64, 48, edge)
    assert report["grid"] == rows * cols
    with rocksds.open(out) as ds, rasterio.open(scene["image"]) as img, rasterio.open(scene["mask"]) as msk:
        assert len(ds) == rows * cols
        assert ds.attrs["crs"] == "EPSG:32633" and img.crs.to_epsg() == 32633
        assert ds.attrs["inputs"]["image"]["nodata"] == 0.0
        assert ds.attrs["inputs"]["image"]["bands"] == ["B1", "B2", "B3", "B4"]
        covered = np.zeros((HEIGHT, WIDTH), np.int32)
        seen = set()
        for i in range(len(ds)):
            s = ds[i]
            r, c = chip_origin(s, img.transform)
            assert (r, c) not in seen
            seen.add((r, c))
            win = Window(c, r, 64, 64)
            np.testing.assert_array_equal(s["image"], img.read(window=win, boundless=True, fill_value=0))
            np.testing.assert_array_equal(s["mask"], msk.read(window=win, boundless=True, fill_value=0))
            np.testing.assert_allclose(s["bounds"], window_bounds(win, img.transform))
            np.testing.assert_allclose(s["transform"], tuple(rasterio.windows.transform(win, img.transform))[:6])
            assert s["bounds"].dtype == np.float64 and s["transform"].shape == (6,)
            assert s["source"] == 0 and s["image"].shape == (4, 64, 64) and s["image"].dtype == np.uint16
            if edge == "shift":
                assert r + 64 <= HEIGHT and c + 64 <= WIDTH
            covered[r : r + 64, c : c + 64] += 1
        assert (covered > 0).all(), "some pixel is in no chip"
        # row-major order, exactly the computed grid
        expected = [(r, c) for r in chip_offsets(HEIGHT, 64, 48, edge) for c in chip_offsets(WIDTH, 64, 48, edge)]
        assert [chip_origin(ds[i], img.transform) for i in range(len(ds))] == expected


def test_raster_smaller_than_chip_gives_one_padded_chip(tmp_path):
    path = write_synthetic_geotiff(str(tmp_path / "tiny.tif"), 20, 30, seed=3, tiled=False, nodata=0)
    ingest_raster(tmp_path / "t.rds", {"image": path}, chip=32)
    (s,) = samples(tmp_path / "t.rds")
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(s["image"][:, :30, :20], src.read())
    assert (s["image"][:, 30:, :] == 0).all() and (s["image"][:, :, 20:] == 0).all()


def test_striped_raster_warns_and_gives_the_same_chips(tmp_path, scene):
    striped = make_scene(tmp_path, "striped", tiled=False)
    with rasterio.open(striped["image"]) as src:
        assert src.block_shapes[0][1] == WIDTH  # really striped
    with pytest.warns(RasterLayoutWarning, match="striped"):
        ingest_raster(tmp_path / "s.rds", striped, chip=32, stride=24, min_valid=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RasterLayoutWarning)
        ingest_raster(tmp_path / "t.rds", scene, chip=32, stride=24, min_valid=0.5)
    a, b = samples(tmp_path / "s.rds"), samples(tmp_path / "t.rds")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["bounds"], y["bounds"])


# ---------------------------------------------------------------------- filtering


def test_min_valid_keeps_exactly_the_chips_with_enough_valid_pixels(tmp_path, scene):
    report = ingest_raster(tmp_path / "f.rds", scene, chip=32, stride=32, min_valid=0.5)
    with rasterio.open(scene["image"]) as img:
        expected = []
        for r in chip_offsets(HEIGHT, 32, 32):
            for c in chip_offsets(WIDTH, 32, 32):
                valid = img.read_masks(window=Window(c, r, 32, 32)).all(axis=0)
                if valid.mean() >= 0.5:
                    expected.append((r, c))
        got = [chip_origin(s, img.transform) for s in samples(tmp_path / "f.rds")]
    assert got == expected
    assert 0 < report["invalid"] == report["grid"] - len(expected)


def test_internal_dataset_mask_is_used(tmp_path):
    path = str(tmp_path / "masked.tif")
    data = np.full((1, 64, 64), 7, np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=rasterio.Affine(0.001, 0, 10, 0, -0.001, 50)) as dst:
        dst.write(data)
        m = np.full((64, 64), 255, np.uint8)
        m[:, :40] = 0  # left 40 columns invalid through an internal mask, not nodata
        dst.write_mask(m)
    ingest_raster(tmp_path / "m.rds", {"image": path}, chip=32, min_valid=0.5)
    got = [(s["transform"][2], s["transform"][5]) for s in samples(tmp_path / "m.rds")]
    # chips at column 0 are all invalid, chips at column 32 are 24/32 valid
    assert len(got) == 2 and all(abs(x - (10 + 32 * 0.001)) < 1e-9 for x, _ in got)


# ---------------------------------------------------------------------- splits


def _split_coverage(paths, transform, chip):
    cover = {}
    for name, path in paths.items():
        m = np.zeros((HEIGHT, WIDTH), bool)
        for s in samples(path):
            r, c = chip_origin(s, transform)
            m[r : r + chip, c : c + chip] = True
        cover[name] = m
    return cover


def test_splits_are_disjoint_by_block_and_deterministic(tmp_path, scene):
    kw = dict(chip=32, stride=16, split={"train": 0.6, "val": 0.2, "test": 0.2}, split_block=64, seed=5)
    rep = ingest_raster(tmp_path / "a", scene, **kw)
    assert set(rep["datasets"]) == {"train", "val", "test"}
    assert os.path.isdir(tmp_path / "a" / "val.rds")
    with rasterio.open(scene["image"]) as img:
        cover = _split_coverage(rep["datasets"], img.transform, 32)
    for x, y in itertools.combinations(cover, 2):
        assert not (cover[x] & cover[y]).any(), f"{x} and {y} share pixels"
    assert all(rep["counts"][k] > 0 for k in cover)
    assert rep["straddling"] > 0
    assert sum(rep["counts"].values()) + rep["straddling"] + rep["invalid"] == rep["grid"]
    # every 64-pixel block is covered by at most one split
    for by, bx in itertools.product(range(0, HEIGHT, 64), range(0, WIDTH, 64)):
        owners = [k for k, m in cover.items() if m[by : by + 64, bx : bx + 64].any()]
        assert len(owners) <= 1
    with rocksds.open(rep["datasets"]["val"]) as ds:
        assert ds.attrs["split"] == {"name": "val", "fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
                                     "block": 64, "seed": 5}
    again = ingest_raster(tmp_path / "b", scene, **kw)
    for k in cover:
        assert_same_dataset(rep["datasets"][k], again["datasets"][k])
    other = ingest_raster(tmp_path / "c", scene, **{**kw, "seed": 6})
    assert other["counts"] != rep["counts"] or any(
        samples(other["datasets"][k])[0]["bounds"].tolist() != samples(rep["datasets"][k])[0]["bounds"].tolist()
        for k in cover
    )


def test_block_assignment_follows_fractions(scene):
    plan = plan_chips([scene], chip=8, split={"train": 0.75, "val": 0.25}, split_block=20, seed=0)
    blocks = plan.block_splits(0)
    assert blocks.shape == (-(-HEIGHT // 20), -(-WIDTH // 20))
    assert round(0.25 * blocks.size) == (blocks == 1).sum()
    with pytest.raises(rocksds.InvalidArgumentError, match="straddle"):
        plan_chips([scene], chip=16, split={"train": 0.5, "val": 0.5}, split_block=20)


def test_tasks_partition_every_chip_row_once(scene, tmp_path):
    other = make_scene(tmp_path, "small", width=40, height=40)
    plan = plan_chips([scene, other], chip=16, tasks=5)
    for src in (0, 1):
        rows = [(t.row0, t.row1) for t in plan.tasks if t.source == src]
        assert rows[0][0] == 0 and all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
        assert rows[-1][1] == len(plan.grid(src)[0])
    assert [t.index for t in plan.tasks] == list(range(len(plan.tasks)))


def test_public_names_of_rocksds_raster():
    import rocksds.raster

    assert set(rocksds.raster.__all__) <= set(dir(rocksds.raster))


def test_core_imports_neither_rasterio_nor_dask():
    import subprocess
    import sys

    code = "import sys, rocksds, rocksds.cli; rocksds.cli.build_parser(); " \
           "bad = [m for m in ('rasterio', 'dask', 'tqdm', 'torch') if m in sys.modules]; assert not bad, bad"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---------------------------------------------------------------------- inputs


def test_inputs_on_different_grids_are_refused(tmp_path, scene):
    shifted = write_synthetic_geotiff(str(tmp_path / "shifted.tif"), WIDTH, HEIGHT, classes=2, nodata=None,
                                      origin=(500010.0, 4600000.0))
    with pytest.raises(GridMismatchError, match="transform.*refuses rather than resamples"):
        ingest_raster(tmp_path / "x.rds", {"image": scene["image"], "mask": shifted})
    smaller = write_synthetic_geotiff(str(tmp_path / "small.tif"), WIDTH - 1, HEIGHT, classes=2, nodata=None)
    with pytest.raises(GridMismatchError, match="width"):
        ingest_raster(tmp_path / "y.rds", {"image": scene["image"], "mask": smaller})
    assert not os.path.exists(tmp_path / "x.rds") and not os.path.exists(tmp_path / "y.rds")
    with pytest.raises(rocksds.InvalidArgumentError, match="cannot open raster"):
        ingest_raster(tmp_path / "z.rds", {"image": str(tmp_path / "missing.tif")})


def test_many_scenes_by_glob_and_csv_give_contiguous_sources(tmp_path):
    d = tmp_path / "scenes"
    d.mkdir()
    make_scene(d, "a", seed=1, width=100, height=90)
    make_scene(d, "b", seed=2, width=70, height=130, origin=(600000.0, 4700000.0))
    rep = ingest_raster(tmp_path / "g.rds", {"image": str(d / "?.tif"), "mask": str(d / "?_mask.tif")}, chip=32,
                        min_valid=0)
    got = samples(tmp_path / "g.rds")
    n_a = chip_count(90, 32, 32) * chip_count(100, 32, 32)
    n_b = chip_count(130, 32, 32) * chip_count(70, 32, 32)
    assert rep["counts"][""] == len(got) == n_a + n_b
    assert [int(s["source"]) for s in got] == [0] * n_a + [1] * n_b
    with rocksds.open(tmp_path / "g.rds") as ds:
        assert [os.path.basename(s["image"]) for s in ds.attrs["sources"]] == ["a.tif", "b.tif"]
    csv = tmp_path / "scenes.csv"
    csv.write_text("image,mask\nscenes/a.tif,scenes/a_mask.tif\nscenes/b.tif,scenes/b_mask.tif\n")
    assert main(["ingest-raster", str(tmp_path / "c.rds"), "--csv", str(csv), "--chip", "32", "--min-valid", "0",
                 "--quiet"]) == 0
    a, b = samples(tmp_path / "g.rds"), samples(tmp_path / "c.rds")
    assert len(a) == len(b) and all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))


# ---------------------------------------------------------------------- CLI and demo


def test_cli_ingest_raster_json_and_attrs(tmp_path, scene, capsys):
    out = tmp_path / "out"
    rc = main(["ingest-raster", str(out), "--input", f"image={scene['image']}", "--input", f"mask={scene['mask']}",
               "--chip", "64", "--stride", "32", "--split", "train=0.8,val=0.2", "--split-block", "128",
               "--min-valid", "0.5", "--classes", "a,b,c", "--workers", "1", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["counts"]) == {"train", "val"}
    with rocksds.open(report["datasets"]["train"]) as ds:
        assert len(ds) == report["counts"]["train"] > 0
        assert ds.attrs["classes"] == ["a", "b", "c"]
        assert ds.attrs["command"].startswith("rocksds ingest-raster ")
        assert "--split train=0.8,val=0.2" in ds.attrs["command"]
    assert main(["ingest-raster", str(out), "--input", f"image={scene['image']}", "--quiet"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err


def test_demo_json(tmp_path, capsys):
    rc = main(["demo", "--dir", str(tmp_path), "--size", "256", "--chip", "32", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    counts = report["ingest"]["counts"]
    assert counts["train"] > 0 and counts["val"] > 0
    assert report["read"]["samples"] == counts["train"]
    with rocksds.open(report["ingest"]["datasets"]["val"]) as ds:
        assert len(ds) == counts["val"] and ds.attrs["crs"] == "EPSG:32633"


# ---------------------------------------------------------------------- defaults and empty outputs


def _all_nodata_chips(path: str, chip: int, stride: int) -> int:
    with rasterio.open(path) as img:
        return sum(
            not img.read_masks(window=Window(c, r, chip, chip)).any()
            for r in chip_offsets(img.height, chip, stride)
            for c in chip_offsets(img.width, chip, stride)
        )


def test_default_drops_exactly_the_all_nodata_chips_and_says_so(tmp_path, scene):
    every = ingest_raster(tmp_path / "all.rds", scene, chip=32, min_valid=0)
    default = ingest_raster(tmp_path / "default.rds", scene, chip=32)
    nodata = _all_nodata_chips(scene["image"], 32, 32)
    assert nodata > 0 and every["invalid"] == 0
    assert default["invalid"] == nodata == every["counts"][""] - default["counts"][""]
    assert f"dropped {nodata} chip(s) without a single valid pixel" in default["dropped"]
    with rocksds.open(tmp_path / "default.rds") as ds:
        assert all(ds[i]["image"].any() for i in range(len(ds)))  # nodata is 0: every kept chip has data


def test_split_block_default_follows_a_scene_smaller_than_2048(tmp_path, scene):
    report = ingest_raster(tmp_path / "out", scene, chip=32, split={"train": 0.8, "val": 0.2})
    assert report["counts"]["train"] > 0 and report["counts"]["val"] > 0
    assert report["split_block"] % 32 == 0 and 64 <= report["split_block"] < min(HEIGHT, WIDTH)
    with rocksds.open(report["datasets"]["val"]) as ds:
        assert ds.attrs["split"]["block"] == report["split_block"]


def test_split_no_chip_can_reach_is_refused_before_reading_and_leaves_nothing(tmp_path, scene):
    out = tmp_path / "out"
    with pytest.raises(rocksds.errors.EmptyOutputError, match="'val' would get no chip.*--split-block"):
        ingest_raster(out, scene, chip=32, split={"train": 0.8, "val": 0.2}, split_block=1024)
    assert not out.exists()


def test_min_valid_that_drops_every_chip_fails_and_leaves_nothing(tmp_path, scene):
    nodata_only = str(tmp_path / "empty.tif")
    with rasterio.open(nodata_only, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint16", nodata=0, tiled=True,
                       blockxsize=64, blockysize=64,
                       crs="EPSG:32633", transform=rasterio.Affine(10, 0, 500000, 0, -10, 4600000)) as dst:
        dst.write(np.zeros((1, 128, 128), np.uint16))
    with pytest.raises(rocksds.errors.EmptyOutputError, match=r"the dataset would hold no samples.*dropped 16 chip"):
        ingest_raster(tmp_path / "one.rds", {"image": nodata_only}, chip=32)
    out = tmp_path / "out"
    with pytest.raises(rocksds.errors.EmptyOutputError, match="train, val would hold no samples"):
        ingest_raster(out, {"image": nodata_only}, chip=32, split={"train": 0.5, "val": 0.5}, split_block=64)
    assert not out.exists() and not (tmp_path / "one.rds").exists()
    assert sorted(os.listdir(tmp_path)) == ["empty.tif"]


def test_cli_summary_says_what_was_dropped_and_help_gives_the_defaults(tmp_path, scene, capsys):
    assert main(["ingest-raster", str(tmp_path / "c.rds"), "--input", f"image={scene['image']}", "--chip", "32"]) == 0
    out = capsys.readouterr().out
    assert "without a single valid pixel (the default; --min-valid 0 keeps them)" in out
    with pytest.raises(SystemExit):
        main(["ingest-raster", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "skip only chips with no valid pixel at all; 0 keeps every chip" in text
    assert "from the scene size" in text


# ---------------------------------------------------------------------- damaged inputs


def _damaged_copy(src: str, dst: str) -> str:
    """``src`` with the bytes of its later tiles overwritten: the header reads, some blocks do not decode."""
    data = bytearray(open(src, "rb").read())
    start = len(data) * 2 // 3
    data[start : start + 4096] = b"\xff" * 4096
    open(dst, "wb").write(bytes(data))
    return dst


@pytest.mark.parametrize("workers", [1, 2])
def test_damaged_raster_is_a_rocksds_error_naming_file_and_window_and_leaves_nothing(tmp_path, scene, workers):
    bad = _damaged_copy(scene["image"], str(tmp_path / "bad.tif"))
    out = tmp_path / "out"
    with pytest.raises(rocksds.errors.RasterReadError) as info:
        ingest_raster(out, {"image": bad, "mask": scene["mask"]}, chip=32, split={"train": 0.8, "val": 0.2},
                      workers=workers)
    msg = str(info.value)
    assert "bad.tif" in msg and re.search(r"window rows \d+\.\.\d+, columns \d+\.\.\d+", msg), msg
    assert sorted(os.listdir(tmp_path)) == ["bad.tif"]  # no output folder, build or staging directory


def test_damaged_raster_from_the_cli_is_one_error_line(tmp_path, scene, capsys):
    bad = _damaged_copy(scene["image"], str(tmp_path / "bad.tif"))
    assert main(["ingest-raster", str(tmp_path / "o.rds"), "--input", f"image={bad}", "--chip", "32"]) == 2
    err = capsys.readouterr().err
    assert f"rocksds: error: input 'image' ({bad}) cannot be read in the window rows" in err
    assert "Traceback" not in err and err.count("rocksds: error:") == 1
    assert sorted(os.listdir(tmp_path)) == ["bad.tif"]


def test_demo_says_how_to_clean_up_and_what_to_do_next(tmp_path, capsys):
    work = tmp_path / "demo"
    assert main(["demo", "--dir", str(work), "--size", "256", "--chip", "32"]) == 0
    out = capsys.readouterr().out
    assert f"rm -r {work}" in out and "examples/train_tiny_cnn.py" in out and "rocksds ingest-raster" in out
    assert f"rocksds report {work}/chips/train.rds" in out and work.is_dir()
    assert main(["demo", "--dir", str(tmp_path / "gone"), "--size", "256", "--chip", "32", "--clean"]) == 0
    assert "removed" in capsys.readouterr().out and not (tmp_path / "gone").exists()
