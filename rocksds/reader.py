"""Reading datasets: :class:`Dataset`, returned by ``rocksds.open(path)``.

Opening reads the schema and count from the metadata column family, checks
the format version and features, and opens only the column families of the
requested fields, read-only, without writing anything to the dataset
directory. Reads return numpy arrays; never imports torch.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import numpy as np

from ._metadata import as_path, check_is_dataset, probe_schema, read_count, read_schema
from ._storage import CFConfig, Storage
from .errors import ArgumentTypeError, ClosedError, CorruptionError, IndexOutOfRangeError, InvalidArgumentError
from .errors import NotADatasetError
from .keys import encode_key, encode_keys
from .records import RecordCodec, Value
from .schema import Schema
from .spec import META_CF

__all__ = ["Dataset", "DEFAULT_CACHE_GB", "MAX_CACHE_GB", "fork_generation"]

#: Default block cache, shared by the field column families of one handle.
DEFAULT_CACHE_GB = 0.25
#: Refuse block caches larger than this (a typo guard, not a RocksDB limit).
MAX_CACHE_GB = 1024.0

#: Bumped in every child process forked through Python (os.fork, multiprocessing, DataLoader
#: workers), so a handle notices the fork with an integer compare instead of a getpid() system
#: call on every read.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_generation() -> int:
    """How many forks lie between the first process and this one: a handle made in another generation
    belongs to an ancestor process and must not be used here (its RocksDB threads did not survive the fork)."""
    return _fork_generation

#: Handles inherited through fork(): kept alive in the child so their destructor never runs there.
_INHERITED: list[Storage] = []

Sample = dict[str, Value]
Batch = dict[str, Union[np.ndarray, list[Value]]]


def _cache_bytes(cache_gb: Any) -> int:
    if isinstance(cache_gb, bool) or not isinstance(cache_gb, (int, float)):
        raise ArgumentTypeError(f"cache_gb must be a number of GiB, got {type(cache_gb).__name__}")
    if not math.isfinite(cache_gb) or not 0 <= cache_gb <= MAX_CACHE_GB:
        raise InvalidArgumentError(f"cache_gb must be between 0 and {MAX_CACHE_GB}, got {cache_gb!r}")
    return int(cache_gb * 2**30)


def _field_names(fields: Any) -> Optional[list[str]]:
    if fields is None:
        return None
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Sequence):
        raise ArgumentTypeError(f"fields must be a list of field names, got {type(fields).__name__}")
    names = list(fields)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ArgumentTypeError(f"fields must be a list of field names (str), got {bad[0]!r}")
    if not names:
        raise InvalidArgumentError("fields=[] selects nothing; pass None to read every field")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"fields lists a name twice: {names}")
    return names


def _bloom_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ArgumentTypeError(f"bloom_bits must be an integer, got {type(bits).__name__}")
    if not 0 <= bits <= 64:
        raise InvalidArgumentError(f"bloom_bits must be between 0 and 64, got {bits}")
    return bits


class Dataset:
    """A read-only, random-access view of a rocksds dataset.

    ``ds[i]`` returns one sample (a dict of field -> value; arrays are
    read-only views over the fetched bytes, no copy), ``ds[a:b]`` and
    :meth:`get_batch` return batches (stacked, writable arrays for fixed-shape
    fields, lists for variable ones; one RocksDB MultiGet per field), and
    iterating scans the samples in order with RocksDB iterators.

    The handle sees the dataset as it was when opened (a consistent snapshot
    even while a writer appends); :meth:`refresh` reopens to see new commits.
    A handle used in a forked child process reopens itself there, so one
    handle can be shared with DataLoader workers. Pickling keeps the path and
    options only.

    Args:
        path: the dataset directory.
        fields: names of the fields to read (default: all, in schema order).
            Column families of other fields are not opened at all.
        cache_gb: size of the block cache shared by the opened fields, in GiB;
            0 disables it (every read decompresses from the OS page cache).
        bloom_bits: bloom filter bits per key used by lookups (must match how
            the tables were written to take effect; SPEC.md default 10).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fields: Optional[Sequence[str]] = None,
        cache_gb: float = DEFAULT_CACHE_GB,
        bloom_bits: int = 10,
    ) -> None:
        self.path = as_path(path)
        self._cache_bytes = _cache_bytes(cache_gb)
        self._options = {"fields": _field_names(fields), "cache_gb": cache_gb, "bloom_bits": _bloom_bits(bloom_bits)}
        self._storage: Optional[Storage] = None
        self._closed = False
        self._open()

    # ------------------------------------------------------------------ lifetime

    def _open(self) -> None:
        existing = set(check_is_dataset(self.path))
        schema = probe_schema(self.path).select(self._options["fields"])
        for name, f in schema.fields.items():
            if f.column_family not in existing:
                raise CorruptionError(
                    f"{self.path}: field {name!r} has no column family {f.column_family!r}; the dataset is "
                    "damaged (run `rocksds validate` for details, or open it with fields=[...] to skip the field)"
                )
        names = [META_CF] + [f.column_family for f in schema.fields.values()]  # type: ignore[misc]
        bloom = CFConfig(bloom_bits=self._options["bloom_bits"])
        storage = Storage.open_read_only(
            self.path, names, configs={n: bloom for n in names[1:]}, cache_bytes=self._cache_bytes
        )
        try:
            # Re-read under the handle that serves the reads: a writer may have committed since the probe.
            self.full_schema = read_schema(storage)
            self.schema: Schema = self.full_schema.select(self._options["fields"])
            self._count = read_count(storage)
        except BaseException:
            storage.close()
            raise
        self._codecs = [(RecordCodec(n, f), f.column_family) for n, f in self.schema.fields.items()]
        self._get_row = storage.row_getter([cf for _codec, cf in self._codecs])  # type: ignore[misc]
        self._decoders = [(codec.name, codec.decode) for codec, _cf in self._codecs]
        self._storage = storage
        self._generation = _fork_generation

    def _live(self) -> Storage:
        storage = self._storage
        if storage is None or self._generation != _fork_generation:
            if self._closed:
                raise ClosedError(f"dataset {self.path} is closed")
            # First use in a forked child: never share the parent's RocksDB handle,
            # and never close it here either (its background threads did not
            # survive the fork), so keep the inherited object alive, unused.
            if storage is not None:
                _INHERITED.append(storage)
            self._storage = None
            self._open()
            storage = self._storage
            assert storage is not None
        return storage

    def refresh(self) -> None:
        """Reopen to see samples committed since this handle was opened."""
        self._drop()
        self._open()

    def _drop(self) -> None:
        storage, self._storage = self._storage, None
        if storage is not None:
            if self._generation == _fork_generation:
                storage.close()
            else:
                _INHERITED.append(storage)

    def close(self) -> None:
        """Release the RocksDB handle; idempotent."""
        self._closed = True
        self._drop()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "options": self._options, "closed": self._closed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], **state["options"])  # type: ignore[misc]
        if state["closed"]:
            self.close()

    # ------------------------------------------------------------------ metadata

    def __len__(self) -> int:
        return self._count

    @property
    def attrs(self) -> dict[str, Any]:
        """User metadata from the schema."""
        return self.schema.attrs

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the fields this handle reads (``schema.fields`` maps them to their :class:`Field`)."""
        return self.schema.names

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}: {f.dtype}{list(f.shape)}" for n, f in self.schema.fields.items()
        )
        return f"<rocksds.Dataset {self.path!r} n={self._count} {{{shown}}}>"

    # ------------------------------------------------------------------ reads

    def _index(self, i: Any) -> int:
        try:
            i = operator.index(i)
        except TypeError:
            raise ArgumentTypeError(f"sample indices must be integers, got {type(i).__name__}") from None
        n = self._count
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexOutOfRangeError(f"index {i if i >= 0 else i - n} out of range for dataset of {n} samples")
        return i

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice):
            try:
                bounds = item.indices(self._count)
            except (TypeError, ValueError) as e:  # a zero step, or non-integer bounds
                raise InvalidArgumentError(f"bad slice {item!r}: {e}") from None
            return self.get_batch(range(*bounds))
        return self.get(item)

    def get(self, index: int) -> Sample:
        """Sample ``index`` (negative counts from the end)."""
        if type(index) is not int or not 0 <= index < self._count:
            index = self._index(index)
        if self._generation != _fork_generation or self._storage is None:
            self._live()
        records = self._get_row(encode_key(index))
        out: Sample = {}
        for (name, decode), record in zip(self._decoders, records):
            if record is None:
                raise CorruptionError(f"{self.path}: field {name!r} has no record for sample {index}")
            out[name] = decode(record)
        return out

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """Samples at ``indices`` as one batch: one MultiGet per field.

        Fixed-shape fields come back stacked (``(len(indices), *shape)``,
        writable); variable-shape, ``bytes`` and ``str`` fields as lists.
        """
        if isinstance(indices, np.ndarray):
            if indices.ndim != 1 or indices.dtype.kind not in "iu":
                raise ArgumentTypeError("indices must be a 1-D integer array")
            n = self._count
            if indices.dtype.kind == "u" and indices.size and int(indices.max()) >= n:
                # Checked before the cast: a uint64 above 2**63 would wrap to a negative index.
                raise IndexOutOfRangeError(f"index {int(indices.max())} out of range for dataset of {n} samples")
            idx = indices.astype(np.int64, copy=True)
            idx[idx < 0] += n
            bad = (idx < 0) | (idx >= n)
            if bad.any():
                raise IndexOutOfRangeError(
                    f"index {int(indices[bad.argmax()])} out of range for dataset of {n} samples"
                )
            keys = encode_keys(idx.tolist())
        else:
            if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
                raise ArgumentTypeError(f"indices must be a sequence of integers, got {type(indices).__name__}")
            keys = encode_keys([self._index(i) for i in indices])
        storage = self._live()
        out: Batch = {}
        for codec, cf in self._codecs:
            records = storage.multi_get(cf, keys)
            if None in records:
                missing = records.index(None)
                raise CorruptionError(f"{self.path}: field {codec.name!r} has no record for key {keys[missing].hex()}")
            out[codec.name] = codec.decode_batch(records)  # type: ignore[arg-type]
        return out

    def iter(self, start: int = 0, stop: Optional[int] = None) -> Iterator[Sample]:
        """Samples ``start..stop-1`` in order, read with one sequential iterator per field."""
        n = self._count
        try:
            start = operator.index(start)
            stop = n if stop is None else min(operator.index(stop), n)
        except TypeError:
            raise ArgumentTypeError(f"start and stop must be integers, got {start!r}, {stop!r}") from None
        if not 0 <= start <= n:
            raise IndexOutOfRangeError(f"start {start} out of range for dataset of {n} samples")
        if stop < 0:
            raise IndexOutOfRangeError(f"stop {stop} is negative; iter() takes 0 <= start <= stop")
        # Arguments are checked here, when iter() is called, not at the first next().
        return self._scan(start, stop)

    def _scan(self, start: int, stop: int) -> Iterator[Sample]:
        n = self._count
        if start >= stop:
            return
        storage = self._live()
        lo, hi = encode_key(start), encode_key(stop)
        iters = [storage.iterate(cf, lo, hi) for _codec, cf in self._codecs]
        names = [codec for codec, _cf in self._codecs]
        expected = start
        for rows in zip(*iters):
            want = encode_key(expected)
            sample: Sample = {}
            for codec, (k, v) in zip(names, rows):
                if k != want:
                    raise CorruptionError(f"{self.path}: field {codec.name!r} lacks the record of sample {expected}")
                sample[codec.name] = codec.decode(v)
            yield sample
            expected += 1
        if expected != stop:
            raise CorruptionError(f"{self.path}: records end at sample {expected}, but count is {n}")

    def __iter__(self) -> Iterator[Sample]:
        return self.iter()


def open_dataset(path: str | os.PathLike[str], **kwargs: Any) -> Dataset:
    """Open ``path`` for reading (see :class:`Dataset`)."""
    if not os.path.exists(as_path(path)):
        raise NotADatasetError(f"{os.fspath(path)} does not exist")
    return Dataset(path, **kwargs)
