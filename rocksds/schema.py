"""The schema: what fields a dataset has, and how it is written to the metadata record.

:class:`Field` and :class:`Schema` are frozen pydantic models. The schema
document stored in a dataset is a msgpack map (SPEC.md, "Schema document");
:meth:`Schema.to_bytes` and :meth:`Schema.from_bytes` convert between the two
and apply every limit SPEC.md asks a reader to apply before trusting a
document. This module never touches RocksDB.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, Optional

import msgpack
import numpy as np
from pydantic import BaseModel, ConfigDict, Field as PydanticField, TypeAdapter, ValidationError
from pydantic import field_validator, model_validator

from . import spec
from ._document import TOP_LEVEL_KEYS, SchemaDocument, field_entry, is_string_list, is_writer_map, parse_version
from ._document import string_list
from .errors import SchemaError, UnsupportedFeatureError, UnsupportedVersionError

__all__ = ["Field", "Schema", "default_compression", "document_json_schema", "dtype_name"]

Dim = Optional[int]


def default_compression(dtype: str) -> str:
    """The codec the reference writer gives a field of ``dtype`` that names none (SPEC.md 6)."""
    return spec.DEFAULT_FLOAT_COMPRESSION if dtype in spec.FLOAT_DTYPES else spec.DEFAULT_COMPRESSION


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not spec.NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{kind} {name!r} must match {spec.NAME_PATTERN.pattern} "
            "(letters, digits, '_', '.', '-'; not starting with a digit)"
        )
    if len(name) > spec.MAX_NAME_LEN:
        raise ValueError(f"{kind} {name[:20]!r}... is longer than {spec.MAX_NAME_LEN} characters")
    if name.startswith("__") or name == spec.DEFAULT_CF:
        raise ValueError(f"{kind} {name!r} is reserved (names starting with '__', and 'default')")
    return name


def _check_attr_value(value: Any, depth: int, where: str) -> Any:
    """Return ``value`` as plain JSON-like data (tuples become lists), or raise."""
    if depth > spec.MAX_ATTRS_DEPTH:
        raise ValueError(f"attrs are nested deeper than {spec.MAX_ATTRS_DEPTH} levels at {where}")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ValueError(f"attrs integer at {where} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _check_attr_value(value.item(), depth, where)
    if isinstance(value, (list, tuple)):
        return [_check_attr_value(v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"attrs keys must be strings, got {k!r} at {where}")
            out[k] = _check_attr_value(v, depth + 1, f"{where}.{k}")
        return out
    raise ValueError(
        f"attrs value at {where} has type {type(value).__name__}; "
        "only None, bool, int, float, str, lists and string-keyed maps are allowed"
    )


class _Model(BaseModel):
    """Frozen pydantic model whose validation errors are :class:`SchemaError`."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise SchemaError(_explain(e)) from None


