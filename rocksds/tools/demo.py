"""``rocksds demo``: build a synthetic scene, chip it, validate it, read it back, and say how fast.

The scene comes from :func:`rocksds.testing.write_synthetic_geotiff`; needs
rasterio (``pip install 'rocksds[raster]'``), and reads back through
:mod:`rocksds.torch` when torch is installed.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

import rocksds

from .._optional import ProgressBar
from .._paths import dir_bytes
from ..errors import DependencyNotFoundError
from ..raster import ingest_raster
from ..testing import DEMO_CRS, write_synthetic_geotiff

__all__ = ["run_demo", "next_steps"]


def next_steps(report: dict[str, Any]) -> str:
    """What to do after the demo: look at the data, train, chip your own raster, and remove what it left."""
    workdir, train = report["workdir"], report["ingest"]["datasets"]["train"]
    mib = dir_bytes(workdir) / 2**20 if os.path.isdir(workdir) else 0.0
    return "\n".join([
        "next steps:",
        f"  look at the chips   rocksds info {train}",
        f"                      rocksds report {train} -o report.html",
        "  train a model       python examples/train_tiny_cnn.py --workers 2   (in a checkout of rocksds)",
        "  chip your raster    rocksds ingest-raster out --input image=scene.tif --chip 256 --split train=0.8,val=0.2",
        f"  clean up            rm -r {workdir}   ({mib:.0f} MiB; or run the demo with --clean)",
    ])

def run_demo(
    workdir: Optional[str] = None,
    *,
    size: int = 1024,
    chip: int = 64,
    workers: int = 1,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    loader_workers: int = 2,
) -> dict[str, Any]:
    """Generate a scene and its labels, chip them into train/val datasets, validate and read back.

    The read-back goes through a shuffled torch ``DataLoader`` over
    :class:`rocksds.torch.RocksDataset` with ``loader_workers`` workers when
    torch is installed, else through :meth:`rocksds.Dataset.get_batch`.

    Returns a report (paths, counts, timings) that ``rocksds demo --json`` prints.
    """

    workdir = workdir or tempfile.mkdtemp(prefix="rocksds-demo-")
    os.makedirs(workdir, exist_ok=True)
    report: dict[str, Any] = {"workdir": workdir}
    t0 = t = time.perf_counter()
    image = write_synthetic_geotiff(os.path.join(workdir, "scene.tif"), size, size, seed=seed, nodata_corner=0.3)
    mask = write_synthetic_geotiff(os.path.join(workdir, "labels.tif"), size, size, seed=seed, classes=4, nodata=None)
    report["scene"] = {"image": image, "mask": mask, "width": size, "height": size, "bands": 4, "crs": DEMO_CRS,
                       "seconds": time.perf_counter() - t}
    echo(f"wrote a {size}x{size} 4-band scene and its labels ({DEMO_CRS}) in {report['scene']['seconds']:.2f}s")

    bar = ProgressBar("chipping", "row") if progress else None
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

    report["validate"] = {}
    for name, path in res["datasets"].items():
        t = time.perf_counter()
        result = rocksds.validate(path)
        report["validate"][name] = {"ok": result.ok, "errors": result.errors, "seconds": time.perf_counter() - t}
        echo(f"validated {path}: {'ok' if result.ok else 'INVALID'} ({report['validate'][name]['seconds']:.2f}s)")
        if not result.ok:
            raise rocksds.CorruptionError(f"the demo built an invalid dataset: {result.codes()}")

    path = res["datasets"]["train"]
    report["read"] = _read_back(path, seed=seed, loader_workers=loader_workers)
    r = report["read"]
    echo(f"read back {r['samples']} train samples (image {r['image_shape']}) with {r['how']}: "
         f"{r['samples_per_s']:.0f} samples/s")
    report["seconds"] = time.perf_counter() - t0
    return report


def _read_back(path: str, *, seed: int, loader_workers: int, batch_size: int = 32) -> dict[str, Any]:
    """One shuffled epoch over ``path``: through a DataLoader if torch is installed."""
    t = time.perf_counter()
    n_read = 0
    shape: list[int] = []
    try:
        from ..torch import shuffled_loader
    except DependencyNotFoundError:
        with rocksds.open(path) as ds:
            order = np.random.default_rng(seed).permutation(len(ds))
            for i in range(0, len(ds), batch_size):
                batch = ds.get_batch(order[i : i + batch_size])
                n_read += len(batch["image"])
                shape = list(batch["image"].shape[1:])
        how = f"get_batch in shuffled batches of {batch_size} (pip install 'rocksds[torch]' for the DataLoader)"
    else:
        loader = shuffled_loader(path, fields=["image", "mask", "bounds"], batch_size=batch_size,
                                 num_workers=loader_workers, seed=seed)
        for _ in loader:  # first epoch: starts the workers and warms their caches
            pass
        t = time.perf_counter()
        for batch in loader:
            n_read += len(batch["image"])
            shape = list(batch["image"].shape[1:])
        how = (f"a shuffled torch DataLoader (batch {batch_size}, {loader_workers} persistent workers, "
               "rocksds.torch.RocksDataset; second epoch)")
    secs = time.perf_counter() - t
    return {"dataset": path, "samples": n_read, "seconds": secs, "how": how,
            "samples_per_s": n_read / secs if secs > 0 else 0.0, "image_shape": shape}
