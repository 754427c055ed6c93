"""``rocksds report``: one self-contained HTML page that shows what a dataset holds.

>>> from rocksds.tools.report import write_report
>>> write_report("out/train.rds", "report.html")            # doctest: +SKIP

The page has no outside references (images are inlined as ``data:`` URIs, charts are inline SVG, no
script), so it can be mailed or attached to an issue. It holds:

- the schema and attrs, the count, and per field its records' raw size and its tables' size on disk;
- per band of every numeric field with a pixel grid (``(C, H, W)`` or ``(H, W)``): statistics and a
  histogram, computed on the fly from a bounded, seeded sample of chips (``sample`` chips, at most
  ``PIXELS_PER_CHIP`` pixels of each band per chip), leaving out the input's nodata value when attrs give one;
- a grid of chip thumbnails with their masks, drawn as ``rocksds head --png`` draws them
  (:func:`rocksds.tools.preview.render`);
- for georeferenced datasets (a ``bounds`` field and ``attrs["crs"]``), a map of chip footprints in the
  dataset's CRS, coloured by split: the sibling ``*.rds`` datasets of the same ingestion are drawn too.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from .._optional import require
from .._paths import dir_bytes
from ..errors import RocksdsError
from ..raw import raw_readable
from ..reader import Dataset, open_dataset
from .info import readable_json
from .preview import PALETTE, MASK_WORDS, render

__all__ = ["build_report", "write_report", "band_statistics", "PIXELS_PER_CHIP"]

#: Pixels of each band taken from one sampled chip for the statistics (a seeded random subset).
PIXELS_PER_CHIP = 4096
#: Largest side of a thumbnail, in pixels (bigger chips are scaled down).
THUMB_SIDE = 128
#: Most chip footprints drawn per split (evenly spaced when a split has more).
MAX_FOOTPRINTS = 20000
_BINS = 32
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:.5em;overflow:auto}
.chips{display:flex;flex-wrap:wrap;gap:8px}.chips figure{margin:0;text-align:center;font-size:12px}
.chips img{image-rendering:pixelated;border:1px solid #ccc;display:block}.hist{display:inline-block;margin:4px}
"""


def write_report(path: Union[str, "os.PathLike[str]"], out: Union[str, "os.PathLike[str]"], **kwargs: Any) -> str:
    """Write :func:`build_report` of the dataset at ``path`` to the file ``out``; returns ``out``."""
    page = build_report(path, **kwargs)
    out = os.fspath(out)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(page)
    return out


def build_report(path: Union[str, "os.PathLike[str]"], *, sample: int = 256, thumbs: int = 16, seed: int = 0) -> str:
    """The HTML page (a string) describing the dataset at ``path``.

    Args:
        sample: most chips read for the band statistics (a seeded random choice).
        thumbs: chips shown as thumbnails (the first of that sample, in index order).
        seed: seeds the choice of chips and pixels.

    Raises:
        NotADatasetError: no dataset at ``path``.
    """
    path = os.fspath(path)
    with open_dataset(path, cache_gb=0) as ds:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(ds), size=min(sample, len(ds)), replace=False)) if len(ds) else np.array([], int)
        grids = _grid_fields(ds)
        parts = [_header(ds, path), _fields_table(ds, path), _attrs_block(ds.attrs)]
        parts.append(_bands_section(ds, grids, chosen, rng))
        parts.append(_thumbs_section(ds, grids, chosen[:thumbs]))
        parts.append(_map_section(ds, path))
    title = html.escape(f"rocksds report: {os.path.basename(path.rstrip(os.sep))}")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(p for p in parts if p) + "\n</body></html>\n")


# ---------------------------------------------------------------------- schema, sizes, attrs


def _header(ds: Dataset, path: str) -> str:
    writer = ", ".join(f"{k} {v}" for k, v in (ds.schema.writer or {}).items())
    return (f"<h1>{html.escape(path)}</h1><p>{len(ds)} samples, rocksds format {html.escape(str(ds.schema.version))}, "
            f"{dir_bytes(path) / 2**20:.1f} MiB on disk{'; written by ' + html.escape(writer) if writer else ''}</p>")


