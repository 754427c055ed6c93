"""Sample index <-> RocksDB key, as SPEC.md fixes it: 8-byte big-endian unsigned.

Big-endian makes RocksDB's bytewise key order equal to index order, so a
sequential iterator walks samples 0, 1, 2, ... No I/O here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .spec import KEY_BYTES, MAX_COUNT

__all__ = ["encode_key", "decode_key", "encode_keys", "encode_count", "decode_count"]

_U64 = struct.Struct(">Q")


def encode_key(index: int) -> bytes:
    """The key of sample ``index`` (0 <= index < 2**63)."""
    return _U64.pack(index)


def decode_key(key: bytes) -> int:
    """The sample index a key encodes; ``ValueError`` if it is not a valid key."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a sample key is {KEY_BYTES} bytes, got {len(key)}")
    value: int = _U64.unpack(key)[0]
    if value > MAX_COUNT:
        raise ValueError(f"key {key.hex()} is above the largest sample index")
    return value


def encode_keys(indices: Iterable[int]) -> list[bytes]:
    """Keys of many samples, in the given order."""
    pack = _U64.pack
    return [pack(i) for i in indices]


def encode_count(count: int) -> bytes:
    """The value of the metadata ``count`` record."""
    return _U64.pack(count)


def decode_count(value: bytes) -> int:
    """Parse the ``count`` record; ``ValueError`` if malformed."""
    return decode_key(value)
