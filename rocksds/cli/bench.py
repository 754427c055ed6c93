"""``rocksds bench``: runs the benchmark harness of a source checkout.

The harness (``benchmarks/harness.py``) stands apart from the package: it
needs h5py, lmdb, matplotlib and torch (the ``bench`` extra), which the
package itself never imports. This module only finds it and hands over the
command line (the harness owns its options), so the dependency runs one way:
the CLI loads the harness, the harness imports nothing of the CLI.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from ..errors import NotADatasetError

__all__ = ["benchmarks_dir", "load_harness", "register"]


def benchmarks_dir() -> str:
    """The ``benchmarks/`` directory next to this package in a source checkout."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(here, "benchmarks")


def load_harness() -> ModuleType:
    """Import ``benchmarks/harness.py`` (it puts its own directory on ``sys.path``).

    Raises:
        NotADatasetError: no ``benchmarks/`` directory (an installed wheel, not a checkout).
    """
    path = os.path.join(benchmarks_dir(), "harness.py")
    if not os.path.isfile(path):
        raise NotADatasetError(
            f"benchmark harness not found at {path}; run `rocksds bench` from a source checkout "
            "of rocksds (the benchmarks are not part of the installed package)"
        )
    if "rocksds_bench_harness" in sys.modules:
        return sys.modules["rocksds_bench_harness"]
    spec = importlib.util.spec_from_file_location("rocksds_bench_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rocksds_bench_harness"] = module
    spec.loader.exec_module(module)
    return module


def _cmd_bench(args: argparse.Namespace) -> int:
    return int(load_harness().main(args.passthrough, prog="rocksds bench") or 0)


def register(sub: Any) -> None:
    """Add ``bench`` to the ``rocksds`` subparsers; its options are the harness's own (``rocksds bench --help``)."""
    p = sub.add_parser("bench", add_help=False, help="run the benchmarks (rocksds vs LitData, MosaicML Streaming, "
                       "Zarr, WebDataset, HDF5, LMDB, .npy files, memmap)",
                       description="Run benchmarks/harness.py of this checkout with the options given.")
    p.set_defaults(handler=_cmd_bench, passthrough=[])
