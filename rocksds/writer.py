"""Writing datasets: :func:`create` a new one, or append through :class:`Writer`.

Every sample is validated and encoded before anything is written. Records and
the new ``count`` go to RocksDB in one atomic WriteBatch (a *commit*), so a
reader never sees ``count`` ahead of the records (SPEC.md, "Commits").
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from ._paths import building
from ._version import __version__
from ._metadata import as_path, check_is_dataset, log_damaged, metadata_puts, probe_schema, read_count
from ._storage import CFConfig, SstFiles, Storage, rocksdb_version
from ._witness import read_witness, write_witness
from .errors import ArgumentTypeError, ClosedError, CorruptionError, InvalidArgumentError, RocksdsError, SampleError
from .errors import UnsupportedFeatureError
from .keys import encode_key, encode_keys
from .records import RecordCodec
from .schema import Field, Schema
from .spec import KNOWN_WRITER_FEATURES, META_CF, STATS_KEY, WITNESS_FILE
from .stats import DatasetStats, stats_options

__all__ = ["Writer", "create", "open_writer", "table_config", "field_tables"]

#: append() commits by itself once this many encoded bytes are pending.
DEFAULT_COMMIT_BYTES = 64 * 2**20
#: A field whose records in one commit add up to at least this many bytes is written as a sorted
#: table file and ingested (each byte written once) instead of through the write-ahead log and a
#: memtable flush (each byte written twice). Smaller columns, and ``count``, stay in the atomic
#: WriteBatch, so small fields and small commits never make tiny table files, and a field's files
#: hold at least this much each. Measured on 262 KB chips: 6,100 samples/s through tables vs 460
#: through the WriteBatch and flush (benchmarks/results/REPORT.md).
TABLE_COLUMN_BYTES = 8 * 2**20
#: A field's ingested table files are compacted into fewer, larger ones every this many commits
#: that ingest it (so a reader of a bulk-written dataset needs a bounded number of descriptors) ...
MERGE_AFTER_FILES = 32
#: ... unless they hold at least this much each on average (RocksDB's output files are 64 MiB).
MERGE_BELOW_BYTES = 16 * 2**20


def table_config(field: Field) -> CFConfig:
    """How a field's tables are written, by a Writer or by anything that builds SST files for it."""
    return CFConfig(compression=field.compression, level=field.compression_level)


def field_tables(schema: Schema, paths: Sequence[str]) -> SstFiles:
    """Sorted table files, one per field in schema order at ``paths``, for :meth:`Writer.ingest_tables`."""
    return SstFiles(paths, [table_config(f) for f in schema.fields.values()])


def _cf_configs(schema: Schema) -> dict[str, CFConfig]:
    configs = {META_CF: CFConfig(compression="none", bloom_bits=0, write_buffer_bytes=4 * 2**20)}
    for f in schema.fields.values():
        assert f.column_family is not None
        configs[f.column_family] = table_config(f)
    return configs


def _check_commit_bytes(commit_bytes: Any) -> None:
    # Checked before anything is opened or created, so a bad value leaves no lock held and no dataset behind.
    if isinstance(commit_bytes, bool) or not isinstance(commit_bytes, int) or commit_bytes <= 0:
        raise InvalidArgumentError(f"commit_bytes must be a positive integer, got {commit_bytes!r}")


