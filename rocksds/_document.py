"""The schema document's per-key rules (SPEC.md, "Schema document"), in one place.

:meth:`rocksds.Schema.from_document`, the JSON Schema export
(:func:`rocksds.schema.document_json_schema`) and the validator all take the
keys, their types and their parsing from here, so the three cannot drift apart.

This module deliberately does not use ``from __future__ import annotations``:
the TypedDicts' required and optional keys are read from them at run time.
"""

import re
from typing import Any, Literal, Optional

from typing_extensions import NotRequired, TypedDict

from . import spec
from .errors import SchemaError

__all__ = [
    "SchemaDocumentField",
    "SchemaDocument",
    "FIELD_REQUIRED_KEYS",
    "TOP_LEVEL_KEYS",
    "parse_version",
    "string_list",
    "is_string_list",
    "is_writer_map",
    "field_entry",
]

_DtypeName = Literal[tuple(sorted(spec.DTYPES))]  # type: ignore[valid-type]
_CompressionName = Literal[tuple(sorted(spec.COMPRESSIONS))]  # type: ignore[valid-type]


class SchemaDocumentField(TypedDict):
    """One entry of the document's ``fields`` list (SPEC.md, 3.1)."""

    name: str
    dtype: _DtypeName
    shape: list[Optional[int]]
    column_family: str
    compression: _CompressionName
    compression_level: NotRequired[Optional[int]]


class SchemaDocument(TypedDict):
    """The msgpack map stored under ``__rocksds__/schema`` (SPEC.md, 3)."""

    format: Literal["rocksds"]
    version: str
    fields: list[SchemaDocumentField]
    attrs: NotRequired[dict[str, Any]]
    reader_features: NotRequired[list[str]]
    writer_features: NotRequired[list[str]]
    writer: NotRequired[dict[str, str]]


#: Keys every ``fields`` entry must have, in document order.
FIELD_REQUIRED_KEYS: tuple[str, ...] = tuple(
    k for k in SchemaDocumentField.__annotations__ if k in SchemaDocumentField.__required_keys__
)
#: Top-level keys the format defines; any other key is kept as an unknown extra.
TOP_LEVEL_KEYS: frozenset[str] = frozenset(SchemaDocument.__annotations__)


#: SPEC.md 3: two decimal parts of 1-9 ASCII digits without a leading zero (``re.ASCII``: no other digits).
_VERSION = re.compile(r"(?:0|[1-9][0-9]{0,8})\.(?:0|[1-9][0-9]{0,8})", re.ASCII)


def parse_version(v: Any) -> tuple[int, int]:
    """``"MAJOR.MINOR"`` -> ``(major, minor)``, or :class:`SchemaError` (SPEC.md 3's grammar)."""
    if not isinstance(v, str):
        raise SchemaError(f"version must be a string 'MAJOR.MINOR', got {v!r}")
    if not _VERSION.fullmatch(v):
        raise SchemaError(
            f"version must be 'MAJOR.MINOR': ASCII digits, no leading zero, at most 9 digits each; got {v[:40]!r}"
        )
    major, minor = v.split(".")
    return int(major), int(minor)


def is_string_list(v: Any) -> bool:
    """Whether ``v`` is a list of strings (what ``reader_features`` and ``writer_features`` must be)."""
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def string_list(v: Any, what: str) -> list[str]:
    """``v`` if it is a list of strings (``reader_features``, ...), else :class:`SchemaError`."""
    if not is_string_list(v):
        raise SchemaError(f"schema document {what!r} must be a list of strings")
    return v


def is_writer_map(v: Any) -> bool:
    """Whether a document's ``writer`` value is what SPEC.md 3 describes: a map of str to str."""
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def field_entry(entry: Any, i: int) -> tuple[str, dict[str, Any]]:
    """Check ``fields[i]`` on its own: its name and the keyword arguments of its :class:`~rocksds.Field`.

    The values are checked by ``Field`` itself; rules spanning entries
    (duplicate names or column families) by ``Schema``.
    """
    if not isinstance(entry, dict):
        raise SchemaError(f"fields[{i}] must be a map")
    missing = [k for k in FIELD_REQUIRED_KEYS if k not in entry]
    if missing:
        raise SchemaError(f"fields[{i}] lacks required keys {missing}")
    name = entry["name"]
    if not isinstance(name, str):
        raise SchemaError(f"fields[{i}].name must be a string")
    if not isinstance(entry["shape"], list):
        raise SchemaError(f"field {name!r}: shape must be a list")
    return name, {k: entry[k] for k in SchemaDocumentField.__annotations__ if k != "name" and k in entry}
