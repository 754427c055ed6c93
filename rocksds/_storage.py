"""The RocksDB layer: the only module that imports the RocksDB binding (rocksdict).

It knows column families, byte keys and byte values, and the options that
keep the files portable (SPEC.md, "Tables"); it knows nothing about schemas.

Read-only opens never touch the dataset directory. RocksDB would rotate its
info ``LOG`` there and rocksdict writes ``rocksdict-config.json`` on every
open, which fails on read-only storage and modifies shared datasets. So a
read-only open builds a private "shadow" directory of symbolic links to the
dataset's files and opens that instead; with ``max_open_files=-1`` every table
file is opened up front, so later compactions or deletions by a writer cannot
pull a file from under a reader. A read-only open copes with a writer that
is adding and deleting files at the same moment (see :mod:`rocksds._shadow`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import rocksdict as rd

from . import spec
from ._shadow import Shadow, with_shadow
from ._witness import Witness
from .errors import CorruptionError, DatasetLockedError, NotADatasetError, ReadOnlyError, RocksdsError
from .errors import UnsupportedCompressionError

__all__ = ["CFConfig", "SstFiles", "Storage", "list_column_families", "rocksdb_version", "storage_error",
           "table_bytes"]

_COMPRESSION = {
    "none": rd.DBCompressionType.none,
    "snappy": rd.DBCompressionType.snappy,
    "lz4": rd.DBCompressionType.lz4,
    "lz4hc": rd.DBCompressionType.lz4hc,
    "zlib": rd.DBCompressionType.zlib,
    "zstd": rd.DBCompressionType.zstd,
    "bz2": rd.DBCompressionType.bz2,
}
_CHECKSUMS = {"crc32c": rd.ChecksumType.crc32c, "xxhash64": rd.ChecksumType.xxhash64}


def _log_recovery(salvage: bool) -> rd.DBRecoveryMode:
    """How RocksDB replays the write-ahead log when a database opens.

    RocksDB's default (point-in-time) stops at the first damaged record and
    opens without an error, so one flipped bit silently dropped every later
    commit, and a writable open then made the loss permanent. Every open
    therefore tolerates only an incomplete last record (what a process killed
    in the middle of a write leaves; that commit never returned) and fails
    with a corruption error on any other damage. ``salvage`` is the explicit
    opt-in to RocksDB's default: keep what precedes the damage, lose the rest.
    """
    if salvage:
        return rd.DBRecoveryMode.point_in_time()
    return rd.DBRecoveryMode.tolerate_corrupted_tail_records()


@dataclass(frozen=True)
class CFConfig:
    """How one column family's tables are written and read.

    Args:
        compression: codec name from ``rocksds.spec.COMPRESSIONS``.
        level: codec level, ``None`` for the codec's default.
        block_size: data block size in bytes (values larger than this get a block of their own).
            Readers map the table files and verify a block's checksum on every lookup, so a
            small block costs less per random read: MNIST-sized records (3 KiB) measured
            205k vs 120k lookups/s with 4 KiB vs 16 KiB blocks.
        bloom_bits: bloom filter bits per key; 0 disables the filter.
        write_buffer_bytes: memtable size before a flush to a table file.
        checksum: block checksum type of new tables, one of ``rocksds.spec.PORTABLE_CHECKSUMS``.
        cached: whether reads of this column family go through the shared block cache.
    """

    compression: str = spec.DEFAULT_COMPRESSION
    level: Optional[int] = None
    block_size: int = 4 * 1024
    bloom_bits: int = 10
    write_buffer_bytes: int = 64 * 2**20
    checksum: str = spec.TABLE_CHECKSUM
    cached: bool = True


def storage_error(exc: BaseException, path: str, shadow: Optional[str] = None) -> RocksdsError:
    """Translate a binding error (a RocksDB status string) into a rocksds exception.

    ``shadow`` is the private directory a read-only handle opened; its name is
    replaced by ``path`` so messages name the user's files, not ours.
    """
    msg = str(exc)
    if shadow:
        msg = msg.replace(shadow, path)
    low = msg.lower()
    if "lock" in low and ("resource temporarily unavailable" in low or "lock hold" in low or "no locks" in low):
        # RocksDB words this differently for a lock held in this process and in another one.
        where = "in this process" if "current process" in low else "in another process"
        return DatasetLockedError(
            f"dataset {path} is locked by another writer (already open for writing {where}); "
            "only one writer at a time is allowed. "
            "Close that writer first, or open the dataset with mode='r' to read it."
        )
    if "corruption" in low or "checksum" in low or "block checksum mismatch" in low:
        if "unsupported compression" in low:
            return UnsupportedCompressionError(f"{path}: {msg}")
        return CorruptionError(
            f"dataset {path} is corrupt ({msg}); restore it from a copy, or run 'rocksds validate --deep' to see the damage"
        )
    if "too many open files" in low:
        return RocksdsError(
            f"cannot open {path}: this process ran out of file descriptors ({msg}). A handle holds one "
            "descriptor per table file while open (see README, Reliability); raise the limit (ulimit -n), "
            "close handles no longer used, or open fewer handles at once"
        )
    if "read-only file system" in low or "permission denied" in low:
        return ReadOnlyError(f"cannot write to {path}: {msg}")
    if "does not exist" in low or "no such file" in low:
        return NotADatasetError(f"{path} is not a RocksDB database: {msg}")
    return RocksdsError(f"RocksDB error on {path}: {msg}")


def _cf_options(cfg: CFConfig, cache: Optional[rd.Cache], *, create: bool) -> rd.Options:
    opts = rd.Options(raw_mode=True)
    table = rd.BlockBasedOptions()
    table.set_format_version(spec.TABLE_FORMAT_VERSION)
    table.set_checksum_type(_CHECKSUMS[cfg.checksum]())
    table.set_block_size(cfg.block_size)
    if cfg.bloom_bits > 0:
        table.set_bloom_filter(cfg.bloom_bits, False)
    if cache is None or not cfg.cached:
        table.disable_cache()
    else:
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(False)
    opts.set_block_based_table_factory(table)
    opts.set_compression_type(_COMPRESSION[cfg.compression]())
    if cfg.level is not None:
        opts.set_compression_options(-14, cfg.level, 0, 0)
    opts.set_write_buffer_size(cfg.write_buffer_bytes)
    if create:
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
    return opts


def _db_options(
    cache: Optional[rd.Cache], *, create: bool, writable: bool, mmap: bool = False, salvage: bool = False
) -> rd.Options:
    opts = _cf_options(CFConfig(compression="none", bloom_bits=0), cache, create=create)
    opts.set_wal_recovery_mode(_log_recovery(salvage))
    opts.set_max_open_files(-1)
    opts.set_keep_log_file_num(2)
    if mmap:
        # An uncompressed block is then served (checksum verified on every read) straight from
        # the OS page cache, which every process shares, with no read system call and no copy
        # into a private buffer; RocksDB caches only decompressed blocks of compressed fields.
        opts.set_allow_mmap_reads(True)
        # RocksDB's default POSIX_FADV_RANDOM turns off the kernel's read-around on page faults,
        # so a block not yet in the page cache (the first epoch after writing: table files are
        # written past the cache) is read one 4 KiB page per fault. Mapped tables fit in memory,
        # so reading around a fault costs little and makes a cold pass ~16x faster.
        opts.set_advise_random_on_open(False)
    if writable:
        # Flushes RocksDB starts by itself (a full memtable) cover every
        # column family at once; see Storage.flush for the ones we ask for.
        opts.set_atomic_flush(True)
        opts.set_max_background_jobs(2)
    return opts


def list_column_families(path: str) -> list[str]:
    """Column families of the RocksDB database at ``path``, read without touching it."""
    return with_shadow(path, lambda shadow: rd.Rdict.list_cf(shadow.path, rd.Options(raw_mode=True)), storage_error,
                       keep=False)[0]


def rocksdb_version(path: str) -> str:
    """The RocksDB version recorded in the newest OPTIONS file of a database."""
    names = sorted(n for n in os.listdir(path) if n.startswith("OPTIONS-"))
    for name in reversed(names):
        with open(os.path.join(path, name), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("rocksdb_version="):
                    return line.split("=", 1)[1]
    return "unknown"


class SstFiles:
    """Sorted table files written side by side, one per column family, for :meth:`Storage.ingest`.

    Each :meth:`add` puts one key with one value per file; keys must come in
    increasing order. :meth:`finish` completes every file (portable format,
    the options of each file's :class:`CFConfig`). The writer's ``bulk=True``
    commits and the parallel raster build both write their tables here.
    """

    def __init__(self, paths: Sequence[str], configs: Sequence[CFConfig]) -> None:
        self.paths = list(paths)
        self.n = 0
        self._writers = []
        try:
            for path, cfg in zip(self.paths, configs):
                w = rd.SstFileWriter(_cf_options(cfg, None, create=False))
                w.open(path)
                self._writers.append(w)
        except Exception as e:
            raise self._error(e) from None

    def _error(self, exc: BaseException) -> RocksdsError:
        return storage_error(exc, os.path.dirname(self.paths[0]) if self.paths else "")

    def add(self, key: bytes, values: Sequence[bytes]) -> None:
        """Put ``key`` with ``values[j]`` in file ``j``."""
        try:
            for w, value in zip(self._writers, values):
                w[key] = value
        except Exception as e:
            raise self._error(e) from None  # e.g. disk full
        self.n += 1

    def finish(self) -> None:
        """Complete every file (they are unreadable until then)."""
        try:
            for w in self._writers:
                w.finish()
        except Exception as e:
            raise self._error(e) from None


class Storage:
    """An open RocksDB database with named column families of raw bytes.

    Use :meth:`open_read_only` or :meth:`open_writable`; never construct directly.
    """

    def __init__(self, path: str, db: rd.Rdict, names: Sequence[str], shadow: Optional[Shadow], writable: bool,
                 *, owns_shadow: bool = True):
        self.path = path
        self.writable = writable
        self._db: Optional[rd.Rdict] = db
        self._shadow = shadow
        self._owns_shadow = owns_shadow
        self._cfs = {n: db.get_column_family(n) for n in names}
        self._handles = {n: db.get_column_family_handle(n) for n in names}
        self._read_opts = rd.ReadOptions()
        self._read_opts.set_verify_checksums(True)
        #: Lists of bound methods the getters' closures share, emptied by close().
        self._getters: list[list[Callable[..., object]]] = []

    # ------------------------------------------------------------------ opening

    @classmethod
    def open_read_only(
        cls,
        path: str,
        names: Sequence[str],
        *,
        configs: Optional[Mapping[str, CFConfig]] = None,
        cache_bytes: int = 0,
        salvage: bool = False,
    ) -> "Storage":
        """Open the column families ``names`` for reading, leaving ``path`` untouched.

        ``configs`` gives read-side settings (bloom filters) per column family
        (default: :class:`CFConfig`'s); every column family shares one block
        cache of ``cache_bytes`` (0, the default, disables the cache).
        ``salvage`` replays a damaged write-ahead log up to the damage instead
        of failing (see :func:`_log_recovery`).
        """
        configs = configs or {}
        cache = rd.Cache(cache_bytes) if cache_bytes > 0 else None
        cfs = {n: _cf_options(configs.get(n, CFConfig()), cache, create=False) for n in names}

        def open_db(shadow: Shadow) -> rd.Rdict:
            opts = _db_options(None, create=False, writable=False, salvage=salvage)
            opts.set_db_log_dir(shadow.path)
            return rd.Rdict(shadow.path, opts, column_families=cfs, access_type=rd.AccessType.read_only(False))

        db, shadow = with_shadow(path, open_db, storage_error, keep=True)
        return cls(path, db, names, shadow, writable=False)

    @classmethod
    def open_snapshot(
        cls,
        path: str,
        choose: "Callable[[list[str], Storage], tuple[Sequence[str], dict[str, CFConfig]]]",
        cache_bytes: int,
        *,
        mmap: bool = False,
    ) -> "Storage":
        """Open the column families a reader needs in one read-only snapshot, in two steps.

        RocksDB cannot add column families to an open read-only database, and a
        reader learns which ones it needs only from the schema. So one shadow
        directory (one copy of the MANIFEST, every table file pinned) serves two
        opens: ``choose(column_families, metadata_storage)`` reads the schema
        through a metadata-only open and returns the column families to open and
        their configs; the second open then sees exactly the same files. A writer
        adding or deleting files meanwhile makes the whole step retry.
        ``mmap`` maps the table files instead of reading blocks with ``pread``.
        """

        def open_both(shadow: Shadow) -> "Storage":
            present = rd.Rdict.list_cf(shadow.path, rd.Options(raw_mode=True))
            opts = _db_options(None, create=False, writable=False, mmap=mmap)
            opts.set_db_log_dir(shadow.path)
            if spec.META_CF not in present:
                raise NotADatasetError(
                    f"{path} is a RocksDB database but not a rocksds dataset (no {spec.META_CF!r} column family)"
                )
            meta_db = rd.Rdict(shadow.path, opts, column_families={spec.META_CF: _cf_options(CFConfig(), None, create=False)},
                               access_type=rd.AccessType.read_only(False))
            meta = cls(path, meta_db, [spec.META_CF], shadow, writable=False, owns_shadow=False)
            try:
                names, configs = choose(present, meta)
            finally:
                meta.close()
            cache = rd.Cache(cache_bytes) if cache_bytes > 0 else None
            cfs = {n: _cf_options(configs.get(n, CFConfig()), cache, create=False) for n in names}
            db = rd.Rdict(shadow.path, opts, column_families=cfs, access_type=rd.AccessType.read_only(False))
            return cls(path, db, names, shadow, writable=False)

        storage, _shadow = with_shadow(path, open_both, storage_error, keep=True)
        return storage

    @classmethod
    def open_writable(
        cls, path: str, configs: dict[str, CFConfig], *, create: bool, cache_bytes: int = 32 * 2**20,
        salvage: bool = False,
    ) -> "Storage":
        """Open (or create) ``path`` for writing with the column families in ``configs``.

        ``salvage`` replays a damaged write-ahead log up to the damage and
        keeps only that (permanently: see :func:`_log_recovery`).

        Raises:
            DatasetLockedError: another process holds the database's lock.
        """
        cache = rd.Cache(cache_bytes) if cache_bytes > 0 else None
        opts = _db_options(cache, create=create, writable=True, salvage=salvage)
        cfs = {n: _cf_options(c, cache, create=create) for n, c in configs.items()}
        try:
            db = rd.Rdict(path, opts, column_families=cfs, access_type=rd.AccessType.read_write())
        except Exception as e:
            raise storage_error(e, path) from None
        return cls(path, db, list(configs), None, writable=True)

    def _error(self, exc: BaseException) -> RocksdsError:
        return storage_error(exc, self.path, None if self._shadow is None else self._shadow.path)

    # ------------------------------------------------------------------ reads

    def get(self, cf: str, key: bytes) -> Optional[bytes]:
        """One value, or ``None`` if the key is absent."""
        try:
            return self._cfs[cf].get(key, None, self._read_opts)
        except Exception as e:
            raise self._error(e) from None

    def row_getter(self, cfs: Sequence[str]) -> "Callable[[bytes], list[Optional[bytes]]]":
        """A function returning one key's value in each of ``cfs`` (``None`` where absent).

        The reader's per-sample hot path: the column family objects and read
        options are looked up once here, not on every call.
        """
        gets = [self._cfs[cf].get for cf in cfs]
        self._getters.append(gets)  # emptied by close(): see there
        opts = self._read_opts
        error = self._error

        def get_row(key: bytes) -> list[Optional[bytes]]:
            try:
                return [get(key, None, opts) for get in gets]
            except Exception as e:
                raise error(e) from None

        return get_row

    def point_getter(self, cf: str) -> "Callable[[bytes], Optional[bytes]]":
        """A function returning one key's value in ``cf`` (``None`` if absent): a loop's hot path.

        Like :meth:`row_getter`, it reaches the column family through a list that close() empties.
        """
        gets = [self._cfs[cf].get]
        self._getters.append(gets)
        opts = self._read_opts
        error = self._error

        def get_one(key: bytes) -> Optional[bytes]:
            try:
                return gets[0](key, None, opts)
            except Exception as e:
                raise error(e) from None

        return get_one

    def multi_get(self, cf: str, keys: list[bytes]) -> list[Optional[bytes]]:
        """Many values in one RocksDB MultiGet, ``None`` where absent."""
        try:
            return self._cfs[cf].get(keys, None, self._read_opts)
        except Exception as e:
            raise self._error(e) from None

    def iterate(
        self, cf: str, start: Optional[bytes] = None, stop: Optional[bytes] = None, *, readahead: int = 2**21
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in key order from ``start`` (inclusive) to ``stop`` (exclusive)."""
        opts = rd.ReadOptions()
        opts.set_verify_checksums(True)
        opts.set_readahead_size(readahead)
        if stop is not None:
            opts.set_iterate_upper_bound(stop)
        try:
            it = self._cfs[cf].iter(opts)
            if start is None:
                it.seek_to_first()
            else:
                it.seek(start)
            while it.valid():
                yield it.key(), it.value()
                it.next()
            it.status()
        except RocksdsError:
            raise
        except Exception as e:
            raise self._error(e) from None

    # ------------------------------------------------------------------ writes

    def write(self, puts: Sequence[tuple[str, bytes, bytes]], *, sync: bool = False, wal: bool = True) -> None:
        """Apply ``(cf, key, value)`` puts in one atomic WriteBatch."""
        batch = rd.WriteBatch(raw_mode=True)
        handles = self._handles
        for cf, key, value in puts:
            batch.put(key, value, handles[cf])
        wo = rd.WriteOptions()
        wo.sync = sync
        wo.disable_wal = not wal
        try:
            assert self._db is not None
            self._db.write(batch, wo)
        except Exception as e:
            raise self._error(e) from None

    def delete_range(self, cf: str, start: bytes, stop: bytes) -> None:
        """Delete keys in ``[start, stop)`` of one column family."""
        try:
            self._cfs[cf].delete_range(start, stop)
        except Exception as e:
            raise self._error(e) from None

    def flush(self) -> None:
        """Write every memtable to table files, the metadata column family last.

        The binding flushes one column family per call, and RocksDB's atomic
        flush covers only the column families of one call. Flushing metadata
        last means a crash part-way (with the WAL off) can leave records
        beyond ``count``, which readers ignore and writers delete on open, but
        never a ``count`` ahead of the records.
        """
        error: Optional[RocksdsError] = None
        try:
            self._flush_all()
        except Exception as e:
            error = self._error(e)
        if error is not None:
            # Raised outside the handler: the binding's exception, kept as its context, would keep
            # _flush_all's frame and the column family object in it, so RocksDB and its lock, alive.
            raise error

    def _flush_all(self) -> None:
        for name, cf in self._cfs.items():
            if name != spec.META_CF:
                cf.flush(True)
        meta = self._cfs.get(spec.META_CF)
        if meta is not None:
            meta.flush(True)

    def ingest(self, cf: str, files: list[str]) -> None:
        """Ingest sorted SST files (built by :class:`SstFiles`) into one column family."""
        opts = rd.IngestExternalFileOptions()
        opts.set_move_files(True)
        try:
            self._cfs[cf].ingest_external_file(files, opts)
        except Exception as e:
            raise self._error(e) from None


    def compact(self, cf: str, start: bytes) -> None:
        """Rewrite the table files of ``cf`` holding keys from ``start`` on into fewer, larger ones.

        Ingested files never overlap, so RocksDB places each on the last level
        and never merges them by itself: without this, every commit that
        ingests adds a file per field for good (and a descriptor to every reader).
        """
        opts = rd.CompactOptions()
        opts.set_bottommost_level_compaction(rd.BottommostLevelCompaction.force_optimized())
        try:
            self._cfs[cf].compact_range(start, None, opts)
        except Exception as e:
            raise self._error(e) from None

    # ------------------------------------------------------------------ lifetime

    def table_files(self) -> list[str]:
        """File names (in ``path``) of the table files the database's current version holds."""
        assert self._db is not None
        try:
            return sorted(os.path.basename(f["name"]) for f in self._db.live_files())
        except Exception as e:
            raise self._error(e) from None

    def rolled_back_tables(self) -> list[str]:
        """Table files in ``path`` that the MANIFEST does not name but that are newer than all it names.

        A sign that the MANIFEST was rolled back (truncated, or replaced by an
        older copy): the files hold commits the MANIFEST no longer knows, and a
        writable open would delete them. Call on a handle open on every column
        family. RocksDB numbers files in creation order and each flush, compaction
        or ingestion adds its files after the current write-ahead log was
        created; so a file a crash or a live writer left unnamed (its MANIFEST
        edit not yet written) is newer than some ``*.log`` in the directory,
        whereas a file older than every log there lost its edit long ago, and
        a file older than a named one is an obsolete compaction input.
        Losing only the last edits before the newest log goes unnoticed.
        """
        named = {_file_number(n) for n in self.table_files()}
        tables, logs = _numbered_files(self.path, ".sst"), _numbered_files(self.path, ".log")
        newest, oldest_log = max(named, default=0), min(logs, default=None)
        return [f"{n:06d}.sst" for n in tables
                if n not in named and n > newest and (oldest_log is None or n < oldest_log)]

    def snapshot_outdated(self) -> bool:
        """Whether a writer has changed the MANIFEST since this read-only handle's snapshot copied it.

        A read-only open reads the copied MANIFEST, then replays the live
        write-ahead log; a commit that ingested table files after the copy and
        then wrote ``count`` through the log shows its ``count`` without its
        records. When the MANIFEST has not moved, such a gap is damage, not a race.
        """
        return self._shadow is not None and self._shadow.outdated()

    @property
    def witness(self) -> Witness:
        """The committed-count witness (rocksds._witness) read just before this read-only snapshot was taken.

        Empty for a writable handle: a writer holds the lock and reads the file itself.
        """
        return self._shadow.witness if self._shadow is not None else Witness()

    def int_property(self, cf: str, name: str) -> Optional[int]:
        """An integer RocksDB property of one column family (e.g. ``rocksdb.estimate-num-keys``)."""
        try:
            return self._cfs[cf].property_int_value(name)
        except Exception:
            return None

    @property
    def closed(self) -> bool:
        return self._db is None

    def close(self, *, flush: bool = True) -> None:
        """Flush (when writable and ``flush``) and release the database; idempotent.

        ``flush=False`` is for a handle that wrote nothing and only held the lock.
        """
        db, self._db = self._db, None
        if db is None:
            return
        error: Optional[RocksdsError] = None
        try:
            if self.writable and flush:
                self._flush_all()
        except Exception as e:
            error = self._error(e)  # e.g. disk full; the database is released all the same
        # A column family object still referenced keeps RocksDB open (every table
        # file's descriptor, and a writer's lock) after db.close(): drop ours first.
        self._cfs.clear()
        self._handles.clear()
        for gets in self._getters:
            gets.clear()
        try:
            db.close()
        except Exception as e:
            error = error or self._error(e)
        finally:
            del db
            if self._shadow is not None and self._owns_shadow:
                self._shadow.remove()
        if error is not None:
            raise error


def _file_number(name: str) -> int:
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else -1


def _numbered_files(path: str, suffix: str) -> list[int]:
    """Numbers of RocksDB's ``NNNNNN<suffix>`` files in ``path`` (plain files only), ascending."""
    found = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                stem = entry.name[: -len(suffix)]
                if entry.name.endswith(suffix) and stem.isdigit() and entry.is_file(follow_symlinks=False):
                    found.append(int(stem))
    except OSError:
        return []
    return sorted(found)


def table_bytes(path: str) -> int:
    """Bytes of the table files in the database directory ``path`` (what readers would map)."""
    total = 0
    try:
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.endswith(".sst") and not entry.name.startswith("."):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
    except OSError:
        return 0
    return total
