"""The storage backends the benchmarks compare, behind one small interface.

Each backend has ``write(path, arrays) -> None`` (from stacked in-memory
arrays) and ``reader(path, fields) -> Reader``; a reader has ``get(i)`` (one
sample as a dict of arrays), ``get_batch(idx)`` (a dict of stacked arrays in
the order of ``idx``) and ``close()``. Readers open their files lazily in each
process, so a reader object can be handed to forked DataLoader workers.

Peers are configured the way a careful user would, not as straw men, except
``h5py-naive``, which is the baseline the original comparison used: elements
written one at a time into a contiguous dataset, read one at a time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["Backend", "peer_backends", "rocksds_backend", "dir_bytes", "drop_page_cache"]

Arrays = dict[str, np.ndarray]


def dir_bytes(path: str) -> int:
    """Disk space allocated to every file under ``path`` (or to the file itself).

    Allocated blocks, not apparent sizes: LMDB's data file is as large as its
    map but sparse, and small files each take whole filesystem blocks.
    """
    files = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _d, fs in os.walk(path) for f in fs]
    return sum(os.stat(f).st_blocks * 512 for f in files)


def drop_page_cache(path: str) -> None:
    """Evict ``path``'s files from the OS page cache (fsync, then POSIX_FADV_DONTNEED).

    Only clean, unmapped pages can be dropped, hence the fsync; readers must be
    closed (LMDB and memmap map their files). Later reads then come from the
    disk, as they would for a dataset larger than RAM or read for the first time.
    """
    files = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _d, fs in os.walk(path) for f in fs]
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        try:
            try:
                os.fsync(fd)
            except OSError:
                pass
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class _Lazy:
    """Base of readers: ``_handle()`` opens per process (safe after fork)."""

    def __init__(self, path: str, fields: list[str]) -> None:
        self.path = path
        self.fields = fields
        self._pid: Optional[int] = None
        self._h: Any = None

    def _open(self) -> Any:
        raise NotImplementedError

    def _handle(self) -> Any:
        if self._pid != os.getpid():
            self._h = self._open()
            self._pid = os.getpid()
        return self._h

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "fields": self.fields, "_pid": None, "_h": None}

    def close(self) -> None:
        h, self._h, self._pid = self._h, None, None
        if h is not None and hasattr(h, "close"):
            h.close()

    def get_batch(self, idx: np.ndarray) -> Arrays:
        samples = [self.get(int(i)) for i in idx]
        return {f: np.stack([s[f] for s in samples]) for f in self.fields}


# --------------------------------------------------------------------- rocksds


class RocksdsReader(_Lazy):
    """``rocksds.open(path)`` per process; ``cache_gb=None`` leaves the block cache at its default."""

    def __init__(self, path: str, fields: list[str], cache_gb: Optional[float] = None) -> None:
        super().__init__(path, fields)
        self.cache_gb = cache_gb

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "cache_gb": self.cache_gb}

    def _open(self) -> Any:
        import rocksds

        return rocksds.open(self.path) if self.cache_gb is None else rocksds.open(self.path, cache_gb=self.cache_gb)

    def get(self, i: int) -> Arrays:
        return self._handle()[i]

    def get_batch(self, idx: np.ndarray) -> Arrays:
        return self._handle().get_batch(idx)


def rocksds_backend(name: str, compression: Optional[str] = None, *, tuned: bool = False,
                    cache_gb: Optional[float] = None, **create_options: Any) -> "Backend":
    """A rocksds backend written with ``rocksds.create(path, schema, **create_options)``.

    The default backend (no arguments beyond the name) is what a new user
    writes: fields that name no compression, ``Writer.extend`` in blocks of
    1,000 samples, ``rocksds.open(path)`` with no tuning. ``compression``
    names a codec in every field; ``create_options`` (``wal=False``,
    ``bulk=True``) are passed through, and mark the backend tuned.
    """

    def write(path: str, arrays: Arrays) -> None:
        import rocksds

        def field(a: np.ndarray) -> Any:
            if compression is None:
                return rocksds.Field(dtype=a.dtype.name, shape=a.shape[1:])
            return rocksds.Field(dtype=a.dtype.name, shape=a.shape[1:], compression=compression)

        schema = rocksds.Schema(fields={f: field(a) for f, a in arrays.items()})
        n = len(next(iter(arrays.values())))
        step = 1000
        with rocksds.create(path, schema, **create_options) as w:
            for lo in range(0, n, step):
                w.extend({f: a[lo : lo + step] for f, a in arrays.items()})

    opts = ", ".join(f"{k}={v!r}" for k, v in create_options.items())
    notes = ("compression=" + compression if compression else "default compression") + (f", {opts}" if opts else "")
    notes += "" if cache_gb is None else f", cache_gb={cache_gb}"
    return Backend(name, write, lambda p, f: RocksdsReader(p, f, cache_gb), family="rocksds", notes=notes,
                   tuned=tuned or bool(create_options) or compression is not None or cache_gb is not None)


# --------------------------------------------------------------------- HDF5


class H5Reader(_Lazy):
    def _open(self) -> Any:
        import h5py

        return h5py.File(self.path, "r")

    def get(self, i: int) -> Arrays:
        f = self._handle()
        return {k: f[k][i] for k in self.fields}


class H5BestReader(H5Reader):
    """Datasets looked up once; batches read with one sorted fancy selection per field."""

    def _open(self) -> Any:
        import h5py

        f = h5py.File(self.path, "r", rdcc_nbytes=64 * 2**20)
        return f, {k: f[k] for k in self.fields}

    def close(self) -> None:
        h, self._h, self._pid = self._h, None, None
        if h is not None:
            h[0].close()

    def get(self, i: int) -> Arrays:
        ds = self._handle()[1]
        return {k: ds[k][i] for k in self.fields}

    def get_batch(self, idx: np.ndarray) -> Arrays:
        ds = self._handle()[1]
        order = np.argsort(idx)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        sorted_idx = np.asarray(idx)[order]
        return {k: ds[k][sorted_idx][inverse] for k in self.fields}


def _h5_naive_write(path: str, arrays: Arrays) -> None:
    import h5py

    n = len(next(iter(arrays.values())))
    with h5py.File(path, "w") as f:
        dsets = {k: f.create_dataset(k, shape=a.shape, dtype=a.dtype) for k, a in arrays.items()}
        for i in range(n):
            for k, a in arrays.items():
                dsets[k][i] = a[i]


def _h5_best_write(path: str, arrays: Arrays) -> None:
    import h5py

    n = len(next(iter(arrays.values())))
    per = max(1, sum(a[0].nbytes for a in arrays.values()))
    step = max(1, 64 * 2**20 // per)
    with h5py.File(path, "w") as f:
        # Contiguous and uncompressed: the fastest HDF5 layout for random reads.
        dsets = {k: f.create_dataset(k, shape=a.shape, dtype=a.dtype) for k, a in arrays.items()}
        for lo in range(0, n, step):
            for k, a in arrays.items():
                dsets[k][lo : lo + step] = a[lo : lo + step]


def _h5_chunked_write(path: str, arrays: Arrays) -> None:
    import h5py

    n = len(next(iter(arrays.values())))
    per = max(1, sum(a[0].nbytes for a in arrays.values()))
    step = max(1, 64 * 2**20 // per)
    with h5py.File(path, "w") as f:
        # One chunk per sample: one read per sample and field, the layout that holds up when the file
        # is larger than memory (a contiguous file read through the page cache collapses there).
        dsets = {k: f.create_dataset(k, shape=a.shape, dtype=a.dtype, chunks=(1, *a.shape[1:]))
                 for k, a in arrays.items()}
        for lo in range(0, n, step):
            for k, a in arrays.items():
                dsets[k][lo : lo + step] = a[lo : lo + step]


# --------------------------------------------------------------------- LMDB


class LmdbReader(_Lazy):
    """Read-only, lock-free environment; a sample's fields are concatenated in one value."""

    def _open(self) -> Any:
        import json

        import lmdb

        with open(os.path.join(self.path, "layout.json")) as fh:
            self.layout = [(k, np.dtype(dt), tuple(shape)) for k, dt, shape in json.load(fh)]
        env = lmdb.open(self.path, readonly=True, lock=False, readahead=False, max_readers=512)
        return env, env.begin(buffers=False)

    def close(self) -> None:
        h, self._h, self._pid = self._h, None, None
        if h is not None:
            h[1].abort()
            h[0].close()

    def _split(self, value: bytes) -> Arrays:
        out, off = {}, 0
        for name, dt, shape in self.layout:
            size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            out[name] = np.frombuffer(value, dt, count=size // dt.itemsize, offset=off).reshape(shape)
            off += size
        return out

    def get(self, i: int) -> Arrays:
        return self._split(self._handle()[1].get(int(i).to_bytes(8, "big")))

    def get_batch(self, idx: np.ndarray) -> Arrays:
        txn = self._handle()[1]
        n = len(idx)
        out = {name: np.empty((n, *shape), dt) for name, dt, shape in self.layout}
        cur = txn.cursor()
        for j, i in enumerate(idx):
            s = self._split(cur.get(int(i).to_bytes(8, "big")))
            for name in out:
                out[name][j] = s[name]
        return out


def _lmdb_write(path: str, arrays: Arrays) -> None:
    import json

    import lmdb

    n = len(next(iter(arrays.values())))
    raw = sum(a.nbytes for a in arrays.values())
    env = lmdb.open(path, map_size=int(raw * 1.6) + 2**26, writemap=True, map_async=True, sync=False)
    per = max(1, raw // max(n, 1))
    step = max(1, 64 * 2**20 // per)
    names = list(arrays)
    for lo in range(0, n, step):
        with env.begin(write=True) as txn:
            for i in range(lo, min(n, lo + step)):
                txn.put(i.to_bytes(8, "big"), b"".join(arrays[k][i].tobytes() for k in names), append=True)
    env.sync(True)
    env.close()
    with open(os.path.join(path, "layout.json"), "w") as fh:
        json.dump([(k, a.dtype.str, a.shape[1:]) for k, a in arrays.items()], fh)


# --------------------------------------------------------------------- files


class NpyFilesReader(_Lazy):
    """One .npy per sample for every array field; labels (0-d fields) kept in one small array."""

    def _open(self) -> Any:
        scalars = {}
        for k in self.fields:
            p = os.path.join(self.path, f"{k}.npy")
            if os.path.exists(p):
                scalars[k] = np.load(p)
        return scalars

    def get(self, i: int) -> Arrays:
        scalars = self._handle()
        out = {}
        for k in self.fields:
            out[k] = scalars[k][i] if k in scalars else np.load(os.path.join(self.path, k, f"{i:08d}.npy"))
        return out


def _npy_write(path: str, arrays: Arrays) -> None:
    os.makedirs(path)
    for k, a in arrays.items():
        if a.ndim == 1:
            np.save(os.path.join(path, f"{k}.npy"), a)
            continue
        os.makedirs(os.path.join(path, k))
        for i in range(len(a)):
            np.save(os.path.join(path, k, f"{i:08d}.npy"), a[i])


class MemmapReader(_Lazy):
    """One big .npy per field, memory-mapped; ``get`` copies the sample out of the map."""

    def _open(self) -> Any:
        return {k: np.load(os.path.join(self.path, f"{k}.npy"), mmap_mode="r") for k in self.fields}

    def close(self) -> None:
        self._h, self._pid = None, None

    def get(self, i: int) -> Arrays:
        m = self._handle()
        return {k: np.array(m[k][i]) for k in self.fields}

    def get_batch(self, idx: np.ndarray) -> Arrays:
        m = self._handle()
        return {k: m[k][idx] for k in self.fields}


def _memmap_write(path: str, arrays: Arrays) -> None:
    os.makedirs(path)
    for k, a in arrays.items():
        out = np.lib.format.open_memmap(os.path.join(path, f"{k}.npy"), mode="w+", dtype=a.dtype, shape=a.shape)
        out[:] = a
        out.flush()
        del out


# --------------------------------------------------------------------- registry


@dataclass
class Backend:
    """A named way to store the arrays, with its reader factory."""

    name: str
    write: Callable[[str, Arrays], None]
    reader: Callable[[str, list[str]], Any]
    family: str
    notes: str = ""
    suffix: str = ""
    #: Not the default path of its library (rocksds with options set): reported apart, labelled "tuned".
    tuned: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def remove(self, path: str) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def peer_backends() -> list[Backend]:
    """The non-rocksds backends."""
    return [
        Backend("h5py-naive", _h5_naive_write, H5Reader, "h5py", "contiguous, one element at a time", ".h5"),
        Backend("h5py-chunked", _h5_chunked_write, H5Reader, "h5py",
                "chunk = 1 sample, no compression, default h5py.File", ".h5"),
        Backend("h5py-best", _h5_best_write, H5BestReader, "h5py", "contiguous, 64 MiB block writes, sorted fancy reads", ".h5"),
        Backend("lmdb", _lmdb_write, LmdbReader, "lmdb",
                "64 MiB write txns, append, read-only lock-free"),
        Backend("npy-files", _npy_write, NpyFilesReader, "files", "one .npy per sample"),
        Backend("memmap", _memmap_write, MemmapReader, "memmap", "one .npy per field, np.load(mmap_mode='r')"),
    ]


