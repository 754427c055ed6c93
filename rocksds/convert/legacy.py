"""The in-house RocksDB layout that predates rocksds -> rocksds.

That layout is a RocksDB directory with:

- one column family per field, named after the field;
- sample keys that are decimal ASCII (``b"0"``, ``b"1"``, ...), listed in order
  in a text file ``keys.dat`` next to the database files (one key per line;
  commas and other whitespace also separate keys);
- values that are the raw bytes of each array (no header), in the dtype and
  byte order of the metadata;
- ``metadata.dat``, a pickle of ``{field: {"shape": tuple, "dtype": dtype}}``.

>>> from rocksds.convert import from_legacy
>>> from_legacy("old_db/", "new.rds")                      # doctest: +SKIP

Samples are written in the order ``keys.dat`` lists them, which need not be
numeric order: sample ``i`` of the output is the ``i``-th key listed. Use
``key_field`` to keep each old key in a ``str`` field.

``metadata.dat`` is read with a restricted unpickler
(:mod:`rocksds.convert._safe_pickle`) that accepts only containers, numbers,
strings and numpy dtypes, so a crafted file cannot run code. A shape may
contain one ``None`` (or ``-1``) axis, whose length is then worked out from
each value's size; such axes become variable in the output.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import Any, Optional

from typing_extensions import Unpack

import numpy as np

from .. import spec
from ..raw import RawHandle, list_column_families, open_raw_readable
from ..errors import CorruptionError, InvalidArgumentError, NotADatasetError, SchemaError
from ..schema import Field
from ._engine import OutputOptions, ConversionReport, FieldSelection, Source, convert_source, storable_dtype, field_selection
from ._safe_pickle import safe_loads

__all__ = ["from_legacy", "LegacySource", "read_legacy_metadata", "read_legacy_keys"]

_KEY = re.compile(rb"[0-9]+")
_BATCH = 256


def read_legacy_metadata(path: str) -> dict[str, tuple[tuple[Optional[int], ...], np.dtype]]:
    """``metadata.dat`` -> field -> (shape, dtype), loaded without running any code.

    Raises:
        UnsafeInputError: the pickle names anything but numpy dtypes.
        SchemaError: it loads, but is not a map of field -> {"shape", "dtype"}.
    """
    with open(path, "rb") as fh:
        meta = safe_loads(fh.read(), what=path)
    if not isinstance(meta, dict) or not meta:
        raise SchemaError(f"{path} must hold a non-empty dict of field -> {{'shape': ..., 'dtype': ...}}")
    out = {}
    for name, entry in meta.items():
        if not isinstance(name, str) or not isinstance(entry, dict) or "shape" not in entry or "dtype" not in entry:
            raise SchemaError(f"{path}: entry {name!r} must be a dict with 'shape' and 'dtype'")
        raw_shape = entry["shape"]
        if isinstance(raw_shape, (int, np.integer)):
            raw_shape = (raw_shape,)
        if not isinstance(raw_shape, (tuple, list)):
            raise SchemaError(f"{path}: field {name!r} has shape {raw_shape!r}; expected a tuple")
        shape: list[Optional[int]] = []
        for d in raw_shape:
            if d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and int(d) == -1):
                shape.append(None)
            elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= int(d) <= spec.MAX_DIM:
                shape.append(int(d))
            else:
                raise SchemaError(f"{path}: field {name!r} has shape {raw_shape!r}; entries must be integers >= 0")
        if shape.count(None) > 1:
            raise SchemaError(f"{path}: field {name!r} has more than one unknown axis; its values cannot be decoded")
        try:
            dtype = np.dtype(entry["dtype"])
        except (TypeError, ValueError) as e:
            raise SchemaError(f"{path}: field {name!r} has dtype {entry['dtype']!r}, not a numpy dtype ({e})") from None
        storable_dtype(dtype, f"{path}: field {name!r}")  # only dtypes rocksds can store
        out[name] = (tuple(shape), dtype)
    return out


def read_legacy_keys(path: str) -> list[bytes]:
    """The keys listed in ``keys.dat``, in file order.

    Raises:
        CorruptionError: a key is not decimal ASCII, or a key is listed twice.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    keys = data.replace(b",", b" ").split()
    for k in keys:
        if not _KEY.fullmatch(k):
            raise CorruptionError(f"{path}: key {k[:40]!r} is not a decimal number")
    if len(set(keys)) != len(keys):
        seen: set[bytes] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise CorruptionError(f"{path}: key {dup.decode()} is listed twice")
    return keys