def _fields_table(ds: Dataset, path: str) -> str:
    fields = ds.schema.fields
    with raw_readable(path, [f.column_family for f in fields.values()]) as raw:
        disk = {n: raw.int_property(f.column_family, "rocksdb.total-sst-files-size") for n, f in fields.items()}
    rows = []
    for name, f in fields.items():
        shape = "(" + ", ".join("*" if d is None else str(d) for d in f.shape) + ")"
        raw_mib = "" if f.record_bytes is None else f"{f.record_bytes * len(ds) / 2**20:.2f}"
        on_disk = "" if disk[name] is None else f"{disk[name] / 2**20:.2f}"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{f.dtype}</td><td>{shape}</td><td>{f.compression}</td>"
                    f"<td>{len(ds)}</td><td>{raw_mib}</td><td>{on_disk}</td></tr>")
    return ("<h2>Fields</h2><table><tr><th>field</th><th>dtype</th><th>shape</th><th>compression</th><th>records</th>"
            "<th>raw MiB</th><th>on disk MiB</th></tr>" + "".join(rows) + "</table>")


def _attrs_block(attrs: Mapping[str, Any]) -> str:
    if not attrs:
        return ""
    return f"<h2>Attributes</h2><pre>{html.escape(readable_json(dict(attrs)))}</pre>"


# ---------------------------------------------------------------------- bands


def _grid_fields(ds: Dataset) -> list[str]:
    """Numeric fixed-shape fields with a pixel grid: ``(C, H, W)`` or ``(H, W)``."""
    return [n for n, f in ds.schema.fields.items()
            if not f.is_variable and len(f.shape) in (2, 3) and np.dtype(f.dtype).kind in "biuf"]


def _band_names(ds: Dataset, name: str, count: int) -> list[str]:
    names = ((ds.attrs.get("inputs") or {}).get(name) or {}).get("bands") or ds.attrs.get("bands")
    if isinstance(names, list) and len(names) == count:
        return [str(b) for b in names]
    return [f"band {b + 1}" for b in range(count)]


def _nodata(ds: Dataset, name: str) -> Optional[float]:
    value = ((ds.attrs.get("inputs") or {}).get(name) or {}).get("nodata")
    return None if value is None else float(value)


def band_statistics(values: np.ndarray, nodata: Optional[float] = None) -> dict[str, Any]:
    """Statistics and a histogram of one band's sampled pixels (nodata and non-finite values left out)."""
    v = values.astype(np.float64).ravel()
    keep = np.isfinite(v) if nodata is None or np.isnan(nodata) else np.isfinite(v) & (v != nodata)
    valid = v[keep]
    out: dict[str, Any] = {"pixels": int(v.size), "valid": float(keep.mean()) if v.size else 0.0}
    if not valid.size:
        return {**out, "min": None, "max": None, "mean": None, "std": None, "p2": None, "p98": None, "hist": None}
    lo, hi = float(valid.min()), float(valid.max())
    counts, edges = np.histogram(valid, bins=_BINS, range=(lo, hi if hi > lo else lo + 1))
    p2, p98 = np.percentile(valid, [2, 98])
    return {**out, "min": lo, "max": hi, "mean": float(valid.mean()), "std": float(valid.std()), "p2": float(p2),
            "p98": float(p98), "hist": (counts.tolist(), edges.tolist())}


