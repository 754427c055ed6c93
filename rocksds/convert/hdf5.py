"""HDF5 -> rocksds: datasets that share a leading sample axis become fields.

>>> from rocksds.convert import from_hdf5
>>> from_hdf5("train.h5", "train.rds", fields={"x": "image", "y": "label"})  # doctest: +SKIP

Each chosen HDF5 dataset of shape ``(N, *shape)`` becomes a field of shape
``shape``; row ``i`` of every dataset is sample ``i``. Without ``fields``,
every dataset in the file with at least one dimension is taken (they must all
have the same ``N``), named by its path with ``/`` replaced by ``.``
(``train/images`` -> ``train.images``). UTF-8 variable-length string datasets
become ``str`` fields, other string datasets ``bytes`` fields, and 1-D
variable-length numeric datasets (``h5py.vlen_dtype``) fields of shape ``(None,)``. Rows are read in
blocks of about 32 MiB. Needs h5py (``pip install h5py``), imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from typing_extensions import Unpack

import numpy as np

from ..errors import InvalidArgumentError, NotADatasetError, SchemaError
from ..schema import Field
from ._engine import OutputOptions, ConversionReport, FieldSelection, Source, convert_source, storable_dtype, field_selection
from .._optional import require

__all__ = ["from_hdf5", "HDF5Source"]

_BLOCK_BYTES = 32 * 2**20


class HDF5Source(Source):
    """Rows of HDF5 datasets as samples (see the module docstring).

    Args:
        path: the HDF5 file.
        fields: dataset paths to convert, or dataset path -> field name.
    """

    format = "hdf5"

    def __init__(self, path: str | os.PathLike[str], fields: FieldSelection = None) -> None:
        h5py = require("h5py", "h5py", what="converting HDF5")
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise NotADatasetError(f"{self.path} is not a file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise NotADatasetError(f"{self.path} is not a readable HDF5 file: {e}") from None
        try:
            available: dict[str, Any] = {}

            def visit(name: str, obj: Any) -> None:  # returning a value would stop the walk
                if isinstance(obj, h5py.Dataset):
                    available[name] = obj

            self._file.visititems(visit)
            if fields is None:
                chosen = {n: n.replace("/", ".") for n, d in available.items() if d.ndim >= 1}
                if not chosen:
                    raise InvalidArgumentError(f"{self.path} holds no HDF5 dataset with a sample axis")
            else:
                chosen = field_selection(list(available), fields, "HDF5 dataset")
            self._columns = {field: available[src] for src, field in chosen.items()}
            lengths = {src: available[src].shape[0] if available[src].ndim else None for src in chosen}
            if None in lengths.values():
                scalar = [s for s, n in lengths.items() if n is None]
                raise InvalidArgumentError(f"HDF5 datasets {scalar} are scalars, with no sample axis to convert")
            if len(set(lengths.values())) > 1:
                raise InvalidArgumentError(
                    f"HDF5 datasets have different lengths along their first axis: {lengths}; "
                    "choose the ones that belong together with fields= (--field on the command line)"
                )
            self._n = int(next(iter(lengths.values())))
            self._fields = {name: self._field(name, d, h5py) for name, d in self._columns.items()}
        except BaseException:
            self._file.close()
            raise

    def _field(self, name: str, dset: Any, h5py: Any) -> Field:
        where = f"{self.path}:{dset.name}"
        string = h5py.check_string_dtype(dset.dtype)
        if string is not None:
            if dset.ndim != 1:
                raise SchemaError(
                    f"{where}: string datasets must be 1-D (one string per sample), got shape {dset.shape}"
                )
            return Field(dtype="str" if string.encoding == "utf-8" and string.length is None else "bytes")
        base = h5py.check_vlen_dtype(dset.dtype)
        if base is not None:  # ragged rows: one 1-D array of any length per sample
            if dset.ndim != 1:
                raise SchemaError(f"{where}: variable-length datasets must be 1-D, got shape {dset.shape}")
            return Field(dtype=storable_dtype(base, where), shape=(None,))
        return Field(dtype=storable_dtype(dset.dtype, where), shape=dset.shape[1:])

    def describe(self) -> str:
        return f"hdf5 {self.path}"

    def metadata(self) -> dict[str, Any]:
        """``{"hdf5": {"file": attrs of the file, "fields": {field: attrs of its dataset}}}`` (nothing when
        there are none), values that attrs can hold only (numbers, strings, lists of them; bytes decoded as
        UTF-8); others are left out."""
        fields = {name: kept for name, d in self._columns.items() if (kept := _plain_attrs(d.attrs))}
        file_attrs = _plain_attrs(self._file.attrs)
        return {"hdf5": {"file": file_attrs, "fields": fields}} if file_attrs or fields else {}

    def fields(self) -> dict[str, Field]:
        return dict(self._fields)

    def __len__(self) -> int:
        return self._n

    def _reader(self, name: str) -> tuple[Any, int]:
        dset = self._columns[name]
        field = self._fields[name]
        if field.dtype == "str":
            return dset.asstr(), 4096
        if field.dtype == "bytes" or field.is_variable:
            return dset, 4096
        row = max(1, int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize)
        return dset, max(1, min(4096, _BLOCK_BYTES // row))

    def samples(self) -> Iterator[dict[str, Any]]:
        readers = {name: self._reader(name) for name in self._columns}
        block = min(rows for _r, rows in readers.values())
        for start in range(0, self._n, block):
            stop = min(start + block, self._n)
            columns = {name: reader[start:stop] for name, (reader, _) in readers.items()}
            for i in range(stop - start):
                sample = {}
                for name, col in columns.items():
                    value = col[i]
                    if isinstance(value, np.bytes_):
                        value = bytes(value)
                    sample[name] = value
                yield sample

    def close(self) -> None:
        self._file.close()


def from_hdf5(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fields: FieldSelection = None,
    **options: Unpack[OutputOptions],
) -> ConversionReport:
    """Convert an HDF5 file to a rocksds dataset, then verify every sample.

    Args:
        path: the HDF5 file.
        out: the dataset directory to create.
        fields: HDF5 dataset paths to convert, or path -> field name (default: all).
        options: compression, field_compression, attrs, overwrite, progress
            (see :func:`rocksds.convert.convert_source`).
    """
    return convert_source(HDF5Source(path, fields), out, **options)


def _plain(value: Any) -> Any:
    """An HDF5 attribute value as attrs can hold it, or ``_SKIP``."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return _SKIP
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.size <= 4096:
            return value.tolist()
        if value.dtype.kind in "SUO" and value.size <= 4096:
            items = [_plain(v) for v in value.ravel().tolist()]
            return _SKIP if any(i is _SKIP for i in items) else items
        return _SKIP
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        if isinstance(value, float) and not np.isfinite(value):
            return str(value)
        return value
    return _SKIP


_SKIP = object()


def _plain_attrs(attrs: Any) -> dict[str, Any]:
    out = {}
    for key in attrs:
        value = _plain(attrs[key])
        if value is not _SKIP:
            out[str(key)] = value
    return out
