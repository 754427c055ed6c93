"""``rocksds demo``: build a synthetic scene, chip it, validate it, read it back, and say how fast.

Also home of :func:`write_synthetic_geotiff`, the seeded scene generator the
demo, the tests and the benchmark share. It writes block row by block row,
so a scene larger than memory can be generated. Needs rasterio
(``pip install 'rocksds[raster]'``).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["write_synthetic_geotiff", "run_demo", "DEMO_CRS"]

#: WGS 84 / UTM zone 33N: a real projected CRS, 10 m pixels.
DEMO_CRS = "EPSG:32633"
DEMO_ORIGIN = (500000.0, 4600000.0)


def _noise(ys: np.ndarray, xs: np.ndarray, seed: int) -> np.ndarray:
    """Seeded pseudo-random values in [0, 1) that depend only on the pixel, not on how the scene is blocked."""
    h = (ys.astype(np.uint64) * np.uint64(73856093)) ^ (xs.astype(np.uint64)[None, :] * np.uint64(19349663))
    h = (h + np.uint64(seed) * np.uint64(83492791)) * np.uint64(2654435761)
    return ((h >> np.uint64(16)) % np.uint64(1024)).astype(np.float32) / 1024.0


def write_synthetic_geotiff(
    path: str,
    width: int,
    height: int,
    *,
    bands: int = 4,
    dtype: str = "uint16",
    seed: int = 0,
    tiled: bool = True,
    block: int = 256,
    compress: Optional[str] = "deflate",
    nodata: Optional[float] = 0,
    nodata_corner: float = 0.0,
    classes: int = 0,
    pixel_size: float = 10.0,
    origin: tuple[float, float] = DEMO_ORIGIN,
) -> str:
    """Write a seeded GeoTIFF with a real CRS (UTM 33N) and north-up transform, one block row at a time.

    Pixels are smooth per-band waves plus seeded noise (compressible, not
    constant). With ``nodata_corner > 0`` the top-left triangle covering that
    fraction of the rows is set to ``nodata``. With ``classes > 0`` the scene
    is a single-band label raster (values ``0..classes-1``) instead.

    Args:
        tiled: square ``block`` x ``block`` tiles; otherwise strips of ``block // 16`` rows (min 1).
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    if classes:
        bands, dtype = 1, "uint8"
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": dtype,
        "crs": DEMO_CRS,
        "transform": Affine(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1]),
        "nodata": nodata,
        "tiled": tiled,
        "interleave": "pixel",
    }
    if tiled:
        profile.update(blockxsize=block, blockysize=block)
        rows = block
    else:
        rows = max(1, block // 16)
        profile.update(blockysize=rows)
    if compress:
        profile["compress"] = compress
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(bands, 2))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    top = 1.0 if info is None else float(min(info.max, 4000))
    xs = np.arange(width, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for b in range(bands):
            dst.set_band_description(b + 1, f"B{b + 1}")
        for y0 in range(0, height, rows):
            h = min(rows, height - y0)
            ys = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
            if classes:
                wave = np.sin(xs / 37.0 + phase[0, 0]) + np.cos(ys / 53.0 + phase[0, 1])
                data = ((wave + 2) / 4 * classes).astype(np.int64).clip(0, classes - 1)[None].astype(dtype)
            else:
                data = np.empty((bands, h, width), dtype=dtype)
                for b in range(bands):
                    wave = np.sin(xs / (40.0 + 7 * b) + phase[b, 0]) * np.cos(ys / (60.0 + 5 * b) + phase[b, 1])
                    val = (wave + 1.2) / 2.4 * top * 0.9 + _noise(ys, xs, seed + b) * (top * 0.1)
                    data[b] = val.astype(dtype)
                if nodata is not None:
                    data[data == nodata] = 1  # keep nodata only where we put it
            if nodata is not None and nodata_corner > 0:
                limit = nodata_corner * height
                yy = ys[:, 0]
                cut = np.where(yy < limit, ((limit - yy) / limit * width).astype(np.int64), 0)
                mask = xs[None, :] < cut[:, None]
                data[:, mask] = nodata
            dst.write(data, window=Window(0, y0, width, h))
    return path


class _Bar:
    """A tqdm bar fed by ``progress(n, total)`` callbacks; silent when tqdm is missing."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit, self._bar = desc, unit, None

    def __call__(self, n: int, total: int) -> None:
        if self._bar is None:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, leave=False)
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_demo(
    workdir: Optional[str] = None,
    *,
    size: int = 1024,
    chip: int = 64,
    workers: int = 1,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate a scene and its labels, chip them into train/val datasets, validate and read back.

    Returns a report (paths, counts, timings) that ``rocksds demo --json`` prints.
    """
    import rocksds
    from .raster import ingest_raster

    workdir = workdir or tempfile.mkdtemp(prefix="rocksds-demo-")
    os.makedirs(workdir, exist_ok=True)
    report: dict[str, Any] = {"workdir": workdir}
    t0 = t = time.perf_counter()
    image = write_synthetic_geotiff(os.path.join(workdir, "scene.tif"), size, size, seed=seed, nodata_corner=0.3)
    mask = write_synthetic_geotiff(os.path.join(workdir, "labels.tif"), size, size, seed=seed, classes=4, nodata=None)
    report["scene"] = {"image": image, "mask": mask, "width": size, "height": size, "bands": 4, "crs": DEMO_CRS,
                       "seconds": time.perf_counter() - t}
    echo(f"wrote a {size}x{size} 4-band scene and its labels ({DEMO_CRS}) in {report['scene']['seconds']:.2f}s")

    bar = _Bar("chipping", "row") if progress else None
    out = os.path.join(workdir, "chips")
    res = ingest_raster(
        out, {"image": image, "mask": mask}, chip=chip, stride=chip // 2, split={"train": 0.8, "val": 0.2},
        split_block=4 * chip, min_valid=0.5, seed=seed, classes=["water", "field", "forest", "urban"],
        workers=workers, overwrite=True, progress=bar,
        command=f"rocksds demo --size {size} --chip {chip} --workers {workers} --seed {seed}",
    )
    if bar is not None:
        bar.close()
    report["ingest"] = res
    echo(f"chipped {res['grid']} grid chips in {res['seconds']:.2f}s ({res['chips_per_s']:.0f} chips/s): "
         + ", ".join(f"{k} {n}" for k, n in res["counts"].items())
         + f"; skipped {res['invalid']} mostly-nodata chips, {res['straddling']} straddling split blocks")

    validate = getattr(rocksds, "validate", None)
    report["validate"] = {}
    for name, path in res["datasets"].items():
        if validate is None:
            report["validate"][name] = None
            continue
        t = time.perf_counter()
        result = validate(path)
        ok = bool(getattr(result, "ok", result))
        report["validate"][name] = {"ok": ok, "seconds": time.perf_counter() - t}
        echo(f"validated {path}: {'ok' if ok else 'PROBLEMS'}")
    if validate is None:
        echo("rocksds.validate is not available in this build; skipped validation")

    path = res["datasets"]["train"]
    t = time.perf_counter()
    n_read = 0
    with rocksds.open(path) as ds:
        order = np.random.default_rng(seed).permutation(len(ds))
        for i in range(0, len(ds), 32):
            batch = ds.get_batch(order[i : i + 32])
            n_read += len(batch["image"])
        shape = list(batch["image"].shape[1:]) if len(ds) else []
    secs = time.perf_counter() - t
    report["read"] = {"dataset": path, "samples": n_read, "seconds": secs,
                      "samples_per_s": n_read / secs if secs > 0 else 0.0, "image_shape": shape}
    echo(f"read back {n_read} train samples (image {shape}) in shuffled batches of 32: "
         f"{report['read']['samples_per_s']:.0f} samples/s")
    report["seconds"] = time.perf_counter() - t0
    return report
