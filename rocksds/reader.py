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
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from ._metadata import as_path, read_count, read_schema
from ._memory import memory_limit
from ._storage import CFConfig, Storage, table_bytes
from .errors import ArgumentTypeError, ClosedError, CorruptionError, IndexOutOfRangeError, InvalidArgumentError
from .errors import NotADatasetError
from .keys import encode_key, encode_keys
from .records import RecordCodec, Value
from .schema import Schema
from .spec import META_CF, STATS_KEY
from .stats import DatasetStats

__all__ = ["Dataset", "DEFAULT_CACHE_GB", "MAX_CACHE_GB", "default_cache_bytes", "fork_generation"]

#: Default block cache of one handle (shared by its fields), at most; see :func:`default_cache_bytes`.
DEFAULT_CACHE_GB = 0.25
#: Readers map the table files when they take at most this fraction of the memory the process
#: may use (``rocksds._memory.memory_limit``: its cgroup limit or RAM), and read each block
#: with one ``pread`` otherwise. In memory, mapping saves a system call and a copy per block;
#: on a dataset larger than memory, random page faults on a mapped file read one page at a time
#: (measured on 1 MB chips in a 512 MiB cgroup: 50 samples/s mapped vs 312 with pread).
#: When the block cache can hold every table file, files are not mapped either: each block is then
#: verified once, as it enters the cache, instead of on every read (RocksDB does not cache mapped
#: uncompressed blocks).
MMAP_MAX_FRACTION = 0.5
#: Refuse block caches larger than this (a typo guard, not a RocksDB limit).
MAX_CACHE_GB = 1024.0
#: Fixed-shape records up to this size are batch-read with one RocksDB MultiGet per field; larger
#: ones with a loop of point lookups copied straight into the batch array. rocksdict's MultiGet
#: costs more per byte on large values; measured (mmap reads, xxhash64, one process): at 4 KiB
#: 233k vs 227k records/s, at 64 KiB 39k vs 58k, at 256 KiB 4.2k vs 10.6k.
MULTIGET_MAX_RECORD_BYTES = 4096
#: Opens retried when ``count`` runs ahead of the records seen (a writer committing meanwhile).
_SNAPSHOT_ATTEMPTS = 5

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


