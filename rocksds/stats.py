"""Per-band statistics of array fields, mergeable across batches, workers and appends (SPEC.md 2.1).

A training script normalises its inputs with per-band mean and standard
deviation, or stretches them between two percentiles. Writers compute these
while they write (``create(..., stats=True)``, ``ingest_raster``) and store
them under the ``stats`` key of the metadata column family, so nobody needs a
separate pass over the pixels.

What is kept, per field and band (the band axis is the first axis of a value by
default):

- ``count``, ``min``, ``max`` of the values that are not nodata (a field's
  declared nodata value, and NaN or infinity for floating-point fields);
- ``mean`` and ``m2`` (the sum of squared deviations) in float64, merged with
  Chan's parallel formula. For integer dtypes of at most 16 bits (and bool) the
  exact integer ``sum`` and ``sum_sq`` are kept too, and mean and ``m2`` derive
  from them with one rounding, so the result does not depend on how the values
  were batched: serial, parallel and appended builds agree bit for bit;
- a histogram on bins fixed by the dtype alone, so histograms of any two
  batches add: one bin per value for integer dtypes of at most 16 bits
  (percentiles are exact), else one bin per bfloat16 value (the value rounded
  to float32, then its 16 high bits: 65,536 bins, a relative width of 2^-8).

No torch, no storage: :class:`DatasetStats` turns to and from the msgpack
record; the writer and reader decide when to read or write it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field as dc_field
from fractions import Fraction
from typing import Any, Optional, Union

import msgpack
import numpy as np

from .errors import CorruptionError, InvalidArgumentError
from .schema import Schema
from .spec import MAX_FIELDS, MAX_NDIM, MAX_STATS_BYTES, STATS_VERSION

__all__ = ["BandStats", "FieldStats", "DatasetStats", "StatsOptions", "stats_options", "HISTOGRAM_KINDS"]

#: ``exact``: bin ``k`` holds the value ``offset + k``; ``bfloat16``: bin ``k`` is a bfloat16 bit pattern in value order.
HISTOGRAM_KINDS = ("exact", "bfloat16")
#: Bins of a bfloat16 histogram (every 16-bit pattern).
BFLOAT16_BINS = 65536
#: Integer dtypes whose values get one bin each and exact sums: (offset, bins).
_EXACT = {
    "bool": (0, 2),
    "int8": (-128, 256),
    "uint8": (0, 256),
    "int16": (-32768, 65536),
    "uint16": (0, 65536),
}
#: Dtypes a field with statistics may have (order-less complex values have no min, max or percentile).
STATS_DTYPES = frozenset(_EXACT) | {"int32", "int64", "uint32", "uint64", "float16", "float32", "float64"}


@dataclass(frozen=True)
class StatsOptions:
    """How statistics of one field are computed: the band ``axis`` of a value (None: all values one band) and ``nodata``."""

    axis: Optional[int]
    nodata: Optional[float]


def stats_options(schema: Schema, stats: Any) -> dict[str, StatsOptions]:
    """The fields ``create(..., stats=...)`` keeps statistics of, checked against ``schema``.

    ``stats`` is ``True`` (every numeric, non-complex field), a list of field
    names, or a dict of field name to ``{"axis": int | None, "nodata": number | None}``.
    The default axis is 0 when a field has a fixed first dimension, else None.
    """
    if stats is True:
        names: Mapping[str, Any] = {n: {} for n, f in schema.fields.items() if f.dtype in STATS_DTYPES}
    elif isinstance(stats, Mapping):
        names = stats
    elif isinstance(stats, Sequence) and not isinstance(stats, (str, bytes)):
        names = {n: {} for n in stats}
    else:
        raise InvalidArgumentError(f"stats must be True, a list of field names or a dict of options, got {stats!r}")
    out = {}
    for name, opts in names.items():
        f = schema.fields.get(name)
        if f is None:
            raise InvalidArgumentError(f"stats names field {name!r}, which is not in the schema {list(schema.fields)}")
        if f.dtype not in STATS_DTYPES:
            raise InvalidArgumentError(f"field {name!r} has dtype {f.dtype}; statistics need one of {sorted(STATS_DTYPES)}")
        if not isinstance(opts, Mapping) or set(opts) - {"axis", "nodata"}:
            raise InvalidArgumentError(f"stats options of {name!r} must be a dict with 'axis' and/or 'nodata', got {opts!r}")
        default_axis = 0 if f.shape and f.shape[0] is not None else None
        axis = opts.get("axis", default_axis)
        if axis is not None:
            if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < len(f.shape):
                raise InvalidArgumentError(f"stats axis of {name!r} must be None or an axis of shape {list(f.shape)}")
            if f.shape[axis] is None:
                raise InvalidArgumentError(f"stats axis {axis} of {name!r} is a variable dimension; bands must be fixed")
        nodata = opts.get("nodata")
        if nodata is not None and (isinstance(nodata, bool) or not isinstance(nodata, (int, float))):
            raise InvalidArgumentError(f"stats nodata of {name!r} must be a number or None, got {nodata!r}")
        out[name] = StatsOptions(axis, None if nodata is None else float(nodata) if isinstance(nodata, float) else nodata)
    return out


# ---------------------------------------------------------------------- histogram bins


def _bf16_keys(values: np.ndarray) -> np.ndarray:
    """Histogram bin of each (finite) value: its bfloat16 pattern, reordered so bin order is value order."""
    code = (values.astype(np.float32).view(np.uint32) >> np.uint32(16)).astype(np.int64)
    return np.where(code & 0x8000, 0xFFFF - code, code + 0x8000)


def _bf16_values(keys: np.ndarray) -> np.ndarray:
    """The value (float64) a bfloat16 bin stands for: the bfloat16 number itself."""
    keys = np.asarray(keys, np.int64)
    code = np.where(keys >= 0x8000, keys - 0x8000, 0xFFFF - keys).astype(np.uint32)
    return (code << np.uint32(16)).view(np.float32).astype(np.float64)


# ---------------------------------------------------------------------- one band


@dataclass
class BandStats:
    """Statistics of one band. ``sum``/``sum_sq`` are exact integers for exact-histogram fields, else None."""

    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0
    sum: Optional[int] = None
    sum_sq: Optional[int] = None
    #: Dense histogram (one int64 per bin) or None while no bins are known.
    hist: Optional[np.ndarray] = None

    @property
    def var(self) -> float:
        """Population variance (``m2 / count``); NaN without values."""
        return self.m2 / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation; NaN without values."""
        return math.sqrt(self.var) if self.count else math.nan

    def merge(self, other: "BandStats") -> None:
        """Add ``other``'s values to these (Chan et al.'s pairwise update, exact sums where kept)."""
        if other.count == 0:
            return
        if self.count == 0:
            self.min, self.max, self.mean, self.m2 = other.min, other.max, other.mean, other.m2
            self.sum, self.sum_sq = other.sum, other.sum_sq
        else:
            self.min, self.max = min(self.min, other.min), max(self.max, other.max)
            n = self.count + other.count
            delta = other.mean - self.mean
            self.mean += delta * other.count / n
            self.m2 += other.m2 + delta * delta * self.count * other.count / n
        exact = self.sum is not None and other.sum is not None and self.sum_sq is not None and other.sum_sq is not None
        if self.count and exact:
            self.sum += other.sum  # type: ignore[operator]
            self.sum_sq += other.sum_sq  # type: ignore[operator]
        elif self.count:
            self.sum = self.sum_sq = None  # one side lost its exact sums: Chan's update alone from here
        self.count += other.count
        if self.sum is not None:
            self._exact_moments()
        if other.hist is not None:
            self.hist = other.hist.copy() if self.hist is None else self.hist + other.hist

    def _exact_moments(self) -> None:
        assert self.sum is not None and self.sum_sq is not None
        if self.count:
            self.mean = float(Fraction(self.sum, self.count))
            self.m2 = float(Fraction(self.sum_sq) - Fraction(self.sum * self.sum, self.count))


