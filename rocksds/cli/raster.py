"""``rocksds ingest-raster``: parsing and printing around :func:`rocksds.raster.ingest_raster`.

rasterio and Dask are imported only when the command runs (rocksds.raster
imports neither until it reads a raster or starts a cluster client).
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from .._optional import ProgressBar
from ..errors import InvalidArgumentError
from ..raster import ingest_raster, read_sources_csv
from ..raster.inputs import Inputs, group_inputs

__all__ = ["register"]


def _parse_split(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, frac = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(frac)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--split takes name=fraction,... (e.g. train=0.8,val=0.2), got {text!r}")
    return out


def _parse_input(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--input takes NAME=PATH (PATH may be a glob), got {text!r}")
    return name, path


def _command(args: argparse.Namespace) -> str:
    """The canonical command line of a parsed ``ingest-raster`` call, for ``attrs["command"]``."""
    parts = ["rocksds", "ingest-raster", args.out]
    for name, path in args.input or []:
        parts += ["--input", f"{name}={path}"]
    if args.csv:
        parts += ["--csv", args.csv]
    parts += ["--chip", str(args.chip), "--stride", str(args.stride or args.chip), "--edge", args.edge]
    if args.min_valid is not None:
        parts += ["--min-valid", str(args.min_valid)]
    if args.split:
        parts += ["--split", ",".join(f"{k}={v}" for k, v in args.split.items())]
        if args.split_block is not None:
            parts += ["--split-block", str(args.split_block)]
        parts += ["--seed", str(args.seed)]
    if args.classes:
        parts += ["--classes", args.classes]
    if args.compression:
        parts += ["--compression", args.compression]
    return shlex.join(parts)


def _cmd_ingest_raster(args: argparse.Namespace) -> int:
    if bool(args.input) == bool(args.csv):
        raise InvalidArgumentError("give the rasters with --input NAME=PATH (repeatable) or with --csv FILE, not both")
    inputs: Inputs = read_sources_csv(args.csv) if args.csv else group_inputs(args.input)
    bar = None if args.quiet or args.json else ProgressBar("chipping", "row")
    scheduler = args.scheduler
    try:
        report = ingest_raster(
            args.out, inputs, chip=args.chip, stride=args.stride, edge=args.edge, min_valid=args.min_valid,
            split=args.split, split_block=args.split_block, seed=args.seed,
            classes=args.classes.split(",") if args.classes else None, compression=args.compression,
            workers=args.workers, scheduler=scheduler, staging_dir=args.staging_dir,
            batch_bytes=int(args.batch_mb * 2**20), cache_bytes=int(args.cache_mb * 2**20),
            overwrite=args.overwrite, progress=bar, command=_command(args), stats=not args.no_stats,
            class_counts=None if args.class_counts is None else [n for n in args.class_counts.split(",") if n],
        )
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        if "" in report["datasets"]:  # no split: one dataset, not a split named ""
            report = {**report, "dataset": report["datasets"][""], "count": report["counts"][""]}
            del report["datasets"], report["counts"]
        print(json.dumps(report, indent=2))
    elif not args.quiet:
        kept = ", ".join(f"{k + ': ' if k else ''}{n} -> {report['datasets'][k]}" for k, n in report["counts"].items())
        print(f"{report['grid']} chips in the grid; {report['dropped']}; kept {kept}")
        print(f"{report['seconds']:.2f}s, {report['chips_per_s']:.0f} grid chips/s")
    return 0


def register(sub: Any) -> None:
    """Add ``ingest-raster`` to the ``rocksds`` subparsers."""
    p = sub.add_parser(
        "ingest-raster",
        help="chip georeferenced rasters (GeoTIFF, ...) into a dataset, one per split",
        description="Chip rasters on one grid into samples (one field per --input, plus bounds, transform, "
        "source). Needs rasterio: pip install 'rocksds[raster]'.",
    )
    p.add_argument("out", help="dataset path, or with --split a directory receiving <split>.rds")
    p.add_argument("--input", action="append", type=_parse_input, metavar="NAME=PATH",
                   help="an input raster (repeatable); PATH may be a glob, the i-th matches of each NAME form scene i")
    p.add_argument("--csv", help="CSV of scenes: a header of input names, one row of paths per scene")
    p.add_argument("--chip", type=int, default=256, help="chip side in pixels (default 256)")
    p.add_argument("--stride", type=int, help="pixels between chip starts (default: --chip, no overlap)")
    p.add_argument("--edge", choices=("shift", "pad"), default="shift",
                   help="last row/column: shift back inside the raster (default) or pad with nodata")
    p.add_argument("--min-valid", type=float, metavar="FRACTION",
                   help="skip chips with a smaller valid-pixel fraction (default: skip only chips with no valid "
                   "pixel at all; 0 keeps every chip)")
    p.add_argument("--split", type=_parse_split, help="e.g. train=0.8,val=0.2: one dataset per split, by blocks")
    p.add_argument("--split-block", type=int, metavar="PIXELS",
                   help="side of the square blocks dealt to splits (default: from the scene size, so even the "
                   "smallest split gets about two blocks; at most 2048)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split-block shuffle (default 0)")
    p.add_argument("--classes", help="comma-separated class names for attrs['classes']")
    p.add_argument("--compression", help="compression of the raster fields (default: none for floating point, lz4 otherwise)")
    p.add_argument("--class-counts", metavar="NAME,...",
                   help="mask inputs whose per-class pixel counts become a NAME_counts field (default: inputs "
                        "named mask/label/labels with one integer band; '' for none)")
    p.add_argument("--no-stats", action="store_true",
                   help="do not store per-band statistics of the inputs (`rocksds stats OUT` shows them)")
    p.add_argument("--workers", type=int, default=1, help="processes; > 1 builds in parallel via SST files")
    p.add_argument("--scheduler", help="run the tasks on Dask: dask://host:port (needs rocksds[dask])")
    p.add_argument("--staging-dir", help="spool/SST directory (shared storage with --scheduler)")
    p.add_argument("--batch-mb", type=float, default=32, help="most MiB one windowed read holds (default 32)")
    p.add_argument("--cache-mb", type=float, default=64, help="GDAL block cache per process in MiB (default 64)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output datasets")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors (no progress bar, warnings or summary)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_ingest_raster)