def _sample_pixels(ds: Dataset, grids: Sequence[str], chosen: np.ndarray, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """Per field, ``(bands, pixels)``: a seeded subset of each chosen chip's pixels, read 32 chips at a time."""
    taken: dict[str, list[np.ndarray]] = {n: [] for n in grids}
    for start in range(0, len(chosen), 32):
        batch = ds.get_batch(chosen[start : start + 32].tolist())
        for name in grids:
            arr = batch[name]
            arr = arr.reshape(arr.shape[0], 1 if arr.ndim == 3 else arr.shape[1], -1)  # (n, C, H*W)
            npix = arr.shape[2]
            for chip in arr:
                pick = rng.choice(npix, size=min(PIXELS_PER_CHIP, npix), replace=False)
                taken[name].append(chip[:, pick])
    return {n: np.concatenate(v, axis=1) for n, v in taken.items() if v}


def _bands_section(ds: Dataset, grids: Sequence[str], chosen: np.ndarray, rng: np.random.Generator) -> str:
    if not grids or not len(chosen):
        return ""
    pixels = _sample_pixels(ds, grids, chosen, rng)
    out = [f"<h2>Bands</h2><p>From {len(chosen)} of {len(ds)} chips (seeded random choice), up to "
           f"{PIXELS_PER_CHIP} pixels of each band per chip.</p>"]
    for name, values in pixels.items():
        names, nodata = _band_names(ds, name, values.shape[0]), _nodata(ds, name)
        stats = [band_statistics(values[b], nodata) for b in range(values.shape[0])]
        head = "".join(f"<th>{h}</th>" for h in ("band", "valid", "min", "max", "mean", "std", "p2", "p98"))
        rows = "".join(
            f"<tr><td>{html.escape(names[b])}</td><td>{s['valid']:.1%}</td>"
            + "".join(f"<td>{_num(s[k])}</td>" for k in ("min", "max", "mean", "std", "p2", "p98")) + "</tr>"
            for b, s in enumerate(stats)
        )
        nd = "" if nodata is None else f" (nodata {_num(nodata)} left out)"
        out.append(f"<h3>{html.escape(name)}{nd}</h3><table><tr>{head}</tr>{rows}</table>")
        out.append("".join(_histogram_svg(names[b], s) for b, s in enumerate(stats)))
    return "\n".join(out)


def _num(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.4g}"


def _histogram_svg(title: str, stats: Mapping[str, Any], width: int = 240, height: int = 90) -> str:
    if stats["hist"] is None:
        return f'<div class="hist">{html.escape(title)}: no valid pixels</div>'
    counts, edges = stats["hist"]
    top = max(counts) or 1
    bar = width / len(counts)
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 14 - c / top * (height - 28):.1f}" width="{bar * 0.9:.1f}" '
        f'height="{c / top * (height - 28):.1f}" fill="#4878a8"/>' for i, c in enumerate(counts)
    )
    return (f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="histogram of {html.escape(title)}"><text x="0" y="11" font-size="11">'
            f"{html.escape(title)}</text>{bars}<text x=\"0\" y=\"{height - 2}\" font-size=\"10\">{_num(edges[0])}"
            f'</text><text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{_num(edges[-1])}</text></svg>')


# ---------------------------------------------------------------------- thumbnails


def _is_mask(ds: Dataset, name: str) -> bool:
    dtype = np.dtype(ds.schema.fields[name].dtype)
    return dtype.kind == "b" or (dtype.kind in "iu" and any(w in name.lower() for w in MASK_WORDS))