def default_cache_bytes() -> int:
    """The block cache of a handle opened without ``cache_gb``: 0.25 GiB, or an eighth of the
    memory this process may use (its cgroup limit) when that is smaller, so DataLoader workers
    in a container stay within its limit."""
    limit = memory_limit()
    full = int(DEFAULT_CACHE_GB * 2**30)
    return full if limit is None else min(full, limit // 8)


def _cache_bytes(cache_gb: Any) -> int:
    if cache_gb is None:
        return default_cache_bytes()
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


def _loop_batched(field: Any) -> bool:
    """Whether batches of ``field`` are read with a loop of point lookups (see MULTIGET_MAX_RECORD_BYTES)."""
    size = field.record_bytes
    # bool records go through the codec's batch decoding, which checks every byte (SPEC.md 4).
    return size is not None and size > MULTIGET_MAX_RECORD_BYTES and field.dtype != "bool"


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
            0 disables it. ``None`` (default): 0.25 GiB, or an eighth of this
            process's memory limit (cgroup) when that is smaller. When the
            table files fit in half the memory the process may use (and not in
            the cache) they are memory-mapped: uncompressed blocks are then read
            straight from the OS page cache, which every process shares, and the
            cache holds decompressed blocks of compressed fields only. A cache
            that holds every table file keeps every block, verified once.
        bloom_bits: bloom filter bits per key used by lookups (must match how
            the tables were written to take effect; SPEC.md default 10).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fields: Optional[Sequence[str]] = None,
        cache_gb: Optional[float] = None,
        bloom_bits: int = 10,
    ) -> None:
        self.path = as_path(path)
        self._cache_bytes = _cache_bytes(cache_gb)
        self._options = {"fields": _field_names(fields), "cache_gb": cache_gb, "bloom_bits": _bloom_bits(bloom_bits)}
        self._storage: Optional[Storage] = None
        self._closed = False
        self._columns: Any = None  # selection.ColumnCache, made by the first select()
        self._open()

    # ------------------------------------------------------------------ lifetime

    def _open(self) -> None:
        if not os.path.isdir(self.path):
            raise NotADatasetError(f"{self.path} does not exist or is not a directory, so not a rocksds dataset")
        attempt, looked_again = 0, False
        while True:
            storage, schema = self._open_snapshot()
            try:
                self._count = read_count(storage)
                self._stats_record = storage.get(META_CF, STATS_KEY)
                lagging = self._lagging_field(storage, schema, self._count)
                if lagging is not None and storage.snapshot_outdated():
                    # A writer committed between the MANIFEST copy and the log replay (see
                    # _lagging_field): every sample whose records made it into the snapshot is
                    # committed, so the snapshot is the dataset as of the last of them.
                    self._count = self._present_count(storage, schema, self._count)
                    lagging = None
                witness = storage.witness
                # Below the witness read just before the snapshot: a rolled-back MANIFEST, unless the
                # dataset was replaced by a rename (overwrite) in between; a fresh look tells them apart.
                look_again = (lagging is None and not looked_again and witness.problem is None
                              and witness.count is not None and self._count < witness.count)
                if lagging is None and not look_again:
                    witness.check(self.path, self._count)
            except BaseException:
                storage.close()
                raise
            if look_again:
                looked_again = True
                storage.close()
                continue
            if lagging is None:
                break
            storage.close()
            attempt += 1
            if attempt == _SNAPSHOT_ATTEMPTS:
                raise CorruptionError(
                    f"{self.path}: count is {self._count} but field {lagging!r} has no record for sample "
                    f"{self._count - 1}; the dataset is damaged (run `rocksds validate` for details)"
                )
            time.sleep(0.01 * attempt)
        self.schema = schema
        self._codecs = [(RecordCodec(n, f), f.column_family) for n, f in schema.fields.items()]
        self._get_row = storage.row_getter([cf for _codec, cf in self._codecs])  # type: ignore[misc]
        self._decoders = [(codec.name, codec.decode) for codec, _cf in self._codecs]
        # Per field: a point getter when batches are read with a loop of lookups, else None (MultiGet).
        self._loop_gets = [
            storage.point_getter(cf) if _loop_batched(codec.field) else None  # type: ignore[arg-type]
            for codec, cf in self._codecs
        ]
        self._storage = storage
        self._generation = _fork_generation

    def _open_snapshot(self) -> tuple[Storage, Schema]:
        """One read-only snapshot holding the metadata and the selected fields' column families."""
        chosen: dict[str, Schema] = {}

        def choose(present: list[str], meta: Storage) -> tuple[list[str], dict[str, CFConfig]]:
            full = read_schema(meta)
            schema = full.select(self._options["fields"])
            for name, f in schema.fields.items():
                if f.column_family not in present:
                    raise CorruptionError(
                        f"{self.path}: field {name!r} has no column family {f.column_family!r}; the dataset is "
                        "damaged (run `rocksds validate` for details, or open it with fields=[...] to skip the field)"
                    )
            chosen["full"], chosen["schema"] = full, schema
            configs = {
                f.column_family: CFConfig(compression=f.compression, bloom_bits=self._options["bloom_bits"],
                                          cached=cache_all or f.compression != "none")
                for f in schema.fields.values()
            }
            return [META_CF, *configs], configs  # type: ignore[list-item]

        size, limit = table_bytes(self.path), memory_limit()
        # A cache that holds every table file keeps every block; otherwise only compressed fields'
        # blocks are cached (decompressing is what a cache saves), and uncompressed ones come from
        # the page cache: mapped, or one pread per block when the files exceed memory (copying
        # blocks of a dataset larger than the cache into it would only churn it).
        cache_all = 0 < size <= self._cache_bytes
        mmap = not cache_all and (limit is None or size <= MMAP_MAX_FRACTION * limit)
        storage = Storage.open_snapshot(self.path, choose, self._cache_bytes, mmap=mmap)
        self.full_schema = chosen["full"]
        return storage, chosen["schema"]

    def _lagging_field(self, storage: Storage, schema: Schema, count: int) -> Optional[str]:
        """A field lacking the record of sample ``count - 1``, or ``None``.

        The snapshot's MANIFEST is copied before RocksDB replays the live
        write-ahead log, so a commit that ingested table files and then wrote
        ``count`` through the log can show the new ``count`` without the new
        tables. Commits append in key order, so checking the last sample is enough.
        """
        if count == 0:
            return None
        key = encode_key(count - 1)
        for name, f in schema.fields.items():
            if storage.get(f.column_family, key) is None:  # type: ignore[arg-type]
                return name
        return None

    def _present_count(self, storage: Storage, schema: Schema, count: int) -> int:
        """The largest ``n <= count`` such that every field holds samples ``0..n-1`` (a binary search:
        each field's records run from key 0 without a gap, SPEC.md 7)."""
        low, high = 0, count  # every field holds sample low - 1; some field lacks sample high - 1
        while high - low > 1:
            mid = (low + high) // 2
            if self._lagging_field(storage, schema, mid) is None:
                low = mid
            else:
                high = mid
        return low

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
                # The getters hold RocksDB's column family objects, which keep the database
                # (every table file's descriptor) alive after close(); let them go first.
                self._get_row = self._loop_gets = None  # type: ignore[assignment]
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
    def stats(self) -> Optional[DatasetStats]:
        """Per-band statistics the writer stored (SPEC.md 2.1), or None if it stored none.

        Read from the snapshot this handle opened and decoded on each access.
        ``stats.count`` is the number of samples they cover: less than
        ``len(ds)`` when a writer that does not maintain them appended since
        (``rocksds stats PATH --recompute`` updates them).

        Raises:
            CorruptionError: the record breaks SPEC.md 2.1 (the samples stay readable).
        """
        if self._stats_record is None:
            return None
        try:
            return DatasetStats.from_bytes(self._stats_record, self.full_schema.fields)
        except CorruptionError as e:
            raise CorruptionError(f"{self.path}: {e} (run `rocksds stats {self.path} --recompute`)") from None

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

    def get_batch(
        self, indices: Sequence[int] | np.ndarray, *, out: Optional[Mapping[str, np.ndarray]] = None
    ) -> Batch:
        """Samples at ``indices`` as one batch.

        Fixed-shape fields come back stacked (``(len(indices), *shape)``,
        writable); variable-shape, ``bytes`` and ``str`` fields as lists.
        Fields with records up to ``MULTIGET_MAX_RECORD_BYTES`` are fetched
        with one RocksDB MultiGet per field, larger ones with one lookup per
        sample copied straight into the batch.

        Args:
            indices: sample indices (negative counts from the end).
            out: field name -> a C-contiguous array of shape
                ``(len(indices), *shape)`` and the field's dtype to fill instead
                of allocating one (e.g. shared memory a DataLoader worker hands
                to the main process); fixed-shape fields only.
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
        given = self._check_out(out, len(keys)) if out else {}
        storage = self._live()
        batch: Batch = {}
        for (codec, cf), get in zip(self._codecs, self._loop_gets):
            dest = given.get(codec.name)
            if get is not None:
                batch[codec.name] = self._fill(codec, get, keys, dest)
                continue
            records = storage.multi_get(cf, keys)
            if None in records:
                missing = records.index(None)
                raise CorruptionError(f"{self.path}: field {codec.name!r} has no record for key {keys[missing].hex()}")
            value = codec.decode_batch(records)  # type: ignore[arg-type]
            if dest is not None:
                dest[...] = value
                value = dest
            batch[codec.name] = value
        return batch

    def read_column(self, name: str, start: int, stop: int) -> Union[np.ndarray, list[Value]]:
        """Samples ``start .. stop-1`` of one field only (one MultiGet), as :meth:`get_batch` returns them."""
        for codec, cf in self._codecs:
            if codec.name == name:
                break
        else:
            raise InvalidArgumentError(f"this handle does not read field {name!r} ({list(self.field_names)})")
        if not 0 <= start <= stop <= self._count:
            raise IndexOutOfRangeError(f"range {start}..{stop} out of range for dataset of {self._count} samples")
        keys = encode_keys(range(start, stop))
        records = self._live().multi_get(cf, keys)  # type: ignore[arg-type]
        if None in records:
            raise CorruptionError(f"{self.path}: field {name!r} has no record for key {keys[records.index(None)].hex()}")
        return codec.decode_batch(records)  # type: ignore[arg-type]

    def select(self, *, bbox: Optional[Sequence[float]] = None, crs: Any = None, within: bool = False,
               source: Any = None, where: Optional[Mapping[str, Any]] = None) -> np.ndarray:
        """Sorted indices (int64) of the samples meeting every condition given, without reading other fields.

        The first selection reads the fields it needs (``bounds``, ``source``,
        the ``where`` fields: small fixed-shape fields only) in one scan and
        keeps them on this handle; later ones read nothing. Use the result with
        ``torch.utils.data.Subset(dataset, idx)`` or ``SubsetRandomSampler(idx)``.

        Args:
            bbox: ``(left, bottom, right, top)``: chips whose ``bounds`` overlap it
                (touching is not overlapping), or lie inside it with ``within=True``.
            crs: the CRS of ``bbox`` (``"EPSG:4326"``, WKT, ...) when it is not the
                dataset's ``attrs["crs"]``; needs pyproj.
            source: scene index, input path (matched against ``attrs["sources"]``), or a list of them.
            where: field name -> condition: ``(op, value)`` with op one of
                ``== != < <= > >=``, a value (equality), or a function of the
                column (an array with a leading sample axis) returning one bool per sample.

        Raises:
            InvalidArgumentError: an unknown or large field, a malformed condition.
            DependencyNotFoundError: ``crs`` differs from the dataset's and pyproj is missing.
        """
        from .selection import ColumnCache, select

        if self._columns is None:
            self._columns = ColumnCache()
        return select(self, self._columns, bbox=bbox, crs=crs, within=within, source=source, where=where)

    def _check_out(self, out: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        given = dict(out)
        for name, arr in given.items():
            if name not in self.schema.fields:
                raise InvalidArgumentError(f"out names {name!r}, which this handle does not read ({list(self.field_names)})")
            f = self.schema.fields[name]
            want = (n, *f.shape)
            if f.is_variable or not isinstance(arr, np.ndarray) or arr.shape != want or \
                    arr.dtype != f.numpy_dtype or not arr.flags.c_contiguous or not arr.flags.writeable:
                raise InvalidArgumentError(
                    f"out[{name!r}] must be a writable C-contiguous {f.numpy_dtype} array of shape {want} "
                    f"(fixed-shape fields only)"
                )
        return given

    def _fill(self, codec: RecordCodec, get: Any, keys: list[bytes], dest: Optional[np.ndarray]) -> np.ndarray:
        """A large fixed-shape field's batch: one lookup per key, each record copied once into the result."""
        size = codec.record_bytes
        n = len(keys)
        buf = np.empty(n * size, np.uint8) if dest is None else dest.reshape(-1).view(np.uint8)
        view = memoryview(buf)
        offset = 0
        for key in keys:
            record = get(key)
            if record is None:
                raise CorruptionError(f"{self.path}: field {codec.name!r} has no record for key {key.hex()}")
            if len(record) != size:
                raise CorruptionError(f"{self.path}: field {codec.name!r}: record is {len(record)} bytes, expected {size}")
            view[offset : offset + size] = record
            offset += size
        return buf.view(codec.dtype).reshape((n, *codec.shape)) if dest is None else dest

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
