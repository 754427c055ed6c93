"""The ``rocksds`` command: a thin front end over the library.

Each subcommand parses its arguments and calls one library function. Errors
print one line (``rocksds: error: ...``) and exit with status 2; a
:class:`~rocksds.errors.RocksdsError` never shows a traceback. The commands
are the literal list :data:`COMMANDS`, one module per group; none imports
rasterio, torch, Dask or h5py until its command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

from .._version import __version__
from ..errors import RocksdsError
from . import bench, convert, dataset, demo, raster

__all__ = ["main", "build_parser", "COMMANDS"]

Handler = Callable[[argparse.Namespace], int]

#: Each group's ``register(subparsers)``, in the order ``rocksds --help`` lists them.
COMMANDS: tuple[Callable[[Any], None], ...] = (
    dataset.register,  # info, head (show), report, stats, validate
    convert.register,  # convert {hdf5,npy,torch,legacy}
    raster.register,  # ingest-raster
    demo.register,  # demo
    bench.register,  # bench
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rocksds`` command."""
    parser = argparse.ArgumentParser(prog="rocksds", description="Self-describing deep-learning datasets on RocksDB.")
    parser.add_argument("--version", action="version", version=f"rocksds {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


@contextlib.contextmanager
def cli_warnings(*, quiet: bool) -> Iterator[None]:
    """Warnings as one ``rocksds: warning: ...`` line on stderr (no source line); none with ``--quiet``."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"rocksds: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        else:
            warnings.showwarning = show
        yield


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``rocksds`` command; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "passthrough"):  # only a command that hands its options on takes unknown ones
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.passthrough = extra
    handler: Handler = args.handler
    try:
        with cli_warnings(quiet=bool(getattr(args, "quiet", False))):
            return handler(args)
    except BrokenPipeError:
        # `rocksds info X | head`: the reader left; stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except RocksdsError as e:
        print(f"rocksds: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rocksds: interrupted", file=sys.stderr)
        return 130
