"""A second, independent reader of the rocksds format, on another RocksDB binding.

    python -m conformance.second_reader dump PATH

It implements SPEC.md from scratch with the ``rocksdb`` module
(faust-streaming-rocksdb, RocksDB 6.14), msgpack and numpy, and deliberately
imports nothing from ``rocksds``: if it and the reference agree on every
vector, the format is what the spec says, not what one code base happens to
do. It prints the canonical dump the runner compares (README.md).

RocksDB 6.14 as built for that wheel has no zstd. A zstd column family's
index blocks are zstd-compressed too, so it is never opened (a read-only
open may name a subset of column families); such a field is reported as
``{"unsupported_compression": "zstd"}`` and every other field is still read.

It checks the committed-count witness ``rocksds-committed`` (format 1.3) too,
read before RocksDB's files: a count below it is refused as corrupt.

Reading never writes into the dataset directory: RocksDB would put its info
``LOG`` there, so the database is opened through a private directory of
symbolic links to the dataset's files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import zlib
from typing import Any, Optional

import msgpack
import numpy as np
import rocksdb

__all__ = ["SUPPORTED_COMPRESSIONS", "DatasetError", "dump", "main"]

META_CF = b"__rocksds__"
NUMERIC = {
    "bool": "|b1", "int8": "|i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "|u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float16": "<f2", "float32": "<f4", "float64": "<f8", "complex64": "<c8", "complex128": "<c16",
}
COMPRESSIONS = {"none", "snappy", "lz4", "lz4hc", "zlib", "zstd", "bz2"}
#: What this binding's RocksDB decodes (measured: zstd fails with "Unsupported compression method").
SUPPORTED_COMPRESSIONS = COMPRESSIONS - {"zstd"}
KNOWN_READER_FEATURES: set[str] = set()
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


class DatasetError(Exception):
    """The dataset cannot be read; ``code`` is the protocol's error class."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- schema

MAX_SCHEMA_BYTES = 16 * 2**20
MAX_CONTAINER_LEN = 2**20
MAX_DOCUMENT_DEPTH = 64
MAX_ATTRS_DEPTH = 32
MAX_FIELDS = 1024
MAX_NDIM = 32
MAX_DIM = 2**32 - 1
MAX_RECORD_BYTES = 2**31 - 1
MAX_NAME_LEN = 128
_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})", re.ASCII)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a map key appears twice")
    return out


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether no value sits more than ``limit`` maps/arrays below ``value`` (iteratively)."""
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)) and v:
            if d >= limit:
                return False
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return True


def _attrs_ok(value: Any) -> bool:
    """attrs: nil, bool, int, float, str, arrays and maps only (no binary), at most 32 deep."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif not (v is None or isinstance(v, (bool, int, float, str))):
            return False
    return _depth_ok(value, MAX_ATTRS_DEPTH)


def _name_ok(name: Any) -> bool:
    return (isinstance(name, str) and _NAME.fullmatch(name) is not None and len(name) <= MAX_NAME_LEN
            and not name.startswith("__") and name != "default")


