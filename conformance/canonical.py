"""The canonical dump: one exact JSON form of a dataset's logical content.

Two implementations agree on a dataset when their canonical dumps are equal as
JSON values. README.md in this folder defines the form; in short::

    {"dump": "rocksds-canonical", "dump_version": 1,
     "schema": <the schema document, every key kept>,
     "count": N,
     "fields": {name: [record, ... one per sample 0..N-1]}}

    numeric record: {"shape": [d0, d1, ...], "sha256": hex of the C-order little-endian bytes}
    bytes record:   {"hex": "..."}
    str record:     {"text": "..."}

In the schema document, msgpack binary values become ``{"$hex": "..."}`` and
non-finite floats ``{"$float": "nan" | "inf" | "-inf"}``; so that no map of the
document can pass for one of these escapes, every map key starting with ``$``
gets one more ``$`` (``"$hex"`` -> ``"$$hex"``). A float32 is its value widened
to float64, as the JSON number of that double (msgpack's encoding width is not
part of a value, for floats as for integers). A field a reader
cannot decode because it lacks an optional codec is ``{"unsupported_compression":
codec}`` instead of a list. Depends on numpy and the standard library only,
so it can describe values written by any implementation.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

__all__ = ["DUMP_NAME", "DUMP_VERSION", "NUMERIC", "record_entry", "document_to_json", "make_dump", "decode_value"]

DUMP_NAME = "rocksds-canonical"
DUMP_VERSION = 1

#: dtype name -> little-endian numpy type string (SPEC.md, "dtypes").
NUMERIC = {
    "bool": "|b1", "int8": "|i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "|u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float16": "<f2", "float32": "<f4", "float64": "<f8", "complex64": "<c8", "complex128": "<c16",
}


def record_entry(dtype: str, value: Any) -> dict[str, Any]:
    """The canonical entry of one value of a field of ``dtype``."""
    if dtype == "bytes":
        return {"hex": bytes(value).hex()}
    if dtype == "str":
        return {"text": str(value)}
    # np.asarray, not np.ascontiguousarray: the latter turns a scalar into shape (1,).
    arr = np.asarray(value, dtype=np.dtype(NUMERIC[dtype]))
    return {"shape": list(arr.shape), "sha256": hashlib.sha256(arr.tobytes(order="C")).hexdigest()}


def decode_value(dtype: str, entry: dict[str, Any]) -> Any:
    """A value from its written form in a write case (``hex`` + ``shape`` for arrays)."""
    if dtype == "bytes":
        return bytes.fromhex(entry["hex"])
    if dtype == "str":
        return entry["text"]
    return np.frombuffer(bytes.fromhex(entry["hex"]), dtype=np.dtype(NUMERIC[dtype])).reshape(entry["shape"])


def document_to_json(value: Any) -> Any:
    """A decoded msgpack value as JSON data, with the escapes the module docstring lists."""
    if isinstance(value, dict):
        return {("$" + k if k.startswith("$") else k): document_to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [document_to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$hex": bytes(value).hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    return value


def make_dump(document: Any, count: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Assemble a canonical dump from parts already in canonical form."""
    return {
        "dump": DUMP_NAME,
        "dump_version": DUMP_VERSION,
        "schema": document_to_json(document),
        "count": count,
        "fields": fields,
    }
