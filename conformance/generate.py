"""Rebuild every conformance vector and write case, deterministically.

    python -m conformance.generate            # rewrite conformance/vectors and conformance/write_cases
    python -m conformance.generate --out DIR  # build into DIR instead (what the tests compare)

Vectors are written record by record with a raw writer (``rocksds.testing.raw_writable``)
(never through ``rocksds.create``), so invalid vectors can hold exactly the
broken bytes they are meant to hold, and valid ones exactly the bytes the
spec prescribes. Each dataset is built in a scratch directory, closed (which
flushes every column family to table files), and only the files a reader
needs are kept: ``CURRENT``, ``MANIFEST-*`` and ``*.sst`` (no WAL, LOCK, LOG,
IDENTITY or OPTIONS: a read-only open needs none of them, and the OPTIONS
files alone would weigh more than all the data).

RocksDB directories are not byte-reproducible (file numbers, UUIDs, times),
so regeneration is checked on :func:`raw_dump`: every column family's keys
and value hashes. (Each field's codec is part of the schema record, so a
changed codec changes the dump.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field as dc_field
from typing import Any, Optional

import msgpack
import numpy as np

from rocksds import spec
from rocksds.testing import list_column_families, raw_readable, raw_writable
from rocksds.keys import encode_count, encode_key
from rocksds.records import RecordCodec
from rocksds.schema import Field

from .canonical import NUMERIC, make_dump, record_entry

__all__ = ["generate", "raw_dump", "ROOT", "VECTORS", "WRITE_CASES"]

ROOT = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(ROOT, "vectors")
WRITE_CASES = os.path.join(ROOT, "write_cases")
WRITER = {"name": "rocksds-conformance-generator", "version": "1"}
#: The version of the vectors written before 1.2: they stay byte for byte what they were, and every
#: 1.x reader reads them; vectors of rules added since name their version.
BASE_VERSION = "1.1"
_KEEP = re.compile(r"^(CURRENT|MANIFEST-\d+|\d+\.sst|" + re.escape(spec.WITNESS_FILE) + ")$")

Puts = list[tuple[str, bytes, bytes]]


# ---------------------------------------------------------------------- building blocks


def fdoc(name: str, dtype: str, shape: list[Optional[int]] = (), compression: str = "none", **extra: Any) -> dict:
    """One entry of a schema document's ``fields`` list."""
    entry = {"name": name, "dtype": dtype, "shape": list(shape), "column_family": name, "compression": compression}
    entry.update(extra)
    return entry


def document(fields: list[dict], attrs: Optional[dict] = None, version: str = BASE_VERSION, **extra: Any) -> dict:
    """A schema document (SPEC.md, "Schema document"); ``extra`` adds or overrides top-level keys."""
    doc = {
        "format": spec.FORMAT_NAME,
        "version": version,
        "fields": fields,
        "attrs": attrs or {},
        "reader_features": [],
        "writer_features": [],
        "writer": dict(WRITER),
    }
    doc.update(extra)
    return doc


def encode_records(doc: dict, samples: list[dict], first: int = 0) -> Puts:
    """The field records of ``samples`` at indices ``first, first+1, ...``, encoded per the spec."""
    puts: Puts = []
    for entry in doc["fields"]:
        known = {k: entry[k] for k in Field.model_fields if k in entry}
        codec = RecordCodec(entry["name"], Field(**known))
        for i, s in enumerate(samples):
            puts.append((entry["column_family"], encode_key(first + i), codec.encode(s[entry["name"]])))
    return puts


class F32(float):
    """A float that :func:`pack_raw` writes as a msgpack float32 (its value must be a float32's)."""


class Pairs(list):
    """A msgpack map given as (key, value) pairs, so :func:`pack_raw` can repeat a key."""


class RawStr(bytes):
    """Bytes that :func:`pack_raw` writes as a msgpack str, valid UTF-8 or not."""


class Packed(bytes):
    """msgpack bytes that :func:`pack_raw` copies as they are (e.g. deeper than msgpack's packer nests)."""


def pack_raw(value: Any) -> bytes:
    """msgpack bytes of ``value``, with :class:`F32`, :class:`Pairs`, :class:`RawStr` and :class:`Packed`
    written as named: encodings a conforming writer never produces from a dict, which some vectors need."""
    packer = msgpack.Packer(use_bin_type=True)
    if isinstance(value, Packed):
        return bytes(value)
    if isinstance(value, F32):
        assert float(np.float32(value)) == value
        return b"\xca" + np.array(value, ">f4").tobytes()
    if isinstance(value, RawStr):
        assert len(value) < 32
        return bytes([0xA0 | len(value)]) + value
    if isinstance(value, (dict, Pairs)):
        pairs = value if isinstance(value, Pairs) else list(value.items())
        return packer.pack_map_header(len(pairs)) + b"".join(pack_raw(k) + pack_raw(v) for k, v in pairs)
    if isinstance(value, list):
        return packer.pack_array_header(len(value)) + b"".join(pack_raw(v) for v in value)
    return packer.pack(value)


def nested(depth: int, innermost: Any) -> Any:
    """``innermost`` inside ``depth`` arrays: ``[[...[innermost]...]]``."""
    for _ in range(depth):
        innermost = [innermost]
    return innermost


def meta_puts(doc: Optional[dict], count: Optional[int]) -> Puts:
    puts: Puts = []
    if doc is not None:
        puts.append((spec.META_CF, spec.SCHEMA_KEY, msgpack.packb(doc, use_bin_type=True)))
    if count is not None:
        puts.append((spec.META_CF, spec.COUNT_KEY, encode_count(count)))
    return puts