# ---------------------------------------------------------------------- one field


@dataclass
class FieldStats:
    """Statistics of one field, one :class:`BandStats` per band (one band when ``axis`` is None)."""

    dtype: str
    axis: Optional[int]
    nodata: Optional[float]
    bands: list[BandStats] = dc_field(default_factory=list)

    @property
    def histogram(self) -> str:
        """``exact`` or ``bfloat16`` (see :data:`HISTOGRAM_KINDS`)."""
        return "exact" if self.dtype in _EXACT else "bfloat16"

    @property
    def offset(self) -> int:
        """The value of bin 0 of an exact histogram (0 for bfloat16)."""
        return _EXACT[self.dtype][0] if self.dtype in _EXACT else 0

    @property
    def nbins(self) -> int:
        return _EXACT[self.dtype][1] if self.dtype in _EXACT else BFLOAT16_BINS

    @property
    def count(self) -> np.ndarray:
        return np.array([b.count for b in self.bands], np.int64)

    @property
    def min(self) -> np.ndarray:
        return np.array([b.min for b in self.bands])

    @property
    def max(self) -> np.ndarray:
        return np.array([b.max for b in self.bands])

    @property
    def mean(self) -> np.ndarray:
        return np.array([b.mean if b.count else math.nan for b in self.bands])

    @property
    def std(self) -> np.ndarray:
        return np.array([b.std for b in self.bands])

    def bin_values(self, bins: np.ndarray) -> np.ndarray:
        """The value each of ``bins`` stands for (bin order is value order)."""
        bins = np.asarray(bins, np.int64)
        return (bins + self.offset).astype(np.float64) if self.histogram == "exact" else _bf16_values(bins)

    def percentile(self, q: Union[float, Sequence[float]]) -> np.ndarray:
        """Per band, the ``q``-th percentile(s) from the histogram (nearest rank).

        The smallest bin value ``v`` with at least ``ceil(q/100 * count)`` values
        in bins up to ``v`` (numpy's ``method="inverted_cdf"``): exact for exact
        histograms, the bfloat16 rounding of it otherwise. NaN for an empty band.
        Returns shape ``(bands,)`` for a scalar ``q``, else ``(bands, len(q))``.
        """
        qs = np.atleast_1d(np.asarray(q, np.float64))
        if np.any((qs < 0) | (qs > 100)) or not np.all(np.isfinite(qs)):
            raise InvalidArgumentError(f"percentiles must lie in [0, 100], got {q!r}")
        out = np.full((len(self.bands), len(qs)), math.nan)
        for b, band in enumerate(self.bands):
            if not band.count or band.hist is None:
                continue
            cum = np.cumsum(band.hist)
            ranks = np.maximum(1, np.ceil(qs / 100.0 * band.count)).astype(np.int64)
            out[b] = self.bin_values(np.searchsorted(cum, ranks, side="left"))
        return out[:, 0] if np.ndim(q) == 0 else out

    # -------------------------------------------------------------- accumulating

    def add(self, values: Union[np.ndarray, Sequence[np.ndarray]]) -> None:
        """Add a batch: a stacked array with a leading sample axis, or a list of per-sample arrays."""
        if isinstance(values, np.ndarray):
            flat = self._by_band(values, stacked=True)
        else:
            parts = [self._by_band(np.asarray(v), stacked=False) for v in values]
            if not parts:
                return
            flat = np.concatenate(parts, axis=1)
        if not self.bands:
            self.bands = [BandStats() for _ in range(flat.shape[0])]
        if flat.shape[0] != len(self.bands):
            raise InvalidArgumentError(f"values have {flat.shape[0]} bands, the statistics {len(self.bands)}")
        for b, row in enumerate(flat):
            self.bands[b].merge(self._band_stats(row))

    def _by_band(self, a: np.ndarray, *, stacked: bool) -> np.ndarray:
        """``a`` as (bands, values): the band axis first, everything else flattened."""
        if self.axis is None:
            return a.reshape(1, -1)
        axis = self.axis + 1 if stacked else self.axis
        return np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)

    def _band_stats(self, row: np.ndarray) -> BandStats:
        """Statistics of one band's values of one batch."""
        if self.dtype == "bool":
            row = row.view(np.uint8)
        keep = None
        if self.nodata is not None:
            keep = row != self.nodata
        if row.dtype.kind == "f":
            finite = np.isfinite(row)
            keep = finite if keep is None else keep & finite
        if keep is not None and not keep.all():
            row = row[keep]
        out = BandStats()
        if row.size == 0:
            return out
        out.count = int(row.size)
        if self.dtype in _EXACT:
            # One pass: the histogram; min, max and the exact sums follow from its bins.
            keys = row if self.offset == 0 else row.astype(np.int64) - self.offset
            out.hist = np.bincount(keys, minlength=self.nbins).astype(np.int64)
            present = np.flatnonzero(out.hist)
            out.min, out.max = float(present[0] + self.offset), float(present[-1] + self.offset)
            values = present.astype(object) + self.offset  # Python ints: the sums never overflow
            counts = out.hist[present].astype(object)
            out.sum, out.sum_sq = int(np.dot(counts, values)), int(np.dot(counts, values * values))
            out._exact_moments()
        else:
            out.min, out.max = float(row.min()), float(row.max())
            as64 = row.astype(np.float64)
            out.mean = float(as64.mean())
            out.m2 = float(np.square(as64 - out.mean).sum())
            out.hist = np.bincount(_bf16_keys(row), minlength=BFLOAT16_BINS).astype(np.int64)
        return out

    def merge(self, other: "FieldStats") -> None:
        """Add another accumulation of the same field (another worker's, or an append's)."""
        if not other.bands:
            return
        if not self.bands:
            self.bands = [BandStats() for _ in other.bands]
        if len(other.bands) != len(self.bands):
            raise InvalidArgumentError(f"cannot merge statistics of {len(other.bands)} bands into {len(self.bands)}")
        for mine, theirs in zip(self.bands, other.bands):
            mine.merge(theirs)

    # -------------------------------------------------------------- document

    def to_document(self) -> dict[str, Any]:
        bands = []
        for b in self.bands:
            hist = b.hist if b.hist is not None else np.zeros(self.nbins, np.int64)
            bins = np.flatnonzero(hist)
            doc: dict[str, Any] = {"count": b.count, "min": b.min, "max": b.max, "mean": b.mean, "m2": b.m2,
                                   "bins": bins.tolist(), "counts": hist[bins].tolist()}
            if b.sum is not None:
                doc["sum"], doc["sum_sq"] = str(b.sum), str(b.sum_sq)
            bands.append(doc)
        return {"dtype": self.dtype, "axis": self.axis, "nodata": self.nodata, "histogram": self.histogram,
                "offset": self.offset, "bands": bands}

    @classmethod
    def from_document(cls, doc: Any, where: str) -> "FieldStats":
        """Parse one field's entry; CorruptionError naming ``where`` if it breaks SPEC.md 2.1."""
        def bad(msg: str) -> CorruptionError:
            return CorruptionError(f"{where}: {msg}")

        if not isinstance(doc, dict):
            raise bad("not a map")
        dtype, axis, nodata = doc.get("dtype"), doc.get("axis"), doc.get("nodata")
        if dtype not in STATS_DTYPES:
            raise bad(f"dtype {dtype!r} cannot have statistics")
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < MAX_NDIM):
            raise bad(f"axis {axis!r} is not nil or an axis")
        if nodata is not None and (isinstance(nodata, bool) or not isinstance(nodata, (int, float))):
            raise bad(f"nodata {nodata!r} is not nil or a number")
        out = cls(dtype, axis, nodata)
        if doc.get("histogram") != out.histogram or doc.get("offset") != out.offset:
            raise bad(f"histogram must be {out.histogram!r} with offset {out.offset} for dtype {dtype}")
        bands = doc.get("bands")
        if not isinstance(bands, list):
            raise bad("bands is not an array")
        for i, bd in enumerate(bands):
            out.bands.append(_parse_band(bd, out, lambda m: bad(f"band {i}: {m}")))
        return out


