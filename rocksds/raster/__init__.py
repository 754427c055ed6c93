"""Chip georeferenced rasters into a rocksds dataset, in windows, without loading whole rasters.

Install with ``pip install 'rocksds[raster]'`` (rasterio). The core package
never imports rasterio; this module imports it lazily.

Ingestion is a line, each step a module of this package: the inputs
(:mod:`.inputs`: globs, lists, a CSV of scenes) -> the plan (:mod:`.plan`,
reading metadata through :mod:`._rasterio`, the only rasterio importer, and
the grid arithmetic of :mod:`.grid`) -> the chips (:mod:`.chips`) -> a serial
build through :class:`rocksds.Writer` (:mod:`.serial`) or a parallel one
through SST files (:mod:`.parallel`) -> each dataset built beside its final
path and renamed into place. Only :mod:`.ingest`, the top step, knows both
build branches.

>>> from rocksds.raster import ingest_raster
>>> ingest_raster("out.rds", {"image": "scene.tif", "mask": "labels.tif"}, chip=256, stride=128,
...               split={"train": 0.8, "val": 0.2}, split_block=2048, min_valid=0.5)  # doctest: +SKIP

What a sample holds (keys follow TorchGeo):

- one field per input (``image``, ``mask``, ...): the chip's pixels of every
  band, ``(bands, chip, chip)`` in the input's own dtype;
- ``bounds``: float64 ``[left, bottom, right, top]`` (rasterio's order) in the CRS;
- ``transform``: float64 ``[a, b, c, d, e, f]``, the chip's affine pixel->CRS transform;
- ``source``: int32 index into ``attrs["sources"]``.
- ``valid``: float32, the fraction of the chip's pixels valid in every band of every input
  (padding is invalid), so chips can be chosen at read time (``ds.select``), not only dropped
  at build time (``min_valid``);
- ``<mask>_counts``: uint32 ``(classes,)``, the pixels of each class in the chip, for mask inputs
  (one integer band, named ``mask``/``label``/``labels`` or listed in ``class_counts``): what a
  class-balanced sampler weighs chips by.

What is constant per dataset goes into ``attrs``: ``crs`` (WKT, or
``"EPSG:n"`` when it has an EPSG code), the chip geometry, ``sources``,
per-input ``bands`` (descriptions), ``nodata``, ``scales``, ``offsets`` and
``dtype``, ``classes`` (when given), the ``split`` and the ``command`` that
built the dataset.

Grid (see :func:`rocksds.raster.grid.chip_count`): chips start every ``stride`` pixels. The last
row/column either shifts back inside the raster (``edge="shift"``, default: no
padding, the last chips overlap their neighbours a little more) or runs past
the edge and is padded with nodata (``edge="pad"``). Either way every pixel is
in at least one chip and every chip is emitted exactly once, row-major.

Inputs: several rasters on the same grid (same CRS, transform, width and
height) become fields of one sample. Inputs that differ are refused, never
resampled: warp them onto one grid first (``gdalwarp -tap -tr ...``). Many
scenes can be chipped in one run; each contributes a contiguous range of
sample indices, in the order given. All scenes must share one CRS.

Splits: with ``split={"train": .8, "val": .2}`` each split becomes its own
dataset (``out/train.rds``, ``out/val.rds``), not a ``split`` field: a
training loop then opens one dataset and needs no filtering, sizes and
indices are per split, and a held-out split can be shipped or withheld on its
own. The raster is cut into square blocks of ``split_block`` pixels (by
default derived from the smallest scene: about two blocks for the smallest
split, a multiple of the stride, at most 2048), blocks
are shuffled (seeded) and dealt to splits in the given proportions (of
blocks, not of chips). A chip belongs to the split of the blocks it touches;
a chip touching blocks of two different splits is dropped, so no pixel is in
two splits even with overlapping chips.

A split that no chip can reach is refused before any pixel is read, and a
dataset that ends up empty raises :class:`~rocksds.errors.EmptyOutputError`
(nothing is written); the report's ``dropped`` line says what went and why.

Statistics: each dataset stores per-band statistics of every input (count,
min, max, mean, std, histogram and so percentiles; nodata left out; SPEC.md
2.1), read back as ``ds.stats``. Each task accumulates its own and the build
merges them in task order, so serial and parallel builds store the same bytes.

Filtering: by default a chip without a single valid pixel is dropped
(``min_valid=0`` keeps every chip); with ``min_valid > 0`` a chip is kept only when at least that
fraction of its pixels is valid in every band of every input. Validity comes
from the rasters' nodata values, internal masks or alpha bands (GDAL's
dataset masks); padding is invalid.

Memory: reads are windowed and expanded to whole blocks (tiles or strips),
grouped so one read holds at most ``batch_bytes``, and GDAL's block cache is
capped at ``cache_bytes`` per process (``GDAL_CACHEMAX``). Each chipping
process needs about ``2 * batch_bytes + cache_bytes`` plus the interpreter
(~100 MB), none of it depending on the raster's size. A serial build adds,
in the same process, the writer's buffered commit (up to 64 MiB) and
RocksDB's memtables (up to 2 x 64 MiB per field), which fill as the output
grows: peak RSS measured 155, 244 and 336 MiB for 2000², 6000² and 10000²
4-band uint16 scenes (256 px chips). Striped rasters,
or blocks larger than ``batch_bytes``, still work but raise
:class:`RasterLayoutWarning`.
"""

from __future__ import annotations

from ._rasterio import write_geotiff
from .grid import chip_count, chip_georef, chip_offsets
from .ingest import ingest_raster, output_paths
from .inputs import expand_inputs, read_sources_csv
from .parallel import WorkerLostError
from .plan import GridMismatchError, RasterLayoutWarning, plan_chips

__all__ = [
    "ingest_raster",
    "plan_chips",
    "chip_count",
    "chip_offsets",
    "chip_georef",
    "RasterLayoutWarning",
    "GridMismatchError",
    "WorkerLostError",
    "read_sources_csv",
    "expand_inputs",
    "output_paths",
    "write_geotiff",
]