def witness_bytes(count: int, *, layout: int = spec.WITNESS_LAYOUT, crc_delta: int = 0) -> bytes:
    """The committed-count witness of ``count`` (SPEC.md 7.1), built from the spec's table (never by rocksds);
    ``crc_delta`` is added to the checksum to make a damaged one."""
    body = spec.WITNESS_MAGIC + layout.to_bytes(4, "big") + count.to_bytes(8, "big")
    return body + ((zlib.crc32(body) + crc_delta) % 2**32).to_bytes(4, "big")


def write_raw(path: str, cfs: dict[str, str], puts: Puts, checksum: str = spec.TABLE_CHECKSUM,
              files: Optional[dict[str, bytes]] = None) -> None:
    """Create a RocksDB database at ``path`` with column families ``cfs`` (name -> codec) holding ``puts``,
    its tables written with block checksums of type ``checksum``, and beside them ``files`` (name -> bytes)."""
    scratch = tempfile.mkdtemp(prefix="rocksds-gen-")
    try:
        db = os.path.join(scratch, "db")
        with raw_writable(db, cfs, create=True, checksum=checksum) as storage:  # closing flushes: no WAL needed
            storage.write(puts)
        os.makedirs(path)
        for name in os.listdir(db):
            if _KEEP.match(name):
                shutil.copy2(os.path.join(db, name), os.path.join(path, name))
        for name, data in (files or {}).items():
            with open(os.path.join(path, name), "wb") as fh:
                fh.write(data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class Vector:
    """One conformance vector: what to write and what a reader/validator must conclude."""

    name: str
    description: str
    doc: Optional[dict]
    cfs: dict[str, str]
    puts: Puts
    expected: dict[str, Any]
    notes: list[str] = dc_field(default_factory=list)
    #: Block checksum type of the vector's table files (SPEC.md 6).
    checksum: str = spec.TABLE_CHECKSUM
    #: Files beside RocksDB's (name -> bytes), such as the committed-count witness (SPEC.md 7.1).
    files: dict[str, bytes] = dc_field(default_factory=dict)


def valid(name: str, description: str, doc: dict, samples: list[dict], *, extra: Puts = (),
          warnings: list[str] = (), count: Optional[int] = None, schema_bytes: Optional[bytes] = None,
          tables: Optional[dict[str, str]] = None, checksum: str = spec.TABLE_CHECKSUM,
          files: Optional[dict[str, bytes]] = None) -> Vector:
    """A valid vector whose expected dump is computed from ``samples`` (not by reading anything back).

    ``schema_bytes`` replaces the packed ``doc`` (it must decode to ``doc``); ``tables`` overrides the
    codec the tables of some column families are written with (default: each field's ``compression``);
    ``checksum`` is the tables' block checksum type.
    """
    count = len(samples) if count is None else count
    cfs = {spec.META_CF: "none", **{f["column_family"]: f["compression"] for f in doc["fields"]}, **(tables or {})}
    puts = meta_puts(doc, count) + encode_records(doc, samples) + list(extra)
    if schema_bytes is not None:
        assert msgpack.unpackb(schema_bytes) == doc
        puts = _replace(puts, spec.META_CF, spec.SCHEMA_KEY, schema_bytes)
    fields = {f["name"]: [record_entry(f["dtype"], s[f["name"]]) for s in samples[:count]] for f in doc["fields"]}
    optional = sorted({f["compression"] for f in doc["fields"]} - spec.REQUIRED_COMPRESSIONS)
    expected = {
        "kind": "valid",
        "description": description,
        "requires_compressions": optional,
        "validator": {"errors": [], "warnings": sorted(warnings)},
        "dump": make_dump(doc, count, fields),
    }
    return Vector(name, description, doc, cfs, puts, expected, checksum=checksum, files=dict(files or {}))


def invalid(name: str, description: str, cfs: dict[str, str], puts: Puts, *, errors: list[str],
            reader_error: Optional[str], warnings: list[str] = (), files: Optional[dict[str, bytes]] = None) -> Vector:
    """An invalid vector: the validator must report exactly ``errors`` (and ``warnings``);
    a reader must refuse it with ``reader_error`` (``None``: a reader need not notice)."""
    expected = {
        "kind": "invalid",
        "description": description,
        "validator": {"errors": sorted(errors), "warnings": sorted(warnings)},
        "reader": {"must_reject": reader_error is not None, "error": reader_error},
    }
    return Vector(name, description, None, cfs, puts, expected, files=dict(files or {}))


# ---------------------------------------------------------------------- sample values


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def _values(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Seeded values of ``dtype``, including the dtype's edge cases where the shape allows."""
    dt = np.dtype(NUMERIC[dtype])
    n = math.prod(shape)
    if dt.kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        flat = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        edges = np.array([info.min, info.max, 0][: n], dtype=dt)
        flat[: len(edges)] = edges
    elif dt.kind == "f":
        flat = rng.standard_normal(n).astype(dt)
        edges = np.array([np.nan, -0.0, np.inf, -np.inf, np.finfo(dt).tiny][: n], dtype=dt)
        flat[: len(edges)] = edges
    else:
        flat = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
        if n:
            flat[0] = complex(np.nan, -0.0)
    return flat.reshape(shape)


_ALL_NUMERIC = list(NUMERIC)


# ---------------------------------------------------------------------- valid vectors


def _valid_vectors() -> list[Vector]:
    out = []

    rng = _rng("dtypes-scalar")
    doc = document([fdoc(d, d) for d in _ALL_NUMERIC])
    samples = [{d: _values(d, (), rng) for d in _ALL_NUMERIC} for _ in range(3)]
    # Scalars: put each dtype's edge values in successive samples.
    for d in _ALL_NUMERIC:
        edges = _values(d, (3,), rng)
        for i in range(3):
            samples[i][d] = edges[i]
    out.append(valid("dtypes-scalar", "every numeric dtype with shape [], edge values (min/max, NaN, -0.0, inf)",
                     doc, samples))

    rng = _rng("dtypes-fixed")
    doc = document([fdoc(d, d, [2, 3], "lz4") for d in _ALL_NUMERIC] + [fdoc("empty_dim", "float32", [0, 4], "lz4")])
    samples = [{**{d: _values(d, (2, 3), rng) for d in _ALL_NUMERIC}, "empty_dim": np.zeros((0, 4), np.float32)}
               for _ in range(2)]
    out.append(valid("dtypes-fixed", "every numeric dtype with a fixed shape [2, 3], plus a zero-length dimension",
                     doc, samples))

    rng = _rng("variable-shapes")
    shapes = {"v1": ("float32", [None]), "v2": ("int16", [None, 3]), "v3": ("uint8", [2, None, None]),
              "vb": ("bool", [None]), "vc": ("complex64", [None, 2]), "vf64": ("float64", [None, None, 1])}
    doc = document([fdoc(n, d, s, "snappy") for n, (d, s) in shapes.items()])
    samples = []
    for i in range(4):
        s = {}
        for n, (d, shape) in shapes.items():
            dims = tuple(int(rng.integers(0, 5)) if (x is None and i) else (0 if x is None else x) for x in shape)
            s[n] = _values(d, dims, rng)
        samples.append(s)
    out.append(valid("variable-shapes", "null dimensions (one, two, leading, trailing), including zero-length records",
                     doc, samples))

    doc = document([fdoc("blob", "bytes"), fdoc("text", "str", compression="lz4")])
    samples = [
        {"blob": b"", "text": ""},
        {"blob": b"\x00\x01\x02\xff\x00", "text": "plain ascii"},
        {"blob": bytes(range(256)), "text": "Grüße, 世界 🌍 \u0000 nul and \U0010ffff"},
        {"blob": b"rocksds" * 10, "text": "\u202eright-to-left \n newline \t tab"},
    ]
    out.append(valid("bytes-and-str", "bytes (empty, NULs, every byte value) and UTF-8 str (empty, NUL, astral planes)",
                     doc, samples))

    for codec in sorted(spec.COMPRESSIONS):
        rng = _rng(f"compression-{codec}")
        doc = document([fdoc("values", "float32", [64], codec), fdoc("label", "str", compression=codec),
                        fdoc("plain", "int32", [], "none")])
        samples = [{"values": (np.arange(64) % 8 + i).astype(np.float32), "label": f"sample {i} " * 8,
                    "plain": np.int32(rng.integers(-1000, 1000))} for i in range(16)]
        out.append(valid(f"compression-{codec}", f"fields compressed with {codec} (compressible data), "
                         "beside an uncompressed field", doc, samples))

    for checksum in sorted(spec.PORTABLE_CHECKSUMS):
        doc = document([fdoc("image", "float32", [2, 8, 8], "none"), fdoc("mask", "uint8", [1, 8, 8], "lz4")])
        rng = _rng(f"checksum-{checksum}")
        samples = [{"image": _values("float32", (2, 8, 8), rng), "mask": _values("uint8", (1, 8, 8), rng)}
                   for _ in range(6)]
        out.append(valid(f"checksum-{checksum}", f"tables written with {checksum} block checksums (SPEC.md 6: "
                         "readers must read both portable checksum types)", doc, samples, checksum=checksum))

    rng = _rng("mixed-compressions")
    codecs = sorted(spec.COMPRESSIONS)
    doc = document([fdoc(f"c_{c}", "uint16", [32], c) for c in codecs])
    samples = [{f"c_{c}": (np.arange(32) // 4 * (i + 1)).astype(np.uint16) for c in codecs} for i in range(8)]
    out.append(valid("mixed-compressions", "one field per codec in one dataset: a reader lacking an optional "
                     "codec must still read the other fields", doc, samples))

    doc = document([fdoc("image", "float32", [3, 4, 4], "lz4"), fdoc("name", "str")])
    out.append(valid("empty", "a dataset with count 0", doc, []))

    rng = _rng("large-record")
    doc = document([fdoc("payload", "uint8", [None], "lz4"), fdoc("id", "int64")])
    samples = [{"payload": rng.integers(0, 256, 100_000, dtype=np.uint8), "id": np.int64(0)},
               {"payload": rng.integers(0, 256, 10, dtype=np.uint8), "id": np.int64(1)}]
    out.append(valid("large-record", "a 100,000-byte incompressible record, larger than a 16 KiB table block",
                     doc, samples))

    rng = _rng("many-fields")
    dts = ["int16", "float32", "uint8", "str"]
    names = [f"f{i:02d}" for i in range(40)]
    doc = document([fdoc(n, dts[i % 4], [] if dts[i % 4] == "str" else [i % 3 + 1]) for i, n in enumerate(names)])
    samples = [{n: (f"{n}-{j}" if dts[i % 4] == "str" else _values(dts[i % 4], (i % 3 + 1,), rng))
                for i, n in enumerate(names)} for j in range(3)]
    out.append(valid("many-fields", "40 fields, so 40 field column families", doc, samples))

    attrs = {
        "title": "Überwachung der Städte 🌆",
        "日本語": "キー",
        "bands": ["B4", "B3", "B2"],
        "nested": {"deep": {"deeper": [1, 2.5, None, True, False, "ß"]}},
        "big": 2**63 - 1,
        "negative": -(2**63),
        "float": 0.1,
        "empty_map": {},
        "empty_list": [],
    }
    doc = document([fdoc("x", "int8")], attrs=attrs)
    out.append(valid("unicode-attrs", "attrs with non-ASCII keys and values, nesting, 64-bit extremes and null",
                     doc, [{"x": np.int8(i)} for i in range(3)]))

    doc = document(
        [fdoc("x", "float32", [2], "lz4", future_field_key={"any": ["thing"]}, unit="metres"),
         fdoc("y", "str", column_family="y_strings", description="a field whose column family differs from its name")],
        version="1.7",
        future_top_level_key=[1, 2, 3],
        another_unknown={"nested": b"\x00\x01"},
        writer_features=["append-with-future-index"],
    )
    samples = [{"x": np.array([i, -i], np.float32), "y": f"row {i}"} for i in range(3)]
    out.append(valid("future-minor-version", "version 1.7: unknown top-level and field keys and an unknown writer "
                     "feature must be ignored by readers; a custom column_family", doc, samples,
                     warnings=["unknown-writer-feature"]))

    out += _clarification_vectors()
    out += _stats_vectors()
    out += _witness_vectors()

    rng = _rng("uncommitted-records")
    doc = document([fdoc("a", "int32", [2]), fdoc("b", "str")])
    samples = [{"a": _values("int32", (2,), rng), "b": f"s{i}"} for i in range(5)]
    out.append(valid("uncommitted-records", "count is 3 but records 3 and 4 exist (an interrupted ingest): readers "
                     "return 3 samples", doc, samples, count=3, warnings=["uncommitted-record"]))
    return out


def _clarification_vectors() -> list[Vector]:
    """Valid vectors for the rules SPEC.md 1.x states precisely (nesting, nil, escapes, ...)."""
    out = []
    deep = {"m": nested(62, "bottom")}  # map at depth 1, 62 arrays, "bottom" at depth 64
    doc = document([fdoc("empty_big", "uint8", [0, 65536, 32767]), fdoc("var_big", "uint8", [None, 65536, 32767]),
                    fdoc("x", "int8")],
                   attrs={"deep": nested(31, "bottom")},  # "bottom" at depth 32 of attrs
                   future_deep_key=deep)
    samples = [{"empty_big": np.zeros((0, 65536, 32767), np.uint8), "var_big": np.zeros((0, 65536, 32767), np.uint8),
                "x": np.int8(i)} for i in range(2)]
    out.append(valid("at-the-limits", "a document nested exactly 64 deep, attrs exactly 32 deep, and shapes whose "
                     "fixed dimensions, a 0 counted as 1, reach the record-size limit (records empty)", doc, samples))

    doc = document([fdoc("a", "int16", [2], "lz4", compression_level=None),
                    fdoc("b", "int16", [2], "snappy", compression_level=-7)])
    out.append(valid("compression-level-nil", "compression_level nil means absent; any 32-bit level is informational",
                     doc, [{"a": np.array([i, -i], np.int16), "b": np.array([1, i], np.int16)} for i in range(3)]))

    doc = document([fdoc("x", "int8")], writer_features="not-a-list", writer={"name": 3, "rocksdb": ["9"]})
    out.append(valid("malformed-writer-keys", "writer_features is not an array and writer not a map of str: readers "
                     "ignore both (a validator warns; no writer may append)", doc,
                     [{"x": np.int8(i)} for i in range(2)], warnings=["malformed-writer-key"]))

    attrs = {"$hex": "00", "$float": "nan", "$$x": 1, "plain": F32(float(np.float32(0.1))),
             "f32_list": [F32(1.5), F32(float(np.float32(-3.4028234663852886e38)))], "f64": 0.1}
    doc = document([fdoc("x", "int8")], attrs=attrs, future_binary=b"\x00", future_map={"$hex": b"\x01"})
    out.append(valid("canonical-escapes", "map keys starting with $ (a str map {$hex: \"00\"} beside the binary 00) "
                     "and float32 attrs, which the dump widens to float64", doc,
                     [{"x": np.int8(i)} for i in range(2)], schema_bytes=pack_raw(doc)))

    doc = document([fdoc("s", "str")])
    out.append(valid("str-leading-bom", "str records starting with U+FEFF: it is a character of the value, not a BOM",
                     doc, [{"s": "\ufeffhello"}, {"s": "\ufeff"}, {"s": "a\ufeff"}]))

    doc = document([fdoc("values", "float32", [16], "none"), fdoc("label", "str", compression="lz4")])
    out.append(valid("compression-mismatch", "the schema says 'none' but the tables of 'values' are snappy: the "
                     "codec recorded in the tables is what a reader decodes", doc,
                     [{"values": np.full(16, i, np.float32), "label": f"sample {i}"} for i in range(4)],
                     tables={"values": "snappy"}, warnings=["compression-mismatch"]))
    return out


def band_stats_doc(values: np.ndarray, exact: bool, offset: int = 0) -> dict:
    """One band map of SPEC.md 2.1 for ``values`` (already without nodata), straight from the definitions."""
    n = int(values.size)
    if exact:
        ints = [int(v) for v in values.ravel()]
        total, squares = sum(ints), sum(v * v for v in ints)
        from fractions import Fraction
        mean = float(Fraction(total, n))
        m2 = float(Fraction(squares) - Fraction(total * total, n))
        keys = [v - offset for v in ints]
    else:
        as64 = values.astype(np.float64)
        mean = float(as64.mean())
        m2 = float(((as64 - mean) ** 2).sum())
        keys = []
        for v in values.astype(np.float32).ravel():
            c = int(v.view(np.uint32)) >> 16
            keys.append(0xFFFF - c if c & 0x8000 else c + 0x8000)
    bins = sorted(set(keys))
    doc = {"count": n, "min": float(values.min()), "max": float(values.max()), "mean": mean, "m2": m2,
           "bins": bins, "counts": [keys.count(b) for b in bins]}
    if exact:
        doc["sum"], doc["sum_sq"] = str(total), str(squares)
    return doc


def _stats_record(count: int, image: np.ndarray, values: np.ndarray) -> bytes:
    """The stats record of the ``stats`` vectors: uint8 ``image`` (n, 3, 2, 2) with nodata 0, float32 ``values`` (n, 2)."""
    bands = []
    for b in range(image.shape[1]):
        band = image[:, b].ravel()
        bands.append(band_stats_doc(band[band != 0], exact=True))
    vbands = []
    for b in range(values.shape[1]):
        col = values[:, b]
        vbands.append(band_stats_doc(col[np.isfinite(col)], exact=False))
    doc = {"version": 1, "count": count, "fields": {
        "image": {"dtype": "uint8", "axis": 0, "nodata": 0, "histogram": "exact", "offset": 0, "bands": bands},
        "values": {"dtype": "float32", "axis": 0, "nodata": None, "histogram": "bfloat16", "offset": 0,
                   "bands": vbands},
    }}
    return msgpack.packb(doc, use_bin_type=True)


def _stats_samples() -> tuple[dict, list[dict]]:
    rng = _rng("stats")
    doc = document([fdoc("image", "uint8", [3, 2, 2], "lz4"), fdoc("values", "float32", [2]), fdoc("name", "str")],
                   version="1.2")
    samples = []
    for i in range(4):
        values = rng.normal(0, 100, 2).astype(np.float32)
        if i == 1:
            values[0] = np.nan  # left out, like nodata
        samples.append({"image": rng.integers(0, 4, (3, 2, 2), dtype=np.uint8), "values": values, "name": f"chip {i}"})
    return doc, samples


def _stacked(samples: list[dict], name: str) -> np.ndarray:
    return np.stack([s[name] for s in samples])


def _stats_vectors() -> list[Vector]:
    """Valid vectors of the optional ``stats`` record (SPEC.md 2.1, since 1.2)."""
    doc, samples = _stats_samples()
    record = _stats_record(4, _stacked(samples, "image"), _stacked(samples, "values"))
    out = [valid("stats", "version 1.2 with a stats record: exact (uint8, nodata 0) and bfloat16 (float32, a NaN "
                 "left out) histograms; readers of samples ignore it", doc, samples,
                 extra=[(spec.META_CF, spec.STATS_KEY, record)])]
    stale = _stats_record(3, _stacked(samples[:3], "image"), _stacked(samples[:3], "values"))
    out.append(valid("stale-stats", "the stats record covers 3 of 4 samples (a writer that does not maintain it "
                     "appended): still readable, the validator warns", doc, samples,
                     extra=[(spec.META_CF, spec.STATS_KEY, stale)], warnings=["stale-stats"]))
    return out


def _witness_doc() -> tuple[dict, list[dict]]:
    doc = document([fdoc("a", "int32", [2]), fdoc("s", "str")], version="1.3")
    return doc, [{"a": np.array([i, -i], np.int32), "s": f"row {i}"} for i in range(4)]


def _witness_vectors() -> list[Vector]:
    """Valid vectors of the committed-count witness (SPEC.md 7.1, since 1.3)."""
    doc, samples = _witness_doc()
    return [valid("committed-witness", "version 1.3 with a rocksds-committed file holding 4, the count: "
                  "readers check it and read the 4 samples", doc, samples,
                  files={spec.WITNESS_FILE: witness_bytes(4)})]


def _witness_invalid_vectors() -> list[Vector]:
    """A witness above the count RocksDB's files give (a rolled-back MANIFEST), and a damaged one."""
    doc, samples = _witness_doc()
    puts = meta_puts(doc, 3) + encode_records(doc, samples[:3])
    return [invalid("rolled-back-count", "RocksDB's files give count 3, the rocksds-committed file says 4 were "
                    "committed: the MANIFEST was rolled back and every reader must refuse (SPEC.md 7.1)",
                    _cfs(doc), puts, errors=["rolled-back-count"], reader_error="corrupt",
                    files={spec.WITNESS_FILE: witness_bytes(4)}),
            invalid("malformed-witness", "the rocksds-committed file's CRC-32 does not match its bytes",
                    _cfs(doc), puts, errors=["malformed-witness"], reader_error="corrupt",
                    files={spec.WITNESS_FILE: witness_bytes(3, crc_delta=1)})]


# ---------------------------------------------------------------------- invalid vectors


def _base(**kw: Any) -> tuple[dict, list[dict]]:
    doc = document([fdoc("a", "int32", [2]), fdoc("v", "uint16", [None]), fdoc("s", "str"), fdoc("flag", "bool")], **kw)
    samples = [{"a": np.array([i, i + 1], np.int32), "v": np.arange(i, dtype=np.uint16), "s": f"row {i}",
                "flag": np.bool_(i % 2)} for i in range(4)]
    return doc, samples


def _cfs(doc: dict, meta: bool = True) -> dict[str, str]:
    cfs = {f["column_family"]: f["compression"] for f in doc["fields"] if isinstance(f, dict) and "column_family" in f}
    return ({spec.META_CF: "none"} if meta else {}) | cfs


def _replace(puts: Puts, cf: str, key: bytes, value: Optional[bytes]) -> Puts:
    out = [p for p in puts if (p[0], p[1]) != (cf, key)]
    return out if value is None else out + [(cf, key, value)]


def _invalid_vectors() -> list[Vector]:
    out = []
    doc, samples = _base()
    good = meta_puts(doc, 4) + encode_records(doc, samples)

    out.append(invalid("missing-metadata", f"a RocksDB database without the {spec.META_CF!r} column family",
                       _cfs(doc, meta=False), encode_records(doc, samples),
                       errors=["missing-metadata"], reader_error="not-a-dataset"))
    out.append(invalid("missing-schema", "the metadata column family has a count but no schema record",
                       _cfs(doc), _replace(good, spec.META_CF, spec.SCHEMA_KEY, None),
                       errors=["missing-schema"], reader_error="not-a-dataset"))
    out.append(invalid("malformed-msgpack", "the schema record is truncated msgpack",
                       _cfs(doc), _replace(good, spec.META_CF, spec.SCHEMA_KEY, msgpack.packb(doc)[:-7]),
                       errors=["malformed-schema"], reader_error="malformed-schema"))
    d2, _ = _base(version="2.0")
    out.append(invalid("higher-major-version", "format version 2.0: a 1.x reader must refuse it",
                       _cfs(d2), meta_puts(d2, 4) + encode_records(doc, samples),
                       errors=["unsupported-version"], reader_error="unsupported-version"))
    d3, _ = _base()
    d3["fields"][0]["dtype"] = "float128"
    out.append(invalid("unknown-dtype", "field 'a' has dtype 'float128'",
                       _cfs(d3), meta_puts(d3, 4) + encode_records(doc, samples),
                       errors=["unknown-dtype"], reader_error="malformed-schema"))
    d4, _ = _base(reader_features=["sharded-keys"])
    out.append(invalid("unknown-reader-feature", "reader_features names a feature no 1.0 reader knows",
                       _cfs(d4), meta_puts(d4, 4) + encode_records(doc, samples),
                       errors=["unknown-reader-feature"], reader_error="unsupported-feature"))
    cfs = _cfs(doc)
    del cfs["s"]
    out.append(invalid("missing-column-family", "field 's' has no column family",
                       cfs, [p for p in good if p[0] != "s"],
                       errors=["missing-column-family"], reader_error="corrupt"))
    out.append(invalid("count-too-large", "count is 6 but only samples 0..3 have records",
                       _cfs(doc), _replace(good, spec.META_CF, spec.COUNT_KEY, encode_count(6)),
                       errors=["missing-record"], reader_error="corrupt"))
    out.append(invalid("missing-count", "the metadata column family has no count record",
                       _cfs(doc), _replace(good, spec.META_CF, spec.COUNT_KEY, None),
                       errors=["missing-count"], reader_error="corrupt"))
    out.append(invalid("bad-count", "the count record is 4 bytes instead of 8",
                       _cfs(doc), _replace(good, spec.META_CF, spec.COUNT_KEY, (4).to_bytes(4, "big")),
                       errors=["bad-count"], reader_error="corrupt"))
    out.append(invalid("wrong-record-length", "field 'a' (int32 [2]) has a 7-byte record for sample 2",
                       _cfs(doc), _replace(good, "a", encode_key(2), b"\x01" * 7),
                       errors=["bad-record-length"], reader_error="corrupt"))
    gap = _replace(good, "a", encode_key(2), None)
    out.append(invalid("key-gap", "field 'a' has no record for sample 2 (count 4)", _cfs(doc), gap,
                       errors=["missing-record"], reader_error="corrupt"))
    header = (3).to_bytes(4, "little") + np.arange(2, dtype="<u2").tobytes()
    out.append(invalid("bad-variable-header", "field 'v' (uint16 [null]): header says 3 elements, data holds 2",
                       _cfs(doc), _replace(good, "v", encode_key(1), header),
                       errors=["bad-variable-header"], reader_error="corrupt"))
    out.append(invalid("short-variable-header", "field 'v' (uint16 [null]): a 2-byte record, shorter than its header",
                       _cfs(doc), _replace(good, "v", encode_key(3), b"\x01\x00"),
                       errors=["bad-variable-header"], reader_error="corrupt"))
    out.append(invalid("invalid-utf8", "field 's' (str) holds bytes that are not UTF-8 for sample 1",
                       _cfs(doc), _replace(good, "s", encode_key(1), b"row \xff\xfe"),
                       errors=["invalid-utf8"], reader_error="corrupt"))
    out.append(invalid("bad-bool", "field 'flag' (bool) holds the byte 2 for sample 0",
                       _cfs(doc), _replace(good, "flag", encode_key(0), b"\x02"),
                       errors=["bad-bool"], reader_error="corrupt"))
    out.append(invalid("foreign-key", "field 'a' holds a 4-byte key besides the sample keys",
                       _cfs(doc), good + [("a", b"junk", b"\x00" * 8)],
                       errors=["foreign-key"], reader_error=None))
    out += _clarification_invalid_vectors()
    out += _stats_invalid_vectors()
    out += _witness_invalid_vectors()
    return out


def _small(**kw: Any) -> tuple[dict, Puts]:
    """A one-field document (``a``: int32 [2]) and the records of its 2 samples, for schema vectors."""
    doc = document([fdoc("a", "int32", [2])], **kw)
    return doc, encode_records(doc, [{"a": np.array([i, -i], np.int32)} for i in range(2)])


def _schema_vector(name: str, description: str, doc: Any, records: Puts, cfs: dict[str, str], *,
                   errors: list[str], reader_error: str) -> Vector:
    data = doc if isinstance(doc, bytes) else pack_raw(doc)
    return invalid(name, description, {spec.META_CF: "none", **cfs},
                   [(spec.META_CF, spec.SCHEMA_KEY, data), (spec.META_CF, spec.COUNT_KEY, encode_count(2))] + records,
                   errors=errors, reader_error=reader_error)


def _stats_invalid_vectors() -> list[Vector]:
    """A stats record that disagrees with the schema: the validator reports it, readers of samples need not notice."""
    doc, samples = _stats_samples()
    image = _stacked(samples, "image")[:, :2]  # statistics of 2 bands, the field has 3
    record = _stats_record(4, image, _stacked(samples, "values"))
    puts = meta_puts(doc, 4) + encode_records(doc, samples) + [(spec.META_CF, spec.STATS_KEY, record)]
    return [invalid("stats-wrong-bands", "the stats record gives 2 bands for a field of 3 (SPEC.md 2.1)",
                    _cfs(doc), puts, errors=["malformed-stats"], reader_error=None)]


def _clarification_invalid_vectors() -> list[Vector]:
    """Invalid vectors for the rules SPEC.md 1.x states precisely (check order, grammar, limits, ...)."""
    out = []
    good, records = _small()
    cfs = {"a": "none"}

    doc = dict(good, version="2.0", fields={"a": "a 2.0 layout"}, attrs=[b"\x00"], reader_features="any")
    out.append(_schema_vector("version-2-breaks-1x-rules", "version 2.0 whose fields, attrs and reader_features "
                              "break 1.x rules: the version is checked first", doc, records, cfs,
                              errors=["unsupported-version"], reader_error="unsupported-version"))
    doc = dict(good, reader_features=["bfloat16"], fields=[fdoc("a", "bfloat16", [2])])
    out.append(_schema_vector("reader-feature-before-fields", "an unknown reader feature and a dtype only that "
                              "feature defines: reader_features is checked before fields", doc, records, cfs,
                              errors=["unknown-reader-feature"], reader_error="unsupported-feature"))
    out.append(_schema_vector("wrong-format", "format 'zarr' (and version 2.0): format is checked before version",
                              dict(good, format="zarr", version="2.0"), records, cfs,
                              errors=["malformed-schema"], reader_error="malformed-schema"))
    for vname, version, why in (("version-leading-zero", "01.0", "a leading zero"),
                                ("version-too-long", "99999999999999999999.0", "a 20-digit major")):
        out.append(_schema_vector(vname, f"version {version!r}: {why} is malformed, not an unsupported version",
                                  dict(good, version=version), records, cfs,
                                  errors=["malformed-schema"], reader_error="malformed-schema"))
    field = Pairs([*good["fields"][0].items(), ("dtype", "uint32")])
    out.append(_schema_vector("duplicate-key", "field 'a' has two 'dtype' keys (int32, then uint32): readers that "
                              "kept the first or the last would disagree", dict(good, fields=[field]), records, cfs,
                              errors=["malformed-schema"], reader_error="malformed-schema"))
    out.append(_schema_vector("too-deep", "an unknown top-level key nested 1000 arrays deep (the limit is 64)",
                              dict(good, future_key=Packed(b"\x91" * 1000 + b"\x00")), records, cfs,
                              errors=["malformed-schema"], reader_error="malformed-schema"))
    out.append(_schema_vector("attrs-too-deep", "attrs with a value at depth 33 (the attrs map itself is depth 0)",
                              dict(good, attrs={"k": nested(32, 0)}), records, cfs,
                              errors=["malformed-schema"], reader_error="malformed-schema"))
    out.append(_schema_vector("compression-level-out-of-range", "compression_level 2**31, outside the signed "
                              "32-bit range", dict(good, fields=[dict(good["fields"][0], compression_level=2**31)]),
                              records, cfs, errors=["malformed-schema"], reader_error="malformed-schema"))
    out.append(_schema_vector("unknown-compression", "field 'a' names the codec 'brotli'",
                              dict(good, fields=[dict(good["fields"][0], compression="brotli")]), records, cfs,
                              errors=["unknown-compression"], reader_error="malformed-schema"))
    bad_text = pack_raw(Pairs([(k, RawStr(b"caf\xe9") if k == "attrs" else v) for k, v in good.items()]))
    out.append(_schema_vector("schema-invalid-utf8", "attrs is a msgpack str that is not UTF-8 (Latin-1 'cafe')",
                              bad_text, records, cfs, errors=["malformed-schema"], reader_error="malformed-schema"))

    empty = [("z", encode_key(i), b"\x00\x00\x00\x00") for i in range(2)]
    doc = dict(good, fields=[*good["fields"], fdoc("z", "uint8", [None, 65536, 32768])])
    out.append(_schema_vector("fixed-part-too-large", "field 'z' (uint8 [null, 65536, 32768]): its fixed "
                              "dimensions alone exceed the record-size limit", doc, records + empty,
                              {**cfs, "z": "none"}, errors=["malformed-schema"], reader_error="malformed-schema"))
    doc = dict(good, fields=[*good["fields"], fdoc("z", "uint64", [0, 4294967295, 4294967295])])
    out.append(_schema_vector("zero-beside-huge-dims", "field 'z' (uint64 [0, 4294967295, 4294967295]): a 0 counts "
                              "as 1 in the record-size limit", doc, records + [(k[0], k[1], b"") for k in empty],
                              {**cfs, "z": "none"}, errors=["malformed-schema"], reader_error="malformed-schema"))

    doc = dict(good, fields=[*good["fields"], fdoc("v", "uint8", [None, None, None])])
    header = b"".join(d.to_bytes(4, "little") for d in (0, 4294967295, 4294967295))
    var = [("v", encode_key(0), (0).to_bytes(4, "little") * 3), ("v", encode_key(1), header)]
    out.append(_schema_vector("variable-header-beyond-limit", "field 'v' (uint8 [null, null, null]): sample 1's "
                              "header declares [0, 4294967295, 4294967295], beyond the record-size limit with the "
                              "0 counted as 1", doc, records + var, {**cfs, "v": "none"},
                              errors=["bad-variable-header"], reader_error="corrupt"))
    doc = dict(good, fields=[*good["fields"], fdoc("flags", "bool", [None])])
    flags = [("flags", encode_key(0), (2).to_bytes(4, "little") + b"\x01\x00"),
             ("flags", encode_key(1), (3).to_bytes(4, "little") + b"\x01\x07\x00")]
    out.append(_schema_vector("bad-bool-variable", "field 'flags' (bool [null]) holds the byte 7 in sample 1",
                              doc, records + flags, {**cfs, "flags": "none"},
                              errors=["bad-bool"], reader_error="corrupt"))
    return out


# ---------------------------------------------------------------------- write cases


def _write_cases() -> dict[str, dict]:
    def arr(a: np.ndarray) -> dict:
        return {"shape": list(a.shape), "hex": np.ascontiguousarray(a).tobytes().hex()}

    rng = _rng("write-all-dtypes")
    fields = []
    for d in _ALL_NUMERIC:
        fields += [{"name": f"{d}_scalar", "dtype": d, "shape": [], "compression": "none"},
                   {"name": f"{d}_fixed", "dtype": d, "shape": [2, 2], "compression": "lz4"},
                   {"name": f"{d}_var", "dtype": d, "shape": [None, 2], "compression": "snappy"}]
    samples = []
    for i in range(3):
        s = {}
        for d in _ALL_NUMERIC:
            s[f"{d}_scalar"] = arr(_values(d, (), rng))
            s[f"{d}_fixed"] = arr(_values(d, (2, 2), rng))
            s[f"{d}_var"] = arr(_values(d, (i, 2), rng))
        samples.append(s)
    cases = {"all-dtypes": {"description": "every numeric dtype as scalar, fixed [2,2] and variable [null,2]",
                            "schema": {"fields": fields, "attrs": {"purpose": "write check"}}, "samples": samples}}
    cases["bytes-str-unicode"] = {
        "description": "bytes and str values, unicode attrs",
        "schema": {"fields": [{"name": "blob", "dtype": "bytes", "shape": [], "compression": "lz4"},
                              {"name": "text", "dtype": "str", "shape": [], "compression": "none"}],
                   "attrs": {"städte": ["Zürich", "東京"], "n": 3, "nested": {"ok": True, "none": None}}},
        "samples": [{"blob": {"hex": ""}, "text": {"text": ""}},
                    {"blob": {"hex": "00ff10"}, "text": {"text": "Grüße 🌍"}},
                    {"blob": {"hex": bytes(range(40)).hex()}, "text": {"text": "line\nbreak"}}],
    }
    cases["empty"] = {"description": "a schema and no samples",
                      "schema": {"fields": [{"name": "x", "dtype": "float32", "shape": [3], "compression": "lz4"}],
                                 "attrs": {}},
                      "samples": []}
    cases["required-compressions"] = {
        "description": "one field per codec every reader must support",
        "schema": {"fields": [{"name": f"c_{c}", "dtype": "int64", "shape": [8], "compression": c}
                              for c in sorted(spec.REQUIRED_COMPRESSIONS)], "attrs": {}},
        "samples": [{f"c_{c}": arr(np.arange(8, dtype="<i8") * i) for c in sorted(spec.REQUIRED_COMPRESSIONS)}
                    for i in range(5)],
    }
    return cases


# ---------------------------------------------------------------------- driver


def vectors() -> list[tuple[str, Vector]]:
    """(group, vector) for every vector, group being ``valid`` or ``invalid``."""
    return [("valid", v) for v in _valid_vectors()] + [("invalid", v) for v in _invalid_vectors()]


def _dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def generate(out: str = ROOT, log: Callable[[str], None] = lambda s: None) -> None:
    """Build every vector under ``out/vectors`` and every write case under ``out/write_cases`` (replacing them)."""
    for sub in ("vectors", "write_cases"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    for group, v in vectors():
        path = os.path.join(out, "vectors", group, v.name)
        write_raw(os.path.join(path, "dataset"), v.cfs, v.puts, v.checksum, v.files)
        with open(os.path.join(path, "expected.json"), "w", encoding="utf-8") as fh:
            fh.write(_dump_json(v.expected))
        log(f"{group}/{v.name}")
    os.makedirs(os.path.join(out, "write_cases"))
    for name, case in _write_cases().items():
        with open(os.path.join(out, "write_cases", f"{name}.json"), "w", encoding="utf-8") as fh:
            fh.write(_dump_json(case))


def raw_dump(path: str) -> dict[str, dict[str, str]]:
    """Logical content of a RocksDB directory: column family -> key hex -> sha256 of the value, and under
    ``files:`` (no column family's name) file name -> sha256 of the files kept beside RocksDB's."""
    names = sorted(list_column_families(path))
    with raw_readable(path, names) as storage:
        out = {cf: {k.hex(): hashlib.sha256(v).hexdigest() for k, v in storage.iterate(cf)} for cf in names}
    out["files:"] = {}
    for name in sorted(n for n in os.listdir(path) if n == spec.WITNESS_FILE):
        with open(os.path.join(path, name), "rb") as fh:
            out["files:"][name] = hashlib.sha256(fh.read()).hexdigest()
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=ROOT, help="folder to build vectors/ and write_cases/ in (default: here)")
    args = parser.parse_args(argv)
    generate(args.out, log=print)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
