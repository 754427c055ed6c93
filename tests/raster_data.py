"""Small seeded GeoTIFFs (real CRS and transform) and dataset comparisons for the raster and bulk tests."""

from __future__ import annotations

import os

import numpy as np

import rocksds
from rocksds.testing import write_synthetic_geotiff

WIDTH, HEIGHT = 300, 260


def make_scene(dirpath, name: str = "scene", *, seed: int = 1, tiled: bool = True, width: int = WIDTH,
               height: int = HEIGHT, origin=(500000.0, 4600000.0)) -> dict[str, str]:
    """An image (4 bands, uint16, nodata 0 in a top-left triangle) and a label mask on the same grid."""
    image = write_synthetic_geotiff(
        os.path.join(dirpath, f"{name}.tif"), width, height, seed=seed, tiled=tiled, block=64, nodata_corner=0.6,
        origin=origin,
    )
    mask = write_synthetic_geotiff(
        os.path.join(dirpath, f"{name}_mask.tif"), width, height, seed=seed, tiled=tiled, block=64, classes=3,
        nodata=None, origin=origin,
    )
    return {"image": image, "mask": mask}


def samples(path) -> list[dict]:
    with rocksds.open(path) as ds:
        return [ds[i] for i in range(len(ds))]


def assert_same_dataset(a, b) -> None:
    """Same schema fields, same attrs (but the recorded command), same samples in the same order."""
    with rocksds.open(a) as da, rocksds.open(b) as db:
        assert len(da) == len(db)
        assert da.schema.fields == db.schema.fields
        strip = lambda d: {k: v for k, v in d.items() if k != "command"}  # noqa: E731
        assert strip(da.attrs) == strip(db.attrs)
        for i in range(len(da)):
            x, y = da[i], db[i]
            assert x.keys() == y.keys()
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"sample {i} field {k}")


def chip_origin(sample: dict, transform) -> tuple[int, int]:
    """(row, col) of a chip's top-left pixel in its source raster, from the chip's transform."""
    t = sample["transform"]
    col = (t[2] - transform.c) / transform.a
    row = (t[5] - transform.f) / transform.e
    assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6
    return int(round(row)), int(round(col))
