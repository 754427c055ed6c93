"""The formats a user would pick instead of rocksds: LitData, MosaicML Streaming, Zarr v3, WebDataset.

Each is written and read the way its own documentation shows, to a local
folder, with its defaults unless a line here says why not:

* ``litdata``: ``litdata.optimize(fn, inputs=range(n), output_dir, chunk_bytes="64MB")``;
  read with ``StreamingDataset(dir)`` (``ds[i]`` for random access) and, for
  DataLoader epochs, ``StreamingDataset(dir, shuffle=True)`` in a
  ``StreamingDataLoader`` (LitData shuffles by itself, chunk-wise).
* ``mosaic``: ``streaming.MDSWriter(out=dir, columns=...)`` with ``ndarray``
  columns (shards of the default 64 MiB, no compression); random access and
  the same-order DataLoader epochs through ``streaming.LocalDataset`` (its
  map-style random-access reader); ``mosaic-stream`` is
  ``StreamingDataset(local=dir, shuffle=True, batch_size=B)`` in a plain
  DataLoader (its own shuffle).
* ``zarr``: one array per field, one chunk per sample, the default codecs
  (zstd); ``zarr-sharded`` packs the same chunks into shards of about 64 MiB
  (``shards=``), the layout zarr recommends for many small chunks.
* ``webdataset``: ``ShardWriter`` tar shards of ``.npy`` members; sequential
  only (no random access), read with ``WebDataset(urls, shardshuffle=True)
  .shuffle(1000).decode()`` in a ``WebLoader``.

``import streaming`` imports ``streaming.vision``, which needs torchvision
(not installable next to this CPU torch); it is replaced by an empty module
before the import, since nothing here uses it.
"""

from __future__ import annotations

import glob
import math
import os
import sys
import types
from typing import Any, Callable

import numpy as np

from backends import Arrays, Backend, _Lazy

__all__ = ["peer_backends", "available", "missing"]

#: Target size of a shard / chunk file for the formats that pack samples (the documented defaults are 64 MB).
SHARD_BYTES = 64 * 2**20


def available(module: str) -> bool:
    """Whether ``module`` (``litdata``, ``streaming``, ``zarr``, ``webdataset``) imports."""
    try:
        _import(module)
    except Exception:  # noqa: BLE001 - an ImportError, or a broken install failing at import (e.g. torchvision)
        return False
    return True


def _import(module: str) -> Any:
    if module == "streaming" and "streaming.vision" not in sys.modules:
        sys.modules["streaming.vision"] = types.ModuleType("streaming.vision")
    __import__(module)
    return sys.modules[module]


def _n(arrays: Arrays) -> int:
    return len(next(iter(arrays.values())))


def _sample(arrays: Arrays, i: int) -> dict[str, Any]:
    return {k: a[i] for k, a in arrays.items()}


def _as_arrays(sample: dict[str, Any], fields: list[str]) -> Arrays:
    return {k: np.asarray(sample[k]) for k in fields}


# --------------------------------------------------------------------- LitData


class _LitItem:
    """``optimize``'s ``fn``: the sample at an index (inherited by its forked workers)."""

    def __init__(self, arrays: Arrays) -> None:
        self.arrays = arrays

    def __call__(self, i: int) -> dict[str, Any]:
        return _sample(self.arrays, i)


def _litdata_write(path: str, arrays: Arrays) -> None:
    litdata = _import("litdata")
    # One worker: optimize's workers each write their own chunks, which would reorder the samples
    # relative to the other backends; with num_workers=1 sample i of the output is sample i of the input.
    litdata.optimize(fn=_LitItem(arrays), inputs=list(range(_n(arrays))), output_dir=path, chunk_bytes="64MB",
                     num_workers=1, start_method="fork", verbose=False)


class LitDataReader(_Lazy):
    """``StreamingDataset(dir)[i]``; DataLoader epochs through ``StreamingDataLoader``."""

    def _open(self) -> Any:
        return _import("litdata").StreamingDataset(self.path)

    def get(self, i: int) -> Arrays:
        return _as_arrays(self._handle()[i], self.fields)

    def loader(self, batch: int, workers: int, seed: int) -> Any:
        litdata = _import("litdata")
        ds = litdata.StreamingDataset(self.path, shuffle=True, seed=seed)
        return litdata.StreamingDataLoader(ds, batch_size=batch, num_workers=workers)


# --------------------------------------------------------------------- MosaicML Streaming


def _mds_columns(arrays: Arrays) -> dict[str, str]:
    cols = {}
    for k, a in arrays.items():
        cols[k] = a.dtype.name if a.ndim == 1 else f"ndarray:{a.dtype.name}:{','.join(map(str, a.shape[1:]))}"
    return cols


def _mosaic_write(path: str, arrays: Arrays) -> None:
    streaming = _import("streaming")
    with streaming.MDSWriter(out=path, columns=_mds_columns(arrays), size_limit=SHARD_BYTES) as out:
        for i in range(_n(arrays)):
            out.write(_sample(arrays, i))


class MosaicReader(_Lazy):
    """``streaming.LocalDataset(dir)``: MDS shards read in place, by sample index."""

    def _open(self) -> Any:
        return _import("streaming").LocalDataset(self.path)

    def close(self) -> None:
        self._h, self._pid = None, None

    def get(self, i: int) -> Arrays:
        return _as_arrays(self._handle()[i], self.fields)