class Writer:
    """Appends samples to a dataset. Get one from :func:`create` or ``rocksds.open(path, mode="a")``.

    ``len(writer)`` is the number of committed samples. :meth:`append` buffers
    and commits once ``commit_bytes`` are pending; :meth:`extend` and
    :meth:`commit` commit at once; closing (or leaving a ``with`` block
    normally) commits and flushes every column family to table files. Leaving a
    ``with`` block by an exception discards samples not yet committed.

    Durability: once :meth:`commit` or :meth:`extend` has returned, its
    samples survive a crash of this process (SIGKILL, OOM kill, exception),
    because they are in RocksDB's write-ahead log; a reader opened afterwards
    sees them. Surviving power loss or an OS crash needs ``sync=True``. An
    invalid sample, or an exception raised while ``extend`` consumes its
    iterable, writes nothing of that batch.

    Args:
        sync: fsync the write-ahead log on every commit, so commits survive
            power loss, not only a crash of the process.
        wal: write through RocksDB's write-ahead log (default). With
            ``wal=False`` commits reach disk only at :meth:`flush`, at close,
            or when a memtable fills. A crash loses the commits made since,
            but never leaves ``count`` ahead of the records; it may leave
            records beyond ``count``, which readers ignore and the next
            writer deletes when it opens.
        commit_bytes: pending bytes at which :meth:`append` commits by itself.
        bulk: how records reach RocksDB. ``None`` (default): per commit and
            field, a field whose records add up to ``TABLE_COLUMN_BYTES``
            (8 MiB) or more is written as one sorted table file and ingested
            (RocksDB IngestExternalFile: no write-ahead log, memtable, flush or
            compaction, so every byte is written once); the other fields and
            the new ``count`` go in one atomic WriteBatch afterwards. ``True``:
            every field of every commit through table files and ``count``
            synced after them (each commit adds a file per field, so commit
            in large chunks). ``False``: everything through the WriteBatch.
            Commits stay atomic in every mode: ingested records lie beyond
            ``count`` until the WriteBatch that raises it, and records beyond
            ``count`` left by a crash are deleted at the next open for append.
        stats: the statistics this writer keeps up to date (SPEC.md 2.1), or
            None. :func:`create` and :func:`open_writer` pass them; every
            commit then decodes its records of those fields once more, merges
            their statistics and writes the record with the new ``count``.
        witnessed: the count the dataset's committed-count witness holds
            (SPEC.md 7.1), ``None`` if it has none. The writer replaces the
            witness by ``len(self)`` whenever that count is durable on disk:
            after :meth:`flush`, at :meth:`close`, and after each commit that
            is synced (``sync=True``, ``bulk=True``, :meth:`ingest_tables`);
            never after an unsynced commit, and never with a smaller count.
    """

    def __init__(
        self,
        storage: Storage,
        schema: Schema,
        count: int,
        *,
        sync: bool = False,
        wal: bool = True,
        commit_bytes: int = DEFAULT_COMMIT_BYTES,
        bulk: Optional[bool] = None,
        stats: Optional[DatasetStats] = None,
        witnessed: Optional[int] = None,
    ) -> None:
        _check_commit_bytes(commit_bytes)
        self._stats = stats
        self._witnessed = witnessed
        self._storage: Optional[Storage] = storage
        self.schema = schema
        self.path = storage.path
        self._count = count
        self._sync = bool(sync)
        self._wal = bool(wal)
        self._bulk = None if bulk is None else bool(bulk)
        #: WriteBatch commits made without the WAL that no flush has made durable yet.
        self._unflushed = False
        #: Per field index: (files, bytes) ingested since its last compaction, and the first key then.
        self._ingested: dict[int, tuple[int, int, bytes]] = {}
        self._commit_bytes = commit_bytes
        self._codecs = [(RecordCodec(n, f), f.column_family) for n, f in schema.fields.items()]
        self._pending: list[list[bytes]] = []
        self._pending_bytes = 0

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        return self._count

    @property
    def pending(self) -> int:
        """Samples appended but not yet committed."""
        return len(self._pending)

    @property
    def attrs(self) -> dict[str, Any]:
        return self.schema.attrs

    @property
    def stats(self) -> Optional[DatasetStats]:
        """A copy of the statistics of the committed samples, if this writer maintains them."""
        return None if self._stats is None else copy.deepcopy(self._stats)

    def _live(self) -> Storage:
        if self._storage is None:
            raise ClosedError(f"writer for {self.path} is closed")
        return self._storage

    # ------------------------------------------------------------------ writing

    def encode(self, sample: Mapping[str, Any]) -> list[bytes]:
        """Validate one sample and return its records in schema order (nothing is written)."""
        if not isinstance(sample, Mapping):
            raise SampleError(f"a sample is a dict of field name -> value, got {type(sample).__name__}")
        unknown = [k for k in sample if k not in self.schema.fields]
        if unknown:
            raise SampleError(f"sample has fields {unknown} that are not in the schema {list(self.schema.fields)}")
        records = []
        for codec, _cf in self._codecs:
            try:
                value = sample[codec.name]
            except KeyError:
                raise SampleError(f"sample lacks field {codec.name!r}") from None
            records.append(codec.encode(value))
        return records

    def append(self, sample: Mapping[str, Any]) -> None:
        """Validate and buffer one sample; commits once ``commit_bytes`` are pending."""
        self._live()
        records = self.encode(sample)
        self._pending.append(records)
        self._pending_bytes += sum(map(len, records))
        if self._pending_bytes >= self._commit_bytes:
            self.commit()

    def extend(self, samples: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> None:
        """Validate and commit many samples in one atomic write, with anything pending.

        ``samples`` is either a dict of stacked values (arrays with a leading
        sample axis, or lists for variable-shape fields) or an iterable of
        sample dicts. If any sample is invalid nothing is written. For streams
        larger than memory, call ``extend`` once per chunk.
        """
        self._live()
        if isinstance(samples, Mapping):
            encoded = self._encode_stacked(samples)
        elif isinstance(samples, (str, bytes)) or not isinstance(samples, Iterable):
            raise ArgumentTypeError(
                "extend takes a dict of stacked values or an iterable of sample dicts, "
                f"got {type(samples).__name__}"
            )
        else:
            encoded = []
            for i, s in enumerate(samples):
                try:
                    encoded.append(self.encode(s))
                except SampleError as e:
                    raise SampleError(f"sample {i} of the batch: {e}") from None
        self._pending.extend(encoded)
        self._pending_bytes += sum(len(r) for rec in encoded for r in rec)
        self.commit()

    def _encode_stacked(self, columns: Mapping[str, Any]) -> list[list[bytes]]:
        unknown = [k for k in columns if k not in self.schema.fields]
        if unknown:
            raise SampleError(f"batch has fields {unknown} that are not in the schema {list(self.schema.fields)}")
        missing = [c.name for c, _ in self._codecs if c.name not in columns]
        if missing:
            raise SampleError(f"batch lacks fields {missing}")
        lengths = {}
        for name, col in columns.items():
            try:
                lengths[name] = len(col)
            except TypeError:
                raise SampleError(f"batch field {name!r} must have a leading sample axis") from None
        if len(set(lengths.values())) > 1:
            raise SampleError(f"batch fields have different numbers of samples: {lengths}")
        n = next(iter(lengths.values()))
        per_field = [self._encode_column(codec, columns[codec.name], n) for codec, _ in self._codecs]
        return [list(t) for t in zip(*per_field)] if n else []

    @staticmethod
    def _encode_column(codec: RecordCodec, column: Any, n: int) -> list[bytes]:
        if isinstance(column, np.ndarray) and not codec.field.is_variable:
            return codec.encode_stacked(column)
        out = []
        for i in range(n):
            try:
                out.append(codec.encode(column[i]))
            except SampleError as e:
                raise SampleError(f"sample {i} of the batch: {e}") from None
        return out

    def commit(self) -> None:
        """Write every pending sample and the new count in one atomic commit (see ``bulk``)."""
        storage = self._live()
        if not self._pending:
            return
        pending, n = self._pending, len(self._pending)
        keys = encode_keys(range(self._count, self._count + n))
        tabled = self._tabled_columns(pending)
        try:
            if tabled:
                # Ingested records lie beyond ``count`` (invisible) until the WriteBatch below.
                self._ingest_columns(storage, keys, pending, tabled)
            puts: list[tuple[str, bytes, bytes]] = []
            for j, (_codec, cf) in enumerate(self._codecs):
                if j not in tabled:
                    puts.extend((cf, k, rec[j]) for k, rec in zip(keys, pending))  # type: ignore[misc]
            puts.extend(metadata_puts(None, self._count + n))
            if self._stats is not None:
                merged = self._merged_stats(self._pending_stats(pending))
                puts.append((META_CF, STATS_KEY, merged.to_bytes()))
            everything_tabled = self._bulk is True
            storage.write(puts, sync=self._sync or everything_tabled, wal=self._wal or everything_tabled)
        except BaseException:
            self._pending = pending
            raise
        if not (self._wal or self._bulk is True):
            self._unflushed = True
        if tabled:
            self._merge_small_tables(storage, keys[0], pending, tabled)
        if self._stats is not None:
            self._stats = merged
        self._count += n
        self._pending = []
        self._pending_bytes = 0
        if everything_tabled or (self._sync and self._wal):
            self._witness_count()

    def _witness_count(self, *, lowering: bool = False) -> None:
        """Record ``len(self)``, now durable on disk, in the committed-count witness (see ``witnessed``).

        A write, an fsync and a rename (measured: 0.3-0.5 ms more per synced
        commit; 10 small samples 0.43 -> 0.77 ms, 200 of them 2.63 -> 2.90 ms),
        so only at the points where the count is durable anyway, never per
        unsynced commit. ``lowering``: a salvage records a smaller count on
        purpose (see ``rocksds._witness.write_witness``).
        """
        if not lowering and self._witnessed is not None and self._count <= self._witnessed:
            return
        try:
            write_witness(self.path, self._count, lowering=lowering)
        except OSError as e:
            raise RocksdsError(
                f"{self.path}: {self._count} samples are committed and on disk, but recording that count in "
                f"{WITNESS_FILE} failed ({e.strerror or e}); the next flush or close tries again"
            ) from None
        self._witnessed = self._count

    def _merge_small_tables(self, storage: Storage, first: bytes, pending: list[list[bytes]], tabled: set[int]) -> None:
        """Compact a field's recently ingested files once there are ``MERGE_AFTER_FILES`` small ones.

        Keeps the table files, and the descriptors every reader holds, bounded
        (200 ``bulk=True`` commits made 1,402 files). Files of at least
        ``MERGE_BELOW_BYTES`` on average are left alone: merging them would
        rewrite data without making fewer files. Each byte is rewritten at most once.
        """
        for j in tabled:
            files, size, start = self._ingested.get(j, (0, 0, first))
            files, size = files + 1, size + sum(len(rec[j]) for rec in pending)
            if files >= MERGE_AFTER_FILES:
                if size < MERGE_BELOW_BYTES * files:
                    cf = self._codecs[j][1]
                    assert cf is not None
                    storage.compact(cf, start)
                self._ingested.pop(j, None)
            else:
                self._ingested[j] = (files, size, start)
    def _pending_stats(self, pending: list[list[bytes]]) -> DatasetStats:
        """Statistics of the pending samples, from their encoded records (what is written is what is counted)."""
        assert self._stats is not None
        out = self._stats.fresh()
        columns = {}
        for j, (codec, _cf) in enumerate(self._codecs):
            if codec.name in out.fields:
                columns[codec.name] = codec.decode_batch([rec[j] for rec in pending])
        out.add(columns, len(pending))
        return out

    def _merged_stats(self, more: DatasetStats) -> DatasetStats:
        assert self._stats is not None
        merged = copy.deepcopy(self._stats)
        merged.merge(more)
        return merged

    def _tabled_columns(self, pending: list[list[bytes]]) -> set[int]:
        """Indices of the fields this commit writes as table files (see ``bulk``)."""
        if self._bulk is not None:
            return set(range(len(self._codecs))) if self._bulk else set()
        return {j for j in range(len(self._codecs)) if sum(len(rec[j]) for rec in pending) >= TABLE_COLUMN_BYTES}

    def _ingest_columns(self, storage: Storage, keys: list[bytes], pending: list[list[bytes]], tabled: set[int]) -> None:
        """Write the ``tabled`` fields' records as one sorted table file each and ingest them."""
        if self._unflushed:
            # The ingested files are durable at once; the no-WAL commits before them must be too,
            # or a crash could keep these records and lose earlier ones.
            storage.flush()
            self._unflushed = False
        tag = uuid.uuid4().hex[:12]
        written: list[str] = []
        try:
            order = sorted(tabled)
            written = [os.path.join(self.path, f".bulk-{tag}-{j}.sst") for j in order]
            fields = list(self.schema.fields.values())
            files = SstFiles(written, [table_config(fields[j]) for j in order])
            for key, records in zip(keys, pending):
                files.add(key, [records[j] for j in order])
            files.finish()
            for j, path in zip(order, written):
                cf = self._codecs[j][1]
                assert cf is not None
                storage.ingest(cf, [path])
        finally:
            for p in written:
                if os.path.exists(p):  # ingest moved it unless something failed
                    os.remove(p)

    def ingest_tables(self, tables: Mapping[str, list[str]], n: int, stats: Optional[DatasetStats] = None) -> None:
        """Bulk-append ``n`` samples from sorted SST files, then commit the new count.

        ``tables`` maps each field name to SST files (built with
        :func:`field_tables`, the fields' table options) holding exactly
        the keys ``len(self) .. len(self) + n - 1``, in non-overlapping files.
        Files are moved into the dataset. Each field's files are ingested in
        one IngestExternalFile call and ``count`` is written last (synced), so
        a crash leaves the old count and, at worst, records beyond it, which
        :func:`open_writer` deletes at the next open for append.

        A writer that maintains statistics needs ``stats``, those of the ``n``
        samples (accumulated by whoever built the files); they are merged and
        written with the new ``count``.
        """
        storage = self._live()
        if (stats is None) != (self._stats is None):
            raise InvalidArgumentError(
                "ingest_tables needs the statistics of the ingested samples exactly when the writer maintains them"
            )
        if self._pending:
            raise InvalidArgumentError("commit or discard pending samples before ingesting tables")
        if n < 0 or set(tables) - set(self.schema.fields):
            raise InvalidArgumentError(f"tables must name schema fields and n must be >= 0, got {list(tables)}, {n}")
        if n == 0:
            return
        missing = [name for name in self.schema.fields if not tables.get(name)]
        if missing:
            raise InvalidArgumentError(f"no SST files given for fields {missing}")
        if self._unflushed:
            storage.flush()  # see _ingest_columns
            self._unflushed = False
        for name, f in self.schema.fields.items():
            assert f.column_family is not None
            storage.ingest(f.column_family, list(tables[name]))
        puts = metadata_puts(None, self._count + n)
        if stats is not None:
            merged = self._merged_stats(stats)
            puts.append((META_CF, STATS_KEY, merged.to_bytes()))
        storage.write(puts, sync=True)
        if stats is not None:
            self._stats = merged
        self._count += n
        self._witness_count()

    def set_stats(self, stats: DatasetStats) -> None:
        """Commit, then replace the statistics record by ``stats`` (which must cover every committed sample).

        This writer maintains them from then on. What ``rocksds stats --recompute`` uses.
        """
        storage = self._live()
        self.commit()
        if not isinstance(stats, DatasetStats) or stats.count != self._count:
            raise InvalidArgumentError(f"set_stats needs DatasetStats of all {self._count} committed samples")
        DatasetStats.from_bytes(stats.to_bytes(), self.schema.fields)  # refuse statistics that disagree with the schema
        # Written like a commit (same log settings), so it never reaches disk ahead of the count it covers.
        storage.write([(META_CF, STATS_KEY, stats.to_bytes())], sync=self._sync, wal=self._wal)
        if not self._wal:
            self._unflushed = True
        self._stats = copy.deepcopy(stats)

    def flush(self) -> None:
        """Commit, then write every column family's memtable to table files (and witness the count, SPEC.md 7.1)."""
        self.commit()
        self._live().flush()
        self._unflushed = False
        self._witness_count()

    def discard(self) -> None:
        """Drop samples appended but not yet committed."""
        self._pending = []
        self._pending_bytes = 0

    def close(self) -> None:
        """Commit, flush to table files and release the lock; idempotent."""
        storage = self._storage
        if storage is None:
            return
        flushed = False
        try:
            self.commit()
            storage.flush()
            flushed = True
            # Under the lock still: a witness written after releasing it could overwrite a later writer's.
            self._witness_count()
        finally:
            self._storage = None
            storage.close(flush=not flushed)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._storage is None else f"{self._count} committed, {self.pending} pending"
        return f"<rocksds.Writer {self.path!r} {state}>"


def create(
    path: str | os.PathLike[str],
    schema: Schema,
    *,
    overwrite: bool = False,
    sync: bool = False,
    wal: bool = True,
    commit_bytes: int = DEFAULT_COMMIT_BYTES,
    bulk: Optional[bool] = None,
    stats: Any = False,
) -> Writer:
    """Create an empty dataset at ``path`` and return a :class:`Writer` for it.

    Creation is atomic: the dataset is built in a sibling directory and renamed
    into place once its schema and ``count = 0`` are on disk, so a crash leaves
    either nothing at ``path`` or a valid empty dataset.

    Args:
        path: directory to create; must not exist (unless ``overwrite``).
        schema: the dataset's :class:`Schema`.
        overwrite: replace an existing rocksds dataset (never anything else).
        sync, wal, commit_bytes, bulk: see :class:`Writer`.
        stats: keep per-band statistics (SPEC.md 2.1) of every numeric field
            (``True``), of the fields listed, or per a dict of field name ->
            ``{"axis": int | None, "nodata": number | None}``. Every commit
            then updates them in the same atomic write as ``count``; appends
            through :func:`open_writer` keep doing so. Default ``False``.
    """
    if not isinstance(schema, Schema):
        raise ArgumentTypeError(f"schema must be a rocksds.Schema, got {type(schema).__name__}")
    path = as_path(path)
    _check_commit_bytes(commit_bytes)
    configs = _cf_configs(schema)
    empty_stats = DatasetStats.empty(schema, stats_options(schema, stats)) if stats is not False else None
    with building([path], "creating", overwrite=overwrite) as (tmp,):
        storage = Storage.open_writable(tmp, configs, create=True)
        try:
            stamped = schema.model_copy(
                update={"writer": {"name": "rocksds", "version": __version__, "rocksdb": rocksdb_version(tmp)}}
            )
            puts = metadata_puts(stamped, 0)
            if empty_stats is not None:
                puts.append((META_CF, STATS_KEY, empty_stats.to_bytes()))
            storage.write(puts, sync=True)
        finally:
            storage.close()
    return open_writer(path, sync=sync, wal=wal, commit_bytes=commit_bytes, bulk=bulk)


def open_writer(
    path: str | os.PathLike[str],
    *,
    sync: bool = False,
    wal: bool = True,
    commit_bytes: int = DEFAULT_COMMIT_BYTES,
    bulk: Optional[bool] = None,
    salvage_log: bool = False,
) -> Writer:
    """Open an existing dataset for appending after its last committed sample.

    Records left beyond ``count`` by an interrupted bulk ingest or flush are
    deleted first, and so are table files a killed ``bulk=True`` commit left
    behind without ingesting them. Statistics (SPEC.md 2.1) that cover every
    committed sample are kept up to date; stale or malformed ones are left as
    they are (``rocksds stats PATH --recompute`` rebuilds them).

    A damaged write-ahead log makes the open fail with ``CorruptionError``
    (``rocksds validate`` says how many samples precede the damage).
    ``salvage_log=True`` opts in to keeping only those: the commits after
    the damage are then dropped for good, and the committed-count witness
    (SPEC.md 7.1) is lowered to what was kept. A dataset whose MANIFEST looks
    rolled back (newer table files it does not name, or fewer samples than the
    witness records) is refused with ``CorruptionError`` before RocksDB could
    delete anything.

    Raises:
        DatasetLockedError: another writer has the dataset open.
        UnsupportedFeatureError: the dataset needs a writer feature this library lacks.
    """
    path = as_path(path)
    _check_commit_bytes(commit_bytes)
    check_is_dataset(path)
    # A salvage that really drops commits lowers the count on purpose, below the witness too.
    dropping = bool(salvage_log) and log_damaged(path)
    schema = probe_schema(path, salvage=salvage_log, for_append=True, trust_witness=not dropping)
    if schema.writer_features is None:
        raise UnsupportedFeatureError(
            f"{path}: the schema's writer_features is not a list of strings, so this library cannot tell "
            "which features appending must maintain; the dataset is readable but not appendable"
        )
    unknown = sorted(set(schema.writer_features) - KNOWN_WRITER_FEATURES)
    if unknown:
        raise UnsupportedFeatureError(f"{path} requires writer features this library does not know: {unknown}")
    storage = Storage.open_writable(path, _cf_configs(schema), create=False, salvage=bool(salvage_log))
    try:
        count = read_count(storage)
        # Table files a killed bulk commit wrote but never ingested (we hold the lock now).
        for name in os.listdir(path):
            if name.startswith(".bulk-") and name.endswith(".sst"):
                os.remove(os.path.join(path, name))
        stop = b"\xff" * 9
        for f in schema.fields.values():
            assert f.column_family is not None
            if next(storage.iterate(f.column_family, encode_key(count), stop), None) is not None:
                storage.delete_range(f.column_family, encode_key(count), stop)
        writer = Writer(storage, schema, count, sync=sync, wal=wal, commit_bytes=commit_bytes, bulk=bulk,
                        stats=_current_stats(storage, schema, count),
                        witnessed=None if dropping else read_witness(path).count)
        if dropping:
            # What the salvage kept is the dataset now: make it durable and say so in the witness.
            storage.flush()
            writer._witness_count(lowering=True)
        return writer
    except BaseException:
        storage.close()
        raise


def _current_stats(storage: Storage, schema: Schema, count: int) -> Optional[DatasetStats]:
    """The stored statistics if they are well formed and cover all ``count`` samples, else None."""
    raw = storage.get(META_CF, STATS_KEY)
    if raw is None:
        return None
    try:
        stats = DatasetStats.from_bytes(raw, schema.fields)
    except CorruptionError:
        return None
    return stats if stats.count == count else None
