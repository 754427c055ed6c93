"""``stats``: the stored per-band statistics of a dataset as plain data, and recomputing them from the records.

Used by ``rocksds stats PATH [--recompute] [--json]``. Recomputing holds the
writer lock (no one appends meanwhile), reads the statistics fields batch by
batch and replaces the ``stats`` record (SPEC.md 2.1) in one synced write.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ..reader import Dataset
from ..schema import Schema
from ..stats import STATS_DTYPES, DatasetStats, stats_options
from ..writer import open_writer

__all__ = ["summary", "recompute", "default_options", "band_names"]

#: Records read per batch while recomputing (about this many bytes of the statistics fields).
_BATCH_BYTES = 32 * 2**20


def band_names(attrs: dict[str, Any], field: str, n: int) -> list[str]:
    """Names of a field's bands: from ``attrs["inputs"][field]["bands"]`` (raster ingestion), ``attrs["bands"]``,
    or ``band_1 ..``."""
    for names in ((attrs.get("inputs") or {}).get(field, {}).get("bands"), attrs.get("bands")):
        if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names):
            return list(names)
    return [f"band_{i + 1}" for i in range(n)]


def default_options(schema: Schema) -> dict[str, Any]:
    """Statistics options for a dataset that has none: every numeric field; nodata from raster attrs when present."""
    inputs = schema.attrs.get("inputs") if isinstance(schema.attrs.get("inputs"), dict) else {}
    out: dict[str, Any] = {}
    for name, f in schema.fields.items():
        if f.dtype not in STATS_DTYPES:
            continue
        nodata = (inputs.get(name) or {}).get("nodata") if isinstance(inputs.get(name), dict) else None
        out[name] = {} if nodata is None else {"nodata": nodata}
    return out


def _finite(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def summary(path: str, percentiles: tuple[float, float] = (2.0, 98.0)) -> dict[str, Any]:
    """What ``rocksds stats`` prints: per field and band count, min, max, mean, std and two percentiles.

    ``stored`` is False (and ``fields`` empty) when the dataset keeps no statistics.
    """
    with Dataset(path, fields=None, cache_gb=0) as ds:
        stats, count, attrs = ds.stats, len(ds), ds.attrs
    out: dict[str, Any] = {"path": path, "count": count, "stored": stats is not None, "fields": {}}
    if stats is None:
        return out
    out["stats_count"] = stats.count
    out["stale"] = stats.count != count
    for name, fs in stats.fields.items():
        pct = fs.percentile(list(percentiles))
        out["fields"][name] = {
            "dtype": fs.dtype, "axis": fs.axis, "nodata": fs.nodata, "histogram": fs.histogram,
            "bands": [
                {"name": bn, "count": b.count, "min": _finite(b.min), "max": _finite(b.max),
                 "mean": _finite(b.mean) if b.count else None, "std": _finite(b.std) if b.count else None,
                 **{f"p{q:g}": _finite(float(v)) for q, v in zip(percentiles, pct[i])}}
                for i, (bn, b) in enumerate(zip(band_names(attrs, name, len(fs.bands)), fs.bands))
            ],
        }
    return out


def recompute(path: str, options: Any = None) -> DatasetStats:
    """Recompute the statistics of every committed sample from the records and store them.

    ``options`` as ``create(..., stats=...)``; by default the options of the
    stored record, or :func:`default_options` when there is none (or it is
    unreadable).
    """
    with open_writer(path) as w:
        schema = w.schema
        with Dataset(path, cache_gb=0) as ds:
            if options is None:
                try:
                    old = ds.stats
                except Exception:  # a malformed record is what recomputing repairs
                    old = None
                options = ({n: {"axis": f.axis, "nodata": f.nodata} for n, f in old.fields.items()}
                           if old is not None else default_options(schema))
            stats = DatasetStats.empty(schema, stats_options(schema, options))
            names = list(stats.fields)
            n = len(w)
            if names:
                per = sum(schema.fields[x].record_bytes or 2**16 for x in names)
                step = max(1, _BATCH_BYTES // max(1, per))
                with Dataset(path, fields=names, cache_gb=0) as part:
                    for start in range(0, n, step):
                        stop = min(n, start + step)
                        stats.add(part.get_batch(range(start, stop)), stop - start)
        w.set_stats(stats)
    return stats
