"""Chip georeferenced rasters into a rocksds dataset, in windows, without loading whole rasters.

Install with ``pip install 'rocksds[raster]'`` (rasterio). The core package
never imports rasterio; this module imports it lazily.

>>> from rocksds.raster import ingest_raster
>>> ingest_raster("out.rds", {"image": "scene.tif", "mask": "labels.tif"}, chip=256, stride=128,
...               split={"train": 0.8, "val": 0.2}, split_block=2048, min_valid=0.5)  # doctest: +SKIP

What a sample holds (keys follow TorchGeo):

- one field per input (``image``, ``mask``, ...): the chip's pixels of every
  band, ``(bands, chip, chip)`` in the input's own dtype;
- ``bounds``: float64 ``[left, bottom, right, top]`` (rasterio's order) in the CRS;
- ``transform``: float64 ``[a, b, c, d, e, f]``, the chip's affine pixel->CRS transform;
- ``source``: int32 index into ``attrs["sources"]``.

What is constant per dataset goes into ``attrs``: ``crs`` (WKT, or
``"EPSG:n"`` when it has an EPSG code), the chip geometry, ``sources``,
per-input ``bands`` (descriptions), ``nodata``, ``scales``, ``offsets`` and
``dtype``, ``classes`` (when given), the ``split`` and the ``command`` that
built the dataset.

Grid (see :func:`chip_count`): chips start every ``stride`` pixels. The last
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
own. The raster is cut into square blocks of ``split_block`` pixels, blocks
are shuffled (seeded) and dealt to splits in the given proportions (of
blocks, not of chips). A chip belongs to the split of the blocks it touches;
a chip touching blocks of two different splits is dropped, so no pixel is in
two splits even with overlapping chips.

Filtering: with ``min_valid > 0`` a chip is kept only when at least that
fraction of its pixels is valid in every band of every input. Validity comes
from the rasters' nodata values, internal masks or alpha bands (GDAL's
dataset masks); padding is invalid.

Memory: reads are windowed and expanded to whole blocks (tiles or strips),
grouped so one read holds at most ``batch_bytes``, and GDAL's block cache is
capped at ``cache_bytes`` per process (``GDAL_CACHEMAX``). Each chipping
process needs about ``2 * batch_bytes + cache_bytes`` plus the interpreter
(~100 MB); a serial build adds RocksDB's memtables (up to 2 x 64 MiB) in the
writing process. None of it depends on the raster's size. Striped rasters,
or blocks larger than ``batch_bytes``, still work but raise
:class:`RasterLayoutWarning`.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import numpy as np

from .errors import DatasetExistsError, DependencyNotFoundError, InvalidArgumentError
from .schema import Field, Schema

__all__ = [
    "RasterLayoutWarning",
    "GridMismatchError",
    "chip_count",
    "chip_offsets",
    "chip_georef",
    "plan_chips",
    "ingest_raster",
    "read_sources_csv",
    "expand_inputs",
    "iter_task",
    "ChipPlan",
    "Task",
    "TaskStats",
]

#: Sample fields every chip has besides its inputs.
META_FIELDS = ("bounds", "transform", "source")
EDGES = ("shift", "pad")
DEFAULT_BATCH_BYTES = 32 * 2**20
DEFAULT_CACHE_BYTES = 64 * 2**20


class RasterLayoutWarning(UserWarning):
    """A raster's block layout (strips, huge blocks) makes windowed reads expensive; it still works."""


class GridMismatchError(InvalidArgumentError):
    """Inputs of one sample are not on the same pixel grid (CRS, transform or shape differ)."""


def _rasterio() -> Any:
    try:
        import rasterio
        import rasterio.errors  # noqa: F401
        import rasterio.windows  # noqa: F401
    except ImportError:
        raise DependencyNotFoundError(
            "rocksds.raster needs rasterio: pip install 'rocksds[raster]'"
        ) from None
    return rasterio


# ---------------------------------------------------------------------- grid