class MosaicStreamReader(MosaicReader):
    """``LocalDataset`` for random access; ``StreamingDataset(local=dir, shuffle=True)`` for epochs."""

    def loader(self, batch: int, workers: int, seed: int) -> Any:
        streaming = _import("streaming")
        from torch.utils.data import DataLoader

        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
        ds = streaming.StreamingDataset(local=self.path, shuffle=True, shuffle_seed=seed, batch_size=batch)
        return DataLoader(ds, batch_size=batch, num_workers=workers)


# --------------------------------------------------------------------- Zarr v3


def _zarr_writer(sharded: bool) -> Callable[[str, Arrays], None]:
    def write(path: str, arrays: Arrays) -> None:
        zarr = _import("zarr")
        root = zarr.open_group(path, mode="w", zarr_format=3)
        for k, a in arrays.items():
            chunk = (1, *a.shape[1:])
            shards = None
            if sharded:
                per = max(1, SHARD_BYTES // max(1, a[0].nbytes))
                shards = (min(per, len(a)), *a.shape[1:])
            arr = root.create_array(k, shape=a.shape, dtype=a.dtype, chunks=chunk, shards=shards)
            step = shards[0] if shards else max(1, SHARD_BYTES // max(1, a[0].nbytes))
            for lo in range(0, len(a), step):
                arr[lo : lo + step] = a[lo : lo + step]

    return write


class ZarrReader(_Lazy):
    """``zarr.open_group(dir, mode="r")``; ``arr[i]`` per sample, ``arr.oindex[idx]`` per batch."""

    def _open(self) -> Any:
        zarr = _import("zarr")
        root = zarr.open_group(self.path, mode="r")
        return {k: root[k] for k in self.fields}

    def close(self) -> None:
        self._h, self._pid = None, None

    def get(self, i: int) -> Arrays:
        arrs = self._handle()
        return {k: a[i] for k, a in arrs.items()}

    def get_batch(self, idx: np.ndarray) -> Arrays:
        arrs = self._handle()
        sel = np.asarray(idx, dtype=np.int64)
        return {k: a.oindex[sel] for k, a in arrs.items()}


# --------------------------------------------------------------------- WebDataset


def _wds_write(path: str, arrays: Arrays) -> None:
    wds = _import("webdataset")
    os.makedirs(path)
    n = _n(arrays)
    per = max(1, sum(a[0].nbytes for a in arrays.values()))
    # At least 8 shards, so that 2 DataLoader workers (each reads whole shards) are both busy.
    count = max(1, min(SHARD_BYTES // per, math.ceil(n / 8)))
    with wds.ShardWriter(os.path.join(path, "shard-%06d.tar"), maxcount=count, maxsize=3 * SHARD_BYTES,
                         verbose=0) as sink:
        for i in range(n):
            sink.write({"__key__": f"{i:08d}", **{f"{k}.npy": a[i] for k, a in arrays.items()}})


class WebDatasetReader:
    """Sequential only: ``iterate()`` yields (index, sample) in file order; epochs through ``WebLoader``."""

    random_access = False

    def __init__(self, path: str, fields: list[str]) -> None:
        self.path = path
        self.fields = fields

    def _urls(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.path, "shard-*.tar")))

    def iterate(self) -> Any:
        wds = _import("webdataset")
        for s in wds.WebDataset(self._urls(), shardshuffle=False, empty_check=False).decode():
            yield int(s["__key__"]), {k: np.asarray(s[f"{k}.npy"]) for k in self.fields}

    def loader(self, batch: int, workers: int, seed: int) -> Any:
        wds = _import("webdataset")
        keys = [f"{k}.npy" for k in self.fields]
        ds = (wds.WebDataset(self._urls(), shardshuffle=len(self._urls()), seed=seed, empty_check=False)
              .shuffle(1000).decode().to_tuple(*keys).batched(batch))
        names = self.fields

        def as_dict(t: tuple) -> dict[str, Any]:
            return dict(zip(names, t))

        return wds.WebLoader(ds, batch_size=None, num_workers=workers).map(as_dict)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------- registry


def peer_backends(only_available: bool = True) -> list[Backend]:
    """The peers whose libraries import here (all of them with ``only_available=False``)."""
    out = [
        ("litdata", Backend("litdata", _litdata_write, LitDataReader, "litdata",
                            "optimize(chunk_bytes='64MB'); StreamingDataset, StreamingDataLoader (own shuffle)")),
        ("streaming", Backend("mosaic", _mosaic_write, MosaicReader, "mosaic",
                              "MDSWriter ndarray columns, 64 MiB shards; LocalDataset (random access)")),
        ("streaming", Backend("mosaic-stream", _mosaic_write, MosaicStreamReader, "mosaic",
                              "MDSWriter; StreamingDataset(local, shuffle=True) (own shuffle)")),
        ("zarr", Backend("zarr", _zarr_writer(False), ZarrReader, "zarr",
                         "v3, one array per field, chunk = 1 sample, default codecs (zstd)")),
        ("zarr", Backend("zarr-sharded", _zarr_writer(True), ZarrReader, "zarr",
                         "v3, chunk = 1 sample in ~64 MiB shards, default codecs (zstd)")),
        ("webdataset", Backend("webdataset", _wds_write, WebDatasetReader, "webdataset",
                               "tar shards of .npy; sequential only, WebLoader, shuffle(1000)")),
    ]
    return [b for mod, b in out if not only_available or available(mod)]


def missing() -> list[str]:
    """The peer libraries that do not import here (reported, never silently dropped)."""
    return [m for m in ("litdata", "streaming", "zarr", "webdataset") if not available(m)]

