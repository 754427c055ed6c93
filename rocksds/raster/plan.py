"""Plan an ingestion: inspect the inputs, check they share a grid, build the schema and cut the work into tasks.

:func:`plan_chips` reads only metadata (through :mod:`rocksds.raster._rasterio`);
the pixels are read later, task by task, by :mod:`rocksds.raster.chips`.
What a sample holds, and the grid, split and memory rules, are documented in
:mod:`rocksds.raster`, the public entry point.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import EmptyOutputError, InvalidArgumentError
from ._rasterio import InputInfo, inspect
from .grid import assign_blocks, check_geometry, chip_count, chip_offsets, chip_split
from ..schema import Field, Schema, dtype_name

__all__ = [
    "RasterLayoutWarning",
    "GridMismatchError",
    "plan_chips",
    "split_schema",
    "geometric_counts",
    "auto_split_block",
    "ChipPlan",
    "SourceInfo",
    "Task",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_CACHE_BYTES",
]

#: Sample fields every chip has besides its inputs.
META_FIELDS = ("bounds", "transform", "source", "valid")
#: Inputs of these names with one integer band are masks: their chips get per-class pixel counts by default.
MASK_NAMES = ("mask", "label", "labels")
#: Classes counted per chip of an 8-bit mask without ``classes``: every value.
_BYTE_CLASSES = 256
DEFAULT_BATCH_BYTES = 32 * 2**20
DEFAULT_CACHE_BYTES = 64 * 2**20


class RasterLayoutWarning(UserWarning):
    """A raster's block layout (strips, huge blocks) makes windowed reads expensive; it still works."""


class GridMismatchError(InvalidArgumentError):
    """Inputs of one sample are not on the same pixel grid (CRS, transform or shape differ)."""


# ---------------------------------------------------------------------- plan


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
    min_valid_pixels: int  # a chip needs at least this many valid pixels (1 by default: all-nodata chips go)
    splits: list[str]
    fractions: list[float]
    split_block: int
    seed: int
    batch_bytes: int
    cache_bytes: int
    schema: Schema
    tasks: list[Task] = field(default_factory=list)
    #: Band statistics kept per input (``create(..., stats=...)`` options: band axis 0, the input's
    #: nodata), or None when the build keeps none.
    stats: Optional[dict[str, dict[str, Any]]] = None
    #: Mask input -> number of classes counted per chip into the ``<input>_counts`` field.
    class_counts: dict[str, int] = field(default_factory=dict)

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

    @property
    def filters_by_pixels(self) -> bool:
        """Whether pixels can drop a chip; if not, each split's count follows from the grid alone."""
        if self.min_valid_pixels == 0:
            return False
        if any(i.mask_kind != "all_valid" for s in self.sources for i in s.inputs.values()):
            return True
        # Every pixel inside the rasters is valid: only padding (edge="pad") can fall short.
        for k in range(len(self.sources)):
            s, (rows, cols) = self.sources[k], self.grid(k)
            inside = min(min(self.chip, s.height - y) for y in rows) * min(min(self.chip, s.width - x) for x in cols)
            if inside < self.min_valid_pixels:
                return True
        return False

    def block_splits(self, source: int) -> np.ndarray:
        """Split index of each ``split_block`` block of one source, shape ``(blocks_y, blocks_x)``.

        Seeded by ``seed`` and the source index; see :func:`rocksds.raster.grid.assign_blocks`.
        """
        s = self.sources[source]
        return assign_blocks(s.height, s.width, self.split_block, self.fractions, self.seed, source)


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
    name = dtype_name(dtype)
    if name is None:
        raise InvalidArgumentError(f"raster dtype {dtype!r} has no rocksds equivalent")
    return name


