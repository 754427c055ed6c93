"""``info``: what a dataset holds (schema, count, sizes, attrs) as plain data, for ``rocksds info`` and scripts."""

from __future__ import annotations

import json
from typing import Any

from .._paths import dir_bytes
from ..reader import open_dataset

__all__ = ["info", "readable_json"]


def info(path: str) -> dict[str, Any]:
    """Schema, count, per-field sizes and attrs of a dataset, as plain data."""
    with open_dataset(path, cache_gb=0) as ds:
        fields = []
        for name, f in ds.schema.fields.items():
            fields.append(
                {
                    "name": name,
                    "dtype": f.dtype,
                    "shape": list(f.shape),
                    "column_family": f.column_family,
                    "compression": f.compression,
                    "record_bytes": f.record_bytes,
                    "raw_bytes": None if f.record_bytes is None else f.record_bytes * len(ds),
                }
            )
        return {
            "path": path,
            "format_version": ds.schema.version,
            "count": len(ds),
            "disk_bytes": dir_bytes(path),
            "fields": fields,
            "attrs": ds.attrs,
            "writer": ds.schema.writer,
        }


def readable_json(value: Any, indent: str = "") -> str:
    """JSON with one key per line, but lists and objects that fit in 80 columns kept on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + len(indent) <= 80 or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {readable_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + readable_json(v, inner) for v in value) + f"\n{indent}]"
