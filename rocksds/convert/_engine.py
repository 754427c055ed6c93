"""What every converter shares: write a source to a new dataset, read it back, compare, report.

A converter turns its input into a :class:`Source`: the inferred fields, the
number of samples and an iterator over sample dicts. :func:`convert_source`
does the rest:

1. builds the schema (source fields + compression + attrs);
2. writes every sample into a hidden sibling directory of the output, taking
   a BLAKE2b digest of each field value exactly as it came from the source;
3. reopens the result with :func:`rocksds.open`, reads every sample back and
   compares its digests with the source's (exact, byte-for-byte after the
   value is put in the field's little-endian dtype; NaNs must match bit for
   bit);
4. only then renames the directory to the output path.

If anything fails, including verification, the hidden directory is removed
and nothing appears at the output path. Digests rather than a second read of
the source keep the source read once: a slow HDF5 file or a torch Dataset
with expensive decoding is not read twice, and a Dataset that returns
different values on each call is checked against what was actually written.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

from typing_extensions import TypedDict

import numpy as np

from .. import spec
from .._optional import ProgressBar
from .._paths import building, check_target, dir_bytes
from ..errors import InvalidArgumentError, SampleError, SchemaError
from ..errors import CorruptionError, VerificationError
from ..reader import open_dataset
from ..schema import Field, Schema, dtype_name
from ..stats import STATS_DTYPES
from ..writer import create

__all__ = [
    "ConversionReport",
    "Source",
    "convert_source",
    "storable_dtype",
    "field_selection",
    "mark_variable",
    "parse_compression",
]

_DIGEST_BYTES = 16

#: ``fields=`` of every converter: names to keep, or source name -> field name.
FieldSelection = Union[Sequence[str], Mapping[str, str], None]


def storable_dtype(dt: Any, where: str) -> str:
    """The rocksds dtype name of a numpy dtype (see :func:`rocksds.schema.dtype_name`), or :class:`SchemaError`."""
    try:
        dt = np.dtype(dt)
    except TypeError as e:
        raise SchemaError(f"{where}: {dt!r} is not a numpy dtype ({e})") from None
    name = dtype_name(dt)
    if name is not None:
        return name
    raise SchemaError(
        f"{where}: dtype {dt} cannot be stored; rocksds fields are one of {sorted(spec.NUMERIC_DTYPES)}, str or bytes"
    )


def field_selection(available: Sequence[str], fields: FieldSelection, what: str) -> dict[str, str]:
    """Source name -> field name, in order: all of ``available``, or the ``fields`` chosen.

    Raises:
        InvalidArgumentError: ``fields`` names something the source lacks.
    """
    if fields is None:
        return {name: name for name in available}
    if isinstance(fields, str):
        raise InvalidArgumentError(f"fields must be a list of {what} names or a mapping, not the string {fields!r}")
    chosen = dict(fields) if isinstance(fields, Mapping) else {name: name for name in fields}
    missing = [name for name in chosen if name not in available]
    if missing:
        raise InvalidArgumentError(f"no {what} {missing} in the source; it has {list(available)}")
    if not chosen:
        raise InvalidArgumentError("fields selects nothing; leave it out to convert everything")
    targets = list(chosen.values())
    dupes = sorted({t for t in targets if targets.count(t) > 1})
    if dupes:
        raise InvalidArgumentError(f"several {what}s map to the same field name {dupes}")
    return chosen


def mark_variable(fields: Mapping[str, Field], variable: Optional[Mapping[str, Sequence[int]]]) -> dict[str, Field]:
    """``fields`` with the given axes (field name -> axis numbers) made variable (``None``)."""
    out = dict(fields)
    for name, axes in (variable or {}).items():
        if name not in out:
            raise InvalidArgumentError(f"variable axes given for unknown field {name!r}; fields are {list(out)}")
        f = out[name]
        shape = list(f.shape)
        for axis in [axes] if isinstance(axes, int) else axes:
            if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
                raise InvalidArgumentError(f"field {name!r} has {len(shape)} dimensions; axis {axis!r} does not exist")
            shape[axis] = None
        out[name] = Field(dtype=f.dtype, shape=tuple(shape))
    return out


def parse_compression(text: Optional[str]) -> tuple[Optional[str], Optional[int]]:
    """``"zstd"`` -> ("zstd", None); ``"zstd:9"`` -> ("zstd", 9); ``None`` -> the per-dtype default."""
    if text is None:
        return None, None
    codec, sep, level = str(text).partition(":")
    if codec not in spec.COMPRESSIONS:
        raise InvalidArgumentError(f"unknown compression {codec!r}; expected one of {sorted(spec.COMPRESSIONS)}")
    if not sep:
        return codec, None
    try:
        return codec, int(level)
    except ValueError:
        raise InvalidArgumentError(f"compression level must be an integer, got {text!r}") from None


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What a conversion wrote; returned only after every sample was verified.

    Attributes:
        path: the dataset written.
        source: what was read (format and location).
        count: number of samples.
        fields: field name -> ``{"dtype", "shape", "compression"}`` (``None`` in a shape: variable).
        data_bytes: bytes of array/string data written (before compression).
        disk_bytes: size of the dataset directory.
        seconds: wall time of writing plus verification.
        verified: always ``True``: a conversion that fails verification raises instead.
    """

    path: str
    source: str
    count: int
    fields: dict[str, dict[str, Any]]
    data_bytes: int
    disk_bytes: int
    seconds: float
    verified: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return dataclasses.asdict(self)


