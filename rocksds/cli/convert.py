"""``rocksds convert {hdf5,npy,torch,legacy} SRC OUT``: the command line front end of the converters.

Each format subcommand parses its options and calls one converter; the shared
options (compression, attrs, overwrite, quiet, json) are parsed here once.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import sys
from typing import Any, Optional

from ..convert import from_hdf5, from_legacy, from_npy_folder, from_torch_dataset
from ..errors import InvalidArgumentError

__all__ = ["register"]


def _pairs(values: Optional[list[str]], what: str) -> dict[str, str]:
    """``["a", "b=c"]`` -> ``{"a": "a", "b": "c"}``."""
    out: dict[str, str] = {}
    for v in values or []:
        key, sep, val = v.partition("=")
        if not key or (sep and not val):
            raise InvalidArgumentError(f"{what} must look like NAME or NAME=VALUE, got {v!r}")
        out[key] = val if sep else key
    return out


def _variable(values: Optional[list[str]]) -> Optional[dict[str, tuple[int, ...]]]:
    if not values:
        return None
    out = {}
    for v in values:
        name, sep, axes = v.partition("=")
        try:
            out[name] = tuple(int(a) for a in axes.split(","))
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InvalidArgumentError(f"--variable must look like FIELD=AXIS[,AXIS...], e.g. points=0; got {v!r}")
    return out


def _attrs(text: Optional[str]) -> dict[str, Any]:
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        except OSError as e:
            raise InvalidArgumentError(f"--attrs: cannot read {text[1:]}: {e.strerror}") from None
    try:
        attrs = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(f"--attrs must be a JSON object (or @file.json): {e}") from None
    if not isinstance(attrs, dict):
        raise InvalidArgumentError("--attrs must be a JSON object, e.g. '{\"crs\": \"EPSG:32633\"}'")
    return attrs


def load_object(ref: str) -> Any:
    """``module:attr`` or ``path/to/file.py:attr`` -> the object; classes and functions are called."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise InvalidArgumentError(f"expected MODULE:NAME or FILE.py:NAME, got {ref!r}")
    try:
        if target.endswith(".py") or os.sep in target:
            spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(target))[0], target)
            if spec is None or spec.loader is None or not os.path.isfile(target):
                raise InvalidArgumentError(f"{target} is not a Python file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target)
    except ImportError as e:
        raise InvalidArgumentError(f"cannot import {target}: {e}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise InvalidArgumentError(f"{target} has no attribute {attr!r}") from None
    return obj() if inspect.isclass(obj) or inspect.isfunction(obj) else obj


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "compression": args.compression,
        "field_compression": _pairs(args.field_compression, "--field-compression") or None,
        "attrs": _attrs(args.attrs),
        "overwrite": args.overwrite,
        "progress": not args.quiet,
        "stats": not args.no_stats,
    }


def _run(args: argparse.Namespace) -> int:
    fields = _pairs(args.field, "--field") or None
    common = _common(args)
    if args.format == "hdf5":
        report = from_hdf5(args.src, args.out, fields=fields, **common)
    elif args.format == "npy":
        variable: Any = _variable(args.variable)
        if variable is None:
            variable = None if args.no_auto_variable else "auto"
        report = from_npy_folder(args.src, args.out, field=args.npy_field, fields=fields, variable=variable,
                                 filename_field=args.filename_field, **common)
    elif args.format == "torch":
        names = [n for n in args.names.split(",") if n] if args.names else None
        dataset = load_object(args.src)
        report = from_torch_dataset(dataset, args.out, names=names, fields=fields,
                                    variable=_variable(args.variable), **common)
    else:
        report = from_legacy(args.src, args.out, fields=fields, keys_file=args.keys_file,
                             metadata_file=args.metadata_file, key_field=args.key_field, **common)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not args.quiet:
        print(f"{report.path}: {report.count} samples, fields {', '.join(report.fields)}; "
              f"{report.data_bytes / 2**20:.1f} MiB data, {report.disk_bytes / 2**20:.1f} MiB on disk; "
              f"{report.seconds:.1f} s; verified against {report.source}")
    return 0


def register(sub: Any) -> None:
    """Add ``convert`` to the ``rocksds`` command's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--field", action="append", metavar="SRC[=NAME]",
                        help="convert only this source array (repeatable); =NAME renames its field")
    common.add_argument("--compression", metavar="CODEC[:LEVEL]",
                        help="codec of every field (default: none for floating point, lz4 otherwise; e.g. zstd:9)")
    common.add_argument("--field-compression", action="append", metavar="FIELD=CODEC[:LEVEL]",
                        help="codec of one field (repeatable)")
    common.add_argument("--attrs", metavar="JSON", help="user metadata: a JSON object, or @file.json")
    common.add_argument("--overwrite", action="store_true", help="replace an existing rocksds dataset at OUT")
    common.add_argument("-q", "--quiet", action="store_true", help="print only errors (no progress bar, warnings or summary)")
    common.add_argument("--no-stats", action="store_true",
                        help="do not store per-band statistics of the numeric fields (`rocksds stats OUT`)")
    common.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("convert", help="convert HDF5, .npy/.npz folders, torch datasets or the legacy layout",
                       description="Convert existing data to a rocksds dataset; every sample is read back "
                                   "and compared with the source before the command succeeds.")
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")

    f = formats.add_parser("hdf5", parents=[common], help="HDF5 datasets sharing a leading sample axis")
    f.add_argument("src", help="the .h5 file; --field takes dataset paths such as train/images")

    f = formats.add_parser("npy", parents=[common], help="a folder of .npy or .npz files, one per sample")
    f.add_argument("src", help="the folder (files are taken in natural name order: 2.npy before 10.npy)")
    f.add_argument("--npy-field", default="data", metavar="NAME", help="field name of .npy arrays (default: data)")
    f.add_argument("--variable", action="append", metavar="FIELD=AXES", help="axes of FIELD that vary in length")
    f.add_argument("--no-auto-variable", action="store_true",
                   help="fail if shapes differ between files, instead of making those axes variable")
    f.add_argument("--filename-field", metavar="NAME", help="also store each file's name in this str field")

    f = formats.add_parser("torch", parents=[common], help="a map-style torch Dataset")
    f.add_argument("src", metavar="MODULE:NAME",
                   help="the dataset, or a class/function returning it (e.g. mypkg.data:make_train, train.py:ds)")
    f.add_argument("--names", metavar="A,B,...", help="field names of tuple positions (e.g. image,label)")
    f.add_argument("--variable", action="append", metavar="FIELD=AXES", help="axes of FIELD that vary in length")

    f = formats.add_parser("legacy", parents=[common], help="the in-house RocksDB layout (keys.dat, metadata.dat)")
    f.add_argument("src", help="the legacy database directory")
    f.add_argument("--keys-file", help="keys.dat elsewhere than SRC/keys.dat")
    f.add_argument("--metadata-file", help="metadata.dat elsewhere than SRC/metadata.dat")
    f.add_argument("--key-field", metavar="NAME", help="also store each sample's old key in this str field")

    for f in formats.choices.values():
        f.add_argument("out", help="the rocksds dataset to create")
        f.set_defaults(handler=_run)