class Field(_Model):
    """One named value of every sample: an array of fixed dtype and (partly) fixed shape.

    Args:
        dtype: one of ``rocksds.spec.DTYPES``. ``bytes`` and ``str`` (UTF-8)
            hold one opaque variable-length value and require ``shape=()``.
        shape: one entry per dimension, an integer >= 0 or ``None`` for a
            dimension whose length varies per sample; ``()`` is a scalar.
        compression: RocksDB codec for the field's column family, one of
            ``rocksds.spec.COMPRESSIONS``. ``None`` (the default) picks ``none``
            for floating-point and complex dtypes, which rarely compress and
            are read fastest straight from the OS page cache, and ``lz4`` for
            the rest (:func:`default_compression`).
        compression_level: codec level (zstd, zlib, lz4hc); ``None`` for the codec default.
        column_family: RocksDB column family; defaults to the field's name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: str
    shape: tuple[Dim, ...] = ()
    compression: str = None  # type: ignore[assignment]  # filled from dtype by _default_compression
    compression_level: Optional[int] = None
    column_family: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _default_compression(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("compression") is None and isinstance(data.get("dtype"), str):
            data = {**data, "compression": default_compression(data["dtype"])}
        return data

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        if v not in spec.DTYPES:
            raise ValueError(f"unknown dtype {v!r}; expected one of {sorted(spec.DTYPES)}")
        return v

    @field_validator("shape", mode="before")
    @classmethod
    def _shape_before(cls, v: Any) -> Any:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return (int(v),)
        if isinstance(v, (list, tuple)):
            for d in v:
                if isinstance(d, bool) or not (d is None or isinstance(d, (int, np.integer))):
                    raise ValueError(f"shape entries must be integers >= 0 or None, got {d!r}")
            return tuple(None if d is None else int(d) for d in v)
        raise ValueError(f"shape must be a list of integers or None, got {v!r}")

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: tuple[Dim, ...]) -> tuple[Dim, ...]:
        if len(v) > spec.MAX_NDIM:
            raise ValueError(f"shape has {len(v)} dimensions; at most {spec.MAX_NDIM} are allowed")
        for d in v:
            if d is not None and not 0 <= d <= spec.MAX_DIM:
                raise ValueError(f"shape entries must be in 0..{spec.MAX_DIM} or None, got {d}")
        return v

    @field_validator("compression")
    @classmethod
    def _compression(cls, v: str) -> str:
        if v not in spec.COMPRESSIONS:
            raise ValueError(f"unknown compression {v!r}; expected one of {sorted(spec.COMPRESSIONS)}")
        return v

    @field_validator("compression_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        # RocksDB takes a C int: a larger value would fail only later, when a writer opens.
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -(2**31) <= v < 2**31):
            raise ValueError(f"compression_level must be an integer in the 32-bit range or None, got {v!r}")
        return v

    @field_validator("column_family")
    @classmethod
    def _cf(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_name("column family", v)

    @model_validator(mode="after")
    def _cross(self) -> "Field":
        if self.dtype in spec.OPAQUE_DTYPES and self.shape != ():
            raise ValueError(f"dtype {self.dtype!r} holds one opaque value per sample; its shape must be ()")
        # SPEC.md 5.5: the fixed dimensions of every shape, variable ones included, count toward the
        # record-size limit, and a zero counts as 1: it empties the records but cannot make room for
        # dimensions no array library could describe (numpy refuses [0, 2**32-1, 2**32-1] uint64).
        fixed = math.prod(d or 1 for d in self.shape if d is not None)
        if fixed * self.itemsize > spec.MAX_RECORD_BYTES:
            raise ValueError(
                f"a record of shape {self.shape} and dtype {self.dtype} exceeds {spec.MAX_RECORD_BYTES} bytes "
                "(counting the fixed dimensions, a 0 as 1)"
            )
        return self

    @property
    def is_variable(self) -> bool:
        """True if records carry a header: a null dimension, or ``bytes``/``str``."""
        return self.dtype in spec.OPAQUE_DTYPES or None in self.shape

    @property
    def numpy_dtype(self) -> np.dtype:
        """The little-endian numpy dtype of stored values (``object`` for ``bytes``/``str``)."""
        if self.dtype in spec.OPAQUE_DTYPES:
            return np.dtype(object)
        return np.dtype(spec.NUMERIC_DTYPES[self.dtype])

    @property
    def itemsize(self) -> int:
        """Bytes per element (1 for ``bytes``/``str``)."""
        return 1 if self.dtype in spec.OPAQUE_DTYPES else np.dtype(spec.NUMERIC_DTYPES[self.dtype]).itemsize

    @property
    def record_bytes(self) -> Optional[int]:
        """Exact record length of a fixed-shape field, ``None`` for variable ones."""
        return None if self.is_variable else math.prod(self.shape) * self.itemsize  # type: ignore[arg-type]


def document_json_schema() -> dict[str, Any]:
    """JSON Schema of the schema document, for tools in other languages."""
    return TypeAdapter(SchemaDocument).json_schema()


class Schema(_Model):
    """The self-description of a dataset.

    Args:
        fields: ordered mapping of field name -> :class:`Field`.
        attrs: user metadata; JSON-like values only (tuples become lists).
        version: format version "MAJOR.MINOR" the document was written with.
        reader_features: features a reader must understand to read the data.
        writer_features: features a writer must understand to append; ``None`` when a stored
            document's value is not a list of strings (readers ignore it, writers must not append).
        writer: name/version of the library and RocksDB that created the dataset (informational;
            ``{}`` when a stored document's value is not a map of strings).
        extra: unknown top-level keys found in a stored document (kept, never interpreted).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    fields: dict[str, Field]
    attrs: dict[str, Any] = PydanticField(default_factory=dict)
    version: str = spec.FORMAT_VERSION
    reader_features: tuple[str, ...] = ()
    writer_features: Optional[tuple[str, ...]] = ()
    writer: dict[str, str] = PydanticField(default_factory=dict)
    extra: dict[str, Any] = PydanticField(default_factory=dict)

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_before(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            raise ValueError("fields must be a mapping of name -> Field")
        return dict(v)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, Field]) -> dict[str, Field]:
        if not v:
            raise ValueError("a schema needs at least one field")
        if len(v) > spec.MAX_FIELDS:
            raise ValueError(f"a schema has at most {spec.MAX_FIELDS} fields, got {len(v)}")
        out: dict[str, Field] = {}
        seen_cf: dict[str, str] = {}
        for name, f in v.items():
            _check_name("field name", name)
            if f.column_family is None:
                f = f.model_copy(update={"column_family": name})
            assert f.column_family is not None
            if f.column_family in seen_cf:
                raise ValueError(
                    f"fields {seen_cf[f.column_family]!r} and {name!r} share column family {f.column_family!r}"
                )
            seen_cf[f.column_family] = name
            out[name] = f
        return out

    @field_validator("attrs", mode="before")
    @classmethod
    def _attrs(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            raise ValueError("attrs must be a mapping with string keys")
        return _check_attr_value(v, 0, "attrs")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        parse_version(v)
        return v

    # ------------------------------------------------------------------ access

    def __getitem__(self, name: str) -> Field:
        from .errors import FieldNotFoundError

        try:
            return self.fields[name]
        except KeyError:
            raise FieldNotFoundError(f"no field {name!r}; the schema has {list(self.fields)}") from None

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in schema order."""
        return tuple(self.fields)

    def select(self, names: Optional[list[str] | tuple[str, ...]]) -> "Schema":
        """A schema with only ``names`` (in that order); all fields if ``None``."""
        if names is None:
            return self
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise TypeError(f"fields must be a list of field names, got {names!r}")
        return self.model_copy(update={"fields": {n: self[n] for n in names}})

    # ------------------------------------------------------------------ inference

    @classmethod
    def infer(
        cls,
        sample: Mapping[str, Any],
        *,
        attrs: Optional[Mapping[str, Any]] = None,
        compression: Optional[str] = None,
        variable: Optional[Mapping[str, tuple[int, ...]]] = None,
    ) -> "Schema":
        """Build a schema from one example sample.

        Args:
            sample: field name -> array, scalar, ``str`` or ``bytes``.
            attrs: user metadata for the schema.
            compression: codec for every field; ``None`` picks one per dtype (see :class:`Field`).
            variable: field name -> axes whose length varies per sample
                (they become ``None`` in the shape).
        """
        if not isinstance(sample, Mapping) or not sample:
            raise SchemaError("Schema.infer needs a non-empty dict of field name -> value")
        variable = dict(variable or {})
        fields: dict[str, Field] = {}
        for name, value in sample.items():
            if isinstance(value, str):
                fields[name] = Field(dtype="str", compression=compression)
                continue
            if isinstance(value, (bytes, bytearray, memoryview)):
                fields[name] = Field(dtype="bytes", compression=compression)
                continue
            arr = np.asarray(value)
            dname = dtype_name(arr.dtype)
            if dname is None:
                raise SchemaError(f"field {name!r}: cannot store dtype {arr.dtype}")
            shape: list[Optional[int]] = list(arr.shape)
            for axis in variable.pop(name, ()):
                shape[axis] = None
            fields[name] = Field(dtype=dname, shape=tuple(shape), compression=compression)
        if variable:
            raise SchemaError(f"variable axes given for unknown fields {sorted(variable)}")
        return cls(fields=fields, attrs=dict(attrs or {}))

    # ------------------------------------------------------------------ document

    def to_document(self) -> dict[str, Any]:
        """The schema document as a plain dict (SPEC.md, "Schema document")."""
        doc: dict[str, Any] = dict(self.extra)
        fields = []
        for name, f in self.fields.items():
            entry: dict[str, Any] = {
                "name": name,
                "dtype": f.dtype,
                "shape": list(f.shape),
                "column_family": f.column_family,
                "compression": f.compression,
            }
            if f.compression_level is not None:
                entry["compression_level"] = f.compression_level
            fields.append(entry)
        doc.update(
            format=spec.FORMAT_NAME,
            version=self.version,
            fields=fields,
            attrs=self.attrs,
            reader_features=list(self.reader_features),
            writer_features=list(self.writer_features or ()),
            writer=dict(self.writer),
        )
        return doc

    def to_bytes(self) -> bytes:
        """The msgpack-encoded schema document."""
        data: bytes = msgpack.packb(self.to_document(), use_bin_type=True)
        if len(data) > spec.MAX_SCHEMA_BYTES:
            raise SchemaError(f"schema document is {len(data)} bytes; the limit is {spec.MAX_SCHEMA_BYTES}")
        return data

    @classmethod
    def from_document(cls, doc: Any) -> "Schema":
        """Validate a decoded schema document (SPEC.md's reader rules) and build a Schema.

        The checks run in the order SPEC.md 8 fixes: ``format``, ``version`` (a
        document of another major version need follow no 1.x rule),
        ``reader_features``, then everything else. ``writer_features`` and
        ``writer`` are not a reader's business (SPEC.md 3.2): a malformed value
        is kept as ``None`` / ``{}`` instead of refusing the dataset.

        Raises:
            UnsupportedVersionError: the major version is not this reader's.
            UnsupportedFeatureError: ``reader_features`` names an unknown feature.
            SchemaError: anything else malformed.
        """
        if not isinstance(doc, dict):
            raise SchemaError(f"schema document must be a map, got {type(doc).__name__}")
        if doc.get("format") != spec.FORMAT_NAME:
            raise SchemaError(f"schema document 'format' must be {spec.FORMAT_NAME!r}, got {doc.get('format')!r}")
        version = doc.get("version")
        major, _minor = parse_version(version)
        if major != spec.FORMAT_MAJOR:
            raise UnsupportedVersionError(
                f"dataset uses format version {version}; this reader supports major version "
                f"{spec.FORMAT_MAJOR} (upgrade rocksds to read it)"
            )
        reader_features = string_list(doc.get("reader_features", []), "reader_features")
        unknown = sorted(set(reader_features) - spec.KNOWN_READER_FEATURES)
        if unknown:
            raise UnsupportedFeatureError(f"dataset requires reader features this reader does not know: {unknown}")
        writer_features: Optional[list[str]] = doc.get("writer_features", [])
        if not is_string_list(writer_features):
            writer_features = None  # readers ignore it (SPEC.md 3.2); writers refuse to append
        raw_fields = doc.get("fields")
        if not isinstance(raw_fields, list):
            raise SchemaError("schema document 'fields' must be a list")
        if len(raw_fields) > spec.MAX_FIELDS:
            raise SchemaError(f"schema document has {len(raw_fields)} fields; the limit is {spec.MAX_FIELDS}")
        fields: dict[str, Field] = {}
        for i, entry in enumerate(raw_fields):
            name, known = field_entry(entry, i)
            if name in fields:
                raise SchemaError(f"field name {name!r} appears twice")
            try:
                fields[name] = Field(**known)
            except SchemaError as e:
                raise SchemaError(f"field {name!r}: {e}") from None
        writer = doc.get("writer", {})
        if not is_writer_map(writer):
            writer = {}
        attrs = doc.get("attrs", {})
        extra = {k: v for k, v in doc.items() if k not in TOP_LEVEL_KEYS}
        return cls(
            fields=fields,
            attrs=attrs,
            version=version,
            reader_features=tuple(reader_features),
            writer_features=None if writer_features is None else tuple(writer_features),
            writer=writer,
            extra=extra,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "Schema":
        """Decode and validate a stored schema document, with SPEC.md's size limits."""
        return cls.from_document(decode_document(data))


def decode_document(data: bytes) -> Any:
    """msgpack-decode a schema document with bounded sizes; :class:`SchemaError` on any failure."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SchemaError("schema record must be bytes")
    if len(data) > spec.MAX_SCHEMA_BYTES:
        raise SchemaError(f"schema document is {len(data)} bytes; the limit is {spec.MAX_SCHEMA_BYTES}")
    try:
        doc = msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=True,
            # Last-wins would let two readers see two schemas in one record (SPEC.md 9).
            object_pairs_hook=_unique_keys,
            max_str_len=spec.MAX_SCHEMA_BYTES,
            max_bin_len=spec.MAX_SCHEMA_BYTES,
            # Every element takes at least one byte (a map entry two), so a
            # header declaring more than the data can hold is refused before
            # the decoder allocates for it.
            max_array_len=min(spec.MAX_CONTAINER_LEN, len(data)),
            max_map_len=min(spec.MAX_CONTAINER_LEN, len(data) // 2),
            max_ext_len=0,
        )
    except (msgpack.exceptions.ExtraData, ValueError, msgpack.exceptions.UnpackException,
            msgpack.exceptions.StackError, TypeError, UnicodeDecodeError, RecursionError) as e:
        raise SchemaError(
            f"schema document is not valid msgpack, or breaks a decoding rule of SPEC.md 9: {type(e).__name__}: {e}"
        ) from None
    _check_depth(doc)
    return doc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # strict_map_key admits bytes keys too; the document allows string keys only (SPEC.md 9).
    binary = next((k for k, _v in pairs if not isinstance(k, str)), None)
    if binary is not None:
        raise ValueError(f"map key {binary[:40]!r} is binary; map keys must be strings")
    out = dict(pairs)
    if len(out) != len(pairs):
        counts = Counter(k for k, _v in pairs)
        twice = next(k for k, n in counts.items() if n > 1)
        raise ValueError(f"map key {twice[:40]!r} appears twice")
    return out


def _check_depth(doc: Any) -> None:
    """Refuse a document nesting a value more than MAX_DOCUMENT_DEPTH containers deep (SPEC.md 9).

    Iterative, and it stops at the limit, so no later recursive walk of the
    document (the canonical dump, pydantic, copies) can exceed Python's
    recursion limit on the up to 1024 levels msgpack itself decodes.
    """
    stack = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= spec.MAX_DOCUMENT_DEPTH and value:
                raise SchemaError(
                    f"schema document is nested deeper than {spec.MAX_DOCUMENT_DEPTH} levels (SPEC.md 9)"
                )
            children = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in children)


def dtype_name(dt: Any) -> Optional[str]:
    """The rocksds dtype name of a numpy dtype (any byte order), or ``None`` when no rocksds dtype stores it.

    The one numpy -> rocksds dtype map: schema inference, the converters and
    raster ingestion all ask here.
    """
    try:
        dt = np.dtype(dt)
    except TypeError:
        return None
    if dt.kind in "USOV" or dt.fields is not None or dt.subdtype is not None:
        return None
    name = dt.newbyteorder("=").name if dt.byteorder not in "=|" else dt.name
    return name if name in spec.NUMERIC_DTYPES else None


def _explain(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