def _png_uri(image: np.ndarray, *, mask: bool) -> str:
    Image = require("PIL.Image", "pillow", what="report thumbnails")
    im = Image.fromarray(np.ascontiguousarray(image))
    scale = THUMB_SIDE / max(im.size)
    if scale < 1:
        size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
        im = im.resize(size, Image.NEAREST if mask else Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumbs_section(ds: Dataset, grids: Sequence[str], indices: np.ndarray) -> str:
    if not grids or not len(indices):
        return ""
    attrs = dict(ds.attrs)
    out = ['<h2>Chips</h2><div class="chips">']
    for i in indices.tolist():
        sample = ds[i]
        imgs = []
        for name in grids:
            mask = _is_mask(ds, name)
            field_attrs = {**attrs, "bands": _band_names(ds, name, sample[name].shape[0])} if sample[name].ndim == 3 else attrs
            picture = render(sample[name], attrs=field_attrs, kind="mask" if mask else "image", name=name)
            imgs.append(f'<img src="{_png_uri(picture, mask=mask)}" alt="{html.escape(name)} of sample {i}" '
                        f'title="{html.escape(name)}">')
        out.append(f"<figure>{''.join(imgs)}<figcaption>#{i}</figcaption></figure>")
    out.append("</div>")
    return "".join(out)


# ---------------------------------------------------------------------- footprints


def _footprints(path: str) -> tuple[dict[str, Any], np.ndarray]:
    """The attrs of ``path`` and ``(n, 4)`` bounds (left, bottom, right, top) of up to :data:`MAX_FOOTPRINTS` chips."""
    with open_dataset(path, fields=["bounds"], cache_gb=0) as ds:
        idx = np.unique(np.linspace(0, len(ds) - 1, min(len(ds), MAX_FOOTPRINTS)).astype(np.int64))
        parts = [ds.get_batch(idx[s : s + 4096])["bounds"] for s in range(0, len(idx), 4096)]
        return ds.attrs, np.concatenate(parts) if parts else np.zeros((0, 4))


def _splits(ds: Dataset, path: str) -> dict[str, np.ndarray]:
    """Footprints of this dataset and of the sibling splits of the same ingestion (same folder, same CRS)."""
    own = (ds.attrs.get("split") or {}).get("name", "") or os.path.basename(path.rstrip(os.sep))
    result = {own: _footprints(path)[1]}
    if not ds.attrs.get("split"):
        return result
    parent = os.path.dirname(os.path.abspath(path))
    for entry in sorted(os.listdir(parent)):
        other = os.path.join(parent, entry)
        if not entry.endswith(".rds") or os.path.abspath(other) == os.path.abspath(path):
            continue
        try:
            attrs, bounds = _footprints(other)
        except RocksdsError:  # a sibling that is not a readable dataset with bounds is simply not drawn
            continue
        split = (attrs.get("split") or {}).get("name")
        if split and attrs.get("crs") == ds.attrs.get("crs") and split not in result:
            result[split] = bounds
    return result


def _map_section(ds: Dataset, path: str, width: int = 640) -> str:
    fields = ds.schema.fields
    if "bounds" not in fields or tuple(fields["bounds"].shape) != (4,) or not ds.attrs.get("crs") or not len(ds):
        return ""
    splits = _splits(ds, path)
    every = np.concatenate(list(splits.values()))
    left, bottom = every[:, 0].min(), every[:, 1].min()
    right, top = every[:, 2].max(), every[:, 3].max()
    span = max(right - left, top - bottom) or 1.0
    scale = width / span
    height = max(1, int((top - bottom) * scale))
    shapes, legend = [], []
    for k, (name, b) in enumerate(sorted(splits.items())):
        color = "#%02x%02x%02x" % tuple(int(c) for c in PALETTE[k % len(PALETTE)])
        shapes.append(f'<g fill="{color}" fill-opacity="0.35" stroke="{color}" stroke-width="0.5" '
                      f'data-split="{html.escape(name)}">' + "".join(
                          f'<rect x="{(x0 - left) * scale:.1f}" y="{(top - y1) * scale:.1f}" '
                          f'width="{(x1 - x0) * scale:.1f}" height="{(y1 - y0) * scale:.1f}"/>'
                          for x0, y0, x1, y1 in b.tolist()) + "</g>")
        legend.append(f'<span style="color:{color}">&#9632;</span> {html.escape(name or "chips")} ({len(b)} drawn)')
    crs = html.escape(str(ds.attrs["crs"])[:120])
    return (f"<h2>Footprints</h2><p>Chip footprints in {crs}: x {left:.12g} .. {right:.12g}, y {bottom:.12g} .. "
            f"{top:.12g} (north up). {' &nbsp; '.join(legend)}</p>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="border:1px solid #ccc" role="img" aria-label="chip footprints">'
            + "".join(shapes) + "</svg>")