def _parse_band(doc: Any, fs: FieldStats, bad: Any) -> BandStats:
    if not isinstance(doc, dict):
        raise bad("not a map")
    count = doc.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise bad(f"count {count!r} is not a non-negative integer")
    nums = {}
    for k in ("min", "max", "mean", "m2"):
        v = doc.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad(f"{k} {v!r} is not a number")
        nums[k] = float(v)
    bins, counts = doc.get("bins"), doc.get("counts")
    if not isinstance(bins, list) or not isinstance(counts, list) or len(bins) != len(counts):
        raise bad("bins and counts must be arrays of one length")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in bins + counts):
        raise bad("bins and counts must hold integers")
    if any(b2 <= b1 for b1, b2 in zip(bins, bins[1:])) or (bins and not 0 <= bins[0] <= bins[-1] < fs.nbins):
        raise bad(f"bins must be strictly ascending in [0, {fs.nbins})")
    if any(c <= 0 for c in counts) or sum(counts) != count:
        raise bad(f"counts must be positive and add up to count ({count})")
    hist = np.zeros(fs.nbins, np.int64)
    hist[np.asarray(bins, np.int64)] = np.asarray(counts, np.int64)
    out = BandStats(count, nums["min"], nums["max"], nums["mean"], nums["m2"], hist=hist)
    if "sum" in doc or "sum_sq" in doc:
        try:
            out.sum, out.sum_sq = int(doc["sum"]), int(doc["sum_sq"])
        except (KeyError, TypeError, ValueError):
            raise bad("sum and sum_sq must both be decimal strings") from None
        if not isinstance(doc["sum"], str) or not isinstance(doc["sum_sq"], str):
            raise bad("sum and sum_sq must both be decimal strings")
    if count and not (out.min <= out.max):
        raise bad(f"min {out.min} is above max {out.max}")
    return out