class LegacySource(Source):
    """Samples of the legacy layout, in ``keys.dat`` order (see the module docstring).

    Args:
        path: the legacy database directory.
        fields: field names to convert, or old name -> new name (default: all in the metadata).
        keys_file, metadata_file: override where ``keys.dat`` / ``metadata.dat`` are
            (default: inside ``path``).
        key_field: if set, a ``str`` field of this name holds each sample's old key.
    """

    format = "legacy"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fields: FieldSelection = None,
        keys_file: Optional[str] = None,
        metadata_file: Optional[str] = None,
        key_field: Optional[str] = None,
    ) -> None:
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise NotADatasetError(f"{self.path} is not a directory")
        keys_file = keys_file or os.path.join(self.path, "keys.dat")
        metadata_file = metadata_file or os.path.join(self.path, "metadata.dat")
        for f in (keys_file, metadata_file):
            if not os.path.isfile(f):
                raise NotADatasetError(f"{f} does not exist; is {self.path} the legacy layout?")
        self._meta = read_legacy_metadata(metadata_file)
        self._keys = read_legacy_keys(keys_file)
        self._select = field_selection(list(self._meta), fields, "legacy field")
        cfs = list_column_families(self.path)
        missing = [name for name in self._select if name not in cfs]
        if missing:
            raise CorruptionError(
                f"{self.path}: metadata lists fields {missing} but the database has no such column family"
            )
        self._key_field = key_field
        self._fields = {
            new: Field(dtype=storable_dtype(self._meta[old][1], old), shape=self._meta[old][0])
            for old, new in self._select.items()
        }
        if key_field is not None:
            if key_field in self._fields:
                raise InvalidArgumentError(f"key_field {key_field!r} is also a field name")
            self._fields[key_field] = Field(dtype="str")
        self._storage: Optional[RawHandle] = open_raw_readable(self.path, list(self._select))

    def describe(self) -> str:
        return f"legacy {self.path}"

    def fields(self) -> dict[str, Field]:
        return dict(self._fields)

    def __len__(self) -> int:
        return len(self._keys)

    def _decode(self, old: str, key: bytes, value: Optional[bytes]) -> np.ndarray:
        shape, dtype = self._meta[old]
        if value is None:
            raise CorruptionError(f"{self.path}: field {old!r} has no value for key {key.decode()}")
        known = math.prod(d for d in shape if d is not None) * dtype.itemsize
        if None in shape:
            if known == 0 or len(value) % known:
                raise CorruptionError(
                    f"{self.path}: field {old!r}, key {key.decode()}: {len(value)} bytes do not fit shape {shape}"
                )
            shape = tuple(len(value) // known if d is None else d for d in shape)
        elif len(value) != known:
            raise CorruptionError(
                f"{self.path}: field {old!r}, key {key.decode()}: value is {len(value)} bytes, "
                f"shape {shape} of {dtype} needs {known}"
            )
        return np.frombuffer(value, dtype=dtype).reshape(shape)

    def samples(self) -> Iterator[dict[str, Any]]:
        assert self._storage is not None
        for start in range(0, len(self._keys), _BATCH):
            keys = self._keys[start : start + _BATCH]
            columns = {old: self._storage.multi_get(old, keys) for old in self._select}
            for i, key in enumerate(keys):
                sample: dict[str, Any] = {
                    new: self._decode(old, key, columns[old][i]) for old, new in self._select.items()
                }
                if self._key_field is not None:
                    sample[self._key_field] = key.decode()
                yield sample

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()
            self._storage = None


def from_legacy(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fields: FieldSelection = None,
    keys_file: Optional[str] = None,
    metadata_file: Optional[str] = None,
    key_field: Optional[str] = None,
    **options: Unpack[OutputOptions],
) -> ConversionReport:
    """Convert the legacy RocksDB layout, then verify every sample.

    Args:
        path, fields, keys_file, metadata_file, key_field: see :class:`LegacySource`.
        out, options: the dataset to create and how (see :func:`rocksds.convert.convert_source`).
    """
    source = LegacySource(path, fields=fields, keys_file=keys_file, metadata_file=metadata_file, key_field=key_field)
    return convert_source(source, out, **options)