def _parse_schema(raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Decode and check the schema document in SPEC.md's order: decoding rules, format, version,
    reader_features, then everything else. ``writer`` and ``writer_features`` are not read."""
    if len(raw) > MAX_SCHEMA_BYTES:
        raise DatasetError("malformed-schema", "schema record larger than 16 MiB")
    try:
        doc = msgpack.unpackb(raw, raw=False, strict_map_key=True, max_ext_len=0, object_pairs_hook=_unique,
                              max_array_len=min(MAX_CONTAINER_LEN, len(raw)),
                              max_map_len=min(MAX_CONTAINER_LEN, len(raw) // 2))
    except Exception as e:  # msgpack raises several unrelated types
        raise DatasetError("malformed-schema", f"schema record is not msgpack: {e}") from None
    if not _depth_ok(doc, MAX_DOCUMENT_DEPTH):
        raise DatasetError("malformed-schema", f"schema document nested deeper than {MAX_DOCUMENT_DEPTH}")
    if not isinstance(doc, dict) or doc.get("format") != "rocksds":
        raise DatasetError("malformed-schema", "schema document is not a map with format 'rocksds'")
    version = doc.get("version")
    m = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if m is None:
        raise DatasetError("malformed-schema", f"version must be 'MAJOR.MINOR', got {str(version)[:40]!r}")
    if int(m.group(1)) != 1:
        raise DatasetError("unsupported-version", f"format version {version} is not 1.x")
    features = doc.get("reader_features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise DatasetError("malformed-schema", "reader_features must be a list of strings")
    if set(features) - KNOWN_READER_FEATURES:
        raise DatasetError("unsupported-feature", f"unknown reader features {sorted(set(features))}")
    attrs = doc.get("attrs", {})
    if not isinstance(attrs, dict) or not _attrs_ok(attrs):
        raise DatasetError("malformed-schema", "attrs must be a map of JSON-like values at most 32 deep")
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, list) or not 1 <= len(raw_fields) <= MAX_FIELDS:
        raise DatasetError("malformed-schema", "fields must be a list of 1 to 1024 entries")
    fields, names, cfs = [], set(), set()
    for f in raw_fields:
        if not isinstance(f, dict):
            raise DatasetError("malformed-schema", "a fields entry is not a map")
        name, dtype, shape = f.get("name"), f.get("dtype"), f.get("shape")
        cf, comp, level = f.get("column_family"), f.get("compression"), f.get("compression_level")
        if not _name_ok(name) or name in names:
            raise DatasetError("malformed-schema", f"bad or repeated field name {name!r}")
        if dtype not in NUMERIC and dtype not in ("bytes", "str"):
            raise DatasetError("malformed-schema", f"field {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
            d is None or (type(d) is int and 0 <= d <= MAX_DIM) for d in shape
        ):
            raise DatasetError("malformed-schema", f"field {name!r}: bad shape {shape!r}")
        if dtype in ("bytes", "str") and shape:
            raise DatasetError("malformed-schema", f"field {name!r}: {dtype} fields have shape []")
        itemsize = np.dtype(NUMERIC[dtype]).itemsize if dtype in NUMERIC else 1
        if math.prod(d or 1 for d in shape if d is not None) * itemsize > MAX_RECORD_BYTES:
            raise DatasetError("malformed-schema", f"field {name!r}: fixed dimensions exceed the record limit")
        if not _name_ok(cf) or cf in cfs:
            raise DatasetError("malformed-schema", f"field {name!r}: bad column family {cf!r}")
        if comp not in COMPRESSIONS:
            raise DatasetError("malformed-schema", f"field {name!r}: unknown compression {comp!r}")
        if level is not None and not (type(level) is int and -(2**31) <= level < 2**31):
            raise DatasetError("malformed-schema", f"field {name!r}: compression_level {level!r}")
        names.add(name)
        cfs.add(cf)
        fields.append({"name": name, "dtype": dtype, "shape": shape, "column_family": cf, "compression": comp})
    return doc, fields


# ---------------------------------------------------------------------- records


def _entry(field: dict[str, Any], record: bytes, index: int) -> dict[str, Any]:
    """Decode one record (SPEC.md, "Records") into its canonical entry."""
    dtype, shape, name = field["dtype"], field["shape"], field["name"]
    if dtype == "bytes":
        return {"hex": record.hex()}
    if dtype == "str":
        try:
            return {"text": record.decode("utf-8")}
        except UnicodeDecodeError:
            raise DatasetError("corrupt", f"field {name!r}, sample {index}: not UTF-8") from None
    itemsize = np.dtype(NUMERIC[dtype]).itemsize
    nvar = sum(d is None for d in shape)
    if len(record) < 4 * nvar:
        raise DatasetError("corrupt", f"field {name!r}, sample {index}: record shorter than its header")
    dims = iter(int.from_bytes(record[4 * i: 4 * i + 4], "little") for i in range(nvar))
    actual = [next(dims) if d is None else d for d in shape]
    data = record[4 * nvar:]
    if math.prod(d or 1 for d in actual) * itemsize > MAX_RECORD_BYTES:
        raise DatasetError("corrupt", f"field {name!r}, sample {index}: header shape {actual} beyond the limit")
    if len(data) != math.prod(actual) * itemsize:
        raise DatasetError("corrupt", f"field {name!r}, sample {index}: {len(data)} data bytes for shape {actual}")
    if dtype == "bool" and data.translate(None, b"\x00\x01"):
        raise DatasetError("corrupt", f"field {name!r}, sample {index}: a bool byte other than 0 or 1")
    return {"shape": actual, "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------------- the committed-count witness

WITNESS_FILE = "rocksds-committed"


def _witness(path: str) -> Optional[int]:
    """The count ``rocksds-committed`` holds (SPEC.md 7.1), ``None`` without one; read before RocksDB's files."""
    try:
        fd = os.open(os.path.join(path, WITNESS_FILE), os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DatasetError("corrupt", f"{WITNESS_FILE} cannot be read: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != 24:
            raise DatasetError("corrupt", f"{WITNESS_FILE} is not a regular file of 24 bytes")
        data = os.read(fd, 24)
    finally:
        os.close(fd)
    count = int.from_bytes(data[12:20], "big")
    if (len(data) != 24 or data[:8] != b"RDSCOUNT" or int.from_bytes(data[8:12], "big") != 1
            or zlib.crc32(data[:20]) != int.from_bytes(data[20:], "big") or count >= 2**63):
        raise DatasetError("corrupt", f"{WITNESS_FILE} is damaged (magic, layout, checksum or count)")
    return count


# ---------------------------------------------------------------------- database


class _Shadow:
    """A temporary directory of symlinks to the dataset's files, minus the ones RocksDB would write."""

    def __init__(self, path: str) -> None:
        self.path = tempfile.mkdtemp(prefix="second-reader-")
        src = os.path.abspath(path)
        for name in os.listdir(src):
            if name != "LOCK" and not name.startswith("LOG"):
                os.symlink(os.path.join(src, name), os.path.join(self.path, name))

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _open(shadow: str, cfs: list[bytes]) -> rocksdb.DB:
    opts = rocksdb.Options()
    opts.db_log_dir = shadow
    try:
        return rocksdb.DB(shadow, opts, column_families={cf: rocksdb.ColumnFamilyOptions() for cf in cfs},
                          read_only=True)
    except rocksdb.errors.RocksIOError as e:
        raise DatasetError("corrupt", f"cannot open: {e}") from None
    except (rocksdb.errors.InvalidArgument, rocksdb.errors.Corruption, rocksdb.errors.NotSupported) as e:
        raise DatasetError("corrupt", f"cannot open column families {cfs}: {e}") from None


def dump(path: str) -> dict[str, Any]:
    """The canonical dump of the dataset at ``path`` (README.md, "Canonical dump")."""
    if not os.path.isfile(os.path.join(path, "CURRENT")):
        raise DatasetError("not-a-dataset", f"{path} is not a RocksDB database")
    witnessed = _witness(path)
    with _Shadow(path) as shadow:
        present = set(rocksdb.list_column_families(shadow, rocksdb.Options()))
        if META_CF not in present:
            raise DatasetError("not-a-dataset", f"{path} has no {META_CF.decode()} column family")
        db = _open(shadow, [META_CF])
        try:
            meta = db.get_column_family(META_CF)
            raw_schema = db.get((meta, b"schema"), verify_checksums=True)
            raw_count = db.get((meta, b"count"), verify_checksums=True)
        finally:
            db.close()
        if raw_schema is None:
            raise DatasetError("not-a-dataset", f"{path} has no schema record")
        doc, fields = _parse_schema(raw_schema)
        if raw_count is None or len(raw_count) != 8 or raw_count[0] & 0x80:
            raise DatasetError("corrupt", "count record missing or not 8 big-endian bytes below 2**63")
        count = int.from_bytes(raw_count, "big")
        if witnessed is not None and count < witnessed:
            raise DatasetError("corrupt", f"count {count} is below the {witnessed} committed samples {WITNESS_FILE} "
                               "records: the MANIFEST was rolled back")
        readable = [f for f in fields if f["compression"] in SUPPORTED_COMPRESSIONS]
        missing = [f["column_family"] for f in fields if f["column_family"].encode() not in present]
        if missing:
            raise DatasetError("corrupt", f"column families {missing} do not exist")
        out: dict[str, Any] = {f["name"]: {"unsupported_compression": f["compression"]} for f in fields}
        db = _open(shadow, [f["column_family"].encode() for f in readable])
        try:
            for f in readable:
                cf = db.get_column_family(f["column_family"].encode())
                entries = []
                for i in range(count):
                    try:
                        record = db.get((cf, i.to_bytes(8, "big")), verify_checksums=True)
                    except rocksdb.errors.Corruption as e:
                        raise DatasetError("corrupt", f"field {f['name']!r}: {e}") from None
                    if record is None:
                        raise DatasetError("corrupt", f"field {f['name']!r} has no record for sample {i}")
                    entries.append(_entry(f, record, i))
                out[f["name"]] = entries
        finally:
            db.close()
    return {"dump": "rocksds-canonical", "dump_version": 1, "schema": _json(doc), "count": count,
            "fields": {f["name"]: out[f["name"]] for f in fields}}


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {("$" + k if k.startswith("$") else k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, bytes):
        return {"$hex": value.hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    return value


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "dump":
        print("usage: python -m conformance.second_reader dump PATH", file=sys.stderr)
        return 2
    try:
        result = dump(args[1])
    except DatasetError as e:
        print(json.dumps({"error": e.code, "message": str(e)}))
        return 1
    json.dump(result, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
