"""Fixtures that users, the test suite and the conformance suite share (like ``zarr.testing``).

- :func:`write_synthetic_geotiff`: a seeded GeoTIFF with a real CRS, written
  block row by block row (needs the ``raster`` extra);
- :func:`raw_readable` / :func:`raw_writable` (from :mod:`rocksds.raw`): a
  dataset's column families as raw bytes, to inspect a dataset or break it on
  purpose; :func:`read_schema` / :func:`read_count` decode a raw handle's metadata.
"""

from __future__ import annotations

from .geotiff import DEMO_CRS, DEMO_ORIGIN, write_synthetic_geotiff
from ..raw import list_column_families, raw_readable, raw_writable, read_count, read_schema

__all__ = [
    "DEMO_CRS",
    "DEMO_ORIGIN",
    "write_synthetic_geotiff",
    "raw_readable",
    "raw_writable",
    "list_column_families",
    "read_schema",
    "read_count",
]
