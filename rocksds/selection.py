"""Choosing samples without reading their pixels: :meth:`rocksds.Dataset.select`.

A selection reads the small fields it needs (``bounds``, ``source``, scalar
fields such as ``valid``) once, in large batches, and keeps them per handle;
later selections on the same handle read nothing. It returns sorted sample
indices (an int64 array), which ``torch.utils.data.Subset(dataset, indices)``
or ``SubsetRandomSampler(indices)`` take as they are.

No torch, no rasterio. A bounding box in another CRS than the dataset's needs
pyproj (``pip install 'rocksds[geo]'``), imported only then.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from ._optional import require
from .errors import InvalidArgumentError

__all__ = ["select", "ColumnCache", "OPERATORS"]

#: Comparisons a ``where`` condition may name, as ``(op, value)``.
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
#: Samples read per batch while scanning a column.
_SCAN_BATCH = 65536
#: Fields larger than this per record are not "small": selecting on them would read the pixels.
_MAX_COLUMN_RECORD_BYTES = 4096

Condition = Union[Callable[[np.ndarray], Any], tuple[str, Any], Any]


class ColumnCache:
    """Whole columns of small fixed-shape fields of one open handle, read once on first use."""

    def __init__(self) -> None:
        self._columns: dict[str, np.ndarray] = {}
        self._count = -1

    def column(self, ds: Any, name: str) -> np.ndarray:
        if self._count != len(ds):  # a refreshed handle sees more samples
            self._columns.clear()
            self._count = len(ds)
        col = self._columns.get(name)
        if col is None:
            f = ds.full_schema.fields.get(name)
            if f is None:
                raise InvalidArgumentError(f"select: no field {name!r} in {list(ds.full_schema.fields)}")
            if f.record_bytes is None or f.record_bytes > _MAX_COLUMN_RECORD_BYTES:
                raise InvalidArgumentError(
                    f"select: field {name!r} is not a small fixed-shape numeric field; select on scalars or "
                    "short vectors (bounds, source, valid, ...)"
                )
            if name not in ds.schema.fields:
                raise InvalidArgumentError(f"select: field {name!r} is not open; open the dataset with it in fields=")
            n = len(ds)
            parts = [ds.read_column(name, i, min(n, i + _SCAN_BATCH)) for i in range(0, n, _SCAN_BATCH)]
            col = np.concatenate(parts) if parts else np.zeros((0, *f.shape), f.numpy_dtype)
            self._columns[name] = col
        return col


def _bbox(value: Any) -> tuple[float, float, float, float]:
    try:
        left, bottom, right, top = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"bbox must be (left, bottom, right, top), got {value!r}") from None
    if not (left <= right and bottom <= top):
        raise InvalidArgumentError(f"bbox must have left <= right and bottom <= top, got {value!r}")
    return left, bottom, right, top


def _to_dataset_crs(bbox: tuple[float, float, float, float], crs: Any, target: Any) -> tuple[float, ...]:
    """``bbox`` given in ``crs`` as a box in the dataset's CRS ``target`` (densified edges, pyproj)."""
    if crs is None or target is None or str(crs) == str(target):
        return bbox
    pyproj = require("pyproj", "rocksds[geo]", what="selecting by a bounding box in another CRS")
    transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(crs), pyproj.CRS.from_user_input(target),
                                              always_xy=True)
    return tuple(transformer.transform_bounds(*bbox, densify_pts=21))


def _sources(ds: Any, source: Any) -> list[int]:
    """Source indices from ints or paths (matched against the inputs of ``attrs["sources"]``)."""
    wanted = [source] if isinstance(source, (int, str, np.integer)) else list(source)
    scenes = ds.attrs.get("sources") or []
    out = []
    for s in wanted:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            out.append(int(s))
            continue
        hits = [i for i, scene in enumerate(scenes) if isinstance(scene, dict) and s in scene.values()]
        if not hits:
            raise InvalidArgumentError(f"select: no source scene has an input {s!r}")
        out.extend(hits)
    return out


def _mask(col: np.ndarray, cond: Condition, name: str) -> np.ndarray:
    if callable(cond):
        got = np.asarray(cond(col))
    elif isinstance(cond, tuple) and len(cond) == 2 and cond[0] in OPERATORS:
        got = np.asarray(OPERATORS[cond[0]](col, cond[1]))
    else:
        got = np.asarray(col == cond)
    if got.shape != (len(col),) or got.dtype != np.bool_:
        raise InvalidArgumentError(
            f"select: the condition on {name!r} must give one bool per sample; use (op, value), a value, or a "
            f"function of the column (shape {col.shape}) returning a bool array"
        )
    return got


def select(
    ds: Any,
    cache: ColumnCache,
    *,
    bbox: Optional[Sequence[float]] = None,
    crs: Any = None,
    within: bool = False,
    source: Any = None,
    where: Optional[Mapping[str, Condition]] = None,
) -> np.ndarray:
    """Sorted indices of the samples that meet every given condition (see :meth:`rocksds.Dataset.select`)."""
    keep = np.ones(len(ds), bool)
    if bbox is not None:
        box = _to_dataset_crs(_bbox(bbox), crs, ds.attrs.get("crs"))
        b = cache.column(ds, "bounds").astype(np.float64)
        if b.ndim != 2 or b.shape[1] != 4:
            raise InvalidArgumentError("select: bbox needs a bounds field of [left, bottom, right, top]")
        left, bottom, right, top = box
        if within:
            keep &= (b[:, 0] >= left) & (b[:, 1] >= bottom) & (b[:, 2] <= right) & (b[:, 3] <= top)
        else:
            keep &= (b[:, 0] < right) & (b[:, 2] > left) & (b[:, 1] < top) & (b[:, 3] > bottom)
    if source is not None:
        keep &= np.isin(cache.column(ds, "source"), _sources(ds, source))
    for name, cond in (where or {}).items():
        keep &= _mask(cache.column(ds, name), cond, name)
    return np.flatnonzero(keep).astype(np.int64)
