"""Raw access to the column families of a RocksDB database, below the format.

For what must see bytes rather than samples: the legacy converter (databases
that predate the format), the conformance vectors, and tests that inspect a
dataset or damage it on purpose. The handles are the storage layer's own
(``write``, ``get``, ``iterate``, ``delete_range``): keys and values are
bytes and nothing is checked against a schema. :func:`read_schema` and
:func:`read_count` decode a raw handle's metadata records.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Optional, Union

from . import spec
from ._metadata import read_count, read_schema
from ._storage import CFConfig, Storage, list_column_families

__all__ = ["RawHandle", "open_raw_readable", "raw_readable", "raw_writable", "list_column_families", "read_schema", "read_count"]

#: An open raw handle (the storage layer's class).
RawHandle = Storage

#: Column families to open: names (default table options) or name -> compression codec.
ColumnFamilies = Union[Iterable[str], Mapping[str, str], None]


def _configs(path: str, column_families: ColumnFamilies, checksum: str) -> dict[str, CFConfig]:
    if column_families is None:
        return {name: CFConfig(checksum=checksum) for name in list_column_families(path)}
    if isinstance(column_families, Mapping):
        return {name: CFConfig(compression=codec, checksum=checksum) for name, codec in column_families.items()}
    return {name: CFConfig(checksum=checksum) for name in column_families}


@contextmanager
def raw_writable(path: Union[str, "os.PathLike[str]"], column_families: ColumnFamilies = None, *,
                 create: bool = False, checksum: str = spec.TABLE_CHECKSUM) -> Iterator[RawHandle]:
    """A writable handle on ``column_families`` (default: every one ``path`` has); flushed and closed on exit.

    With ``create`` a new database is made at ``path`` with those column families. New tables
    get block checksums of type ``checksum`` (one of ``rocksds.spec.PORTABLE_CHECKSUMS``).
    """
    path = os.fspath(path)
    storage = Storage.open_writable(path, _configs(path, column_families, checksum), create=create)
    try:
        yield storage
    finally:
        storage.close()


def open_raw_readable(path: Union[str, "os.PathLike[str]"], column_families: Optional[Iterable[str]] = None
                      ) -> RawHandle:
    """A read-only handle on ``column_families`` (default: every one ``path`` has); the caller closes it."""
    path = os.fspath(path)
    names = list_column_families(path) if column_families is None else list(column_families)
    return Storage.open_read_only(path, names)


@contextmanager
def raw_readable(path: Union[str, "os.PathLike[str]"], column_families: Optional[Iterable[str]] = None
                 ) -> Iterator[RawHandle]:
    """A read-only handle on ``column_families`` (default: every one ``path`` has), without touching ``path``."""
    storage = open_raw_readable(path, column_families)
    try:
        yield storage
    finally:
        storage.close()
