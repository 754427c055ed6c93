"""A folder of ``.npy`` or ``.npz`` files -> rocksds, one file per sample.

>>> from rocksds.convert import from_npy_folder
>>> from_npy_folder("chips/", "chips.rds")                 # doctest: +SKIP

- ``.npz``: each array in the archive is a field, named by its key.
- ``.npy``: the file's array is one field, named by ``field`` (default ``"data"``).

A folder holds one kind or the other, not both. Files are taken in natural
order of their names: runs of digits compare as numbers, so ``2.npy`` comes
before ``10.npy`` (zero-padded names sort the same either way; ties, such as
``1.npy`` and ``01.npy``, fall back to plain string order). Hidden files and
sub-folders are ignored. ``filename_field`` stores each file's name, so
sample ``i`` can be traced back to its file.

Before writing, every file's header is read to infer the schema: all files
must hold the same arrays with the same dtype and number of dimensions. With
``variable="auto"`` (the default) an axis whose length differs between files
becomes variable; ``variable=None`` makes that an error instead, and a
mapping of field -> axes marks axes variable explicitly.

Files are always loaded with ``np.load(..., allow_pickle=False)``: an object
array (which would unpickle, and so could run code) is refused.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

from typing_extensions import Unpack

import numpy as np

from ..errors import InvalidArgumentError, NotADatasetError, SampleError, SchemaError
from ..schema import Field
from ._engine import OutputOptions, ConversionReport, FieldSelection, Source, convert_source, storable_dtype, field_selection
from ._engine import mark_variable

__all__ = ["from_npy_folder", "NpyFolderSource", "natural_key"]

Variable = Union[str, Mapping[str, Sequence[int]], None]
Header = tuple[tuple[int, ...], np.dtype]


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``x2`` before ``x10``: digit runs compare as numbers."""
    parts = tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name))
    return parts + ((2, 0, name),)


def _npy_header(fp: Any) -> Optional[Header]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        return None
    return tuple(shape), dtype


def _headers(path: str) -> dict[str, Header]:
    """Array name -> (shape, dtype) of one file, reading headers only where possible."""
    try:
        if path.endswith(".npy"):
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return {"": (arr.shape, arr.dtype)}
        out: dict[str, Header] = {}
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with zf.open(member) as fp:
                    header = _npy_header(fp)
                if header is None:  # a newer header version: load that array
                    with np.load(path, allow_pickle=False) as z:
                        header = (z[key].shape, z[key].dtype)
                out[key] = header
        return out
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SampleError(f"{path}: cannot read as {path[-4:]} ({type(e).__name__}: {e})") from None


