"""Constants of the rocksds on-disk format, as SPEC.md defines them.

Every name, version and limit that SPEC.md fixes lives here and only here, so
the spec and the code cannot drift apart silently. Standard library only.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "META_CF",
    "DEFAULT_CF",
    "SCHEMA_KEY",
    "COUNT_KEY",
    "STATS_KEY",
    "STATS_VERSION",
    "MAX_STATS_BYTES",
    "WITNESS_FILE",
    "WITNESS_MAGIC",
    "WITNESS_LAYOUT",
    "WITNESS_BYTES",
    "KEY_BYTES",
    "VAR_DIM_BYTES",
    "NUMERIC_DTYPES",
    "OPAQUE_DTYPES",
    "DTYPES",
    "COMPRESSIONS",
    "REQUIRED_COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_FLOAT_COMPRESSION",
    "FLOAT_DTYPES",
    "KNOWN_READER_FEATURES",
    "KNOWN_WRITER_FEATURES",
    "NAME_PATTERN",
    "MAX_NAME_LEN",
    "MAX_FIELDS",
    "MAX_NDIM",
    "MAX_DIM",
    "MAX_RECORD_BYTES",
    "MAX_SCHEMA_BYTES",
    "MAX_CONTAINER_LEN",
    "MAX_ATTRS_DEPTH",
    "MAX_DOCUMENT_DEPTH",
    "MAX_COUNT",
    "TABLE_FORMAT_VERSION",
    "TABLE_CHECKSUM",
    "PORTABLE_CHECKSUMS",
]

FORMAT_NAME: Final = "rocksds"
FORMAT_MAJOR: Final = 1
FORMAT_MINOR: Final = 3
FORMAT_VERSION: Final = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"

#: Column family holding the metadata records.
META_CF: Final = "__rocksds__"
#: RocksDB's own column family; it exists in every database and holds nothing.
DEFAULT_CF: Final = "default"
#: Keys inside ``META_CF``.
SCHEMA_KEY: Final = b"schema"
COUNT_KEY: Final = b"count"
#: Optional key inside ``META_CF`` (since 1.2): per-band statistics, a msgpack map (SPEC.md 2.1).
STATS_KEY: Final = b"stats"
#: The ``version`` of the stats record layout this library reads and writes.
STATS_VERSION: Final = 1
#: Readers refuse a stats record larger than this before decoding it.
MAX_STATS_BYTES: Final = 64 * 2**20

#: The committed-count witness (SPEC.md 7.1, since 1.3): an optional file in the dataset directory,
#: outside RocksDB's own files, holding a lower bound of ``count`` that a rolled-back MANIFEST
#: cannot take back with it. RocksDB never parses the name as one of its files, so never deletes it.
WITNESS_FILE: Final = "rocksds-committed"
#: Its first 8 bytes.
WITNESS_MAGIC: Final = b"RDSCOUNT"
#: The layout its bytes 8..11 name; a later layout gets another file name.
WITNESS_LAYOUT: Final = 1
#: Its exact size: magic, layout (uint32), count (uint64), CRC-32 of the 20 bytes before (uint32), big-endian.
WITNESS_BYTES: Final = 24

#: A sample's key is its index as this many big-endian bytes; so is ``count``.
KEY_BYTES: Final = 8
#: Each variable (null) dimension of a record is prefixed as a little-endian uint32.
VAR_DIM_BYTES: Final = 4

#: dtype name -> little-endian numpy type string.
NUMERIC_DTYPES: Final = {
    "bool": "|b1",
    "int8": "|i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "|u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "float16": "<f2",
    "float32": "<f4",
    "float64": "<f8",
    "complex64": "<c8",
    "complex128": "<c16",
}
#: Variable-length opaque values; their shape must be [].
OPAQUE_DTYPES: Final = frozenset({"bytes", "str"})
DTYPES: Final = frozenset(NUMERIC_DTYPES) | OPAQUE_DTYPES

#: Compression names a schema may use.
COMPRESSIONS: Final = frozenset({"none", "snappy", "lz4", "lz4hc", "zlib", "zstd", "bz2"})
#: Codecs every conforming reader must support; others are optional.
REQUIRED_COMPRESSIONS: Final = frozenset({"none", "snappy", "lz4"})
#: The reference writer's codec for a field that names none: floating-point (and complex) imagery is
#: close to incompressible, and lz4 spends CPU on every block only to store it raw (measured 2,728 vs
#: 3,860 chips/s written); every other dtype gets lz4 (SPEC.md 6).
DEFAULT_COMPRESSION: Final = "lz4"
DEFAULT_FLOAT_COMPRESSION: Final = "none"
FLOAT_DTYPES: Final = frozenset({"float16", "float32", "float64", "complex64", "complex128"})

#: Features this implementation understands (SPEC.md, "Versioning").
KNOWN_READER_FEATURES: Final = frozenset[str]()
KNOWN_WRITER_FEATURES: Final = frozenset[str]()

#: Field names (and so column family names by default).
NAME_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
MAX_NAME_LEN: Final = 128

# Limits a reader applies before trusting a schema document (SPEC.md, "Security").
MAX_FIELDS: Final = 1024
MAX_NDIM: Final = 32
MAX_DIM: Final = 2**32 - 1
MAX_RECORD_BYTES: Final = 2**31 - 1
MAX_SCHEMA_BYTES: Final = 16 * 2**20
#: Entries of one msgpack array or map in a schema document.
MAX_CONTAINER_LEN: Final = 2**20
MAX_ATTRS_DEPTH: Final = 32
#: Containers nesting a value of the schema document, the document's own map included (SPEC.md 9):
#: bounds every recursive walk of a decoded document, unknown keys included.
MAX_DOCUMENT_DEPTH: Final = 64
MAX_COUNT: Final = 2**63 - 1

#: Block-based table settings that keep files readable by RocksDB 6.x.
TABLE_FORMAT_VERSION: Final = 5
#: Block checksum the reference writer puts in new tables (SPEC.md 6, since 1.1). The portable
#: rocksdict wheels compute crc32c in software: verifying a 262 KB block cost about ten times reading
#: it, where xxHash64 costs a fraction; RocksDB 6.x and later read both.
TABLE_CHECKSUM: Final = "xxhash64"
#: Table checksum types a writer may use: every RocksDB since 6.0 reads them (xxh3 needs 6.27).
PORTABLE_CHECKSUMS: Final = frozenset({"crc32c", "xxhash64"})
