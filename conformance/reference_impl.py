"""The reference implementation (the ``rocksds`` package) behind the runner's command-line protocol.

    python -m conformance.reference_impl dump PATH             # canonical JSON on stdout
    python -m conformance.reference_impl write CASE.json OUTDIR

``dump`` reads through the public reader (``rocksds.open`` and iteration), so
the runner checks the reader; only the raw schema document, which the reader
does not expose with unknown field keys, is read from the metadata record.
On a dataset it refuses, it prints ``{"error": CLASS, "message": ...}`` and
exits 1 (classes in README.md, "Protocol").
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import rocksds
from rocksds import errors
from rocksds.testing import raw_readable
from rocksds.schema import decode_document
from rocksds.spec import META_CF, SCHEMA_KEY

from .canonical import decode_value, make_dump, record_entry

__all__ = ["dump", "write", "error_class", "main"]


def error_class(exc: BaseException) -> str:
    """The protocol's error class of a rocksds exception."""
    if isinstance(exc, errors.UnsupportedVersionError):
        return "unsupported-version"
    if isinstance(exc, errors.UnsupportedFeatureError):
        return "unsupported-feature"
    if isinstance(exc, errors.SchemaError):
        return "malformed-schema"
    if isinstance(exc, errors.NotADatasetError):
        return "not-a-dataset"
    if isinstance(exc, errors.UnsupportedCompressionError):
        return "unsupported-compression"
    return "corrupt"


def dump(path: str) -> dict[str, Any]:
    """The canonical dump of the dataset at ``path``, read with ``rocksds.open``."""
    with rocksds.open(path, cache_gb=0) as ds:
        fields: dict[str, list[dict[str, Any]]] = {name: [] for name in ds.schema.names}
        dtypes = {name: f.dtype for name, f in ds.schema.fields.items()}
        for sample in ds:
            for name, value in sample.items():
                fields[name].append(record_entry(dtypes[name], value))
        count = len(ds)
    with raw_readable(path, [META_CF]) as meta:
        raw = meta.get(META_CF, SCHEMA_KEY)
    assert raw is not None
    return make_dump(decode_document(raw), count, fields)


def write(case: dict[str, Any], out: str) -> None:
    """Write the dataset a write case describes (README.md, "Write cases") with ``rocksds.create``."""
    entries = case["schema"]["fields"]
    schema = rocksds.Schema(
        fields={e["name"]: rocksds.Field(dtype=e["dtype"], shape=e["shape"], compression=e["compression"])
                for e in entries},
        attrs=case["schema"].get("attrs", {}),
    )
    dtypes = {e["name"]: e["dtype"] for e in entries}
    with rocksds.create(out, schema) as w:
        w.extend([{n: decode_value(dtypes[n], v) for n, v in s.items()} for s in case["samples"]])


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "dump":
        try:
            result = dump(args[1])
        except errors.RocksdsError as e:
            print(json.dumps({"error": error_class(e), "message": str(e)}))
            return 1
        json.dump(result, sys.stdout, ensure_ascii=False)
        return 0
    if len(args) == 3 and args[0] == "write":
        with open(args[1], encoding="utf-8") as fh:
            case = json.load(fh)
        write(case, os.fspath(args[2]))
        return 0
    print("usage: python -m conformance.reference_impl dump PATH | write CASE.json OUTDIR", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
