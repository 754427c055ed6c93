"""``rocksds report``: the page's content from a real ingested scene, and the page in a real headless browser."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("rasterio")
from PIL import Image  # noqa: E402

import rocksds  # noqa: E402
from rocksds.cli import main  # noqa: E402
from rocksds.raster import ingest_raster  # noqa: E402
from rocksds.testing import write_synthetic_geotiff  # noqa: E402
from rocksds.tools.report import PIXELS_PER_CHIP, band_statistics, build_report, write_report  # noqa: E402

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A harness appended to a copy of the page (the report itself has no script): after load, it records how
# many images there are and how many failed to decode.
CHECK = ('<script>window.addEventListener("load",()=>{const i=[...document.images];document.body.setAttribute('
         '"data-check",i.length+":"+i.filter(x=>!x.complete||x.naturalWidth===0).length);});</script>')


@pytest.fixture(scope="module")
def scene_splits(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    image = write_synthetic_geotiff(str(d / "scene.tif"), 256, 256, block=64, nodata_corner=0.3)
    mask = write_synthetic_geotiff(str(d / "labels.tif"), 256, 256, block=64, classes=4, nodata=None)
    report = ingest_raster(d / "chips", {"image": image, "mask": mask}, chip=32,
                           split={"train": 0.75, "val": 0.25}, split_block=64)
    return report["datasets"]


def test_page_holds_schema_sizes_statistics_thumbnails_and_footprints(scene_splits):
    train, val = scene_splits["train"], scene_splits["val"]
    page = build_report(train, sample=40, thumbs=6)
    with rocksds.open(train) as ds, rocksds.open(val) as dv:
        n, n_val = len(ds), len(dv)
        for name in ds.schema.fields:
            assert f"<td>{name}</td>" in page
        assert f"{n} samples" in page and "EPSG:32633" in page
    # thumbnails: one image and one mask per chip, real PNGs of the chip's size (32 px, not scaled)
    pngs = [Image.open(io.BytesIO(base64.b64decode(b))) for b in IMG.findall(page)]
    assert len(pngs) == 12 and {p.size for p in pngs} == {(32, 32)} and page.count("<figure>") == 6
    assert {p.mode for p in pngs} == {"RGB"}
    # footprints: one rectangle per chip of each split, in its own group
    groups = dict(re.findall(r'data-split="(\w+)">(.*?)</g>', page))
    assert groups["train"].count("<rect") == n and groups["val"].count("<rect") == n_val
    assert "From 40 of" in page and "(nodata 0 left out)" in page
    # nothing fetched from elsewhere: no src/href other than data: URIs
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_band_statistics_leave_out_nodata_and_match_numpy():
    rng = np.random.default_rng(3)
    values = rng.integers(1, 1000, 5000).astype(np.uint16)
    values[:500] = 0
    s = band_statistics(values, nodata=0.0)
    valid = values[values != 0].astype(np.float64)
    assert s["valid"] == pytest.approx(0.9) and s["pixels"] == 5000
    assert (s["min"], s["max"]) == (valid.min(), valid.max())
    assert s["mean"] == pytest.approx(valid.mean()) and s["std"] == pytest.approx(valid.std())
    counts, edges = s["hist"]
    assert sum(counts) == valid.size and edges[0] == valid.min() and edges[-1] == valid.max()
    assert band_statistics(np.zeros(10), nodata=0.0)["hist"] is None


def test_statistics_are_bounded_by_the_sample(scene_splits):
    page = build_report(scene_splits["train"], sample=3, thumbs=1)
    assert "From 3 of" in page and f"up to {PIXELS_PER_CHIP} pixels" in page


def test_cli_report_writes_the_page(scene_splits, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", scene_splits["val"], "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_text().startswith("<!doctype html>")


def _chromium(tmp_path, url: str, *extra: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    return subprocess.run([CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs "
                                             "it where apt-get works): the page cannot be checked in a browser here")
def test_page_renders_in_headless_chromium_with_every_image_loaded_and_no_console_message(scene_splits, tmp_path):
    page = tmp_path / "report.html"
    write_report(scene_splits["train"], page, thumbs=8)
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    done = _chromium(tmp_path, checked.as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr
    assert 'data-check="16:0"' in done.stdout  # 8 chips x (image + mask), none broken
    assert "CONSOLE" not in done.stderr, done.stderr  # Chromium logs every console message and page error so
    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1000,1400")
    assert done.returncode == 0 and shot.exists(), done.stderr
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1400, 1000) and (pixels < 200).any(axis=2).mean() > 0.02  # drawn, not blank


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_browser_check_catches_a_broken_image_and_a_console_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><img src="data:image/png;base64,AAAA">'
                   "<script>console.error('broken')</script>" + CHECK + "</body></html>")
    done = _chromium(tmp_path, bad.as_uri(), "--dump-dom")
    assert 'data-check="1:1"' in done.stdout and "CONSOLE" in done.stderr
