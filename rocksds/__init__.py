"""rocksds: a self-describing dataset format for deep learning, built on RocksDB.

>>> import rocksds
>>> schema = rocksds.Schema(fields={"image": rocksds.Field(dtype="float32", shape=(3, 64, 64))})
>>> with rocksds.create("chips.rds", schema) as w:        # doctest: +SKIP
...     w.append({"image": img})
>>> ds = rocksds.open("chips.rds")                        # doctest: +SKIP

This package imports neither torch nor rasterio; see ``rocksds.torch`` and
``rocksds.raster`` for those integrations.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional, Sequence, Union, overload

from . import errors, spec
from ._version import __version__
from .errors import *  # noqa: F403
from .schema import Field, Schema
from .reader import Dataset
from .writer import Writer, create, open_writer
from .validation import validate  # Report, CODES, ... live in rocksds.validation

__all__ = ["__version__", "open", "create", "validate", "Schema", "Field", "Dataset", "Writer", "errors", "spec"]
__all__ += errors.__all__


@overload
def open(path: Union[str, "os.PathLike[str]"], mode: Literal["r"] = "r", **kwargs: Any) -> Dataset: ...
@overload
def open(path: Union[str, "os.PathLike[str]"], mode: Literal["a"], **kwargs: Any) -> Writer: ...


def open(  # noqa: A001 - mirrors builtins.open / zarr.open
    path: Union[str, "os.PathLike[str]"],
    mode: str = "r",
    *,
    fields: Optional[Sequence[str]] = None,
    cache_gb: Optional[float] = None,
    **kwargs: Any,
) -> Union[Dataset, Writer]:
    """Open a dataset: read it (``mode="r"``) or append to it (``mode="a"``).

    Example::

        ds = rocksds.open("chips.rds", fields=["image", "label"], cache_gb=1.0)
        ds[0]["image"], len(ds), ds.attrs
        with rocksds.open("chips.rds", mode="a") as w:
            w.append({"image": ..., "label": 3})

    Args:
        path: the dataset directory.
        mode: ``"r"`` returns a read-only :class:`Dataset`; ``"a"`` returns a
            :class:`Writer` that appends after the last committed sample.
        fields: (``"r"`` only) read (and open) only these fields; default all, in schema order.
        cache_gb: (``"r"`` only) block cache size in GiB (default: 0.25, or an eighth of the
            process's cgroup memory limit when smaller; 0 disables it).
        **kwargs: for ``"r"``: ``bloom_bits`` (bloom filter bits per key, default 10; see
            :class:`Dataset`). For ``"a"``: ``wal`` (default True: a returned commit survives a
            process crash), ``sync`` (default False: True also survives power loss),
            ``commit_bytes`` (``append`` commits by itself past this many buffered bytes, default
            64 MiB) and ``bulk`` (commit as table files; see :class:`Writer`).

    Raises:
        NotADatasetError: nothing, or no rocksds dataset, at ``path``.
        FieldNotFoundError: a name in ``fields`` is not in the schema.
        DatasetLockedError: (``"a"``) another writer holds the dataset.
        CorruptionError: the dataset's files are damaged.
        InvalidArgumentError: an unknown mode, or reading options given with ``mode="a"``.
    """
    if mode == "r":
        from .reader import open_dataset

        return open_dataset(path, fields=fields, cache_gb=cache_gb, **kwargs)
    if mode == "a":
        if fields is not None or cache_gb is not None:
            raise InvalidArgumentError("fields and cache_gb apply to reading (mode='r') only")  # noqa: F405
        return open_writer(path, **kwargs)
    raise InvalidArgumentError(f"mode must be 'r' or 'a', got {mode!r}")  # noqa: F405