class Source(abc.ABC):
    """A convertible input: its fields, its length and its samples, in order."""

    #: Short name of the input format, used in reports ("hdf5", "npy", ...).
    format: str = ""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the samples come from, for reports and errors."""

    @abc.abstractmethod
    def fields(self) -> dict[str, Field]:
        """Field name -> dtype and shape inferred from the source (compression is set later)."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abc.abstractmethod
    def samples(self) -> Iterator[dict[str, Any]]:
        """Every sample as a dict of field name -> value, in dataset order."""

    def close(self) -> None:
        """Release files the source holds open."""

    def metadata(self) -> dict[str, Any]:
        """Metadata of the source kept in the output's attrs (user ``attrs`` win on a clash); none by default."""
        return {}


# ---------------------------------------------------------------------- digests


def _digest(field: Field, value: Any, name: str) -> tuple[bytes, int]:
    """Digest and data size of one value, in the form the field stores it."""
    h = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    if field.dtype == "str":
        data = value.encode("utf-8") if isinstance(value, str) else b""
        h.update(b"s" if isinstance(value, str) else b"?")
        h.update(data)
        return h.digest(), len(data)
    if field.dtype == "bytes":
        data = bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else b""
        h.update(b"b" if isinstance(value, (bytes, bytearray, memoryview)) else b"?")
        h.update(data)
        return h.digest(), len(data)
    arr = np.asarray(value)
    target = field.numpy_dtype
    if arr.dtype != target:
        cast = arr.astype(target)
        # The writer accepts numpy's "safe" casts, some of which round (int64 -> float64).
        if cast.shape != arr.shape or not np.array_equal(cast.astype(arr.dtype), arr, equal_nan=arr.dtype.kind in "fc"):
            raise VerificationError(f"field {name!r}: {arr.dtype} values do not convert exactly to {field.dtype}")
        arr = cast
    arr = np.ascontiguousarray(arr)
    h.update(np.asarray(arr.shape, dtype="<u8").tobytes())
    h.update(memoryview(arr).cast("B") if arr.size else b"")
    return h.digest(), arr.nbytes


# ---------------------------------------------------------------------- conversion


def build_schema(
    source_fields: Mapping[str, Field],
    *,
    compression: Optional[str],
    field_compression: Optional[Mapping[str, str]],
    attrs: Optional[Mapping[str, Any]],
) -> Schema:
    """The output schema: the source's dtypes and shapes with the chosen codecs and attrs."""
    default = parse_compression(compression)
    per_field = dict(field_compression or {})
    unknown = sorted(set(per_field) - set(source_fields))
    if unknown:
        raise InvalidArgumentError(f"compression given for unknown fields {unknown}; fields are {list(source_fields)}")
    fields = {}
    for name, f in source_fields.items():
        codec, level = parse_compression(per_field[name]) if name in per_field else default
        fields[name] = Field(dtype=f.dtype, shape=f.shape, compression=codec, compression_level=level)
    try:
        return Schema(fields=fields, attrs=dict(attrs or {}))
    except SchemaError as e:
        if "field name" in str(e):
            raise SchemaError(f"{e} (rename it: fields={{'source name': 'new_name'}}, or --field SRC=NAME)") from None
        raise


class OutputOptions(TypedDict, total=False):
    """How every converter writes its output; the keyword arguments of :func:`convert_source`."""

    compression: Optional[str]
    field_compression: Mapping[str, str]
    attrs: Mapping[str, Any]
    overwrite: bool
    progress: bool
    stats: Any