# ---------------------------------------------------------------------- the record


@dataclass
class DatasetStats:
    """The ``stats`` record: statistics of the first ``count`` samples, per field.

    ``count`` below the dataset's count means the statistics are stale: a
    writer that does not maintain them appended since (``rocksds stats
    --recompute`` brings them up to date).
    """

    count: int = 0
    fields: dict[str, FieldStats] = dc_field(default_factory=dict)

    @classmethod
    def empty(cls, schema: Schema, options: Mapping[str, StatsOptions]) -> "DatasetStats":
        """Statistics of no samples for the fields ``options`` names (see :func:`stats_options`)."""
        out = cls(0)
        for n, o in options.items():
            f = schema.fields[n]
            nbands = 1 if o.axis is None else f.shape[o.axis]
            assert nbands is not None
            out.fields[n] = FieldStats(f.dtype, o.axis, o.nodata, [BandStats() for _ in range(nbands)])
        return out

    def fresh(self) -> "DatasetStats":
        """Empty statistics of the same fields and options (what one batch is accumulated into)."""
        return DatasetStats(0, {n: FieldStats(f.dtype, f.axis, f.nodata, [BandStats() for _ in f.bands])
                                for n, f in self.fields.items()})

    def __getitem__(self, name: str) -> FieldStats:
        return self.fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def add(self, columns: Mapping[str, Any], n: int) -> None:
        """Add ``n`` samples given as stacked values (or lists) of every field with statistics."""
        for name, fs in self.fields.items():
            fs.add(columns[name])
        self.count += n

    def merge(self, other: "DatasetStats") -> None:
        """Add the statistics of the samples that follow these (another task's, or an append's)."""
        if set(other.fields) != set(self.fields):
            raise InvalidArgumentError(f"cannot merge statistics of fields {sorted(other.fields)} into {sorted(self.fields)}")
        for name, fs in self.fields.items():
            fs.merge(other.fields[name])
        self.count += other.count

    def to_document(self) -> dict[str, Any]:
        return {"version": STATS_VERSION, "count": self.count,
                "fields": {n: f.to_document() for n, f in self.fields.items()}}

    def to_bytes(self) -> bytes:
        return msgpack.packb(self.to_document(), use_bin_type=True)

    @classmethod
    def from_document(cls, doc: Any, schema_fields: Optional[Mapping[str, Any]] = None) -> "DatasetStats":
        """Parse a decoded record; with the schema's fields, also check each field exists and its bands match.

        Raises:
            CorruptionError: the record breaks SPEC.md 2.1.
        """
        if not isinstance(doc, dict):
            raise CorruptionError("stats record is not a map")
        if doc.get("version") != STATS_VERSION:
            raise CorruptionError(f"stats record version {doc.get('version')!r}; this library reads {STATS_VERSION}")
        count, fields = doc.get("count"), doc.get("fields")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CorruptionError(f"stats count {count!r} is not a non-negative integer")
        if not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
            raise CorruptionError("stats fields is not a map of at most MAX_FIELDS entries")
        out = cls(count)
        for name, fdoc in fields.items():
            fs = FieldStats.from_document(fdoc, f"stats of field {name!r}")
            if schema_fields is not None:
                _check_against_fields(name, fs, schema_fields)
            out.fields[name] = fs
        return out

    @classmethod
    def from_bytes(cls, raw: bytes, schema_fields: Optional[Mapping[str, Any]] = None) -> "DatasetStats":
        """Decode a ``stats`` record under the limits of SPEC.md 2.1; CorruptionError if it breaks them."""
        if len(raw) > MAX_STATS_BYTES:
            raise CorruptionError(f"stats record of {len(raw)} bytes exceeds {MAX_STATS_BYTES}")
        try:
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0,
                                  max_str_len=1 << 16, max_array_len=BFLOAT16_BINS, max_map_len=MAX_FIELDS)
        except Exception as e:  # msgpack raises several unrelated types for malformed input
            raise CorruptionError(f"stats record is not valid msgpack: {e}") from None
        return cls.from_document(doc, schema_fields)


def _check_against_fields(name: str, fs: FieldStats, fields: Mapping[str, Any]) -> None:
    f = fields.get(name)
    if f is None:
        raise CorruptionError(f"stats name field {name!r}, which is not in the schema")
    if f.dtype != fs.dtype:
        raise CorruptionError(f"stats of field {name!r} say dtype {fs.dtype}, the schema {f.dtype}")
    if fs.axis is None:
        bands = 1
    elif fs.axis >= len(f.shape) or f.shape[fs.axis] is None:
        raise CorruptionError(f"stats of field {name!r} use axis {fs.axis}, not a fixed axis of {list(f.shape)}")
    else:
        bands = f.shape[fs.axis]
    if len(fs.bands) != bands:
        raise CorruptionError(f"stats of field {name!r} have {len(fs.bands)} bands, the field {bands}")
