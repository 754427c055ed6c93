"""Seeded synthetic GeoTIFFs: the scene generator the demo, the tests and the benchmark share.

:func:`write_synthetic_geotiff` writes block row by block row, so a scene
larger than memory can be generated. Writing goes through
:func:`rocksds.raster.write_geotiff` (needs ``pip install 'rocksds[raster]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import numpy as np

from ..raster import write_geotiff

__all__ = ["write_synthetic_geotiff", "DEMO_CRS", "DEMO_ORIGIN"]

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
    if classes:
        bands, dtype = 1, "uint8"
    rows = block if tiled else max(1, block // 16)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(bands, 2))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    top = 1.0 if info is None else float(min(info.max, 4000))
    xs = np.arange(width, dtype=np.float32)

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
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
            yield y0, data

    return write_geotiff(
        path, blocks(), width=width, height=height, bands=bands, dtype=dtype, crs=DEMO_CRS,
        transform=(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1]), nodata=nodata,
        block=(rows, block), tiled=tiled, compress=compress, descriptions=[f"B{b + 1}" for b in range(bands)],
    )