def convert_source(
    source: Source,
    out: Union[str, "os.PathLike[str]"],
    *,
    compression: Optional[str] = None,
    field_compression: Optional[Mapping[str, str]] = None,
    attrs: Optional[Mapping[str, Any]] = None,
    overwrite: bool = False,
    progress: bool = False,
    stats: Any = True,
) -> ConversionReport:
    """Write ``source`` to a new dataset at ``out``, verify it, and report (see module docstring).

    Args:
        source: what to convert (closed when done).
        out: the dataset directory to create.
        compression: codec of every field, ``"name"`` or ``"name:level"``; ``None`` picks one per
            dtype (``none`` for floating point, ``lz4`` otherwise; see :class:`rocksds.Field`).
        field_compression: field name -> codec, overriding ``compression``.
        attrs: user metadata stored in the schema.
        overwrite: replace an existing rocksds dataset at ``out``.
        progress: show a tqdm progress bar.
        stats: per-band statistics to store (SPEC.md 2.1), as ``rocksds.create(..., stats=...)``:
            ``True`` (default) for every numeric field, ``False`` for none.

    Raises:
        DatasetExistsError: ``out`` exists and ``overwrite`` is false.
        VerificationError: the data read back differs from the source (nothing is left at ``out``).
    """
    try:
        return _convert(source, os.fspath(out), compression, field_compression, attrs, overwrite, progress, stats)
    finally:
        source.close()


def _convert(
    source: Source,
    out: str,
    compression: Optional[str],
    field_compression: Optional[Mapping[str, str]],
    attrs: Optional[Mapping[str, Any]],
    overwrite: bool,
    progress: bool,
    stats: Any = True,
) -> ConversionReport:
    check_target(out, overwrite=overwrite, hint="pass overwrite=True / --overwrite to replace a dataset")
    schema = build_schema(source.fields(), compression=compression, field_compression=field_compression,
                          attrs={**source.metadata(), **(attrs or {})})
    n = len(source)
    names = list(schema.fields)
    fields = [schema.fields[k] for k in names]
    digests = bytearray(n * len(names) * _DIGEST_BYTES)
    data_bytes = 0
    start = time.perf_counter()
    with building([out], "converting", overwrite=overwrite,
                  hint="pass overwrite=True / --overwrite to replace a dataset") as (tmp,):
        bar = ProgressBar(f"convert {source.format}", "sample", n, enabled=progress)
        count = 0
        if stats is True and not any(f.dtype in STATS_DTYPES for f in fields):
            stats = False
        with create(tmp, schema, wal=False, stats=stats) as writer:  # a crash leaves only the hidden tmp dir
            for sample in source.samples():
                if count >= n:
                    raise SampleError(f"{source.describe()} yields more samples than its length {n}")
                try:
                    writer.append(sample)
                except SampleError as e:
                    raise SampleError(f"{source.describe()}, sample {count}: {e}") from None
                at = count * len(names) * _DIGEST_BYTES
                for j, (name, f) in enumerate(zip(names, fields)):
                    d, size = _digest(f, sample[name], name)
                    digests[at + j * _DIGEST_BYTES : at + (j + 1) * _DIGEST_BYTES] = d
                    data_bytes += size
                count += 1
                bar.update(1)
        bar.close()
        if count != n:
            raise SampleError(f"{source.describe()} yielded {count} samples but reports a length of {n}")
        _verify(tmp, schema, names, digests, n, progress)
    seconds = time.perf_counter() - start
    return ConversionReport(
        path=out,
        source=source.describe(),
        count=n,
        fields={
            k: {"dtype": f.dtype, "shape": list(f.shape), "compression": f.compression} for k, f in zip(names, fields)
        },
        data_bytes=data_bytes,
        disk_bytes=dir_bytes(out),
        seconds=round(seconds, 3),
    )


def _verify(path: str, schema: Schema, names: list[str], digests: bytearray, n: int, progress: bool) -> None:
    """Read ``path`` back with the public reader and compare every value's digest."""
    bar = ProgressBar("verify", "sample", n, enabled=progress)
    with open_dataset(path, cache_gb=0) as ds:
        if len(ds) != n:
            raise VerificationError(f"read back {len(ds)} samples, wrote {n}; the output was removed")
        for name in names:
            if ds.schema.fields[name] != schema.fields[name]:
                raise VerificationError(
                    f"field {name!r} reads back as {ds.schema.fields[name]}; the output was removed"
                )
        fields = [ds.schema.fields[k] for k in names]
        try:
            _compare(ds, names, fields, digests, bar)
        except CorruptionError as e:
            if isinstance(e, VerificationError):
                raise
            raise VerificationError(f"reading the output back failed: {e}; the output was removed") from None
    bar.close()


def _compare(ds: Any, names: list[str], fields: list[Field], digests: bytearray, bar: ProgressBar) -> None:
    """Raise :class:`VerificationError` at the first value whose digest differs."""
    step = len(names) * _DIGEST_BYTES
    for i, sample in enumerate(ds.iter()):
        for j, (name, f) in enumerate(zip(names, fields)):
            got, _ = _digest(f, sample[name], name)
            at = i * step + j * _DIGEST_BYTES
            if got != digests[at : at + _DIGEST_BYTES]:
                raise VerificationError(
                    f"sample {i}, field {name!r} reads back different from the source; "
                    "the output was removed (please report this as a rocksds bug)"
                )
        bar.update(1)
