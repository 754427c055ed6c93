"""``info``: what a dataset holds (schema, count, sizes, attrs) as plain data, for ``rocksds info`` and scripts."""

from __future__ import annotations

from typing import Any

from .._paths import dir_bytes
from ..reader import open_dataset

__all__ = ["info"]


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
