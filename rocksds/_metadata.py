"""Reading and writing the metadata column family (SPEC.md, "Metadata").

Shared by the reader, the writer and the validator: it turns the raw
``schema`` and ``count`` records into a :class:`Schema` and an ``int``, with
the errors SPEC.md names.
"""

from __future__ import annotations

import os
from typing import Any

from ._storage import Storage, list_column_families
from .errors import ArgumentTypeError, CorruptionError, InvalidArgumentError, NotADatasetError, SchemaError
from .keys import decode_count, encode_count
from .schema import Schema
from .spec import COUNT_KEY, META_CF, SCHEMA_KEY

__all__ = ["as_path", "check_is_dataset", "probe_schema", "log_damaged", "read_schema", "read_count", "metadata_puts"]


def as_path(path: Any) -> str:
    """``path`` as a ``str``, or ArgumentTypeError / InvalidArgumentError saying what is wrong."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    out = os.fspath(path)
    if not isinstance(out, str):
        raise ArgumentTypeError(f"path must be a text path, got {type(out).__name__}")
    if not out or "\0" in out:
        raise InvalidArgumentError(f"path {out!r} is empty or contains a NUL character")
    return out


def check_is_dataset(path: str) -> list[str]:
    """Column families of ``path`` if it holds a metadata column family, else raise."""
    if not os.path.exists(path):
        raise NotADatasetError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise NotADatasetError(f"{path} is not a directory, so not a rocksds dataset")
    cfs = list_column_families(path)
    if META_CF not in cfs:
        raise NotADatasetError(f"{path} is a RocksDB database but not a rocksds dataset (no {META_CF!r} column family)")
    return cfs


def read_schema(storage: Storage) -> Schema:
    """The validated schema of an open dataset."""
    raw = storage.get(META_CF, SCHEMA_KEY)
    if raw is None:
        raise NotADatasetError(f"{storage.path} has no schema record; it is not a (complete) rocksds dataset")
    try:
        return Schema.from_bytes(raw)
    except SchemaError as e:
        raise type(e)(f"{storage.path}: {e}") from None


def probe_schema(path: str, *, salvage: bool = False, for_append: bool = False, trust_witness: bool = True) -> Schema:
    """The validated schema of the dataset at ``path``, through a short-lived read-only handle.

    What the reader and the writer read before they know which column families to open
    (``salvage``: replay a damaged write-ahead log up to the damage, see ``rocksds._storage``).
    ``for_append``: the handle covers every column family, and a MANIFEST that looks
    rolled back raises CorruptionError before a writable open could delete the files
    it no longer names: table files it does not name (see ``Storage.rolled_back_tables``),
    or a count below the committed-count witness (see ``rocksds._witness``), unless
    ``trust_witness`` is false (a salvage that drops commits on purpose).
    """
    names = list_column_families(path) if for_append else [META_CF]
    for attempt in range(2):
        probe = Storage.open_read_only(path, names, salvage=salvage)
        try:
            if not for_append:
                return read_schema(probe)
            lost = probe.rolled_back_tables()
            if lost:
                shown = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
                raise CorruptionError(
                    f"{path}: its MANIFEST does not name {len(lost)} table files newer than every file it names "
                    f"({shown}): the MANIFEST was rolled back (truncated, or replaced by an older copy) and those "
                    "files hold commits it no longer knows. Nothing was changed. Restore the dataset directory "
                    "(at least its MANIFEST-* and CURRENT files) from a complete copy; appending now would let "
                    "RocksDB delete those files for good. `rocksds validate` lists them."
                )
            schema = read_schema(probe)
            if trust_witness:
                count, witness = read_count(probe), probe.witness
                if attempt == 0 and witness.problem is None and witness.count is not None and count < witness.count:
                    continue  # replaced by a rename between the witness and the snapshot? (see Dataset._open)
                witness.check(path, count)
            return schema
        finally:
            probe.close()
    raise AssertionError("unreachable")


def log_damaged(path: str) -> bool:
    """Whether the dataset's write-ahead log is damaged, so that a salvage would drop commits (``rocksds._storage``)."""
    try:
        Storage.open_read_only(path, [META_CF]).close()
    except CorruptionError:
        return True
    return False


def read_count(storage: Storage) -> int:
    """The number of committed samples of an open dataset."""
    raw = storage.get(META_CF, COUNT_KEY)
    if raw is None:
        raise CorruptionError(f"{storage.path} has a schema but no count record")
    try:
        return decode_count(raw)
    except ValueError as e:
        raise CorruptionError(f"{storage.path}: malformed count record: {e}") from None


def metadata_puts(schema: Schema | None, count: int) -> list[tuple[str, bytes, bytes]]:
    """The puts that record ``count`` (and the schema, when creating)."""
    puts = [(META_CF, COUNT_KEY, encode_count(count))]
    if schema is not None:
        puts.insert(0, (META_CF, SCHEMA_KEY, schema.to_bytes()))
    return puts