def plan_chips(
    sources: Sequence[Mapping[str, str]],
    *,
    chip: int = 256,
    stride: Optional[int] = None,
    edge: str = "shift",
    min_valid: Optional[float] = None,
    split: Optional[Mapping[str, float]] = None,
    split_block: Optional[int] = None,
    seed: int = 0,
    classes: Optional[Sequence[str]] = None,
    compression: Optional[str] = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    tasks: int = 16,
    command: Optional[str] = None,
    stats: bool = True,
    class_counts: Optional[Sequence[str]] = None,
) -> ChipPlan:
    """Inspect the sources (metadata only) and decide the chips, splits, schema and tasks.

    Args:
        sources: one dict per scene, input name -> raster path; every scene has the same input names.
        chip, stride, edge: the chip grid (see :func:`chip_count`); ``stride`` defaults to ``chip``.
        min_valid: keep a chip only if at least this fraction of its pixels is valid. ``None`` (the
            default) drops only chips without a single valid pixel; ``0`` keeps every chip.
        split: split name -> fraction of blocks (``None``: one dataset, no split).
        split_block: side of the square blocks splits are dealt by, in pixels (``None``: derived from
            the smallest scene, the chip and the smallest fraction, see :func:`auto_split_block`).
        seed: seeds the block shuffle.
        classes: class names stored in ``attrs["classes"]``.
        compression: RocksDB codec of the input fields (``None``: per dtype, see :class:`rocksds.Field`).
        batch_bytes: most bytes one windowed read may hold.
        cache_bytes: GDAL block cache per process.
        tasks: about how many tasks (units of parallel work, bands of chip rows) to cut the work into;
            a task never spans two scenes, so each scene is at least one task.
        command: recorded in ``attrs["command"]``.
        stats: keep per-band statistics of every input (SPEC.md 2.1; nodata left out).
        class_counts: mask inputs (one integer band) whose chips get a ``<input>_counts`` field, the
            pixels of each class ``0 .. C-1`` (``C = len(classes)``, or 256 for 8-bit masks without
            ``classes``; nodata and other values are not counted). Default: inputs named ``mask``,
            ``label`` or ``labels`` that have one integer band.

    Raises:
        GridMismatchError: inputs of a scene differ in CRS, transform or shape, or scenes differ in CRS.
        EmptyOutputError: a split would get no chip whatever the pixels (the scenes are too small for
            the split blocks).
    """
    stride = chip if stride is None else stride
    check_geometry(chip, stride, edge)
    if min_valid is not None and not 0.0 <= float(min_valid) <= 1.0:
        raise InvalidArgumentError(f"min_valid is a fraction in [0, 1], got {min_valid!r}")
    min_valid_pixels = 1 if min_valid is None else math.ceil(float(min_valid) * chip * chip)
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
    if split_block is not None and (not isinstance(split_block, int) or split_block <= 0):
        raise InvalidArgumentError(f"split_block must be a positive number of pixels, got {split_block!r}")
    if split is not None and split_block is not None and split_block < 2 * chip:
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
            info, grid = inspect(os.fspath(path))
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
    if split_block is None:
        split_block = auto_split_block(infos, chip, stride, fractions)

    first = infos[0].inputs
    counted = _class_counts(first, class_counts, classes)
    fields = {
        name: Field(dtype=_dtype_name(info.dtype), shape=(info.bands, chip, chip), compression=compression)
        for name, info in first.items()
    }
    fields["bounds"] = Field(dtype="float64", shape=(4,))
    fields["transform"] = Field(dtype="float64", shape=(6,))
    fields["source"] = Field(dtype="int32", shape=())
    fields["valid"] = Field(dtype="float32", shape=())
    for name, n_classes in counted.items():
        fields[f"{name}_counts"] = Field(dtype="uint32", shape=(n_classes,))
    attrs: dict[str, Any] = {
        "crs": crs0,
        "chip": chip,
        "stride": stride,
        "edge": edge,
        "min_valid": float(min_valid or 0.0),
        "min_valid_pixels": min_valid_pixels,
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
        sources=infos, chip=chip, stride=stride, edge=edge, min_valid=float(min_valid or 0.0),
        min_valid_pixels=min_valid_pixels, splits=splits,
        fractions=fractions, split_block=split_block, seed=int(seed), batch_bytes=int(batch_bytes),
        cache_bytes=int(cache_bytes), schema=schema,
        stats={name: {"axis": 0, "nodata": info.nodata} for name, info in first.items()} if stats else None,
        class_counts=counted,
    )
    rows_per_source = [chip_count(s.height, chip, stride, edge) for s in infos]
    per = max(1, -(-sum(rows_per_source) // max(1, tasks)))
    for s, rows in zip(infos, rows_per_source):
        for r0 in range(0, rows, per):
            plan.tasks.append(Task(len(plan.tasks), s.index, r0, min(rows, r0 + per)))
    if split is not None:
        _check_splits_reachable(plan)
    return plan


#: Largest side :func:`auto_split_block` picks: blocks this big keep long scans and few straddling chips.
MAX_AUTO_SPLIT_BLOCK = 2048


def auto_split_block(sources: Sequence[SourceInfo], chip: int, stride: int, fractions: Sequence[float]) -> int:
    """A split-block side that gives even the smallest split about two blocks of the smallest scene.

    A fixed 2048 px put every chip of a scene smaller than that in one split and left the others empty.
    The side is a multiple of the stride (fewest chips straddle two blocks), at least two chips wide
    (narrower blocks drop most chips at their edges) and at most :data:`MAX_AUTO_SPLIT_BLOCK`.
    """
    share = min(f for f in fractions if f > 0) / sum(fractions)
    area = min(s.height * s.width for s in sources)
    side = int(math.sqrt(area / math.ceil(2 / share))) // stride * stride
    return min(max(side, -(-2 * chip // stride) * stride), MAX_AUTO_SPLIT_BLOCK)


def _check_splits_reachable(plan: ChipPlan) -> None:
    """Refuse, before reading a pixel, a split that no chip of the grid can reach."""
    counts = [0] * len(plan.splits)
    for task in plan.tasks:
        counts = [a + b for a, b in zip(counts, geometric_counts(plan, task))]
    empty = [name for name, n, f in zip(plan.splits, counts, plan.fractions) if n == 0 and f > 0]
    if empty:
        sizes = ", ".join(f"{s.width}x{s.height}" for s in plan.sources[:3])
        raise EmptyOutputError(
            f"split(s) {', '.join(map(repr, empty))} would get no chip: the scene(s) ({sizes} px) hold too few "
            f"split blocks of {plan.split_block} px (chip {plan.chip}); pass a smaller split_block / --split-block "
            f"(at least {2 * plan.chip}), or no split"
        )
def _class_counts(inputs: Mapping[str, InputInfo], names: Optional[Sequence[str]],
                  classes: Optional[Sequence[str]]) -> dict[str, int]:
    """Mask input -> classes to count per chip (see ``class_counts`` of :func:`plan_chips`)."""
    def is_mask(info: InputInfo) -> bool:
        return info.bands == 1 and np.dtype(info.dtype).kind in "iu"

    if names is None:
        chosen = [n for n, info in inputs.items() if n in MASK_NAMES and is_mask(info)]
    else:
        chosen = list(names)
    out = {}
    for name in chosen:
        info = inputs.get(name)
        if info is None or not is_mask(info):
            raise InvalidArgumentError(f"class_counts names {name!r}, which is not an input with one integer band")
        if f"{name}_counts" in inputs:
            raise InvalidArgumentError(f"input {name}_counts clashes with the class counts of input {name!r}")
        if classes is not None:
            out[name] = len(classes)
        elif np.dtype(info.dtype).itemsize == 1:
            out[name] = _BYTE_CLASSES
        else:
            raise InvalidArgumentError(f"counting the classes of {info.dtype} mask {name!r} needs classes=[...]")
    return out


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


def geometric_counts(plan: ChipPlan, task: Task) -> list[int]:
    """Chips per split a task keeps when nothing is filtered by pixels (``min_valid == 0``); reads no pixels."""
    src = plan.sources[task.source]
    rows, cols = plan.grid(task.source)
    blocks = plan.block_splits(task.source)
    counts = [0] * len(plan.splits)
    for y in rows[task.row0 : task.row1]:
        for x in cols:
            k = chip_split(blocks, plan.split_block, plan.chip, src.height, src.width, y, x)
            if k >= 0:
                counts[k] += 1
    return counts
