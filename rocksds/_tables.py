"""The properties block of a RocksDB block-based table file, read without RocksDB.

SPEC.md 6: the codec recorded in a field's tables is the one a reader
decodes, whatever the schema's ``compression`` says; a validator warns when
the two differ. RocksDB exposes no per-file codec through the binding, but
every table file names its column family and codec in its properties block,
which this module reads: footer -> metaindex block -> ``rocksdb.properties``.

Only the layouts SPEC.md 6 allows writers to produce (block-based tables,
footer format versions 1 to 5) are understood; anything else yields ``None``,
never an exception, since a table RocksDB reads but this parser does not know
is no fault of the dataset. Standard library only.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Optional

__all__ = ["CODEC_NAMES", "TableFooter", "read_table_footer", "table_properties"]

#: Block-based table magic number, the last 8 bytes of the file (little-endian).
_MAGIC = 0x88E241B785F4CFF7
#: checksum type (1) + two block handles padded to 40 bytes + format_version (4) + magic (8).
_FOOTER_BYTES = 53
#: Every block is followed by a compression type byte and a 4-byte checksum.
_TRAILER_BYTES = 5
#: Meta blocks this large are not what RocksDB writes; refuse before reading them.
_MAX_META_BLOCK = 4 * 2**20

#: RocksDB's ChecksumType enum, as stored in the footer's first byte.
_CHECKSUM_NAMES = {0: "none", 1: "crc32c", 2: "xxhash", 3: "xxhash64", 4: "xxh3"}

#: RocksDB's name of a codec (table property ``rocksdb.compression``) -> SPEC.md's name.
CODEC_NAMES = {
    "NoCompression": "none",
    "Snappy": "snappy",
    "LZ4": "lz4",
    "LZ4HC": "lz4hc",
    "Zlib": "zlib",
    "ZSTD": "zstd",
    "ZSTDNotFinal": "zstd",
    "BZip2": "bz2",
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _entries(block: bytes) -> dict[bytes, bytes]:
    """Key -> value of an uncompressed block (prefix-compressed keys, restart array at the end)."""
    if len(block) < 4:
        raise ValueError("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0] & 0x7FFFFFFF
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ValueError("bad restart count")
    out: dict[bytes, bytes] = {}
    key = b""
    pos = 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + size > end:
            raise ValueError("bad block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out[key] = block[pos : pos + size]
        pos += size
    return out


def _block(fh, size: int, handle: bytes, pos: int = 0) -> tuple[bytes, int]:
    offset, pos = _varint(handle, pos)
    length, pos = _varint(handle, pos)
    if length > _MAX_META_BLOCK or offset + length + _TRAILER_BYTES > size:
        raise ValueError("block handle outside the file")
    fh.seek(offset)
    data = fh.read(length + _TRAILER_BYTES)
    if len(data) != length + _TRAILER_BYTES or data[length] != 0:  # meta blocks are stored uncompressed
        raise ValueError("unreadable or compressed meta block")
    return data[:length], pos


@dataclass(frozen=True)
class TableFooter:
    """What the footer of one table file says about its portability (SPEC.md 6)."""

    format_version: int
    checksum: str


def _footer(fh) -> Optional[tuple[int, bytes]]:
    """(file size, footer bytes) of an open table file, or ``None`` if it has no block-based footer."""
    size = os.fstat(fh.fileno()).st_size
    if size < _FOOTER_BYTES:
        return None
    fh.seek(size - _FOOTER_BYTES)
    footer = fh.read(_FOOTER_BYTES)
    if len(footer) != _FOOTER_BYTES or struct.unpack_from("<Q", footer, _FOOTER_BYTES - 8)[0] != _MAGIC:
        return None
    return size, footer


def read_table_footer(path: str) -> Optional[TableFooter]:
    """The format_version and block checksum type a table file's footer names, or ``None``
    if it is not a block-based table (any format_version: a validator reports the unportable ones)."""
    try:
        with open(path, "rb") as fh:
            found = _footer(fh)
    except OSError:
        return None
    if found is None:
        return None
    footer = found[1]
    version = struct.unpack_from("<I", footer, _FOOTER_BYTES - 12)[0]
    return TableFooter(version, _CHECKSUM_NAMES.get(footer[0], f"unknown ({footer[0]})"))


def table_properties(path: str) -> Optional[dict[str, str]]:
    """The text properties of the table file at ``path`` (``rocksdb.compression``,
    ``rocksdb.column.family.name``, ...), or ``None`` if it is not a table this module reads."""
    try:
        with open(path, "rb") as fh:
            found = _footer(fh)
            if found is None:
                return None
            size, footer = found
            if not 1 <= struct.unpack_from("<I", footer, _FOOTER_BYTES - 12)[0] <= 5:
                return None
            meta, _pos = _block(fh, size, footer, 1)
            handle = _entries(meta).get(b"rocksdb.properties")
            if handle is None:
                return None
            props, _pos = _block(fh, size, handle)
            return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in _entries(props).items()
                    if k in (b"rocksdb.compression", b"rocksdb.column.family.name")}
    except (OSError, ValueError, struct.error):
        return None
