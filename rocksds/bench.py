"""The ``rocksds bench`` command: runs the benchmark harness of a source checkout.

The harness (``benchmarks/harness.py``) stands apart from the package: it
needs h5py, lmdb, matplotlib and torch (the ``bench`` extra), which the
package itself never imports. This module only finds it and hands over the
command line, so importing it costs nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Optional

from .errors import NotADatasetError

__all__ = ["benchmarks_dir", "load_harness", "register"]


def benchmarks_dir() -> str:
    """The ``benchmarks/`` directory next to this package in a source checkout."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


WORKLOADS = ("mnist", "chips", "big")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark options, shared by ``rocksds bench`` and ``python benchmarks/harness.py``."""
    p.add_argument("--quick", action="store_true", help="small sizes (2,000 / 200 / 40 samples); CI smoke size")
    p.add_argument("--out", default=None,
                   help="output directory (default: a new temporary directory, so the published "
                        "benchmarks/results/ is rewritten only when named here)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--work-dir", default=None, help="where the datasets are written (default: the system temp dir)")
    p.add_argument("--no-dataloader", action="store_true", help="skip the DataLoader epochs (no torch needed)")
    p.add_argument("--no-cache-curve", action="store_true", help="skip the partial-caching curve")
    p.add_argument("--note", default="", help="a line to print in the report header (e.g. about the machine)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the shuffles")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="at most N samples per workload (smoke tests)")


def _cmd_bench(args: argparse.Namespace) -> int:
    return int(load_harness().run_args(args) or 0)


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand to the ``rocksds`` argument parser."""
    p = sub.add_parser("bench", help="run the benchmarks (rocksds vs LitData, MosaicML Streaming, Zarr, "
                                     "WebDataset, HDF5, LMDB, .npy files, memmap)",
                       description="Run benchmarks/harness.py of this checkout; results go to --out.")
    add_arguments(p)
    p.set_defaults(handler=_cmd_bench)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m rocksds.bench [args]``."""
    return int(load_harness().main(argv) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
