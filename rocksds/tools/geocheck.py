"""``validate --geo``: geometry checks of a chipped dataset, beyond the format.

Raster ingestion stores each chip's ``bounds`` and ``transform`` and the
dataset's ``crs``, ``chip`` and ``sources`` in attrs. These checks find
datasets whose geometry cannot be trusted, and splits that leak pixels into
each other. Stable codes, like the format's (:data:`GEO_CODES`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..reader import Dataset

__all__ = ["GEO_CODES", "GeoIssue", "check_geometry"]

#: code -> meaning. Every code is an error.
GEO_CODES: dict[str, str] = {
    "geo-attrs": "attrs lack crs or chip, a field's shape disagrees with attrs['chip'], or a chip's source is not in "
                 "attrs['sources']",
    "bounds-transform-mismatch": "a chip's bounds are not the box its transform and the chip size give",
    "crs-mismatch": "a dataset compared for leakage has another CRS",
    "split-overlap": "a chip overlaps a chip of another dataset built from the same scene (pixels leak across splits)",
}
#: Chips compared per step of the overlap check (memory: this times the other dataset's chips booleans).
_OVERLAP_BLOCK = 1024
_REL_TOL = 1e-9


@dataclass(frozen=True)
class GeoIssue:
    code: str
    message: str
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with Dataset(path, cache_gb=0) as ds:
        attrs = ds.attrs
        names = [n for n in ("bounds", "transform", "source") if n in ds.schema.fields]
        cols = {n: np.asarray(ds.read_column(n, 0, len(ds))) for n in names}
        shapes = {n: f.shape for n, f in ds.schema.fields.items()}
    attrs = dict(attrs, _shapes=shapes)
    return attrs, cols


def check_geometry(path: str, against: Sequence[str] = (), max_listed: int = 20) -> list[GeoIssue]:
    """Geometry issues of the chipped dataset at ``path``, and overlaps with the datasets ``against``.

    Checks that attrs hold ``crs`` and ``chip``, that input fields are
    ``(bands, chip, chip)``, that every ``source`` indexes ``attrs["sources"]``,
    that ``bounds`` equal the box of ``transform`` over ``chip`` pixels, and that
    no chip overlaps (with positive area) a chip of the same scene in an
    ``against`` dataset (another split). At most ``max_listed`` issues per code.
    """
    attrs, cols = _load(os.fspath(path))
    issues: list[GeoIssue] = []
    seen: dict[str, int] = {}

    def add(code: str, message: str, index: int | None = None) -> None:
        seen[code] = seen.get(code, 0) + 1
        if seen[code] <= max_listed:
            issues.append(GeoIssue(code, message, index))

    chip = attrs.get("chip")
    if not attrs.get("crs") or not isinstance(chip, int) or chip <= 0:
        add("geo-attrs", "attrs must hold 'crs' and a positive integer 'chip' (a raster-ingestion dataset)")
        return issues
    if "bounds" not in cols or "transform" not in cols:
        add("geo-attrs", "the dataset has no bounds and transform fields")
        return issues
    for name in (attrs.get("inputs") or {}):
        shape = attrs["_shapes"].get(name)
        if shape is None or len(shape) != 3 or tuple(shape[1:]) != (chip, chip):
            add("geo-attrs", f"input field {name!r} has shape {shape}, not (bands, {chip}, {chip})")
    if "source" in cols:
        n_sources = len(attrs.get("sources") or [])
        for i in np.flatnonzero((cols["source"] < 0) | (cols["source"] >= n_sources)).tolist():
            add("geo-attrs", f"chip {i} has source {int(cols['source'][i])}, attrs['sources'] has {n_sources}", i)
    t = cols["transform"].astype(np.float64)
    a, b, c, d, e, f = (t[:, k] for k in range(6))
    xs = np.stack([c, c + a * chip, c + b * chip, c + a * chip + b * chip], axis=1)
    ys = np.stack([f, f + d * chip, f + e * chip, f + d * chip + e * chip], axis=1)
    expect = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
    bounds = cols["bounds"].astype(np.float64)
    scale = np.maximum(1.0, np.abs(expect))
    for i in np.flatnonzero((np.abs(bounds - expect) > _REL_TOL * scale).any(axis=1)).tolist():
        add("bounds-transform-mismatch", f"chip {i}: bounds {bounds[i].tolist()}, transform gives {expect[i].tolist()}", i)
    for other in against:
        o_attrs, o_cols = _load(os.fspath(other))
        if o_attrs.get("crs") != attrs.get("crs"):
            add("crs-mismatch", f"{other} has CRS {str(o_attrs.get('crs'))[:40]!r}, this dataset "
                f"{str(attrs.get('crs'))[:40]!r}")
            continue
        _overlaps(attrs, bounds, cols.get("source"), o_attrs, o_cols, str(other), add)
    return issues


def _scene_keys(attrs: dict[str, Any], source: np.ndarray | None, n: int) -> np.ndarray:
    """Per chip, an id of its scene that two datasets share when they name the same rasters."""
    scenes = attrs.get("sources") or []
    names = [repr(sorted(s.items())) if isinstance(s, dict) else repr(s) for s in scenes]
    if source is None:
        return np.array([names[0] if names else ""] * n, dtype=object)
    return np.array([names[k] if 0 <= k < len(names) else "" for k in source.tolist()], dtype=object)


def _overlaps(attrs: dict[str, Any], bounds: np.ndarray, source: np.ndarray | None, o_attrs: dict[str, Any],
              o_cols: dict[str, np.ndarray], other: str, add: Any) -> None:
    mine = _scene_keys(attrs, source, len(bounds))
    theirs_b = o_cols["bounds"].astype(np.float64)
    theirs = _scene_keys(o_attrs, o_cols.get("source"), len(theirs_b))
    for scene in set(mine.tolist()) & set(theirs.tolist()):
        ia, ib = np.flatnonzero(mine == scene), np.flatnonzero(theirs == scene)
        B = theirs_b[ib]
        for start in range(0, len(ia), _OVERLAP_BLOCK):
            idx = ia[start : start + _OVERLAP_BLOCK]
            A = bounds[idx]
            hit = ((A[:, None, 0] < B[None, :, 2]) & (A[:, None, 2] > B[None, :, 0])
                   & (A[:, None, 1] < B[None, :, 3]) & (A[:, None, 3] > B[None, :, 1]))
            for r, col in zip(*np.nonzero(hit)):
                add("split-overlap", f"chip {int(idx[r])} overlaps chip {int(ib[col])} of {other}", int(idx[r]))