class NpyFolderSource(Source):
    """One ``.npy``/``.npz`` file per sample (see the module docstring).

    Args:
        folder: the directory of files.
        field: field name of a ``.npy`` file's array.
        fields: ``.npz`` keys to convert, or key -> field name (default: all).
        variable: ``"auto"``, ``None``, or field -> axes (see the module docstring).
        filename_field: if set, a ``str`` field of this name holds each file's name.
    """

    format = "npy"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        field: str = "data",
        fields: FieldSelection = None,
        variable: Variable = "auto",
        filename_field: Optional[str] = None,
    ) -> None:
        self.folder = os.fspath(folder)
        if not os.path.isdir(self.folder):
            raise NotADatasetError(f"{self.folder} is not a directory")
        if variable is not None and variable != "auto" and not isinstance(variable, Mapping):
            raise InvalidArgumentError(f"variable must be 'auto', None or a mapping of field -> axes, got {variable!r}")
        names = sorted(
            (n for n in os.listdir(self.folder) if n.endswith((".npy", ".npz")) and not n.startswith(".")
             and os.path.isfile(os.path.join(self.folder, n))),
            key=natural_key,
        )
        if not names:
            raise NotADatasetError(f"{self.folder} holds no .npy or .npz files")
        kinds = {n[-4:] for n in names}
        if len(kinds) > 1:
            raise InvalidArgumentError(f"{self.folder} mixes .npy and .npz files; convert one kind at a time")
        self._npz = kinds == {".npz"}
        self._paths = [os.path.join(self.folder, n) for n in names]
        self._filename_field = filename_field
        headers = [_headers(p) for p in self._paths]
        first = headers[0]
        if self._npz:
            self._keys = field_selection(list(first), fields, ".npz key")
        else:
            if fields is not None:
                raise InvalidArgumentError("fields applies to .npz files; name a .npy file's field with field=")
            self._keys = {"": field}
        declared = dict(variable) if isinstance(variable, Mapping) else {}
        self._fields = mark_variable(self._infer(headers, variable == "auto", declared), declared)
        if filename_field is not None:
            if filename_field in self._fields:
                raise InvalidArgumentError(f"filename_field {filename_field!r} is also an array's name")
            self._fields[filename_field] = Field(dtype="str")

    def _infer(
        self, headers: list[dict[str, Header]], auto: bool, declared: Mapping[str, Sequence[int]]
    ) -> dict[str, Field]:
        fields: dict[str, Field] = {}
        for key, name in self._keys.items():
            shape0, dtype0 = headers[0][key]
            where = f"{self._paths[0]}:{key}" if key else self._paths[0]
            dname = storable_dtype(dtype0, where)
            shape: list[Optional[int]] = list(shape0)
            axes = declared.get(name, ())
            for axis in [axes] if isinstance(axes, int) else axes:
                if isinstance(axis, int) and -len(shape) <= axis < len(shape):
                    shape[axis] = None  # declared variable: lengths may differ (mark_variable checks the rest)
            for path, header in zip(self._paths[1:], headers[1:]):
                if key not in header:
                    raise SchemaError(f"{path} lacks array {key!r}, which {self._paths[0]} has")
                s, dt = header[key]
                if storable_dtype(dt, path) != dname:
                    raise SchemaError(f"{path}: array {key or name!r} is {dt}, but {self._paths[0]} has {dtype0}")
                if len(s) != len(shape):
                    raise SchemaError(
                        f"{path}: array {key or name!r} has shape {s}, but {self._paths[0]} has {shape0} "
                        "(a different number of dimensions)"
                    )
                for axis, (a, b) in enumerate(zip(shape, s)):
                    if a is not None and a != b:
                        if not auto:
                            raise SchemaError(
                                f"{path}: array {key or name!r} has shape {s}, but {self._paths[0]} has {shape0}; "
                                f"make axis {axis} variable (variable='auto', or --variable)"
                            )
                        shape[axis] = None
            fields[name] = Field(dtype=dname, shape=tuple(shape))
        return fields

    def describe(self) -> str:
        return f"{'npz' if self._npz else 'npy'} folder {self.folder}"

    def fields(self) -> dict[str, Field]:
        return dict(self._fields)

    def __len__(self) -> int:
        return len(self._paths)

    def samples(self) -> Iterator[dict[str, Any]]:
        for path in self._paths:
            try:
                if self._npz:
                    with np.load(path, allow_pickle=False) as z:
                        sample = {name: z[key] for key, name in self._keys.items()}
                else:
                    sample = {self._keys[""]: np.load(path, allow_pickle=False)}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
                raise SampleError(f"{path}: cannot load ({type(e).__name__}: {e})") from None
            if self._filename_field is not None:
                sample[self._filename_field] = os.path.basename(path)
            yield sample


def from_npy_folder(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    field: str = "data",
    fields: FieldSelection = None,
    variable: Variable = "auto",
    filename_field: Optional[str] = None,
    **options: Unpack[OutputOptions],
) -> ConversionReport:
    """Convert a folder of ``.npy``/``.npz`` files (one per sample), then verify every sample.

    Args:
        folder, field, fields, variable, filename_field: see :class:`NpyFolderSource`.
        out, options: the dataset to create and how (see :func:`rocksds.convert.convert_source`).
    """
    source = NpyFolderSource(folder, field=field, fields=fields, variable=variable, filename_field=filename_field)
    return convert_source(source, out, **options)
