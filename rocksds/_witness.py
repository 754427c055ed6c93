"""The committed-count witness: a file beside RocksDB's that a rolled-back MANIFEST cannot take back.

RocksDB's own files say how many samples are committed, and when its
MANIFEST is truncated or replaced by an older copy they all agree on a
smaller dataset: losing the last flush looks exactly like a flush a crash
interrupted. A key inside RocksDB rolls back with the MANIFEST, so it cannot
tell the two apart. ``rocksds-committed`` (SPEC.md 7.1) lives outside
RocksDB's state: writers replace it with the count only once that count is
durable, so ``count`` below it means the MANIFEST lost commits.

Layout (``WITNESS_BYTES`` = 24 bytes, big-endian): the magic ``RDSCOUNT``,
the layout ``1`` as uint32, the count as uint64 (below 2^63), and the CRC-32
(zlib's) of those 20 bytes as uint32.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Optional

from ._files import REPLACING_SUFFIX, read_regular, replace_atomically
from .errors import CorruptionError
from .spec import MAX_COUNT, WITNESS_BYTES, WITNESS_FILE, WITNESS_LAYOUT, WITNESS_MAGIC

__all__ = ["WITNESS_FILES", "Witness", "encode_witness", "decode_witness", "read_witness", "write_witness",
           "rolled_back_error"]

#: Files a reader need not see (RocksDB never reads them): the witness and the copy a writer renames over it.
WITNESS_FILES = (WITNESS_FILE, WITNESS_FILE + REPLACING_SUFFIX)


@dataclass(frozen=True)
class Witness:
    """What a dataset directory's witness file says.

    Attributes:
        count: the lower bound of ``count`` it holds; ``None`` when there is none (no file, or a bad one).
        problem: why the file cannot be trusted (not a regular file, wrong size, bad checksum ...), else ``None``.
    """

    count: Optional[int] = None
    problem: Optional[str] = None

    def check(self, path: str, count: int) -> None:
        """Raise CorruptionError if the file is bad or ``count`` (what RocksDB's files give) is below it."""
        if self.problem is not None:
            raise CorruptionError(
                f"{path}: {self.problem}. Restore the dataset from a copy; if every sample is known to be there "
                f"(`rocksds validate`), deleting {WITNESS_FILE} makes it readable again"
            )
        if self.count is not None and count < self.count:
            raise rolled_back_error(path, count, self.count)


def rolled_back_error(path: str, count: int, witnessed: int) -> CorruptionError:
    """The error of a dataset whose MANIFEST gives ``count`` samples where ``witnessed`` were committed."""
    return CorruptionError(
        f"{path}: RocksDB's files give {count} samples, but {witnessed} were committed ({WITNESS_FILE}): the "
        "MANIFEST was rolled back (truncated, or replaced by an older copy) and lost commits. Nothing was "
        "changed. Restore CURRENT and the MANIFEST-* files from a complete copy of the dataset"
    )


def encode_witness(count: int) -> bytes:
    """The 24 bytes of a witness of ``count``."""
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"count {count} is outside 0..2**63-1")
    body = WITNESS_MAGIC + WITNESS_LAYOUT.to_bytes(4, "big") + count.to_bytes(8, "big")
    return body + zlib.crc32(body).to_bytes(4, "big")


def decode_witness(data: bytes) -> int:
    """The count a witness file's bytes hold, or ValueError saying what is wrong with them."""
    if len(data) != WITNESS_BYTES:
        raise ValueError(f"it is {len(data)} bytes, not {WITNESS_BYTES}")
    if data[:8] != WITNESS_MAGIC:
        raise ValueError(f"it does not start with {WITNESS_MAGIC!r}")
    layout = int.from_bytes(data[8:12], "big")
    if layout != WITNESS_LAYOUT:
        raise ValueError(f"it names layout {layout}, not {WITNESS_LAYOUT}")
    if zlib.crc32(data[:20]) != int.from_bytes(data[20:], "big"):
        raise ValueError("its checksum does not match")
    count = int.from_bytes(data[12:20], "big")
    if count > MAX_COUNT:
        raise ValueError(f"its count {count} is not below 2**63")
    return count


def read_witness(path: str) -> Witness:
    """The witness of the dataset directory ``path``; never raises for a bad file (see :attr:`Witness.problem`).

    Read before RocksDB's files are: the witness only grows once the count it
    names is durable, so a MANIFEST read afterwards holds at least that many samples.
    """
    file = os.path.join(path, WITNESS_FILE)
    try:
        data = read_regular(file, WITNESS_BYTES)
    except CorruptionError as e:  # a FIFO, a device, a directory, a file too large
        return Witness(problem=f"its committed-count witness is unusable: {str(e).split(';')[0]}")
    except OSError as e:
        return Witness(problem=f"its committed-count witness {file} cannot be read ({e.strerror or e})")
    if data is None:
        return Witness()
    try:
        return Witness(count=decode_witness(data))
    except ValueError as e:
        return Witness(problem=f"its committed-count witness {file} is damaged: {e}")


def write_witness(path: str, count: int, *, lowering: bool = False) -> None:
    """Record that ``count`` samples of the dataset at ``path`` are durable (the caller holds the writer's lock).

    A witness that grows needs no directory fsync: should a power loss undo
    the rename, the previous witness comes back, a smaller count that is still
    a true lower bound. A witness ``lowering`` the count (a salvage) must
    reach the disk, or the old, larger one would come back and refuse the dataset.
    """
    replace_atomically(os.path.join(path, WITNESS_FILE), encode_witness(count), sync_directory=lowering)
