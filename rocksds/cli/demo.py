"""``rocksds demo``: parsing and printing around :func:`rocksds.tools.demo.run_demo`."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

from ..tools.demo import next_steps, run_demo

__all__ = ["register"]


def _cmd_demo(args: argparse.Namespace) -> int:
    quiet = args.quiet or args.json
    report = run_demo(args.dir, size=args.size, chip=args.chip, workers=args.workers, seed=args.seed,
                      echo=(lambda s: None) if quiet else print, progress=not quiet)
    if args.clean:
        shutil.rmtree(report["workdir"], ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.clean and not args.quiet:
        print(f"removed {report['workdir']} (--clean); next: rocksds ingest-raster out --input image=YOUR.tif "
              "--chip 256, or python examples/train_tiny_cnn.py in a checkout")
    elif not args.quiet:
        print(f"datasets in {report['workdir']}/chips")
        print(next_steps(report))
    return 0


def register(sub: Any) -> None:
    """Add ``demo`` to the ``rocksds`` subparsers."""
    p = sub.add_parser("demo", help="build a synthetic GeoTIFF scene, chip, validate and read it back, with timings")
    p.add_argument("--dir", help="working directory (default: a new temporary directory, kept; the last lines say "
                   "how to remove it)")
    p.add_argument("--clean", action="store_true", help="remove the working directory at the end")
    p.add_argument("--size", type=int, default=1024, help="scene side in pixels (default 1024)")
    p.add_argument("--chip", type=int, default=64, help="chip side in pixels (default 64, stride chip/2)")
    p.add_argument("--workers", type=int, default=1, help="processes for the build (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene and the split (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_demo)