def chip_count(size: int, chip: int, stride: int, edge: str = "shift") -> int:
    """Number of chips along one axis of ``size`` pixels.

    ``n = ceil((size - chip) / stride) + 1`` when ``size >= chip``, else 1.

    The ceiling (as in TorchGeo's ``tile_to_chips``) makes the last chip reach
    the far edge: with ``floor`` the last ``(size - chip) % stride`` pixels
    would belong to no chip. The last chip starts at ``(n - 1) * stride``;
    with ``edge="shift"`` it moves back to ``size - chip`` so it stays inside
    the raster (it coincides with no other chip, because ``(n - 2) * stride <
    size - chip``). With ``edge="pad"`` it runs past the edge and the excess
    is padded. A raster smaller than one chip gives one padded chip in both
    modes. The chip count of a raster is ``chip_count(height) *
    chip_count(width)``.
    """
    _check_geometry(chip, stride, edge)
    if size <= 0:
        return 0
    if size <= chip:
        return 1
    return -(-(size - chip) // stride) + 1


def chip_offsets(size: int, chip: int, stride: int, edge: str = "shift") -> list[int]:
    """Start pixel of each chip along one axis (see :func:`chip_count`)."""
    n = chip_count(size, chip, stride, edge)
    offs = [i * stride for i in range(n)]
    if edge == "shift" and size >= chip and offs:
        offs[-1] = min(offs[-1], size - chip)
    return offs


def _check_geometry(chip: int, stride: int, edge: str) -> None:
    if not isinstance(chip, int) or chip <= 0:
        raise InvalidArgumentError(f"chip must be a positive integer (pixels), got {chip!r}")
    if not isinstance(stride, int) or stride <= 0:
        raise InvalidArgumentError(f"stride must be a positive integer (pixels), got {stride!r}")
    if stride > chip:
        raise InvalidArgumentError(f"stride {stride} > chip {chip} would leave pixels in no chip; use stride <= chip")
    if edge not in EDGES:
        raise InvalidArgumentError(f"edge must be one of {EDGES}, got {edge!r}")


# ---------------------------------------------------------------------- plan


@dataclass(frozen=True)
class InputInfo:
    """What a plan needs to know about one input raster (picklable, no open handles)."""

    path: str
    bands: int
    dtype: str
    nodata: Optional[float]
    descriptions: list[Optional[str]]
    scales: list[float]
    offsets: list[float]
    mask_kind: str  # "all_valid" | "nodata" | "mask"
    block_shape: tuple[int, int]


@dataclass(frozen=True)
class SourceInfo:
    """One scene: its inputs on one grid."""

    index: int
    inputs: dict[str, InputInfo]
    width: int
    height: int
    crs: str
    transform: tuple[float, ...]


@dataclass(frozen=True)
class Task:
    """A contiguous range ``[row0, row1)`` of chip rows of one source; the unit of parallel work."""

    index: int
    source: int
    row0: int
    row1: int


@dataclass
class ChipPlan:
    """Everything needed to chip, decided up front: sources, geometry, splits, schema and tasks.

    Build it with :func:`plan_chips`. It is picklable, so workers receive it whole.
    """

    sources: list[SourceInfo]
    chip: int
    stride: int
    edge: str
    min_valid: float
    splits: list[str]
    fractions: list[float]
    split_block: int
    seed: int
    batch_bytes: int
    cache_bytes: int
    schema: Schema
    tasks: list[Task] = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return list(self.sources[0].inputs)

    def grid(self, source: int) -> tuple[list[int], list[int]]:
        """Row and column offsets of the chips of one source."""
        s = self.sources[source]
        return (
            chip_offsets(s.height, self.chip, self.stride, self.edge),
            chip_offsets(s.width, self.chip, self.stride, self.edge),
        )

    @property
    def grid_total(self) -> int:
        """Chips in the grids of every source, before filtering and split-boundary drops."""
        return sum(
            chip_count(s.height, self.chip, self.stride, self.edge) * chip_count(s.width, self.chip, self.stride, self.edge)
            for s in self.sources
        )

    def block_splits(self, source: int) -> np.ndarray:
        """Split index of each ``split_block`` block of one source, shape ``(blocks_y, blocks_x)``.

        Blocks are shuffled with ``seed`` and the source index, then dealt in
        the order of ``splits``: the first ``round(f0 * n)`` to the first
        split, and so on (cumulative rounding, so every block gets a split).
        """
        s = self.sources[source]
        by = -(-s.height // self.split_block)
        bx = -(-s.width // self.split_block)
        n = by * bx
        perm = np.random.default_rng([self.seed, source]).permutation(n)
        out = np.empty(n, dtype=np.int64)
        bounds = np.round(np.cumsum(self.fractions) / sum(self.fractions) * n).astype(np.int64)
        start = 0
        for k, stop in enumerate(bounds):
            out[perm[start:stop]] = k
            start = int(stop)
        return out.reshape(by, bx)


def _crs_string(crs: Any) -> str:
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def _inspect(path: str) -> tuple[InputInfo, dict[str, Any]]:
    rasterio = _rasterio()
    from rasterio.enums import MaskFlags

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise InvalidArgumentError(f"cannot open raster {path}: {e}") from None
    with src:
        flags = src.mask_flag_enums
        if all(f == [MaskFlags.all_valid] for f in flags):
            kind = "all_valid"
        elif all(MaskFlags.nodata in f for f in flags):
            kind = "nodata"
        else:
            kind = "mask"
        dtypes = set(src.dtypes)
        if len(dtypes) != 1:
            raise InvalidArgumentError(f"{path}: bands have different dtypes {sorted(dtypes)}; split it per dtype")
        info = InputInfo(
            path=path,
            bands=src.count,
            dtype=src.dtypes[0],
            nodata=None if src.nodata is None else float(src.nodata),
            descriptions=list(src.descriptions),
            scales=[float(x) for x in src.scales],
            offsets=[float(x) for x in src.offsets],
            mask_kind=kind,
            block_shape=tuple(src.block_shapes[0]),  # type: ignore[arg-type]
        )
        grid = {"crs": _crs_string(src.crs), "transform": tuple(src.transform)[:6], "width": src.width,
                "height": src.height}
    return info, grid


def _warn_layout(info: InputInfo, width: int, height: int, chip: int, batch_bytes: int) -> None:
    bh, bw = info.block_shape
    block_bytes = bh * bw * info.bands * np.dtype(info.dtype).itemsize
    if bw >= width and bh < height and width > 2 * chip:
        warnings.warn(
            f"{info.path} is striped ({bh}x{bw} blocks): every windowed read decodes whole rows, so chips cost "
            "a full-width read each; a tiled copy reads much faster (gdal_translate -co TILED=YES)",
            RasterLayoutWarning,
            stacklevel=3,
        )
    elif block_bytes > batch_bytes:
        warnings.warn(
            f"{info.path} has {bh}x{bw} blocks ({block_bytes / 2**20:.0f} MiB for all bands), larger than "
            f"batch_bytes={batch_bytes}; reads will exceed the batch budget (retile the raster)",
            RasterLayoutWarning,
            stacklevel=3,
        )


def _dtype_name(dtype: str) -> str:
    name = np.dtype(dtype).name
    if name not in ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64",
                    "complex64", "complex128", "float16"):
        raise InvalidArgumentError(f"raster dtype {dtype!r} has no rocksds equivalent")
    return name


def plan_chips(
    sources: Sequence[Mapping[str, str]],
    *,
    chip: int = 256,
    stride: Optional[int] = None,
    edge: str = "shift",
    min_valid: float = 0.0,
    split: Optional[Mapping[str, float]] = None,
    split_block: int = 2048,
    seed: int = 0,
    classes: Optional[Sequence[str]] = None,
    compression: str = "lz4",
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    tasks: int = 16,
    command: Optional[str] = None,
) -> ChipPlan:
    """Inspect the sources (metadata only) and decide the chips, splits, schema and tasks.

    Args:
        sources: one dict per scene, input name -> raster path; every scene has the same input names.
        chip, stride, edge: the chip grid (see :func:`chip_count`); ``stride`` defaults to ``chip``.
        min_valid: keep a chip only if at least this fraction of its pixels is valid.
        split: split name -> fraction of blocks (``None``: one dataset, no split).
        split_block: side of the square blocks splits are dealt by, in pixels.
        seed: seeds the block shuffle.
        classes: class names stored in ``attrs["classes"]``.
        compression: RocksDB codec of the input fields.
        batch_bytes: most bytes one windowed read may hold.
        cache_bytes: GDAL block cache per process.
        tasks: about how many tasks (units of parallel work, bands of chip rows) to cut the work into;
            a task never spans two scenes, so each scene is at least one task.
        command: recorded in ``attrs["command"]``.

    Raises:
        GridMismatchError: inputs of a scene differ in CRS, transform or shape, or scenes differ in CRS.
    """
    stride = chip if stride is None else stride
    _check_geometry(chip, stride, edge)
    if not 0.0 <= float(min_valid) <= 1.0:
        raise InvalidArgumentError(f"min_valid is a fraction in [0, 1], got {min_valid!r}")
    if not sources:
        raise InvalidArgumentError("no input rasters given")
    if batch_bytes <= 0 or cache_bytes <= 0:
        raise InvalidArgumentError("batch_bytes and cache_bytes must be positive")
    if split is None:
        splits, fractions = [""], [1.0]
    else:
        splits, fractions = list(split), [float(v) for v in split.values()]
        if not splits or any(f < 0 for f in fractions) or sum(fractions) <= 0:
            raise InvalidArgumentError(f"split fractions must be >= 0 and not all 0, got {dict(split)}")
        for name in splits:
            if not name or "/" in name or name.startswith("."):
                raise InvalidArgumentError(f"split name {name!r} must be a plain file name")
    if not isinstance(split_block, int) or split_block <= 0:
        raise InvalidArgumentError(f"split_block must be a positive number of pixels, got {split_block!r}")
    if split is not None and split_block < 2 * chip:
        raise InvalidArgumentError(
            f"split_block={split_block} is less than twice the chip ({chip}): most chips would straddle two "
            "blocks and be dropped; use blocks several chips wide (a multiple of the stride drops fewest)"
        )

    names = list(sources[0])
    for name in names:
        if name in META_FIELDS:
            raise InvalidArgumentError(f"input name {name!r} is reserved for a per-chip field; rename the input")
    infos: list[SourceInfo] = []
    crs0: Optional[str] = None
    for i, src in enumerate(sources):
        if list(src) != names:
            raise InvalidArgumentError(f"scene {i} has inputs {list(src)}, scene 0 has {names}; give every scene the same")
        inputs: dict[str, InputInfo] = {}
        grid0: Optional[dict[str, Any]] = None
        for name, path in src.items():
            info, grid = _inspect(os.fspath(path))
            if grid0 is None:
                grid0 = grid
            else:
                diff = [k for k in ("crs", "transform", "width", "height") if grid[k] != grid0[k]]
                if diff:
                    raise GridMismatchError(
                        f"input {name!r} ({path}) is not on the grid of {names[0]!r} ({src[names[0]]}): "
                        f"{', '.join(diff)} differ ({ {k: grid[k] for k in diff} } vs { {k: grid0[k] for k in diff} }); "
                        "rocksds refuses rather than resamples: warp the inputs onto one grid first (gdalwarp)"
                    )
            if infos and (info.bands, info.dtype) != (infos[0].inputs[name].bands, infos[0].inputs[name].dtype):
                raise InvalidArgumentError(
                    f"input {name!r} of scene {i} has {info.bands} bands of {info.dtype}, scene 0 has "
                    f"{infos[0].inputs[name].bands} of {infos[0].inputs[name].dtype}"
                )
            inputs[name] = info
        assert grid0 is not None
        if crs0 is None:
            crs0 = grid0["crs"]
        elif grid0["crs"] != crs0:
            raise GridMismatchError(
                f"scene {i} has CRS {grid0['crs'][:60]!r}, scene 0 has {crs0[:60]!r}; one dataset has one CRS "
                "(attrs['crs']): reproject the scenes first (gdalwarp -t_srs)"
            )
        for info in inputs.values():
            _warn_layout(info, grid0["width"], grid0["height"], chip, batch_bytes)
        infos.append(SourceInfo(i, inputs, grid0["width"], grid0["height"], grid0["crs"], grid0["transform"]))

    first = infos[0].inputs
    fields = {
        name: Field(dtype=_dtype_name(info.dtype), shape=(info.bands, chip, chip), compression=compression)
        for name, info in first.items()
    }
    fields["bounds"] = Field(dtype="float64", shape=(4,))
    fields["transform"] = Field(dtype="float64", shape=(6,))
    fields["source"] = Field(dtype="int32", shape=())
    attrs: dict[str, Any] = {
        "crs": crs0,
        "chip": chip,
        "stride": stride,
        "edge": edge,
        "min_valid": float(min_valid),
        "inputs": {
            name: {
                "dtype": info.dtype,
                "bands": [d or f"band_{b + 1}" for b, d in enumerate(info.descriptions)],
                "nodata": info.nodata,
                "scales": info.scales,
                "offsets": info.offsets,
            }
            for name, info in first.items()
        },
        "sources": [{name: info.path for name, info in s.inputs.items()} for s in infos],
        "command": command or "",
    }
    if classes is not None:
        attrs["classes"] = [str(c) for c in classes]
    schema = Schema(fields=fields, attrs=attrs)
    plan = ChipPlan(
        sources=infos, chip=chip, stride=stride, edge=edge, min_valid=float(min_valid), splits=splits,
        fractions=fractions, split_block=split_block, seed=int(seed), batch_bytes=int(batch_bytes),
        cache_bytes=int(cache_bytes), schema=schema,
    )
    rows_per_source = [chip_count(s.height, chip, stride, edge) for s in infos]
    per = max(1, -(-sum(rows_per_source) // max(1, tasks)))
    for s, rows in zip(infos, rows_per_source):
        for r0 in range(0, rows, per):
            plan.tasks.append(Task(len(plan.tasks), s.index, r0, min(rows, r0 + per)))
    return plan


def split_schema(plan: ChipPlan, split_index: int) -> Schema:
    """The schema of one split's dataset: the plan's, with the split recorded in attrs."""
    if plan.splits == [""]:
        return plan.schema
    attrs = dict(plan.schema.attrs)
    attrs["split"] = {
        "name": plan.splits[split_index],
        "fractions": dict(zip(plan.splits, plan.fractions)),
        "block": plan.split_block,
        "seed": plan.seed,
    }
    return plan.schema.model_copy(update={"attrs": attrs})


# ---------------------------------------------------------------------- chipping


@dataclass
class TaskStats:
    """What one task did: samples kept per split and chips dropped, by reason."""

    kept: list[int]
    grid: int = 0
    invalid: int = 0
    straddling: int = 0


def _chip_split(plan: ChipPlan, blocks: np.ndarray, src: SourceInfo, y: int, x: int) -> int:
    """Split index of the chip at (y, x), or -1 when it touches blocks of two splits."""
    if blocks.size == 1:
        return int(blocks.flat[0])
    b = plan.split_block
    y1 = min(y + plan.chip, src.height) - 1
    x1 = min(x + plan.chip, src.width) - 1
    touched = blocks[y // b : y1 // b + 1, x // b : x1 // b + 1]
    first = touched.flat[0]
    return int(first) if (touched == first).all() else -1


def geometric_counts(plan: ChipPlan, task: Task) -> list[int]:
    """Chips per split a task keeps when nothing is filtered by pixels (``min_valid == 0``); reads no pixels."""
    src = plan.sources[task.source]
    rows, cols = plan.grid(task.source)
    blocks = plan.block_splits(task.source)
    counts = [0] * len(plan.splits)
    for y in rows[task.row0 : task.row1]:
        for x in cols:
            k = _chip_split(plan, blocks, src, y, x)
            if k >= 0:
                counts[k] += 1
    return counts


def _read_window(src: Any, info: InputInfo, y0: int, y1: int, x0: int, x1: int, need_mask: bool) -> tuple[Any, Any]:
    from rasterio.windows import Window

    win = Window(x0, y0, x1 - x0, y1 - y0)
    data = src.read(window=win)
    valid = None
    if need_mask and info.mask_kind != "all_valid":
        if info.mask_kind == "nodata" and info.nodata is not None:
            nd = info.nodata
            valid = ~np.isnan(data).any(axis=0) if math.isnan(nd) else (data != nd).all(axis=0)
        else:
            valid = (src.read_masks(window=win) != 0).all(axis=0)
    return data, valid


def _groups(offsets: Sequence[int], chip: int, block: int, limit: int, cap: int) -> list[tuple[int, int, int, int]]:
    """Greedy groups ``(i0, i1, lo, hi)`` of consecutive chips whose block-aligned span ``[lo, hi)`` <= ``cap``.

    ``limit`` is the raster size along the axis; a group always holds at least one chip.
    """
    out = []
    i, n = 0, len(offsets)
    while i < n:
        lo = max(0, min(offsets[i], limit - 1)) // block * block
        j = i + 1
        while j < n and min(-(-(offsets[j] + chip) // block) * block, limit) - lo <= cap:
            j += 1
        hi = min(-(-(offsets[j - 1] + chip) // block) * block, limit)
        out.append((i, j, lo, max(hi, lo + 1)))
        i = j
    return out


def iter_task(plan: ChipPlan, task: Task, stats: Optional[TaskStats] = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Chip one task: yields ``(split_index, sample)`` in row-major order; the serial and parallel paths share it.

    Reads are grouped so one read of all inputs holds at most ``plan.batch_bytes``
    (at least one chip), and expanded to whole blocks of the first input.
    """
    rasterio = _rasterio()
    src = plan.sources[task.source]
    rows, cols = plan.grid(task.source)
    blocks = plan.block_splits(task.source)
    c = plan.chip
    need_mask = plan.min_valid > 0
    names = list(src.inputs)
    px_bytes = sum(i.bands * np.dtype(i.dtype).itemsize for i in src.inputs.values())
    bh, bw = src.inputs[names[0]].block_shape
    stats = stats if stats is not None else TaskStats([0] * len(plan.splits))
    with rasterio.Env(GDAL_CACHEMAX=plan.cache_bytes):
        handles = {n: rasterio.open(i.path) for n, i in src.inputs.items()}
        try:
            full_row_cols = min(-(-(src.width) // bw) * bw, src.width)
            row_cap = max(1, plan.batch_bytes // max(1, full_row_cols * px_bytes))
            for ri0, ri1, ylo, yhi in _groups(rows[task.row0 : task.row1], c, bh, src.height, row_cap):
                col_cap = max(1, plan.batch_bytes // max(1, (yhi - ylo) * px_bytes))
                for ci0, ci1, xlo, xhi in _groups(cols, c, bw, src.width, col_cap):
                    datas, valid = {}, None
                    for n in names:
                        d, v = _read_window(handles[n], src.inputs[n], ylo, yhi, xlo, xhi, need_mask)
                        datas[n] = d
                        if v is not None:
                            valid = v if valid is None else (valid & v)
                    for y in rows[task.row0 + ri0 : task.row0 + ri1]:
                        for x in cols[ci0:ci1]:
                            stats.grid += 1
                            k = _chip_split(plan, blocks, src, y, x)
                            if k < 0:
                                stats.straddling += 1
                                continue
                            sample = _cut(plan, src, datas, valid, ylo, xlo, y, x, need_mask)
                            if sample is None:
                                stats.invalid += 1
                                continue
                            sample["transform"], sample["bounds"] = chip_georef(src.transform, y, x, c)
                            sample["source"] = np.int32(src.index)
                            stats.kept[k] += 1
                            yield k, sample
                    del datas, valid
        finally:
            for h in handles.values():
                h.close()


def chip_georef(transform: Sequence[float], row: int, col: int, chip: int) -> tuple[np.ndarray, np.ndarray]:
    """``(transform, bounds)`` of the ``chip`` x ``chip`` window at (row, col) of a raster with affine ``transform``.

    ``transform`` is ``[a, b, c, d, e, f]`` (x = a*col + b*row + c, y = d*col + e*row + f), as rasterio's
    ``windows.transform``; ``bounds`` is ``[left, bottom, right, top]``, the extremes of the window's four
    corners, as rasterio's ``windows.bounds``.
    """
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    c2, f2 = a * col + b * row + c, d * col + e * row + f
    xs = [c2, c2 + a * chip, c2 + b * chip, c2 + a * chip + b * chip]
    ys = [f2, f2 + d * chip, f2 + e * chip, f2 + d * chip + e * chip]
    return (np.array([a, b, c2, d, e, f2], dtype=np.float64),
            np.array([min(xs), min(ys), max(xs), max(ys)], dtype=np.float64))


def _cut(
    plan: ChipPlan, src: SourceInfo, datas: dict[str, np.ndarray], valid: Optional[np.ndarray],
    ylo: int, xlo: int, y: int, x: int, need_mask: bool,
) -> Optional[dict[str, Any]]:
    """The chip at (y, x) from arrays read at (ylo, xlo), padded where it leaves the raster; None if too invalid."""
    c = plan.chip
    h = min(c, src.height - y)
    w = min(c, src.width - x)
    sy, sx = y - ylo, x - xlo
    if need_mask:
        n_valid = h * w if valid is None else int(valid[sy : sy + h, sx : sx + w].sum())
        if n_valid < plan.min_valid * c * c:
            return None
    out: dict[str, Any] = {}
    for n, d in datas.items():
        part = d[:, sy : sy + h, sx : sx + w]
        if h == c and w == c:
            out[n] = part
        else:
            nd = src.inputs[n].nodata
            full = np.full((d.shape[0], c, c), 0 if nd is None else nd, dtype=d.dtype)
            full[:, :h, :w] = part
            out[n] = full
    return out


# ---------------------------------------------------------------------- sources


def read_sources_csv(path: str) -> list[dict[str, str]]:
    """Scenes from a CSV whose header names the inputs (``image,mask``) and each row gives one scene's paths.

    Relative paths are taken relative to the CSV's directory.
    """
    import csv

    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InvalidArgumentError(f"{path} has no scenes (expected a header naming inputs, then one row per scene)")
    return [{k.strip(): os.path.join(base, v.strip()) for k, v in row.items()} for row in rows]


def expand_inputs(inputs: Union[Mapping[str, Union[str, Sequence[str]]], Sequence[Mapping[str, str]]]) -> list[dict[str, str]]:
    """Normalize inputs to one dict per scene.

    Accepts a list of scene dicts, or one dict of input name -> path, glob
    pattern or list of paths; globs expand sorted, and the i-th match of each
    input forms scene i (every input must match the same number of files).
    """
    if isinstance(inputs, Mapping):
        expanded: dict[str, list[str]] = {}
        for name, v in inputs.items():
            if isinstance(v, (str, os.PathLike)):
                v = os.fspath(v)
                paths = sorted(glob.glob(v)) if glob.has_magic(v) else [v]
                if not paths:
                    raise InvalidArgumentError(f"input {name!r}: pattern {v!r} matches no file")
            else:
                paths = [os.fspath(p) for p in v]
            expanded[name] = paths
        counts = {k: len(v) for k, v in expanded.items()}
        if len(set(counts.values())) > 1:
            raise InvalidArgumentError(f"inputs match different numbers of files {counts}; pair them with a CSV")
        n = next(iter(counts.values()), 0)
        return [{k: v[i] for k, v in expanded.items()} for i in range(n)]
    return [{k: os.fspath(p) for k, p in s.items()} for s in inputs]


# ---------------------------------------------------------------------- build


def output_paths(out: str, plan: ChipPlan) -> list[str]:
    """Dataset path of each split: ``out`` itself without splits, else ``out/<split>.rds``."""
    if plan.splits == [""]:
        return [out]
    return [os.path.join(out, f"{name}.rds") for name in plan.splits]


def _prepare_outputs(out: str, plan: ChipPlan, overwrite: bool) -> list[str]:
    paths = output_paths(out, plan)
    for p in paths:
        if os.path.lexists(p):
            if not overwrite:
                raise DatasetExistsError(f"{p} already exists (pass overwrite=True / --overwrite to replace it)")
            from ._metadata import check_is_dataset

            check_is_dataset(p)
    if plan.splits != [""]:
        os.makedirs(out, exist_ok=True)
    return paths


def _place(tmp: str, final: str) -> None:
    """Move a finished dataset into place, replacing an old one (checked by :func:`_prepare_outputs`)."""
    if os.path.lexists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)


def building_path(final: str) -> str:
    """Where a dataset is built before it is renamed to ``final``."""
    parent, name = os.path.split(os.path.abspath(final))
    return os.path.join(parent, f".{name}.building-{uuid.uuid4().hex[:8]}")


def ingest_raster(
    out: Union[str, os.PathLike[str]],
    inputs: Union[Mapping[str, Union[str, Sequence[str]]], Sequence[Mapping[str, str]]],
    *,
    chip: int = 256,
    stride: Optional[int] = None,
    edge: str = "shift",
    min_valid: float = 0.0,
    split: Optional[Mapping[str, float]] = None,
    split_block: int = 2048,
    seed: int = 0,
    classes: Optional[Sequence[str]] = None,
    compression: str = "lz4",
    workers: int = 1,
    scheduler: Any = None,
    staging_dir: Optional[str] = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    overwrite: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    command: Optional[str] = None,
) -> dict[str, Any]:
    """Chip rasters into one dataset (or one per split) and return a report.

    With ``workers <= 1`` and no ``scheduler`` chips are written in one
    process through :class:`rocksds.Writer`; otherwise tasks run in a process
    pool of ``workers`` (or on a Dask cluster: ``scheduler`` is a
    ``dask.distributed.Client`` or ``"dask://host:port"``) and are bulk
    ingested as SST files (:mod:`rocksds.bulk`). Both give identical datasets.
    Each dataset is built beside its final path and renamed into place when
    complete, so a crash never leaves a partial dataset at ``out``.

    Args:
        out: dataset path, or (with ``split``) a directory receiving ``<split>.rds``.
        inputs: scenes; see :func:`expand_inputs`.
        workers, scheduler, staging_dir: parallel build (see :func:`rocksds.bulk.build`).
        progress: called as ``progress(rows, total_rows)`` with the chip rows of each finished task.
        overwrite: replace existing datasets at the output paths.
        Others: see :func:`plan_chips`.

    Parallel builds start worker processes with ``spawn``: call this from a
    script under ``if __name__ == "__main__":``.

    Returns:
        ``{"datasets": {split: path}, "counts": {split: n}, "grid": chips in the grids,
        "invalid": dropped by min_valid, "straddling": dropped at split boundaries, "seconds": s,
        "chips_per_s": grid chips per second, "phases": seconds per step (plan, and chip/tables/ingest
        for parallel builds)}``.
    """
    t0 = time.perf_counter()
    out = os.fspath(out)
    scenes = expand_inputs(inputs)
    if command is None:
        command = f"rocksds.raster.ingest_raster({out!r}, {scenes!r}, chip={chip}, stride={stride}, edge={edge!r}, " \
                  f"min_valid={min_valid}, split={dict(split) if split else None}, split_block={split_block}, seed={seed})"
    parallel = scheduler is not None or workers > 1
    plan = plan_chips(
        scenes, chip=chip, stride=stride, edge=edge, min_valid=min_valid, split=split, split_block=split_block,
        seed=seed, classes=classes, compression=compression, batch_bytes=batch_bytes, cache_bytes=cache_bytes,
        tasks=max(16, 4 * max(1, workers)), command=command,
    )
    finals = _prepare_outputs(out, plan, overwrite)
    phases: dict[str, float] = {"plan": time.perf_counter() - t0}
    if progress is not None:
        total_rows = sum(t.row1 - t.row0 for t in plan.tasks)
        report, progress = progress, (lambda rows: report(rows, total_rows))  # type: ignore[assignment]
    if parallel:
        from .bulk import build

        stats = build(plan, finals, workers=workers, scheduler=scheduler, staging_dir=staging_dir, progress=progress,
                      timings=phases)
    else:
        stats = _build_serial(plan, finals, progress)
    kept = [sum(s.kept[k] for s in stats) for k in range(len(plan.splits))]
    seconds = time.perf_counter() - t0
    return {
        "datasets": dict(zip(plan.splits, finals)) if plan.splits != [""] else {"": finals[0]},
        "counts": dict(zip(plan.splits, kept)),
        "grid": plan.grid_total,
        "invalid": sum(s.invalid for s in stats),
        "straddling": sum(s.straddling for s in stats),
        "seconds": seconds,
        "chips_per_s": plan.grid_total / seconds if seconds > 0 else 0.0,
        "phases": phases,
    }


def _build_serial(plan: ChipPlan, finals: list[str], progress: Optional[Callable[[int], None]]) -> list[TaskStats]:
    from .writer import create

    tmps = [building_path(f) for f in finals]
    commit = max(4 * 2**20, plan.batch_bytes // 2)
    writers = []
    all_stats = []
    try:
        for k, tmp in enumerate(tmps):
            writers.append(create(tmp, split_schema(plan, k), wal=False, commit_bytes=commit))
        for task in plan.tasks:
            stats = TaskStats([0] * len(plan.splits))
            for k, sample in iter_task(plan, task, stats):
                writers[k].append(sample)
            all_stats.append(stats)
            if progress is not None:
                progress(task.row1 - task.row0)
        for w in writers:
            w.close()
        for tmp, final in zip(tmps, finals):
            _place(tmp, final)
    except BaseException:
        for w in writers:
            try:
                w.discard()
                w.close()
            except Exception:
                pass
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return all_stats
