"""Chip-grid geometry: where chips start, which split owns them, how windows group. Pure arithmetic.

No rasterio, no I/O: :mod:`rocksds.raster` plans and reads with these
functions, and they can be tested (and reused) without the raster extra.

Grid (see :func:`chip_count`): chips start every ``stride`` pixels. The last
row/column either shifts back inside the raster (``edge="shift"``, default: no
padding, the last chips overlap their neighbours a little more) or runs past
the edge and is padded with nodata (``edge="pad"``). Either way every pixel is
in at least one chip and every chip is emitted exactly once, row-major.

Splits (see :func:`assign_blocks`): the raster is cut into square blocks,
blocks are shuffled (seeded) and dealt to splits; a chip belongs to the split
of the blocks it touches, or to none when it touches two (:func:`chip_split`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidArgumentError

__all__ = [
    "EDGES",
    "assign_blocks",
    "check_geometry",
    "chip_count",
    "chip_georef",
    "chip_offsets",
    "chip_split",
    "window_groups",
]

#: How the last chip of a row/column is placed: moved back inside, or padded past the edge.
EDGES = ("shift", "pad")


def check_geometry(chip: int, stride: int, edge: str) -> None:
    """Refuse a chip grid that is not positive, leaves gaps (``stride > chip``) or has an unknown ``edge``.

    Raises:
        InvalidArgumentError: with the value to change.
    """
    if not isinstance(chip, int) or chip <= 0:
        raise InvalidArgumentError(f"chip must be a positive integer (pixels), got {chip!r}")
    if not isinstance(stride, int) or stride <= 0:
        raise InvalidArgumentError(f"stride must be a positive integer (pixels), got {stride!r}")
    if stride > chip:
        raise InvalidArgumentError(f"stride {stride} > chip {chip} would leave pixels in no chip; use stride <= chip")
    if edge not in EDGES:
        raise InvalidArgumentError(f"edge must be one of {EDGES}, got {edge!r}")


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
    check_geometry(chip, stride, edge)
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


def assign_blocks(height: int, width: int, block: int, fractions: Sequence[float], seed: int, source: int,
                  ) -> np.ndarray:
    """Split index of each ``block`` x ``block`` block of a raster, shape ``(blocks_y, blocks_x)``.

    Blocks (the last row/column may be partial) are shuffled with ``[seed,
    source]``, then dealt in the order of ``fractions``: the first
    ``round(f0 * n)`` to split 0, and so on. The rounding is cumulative
    (``round(cumsum(f) / sum(f) * n)``), so every block gets a split and the
    counts add up to ``n`` whatever the fractions.
    """
    by = -(-height // block)
    bx = -(-width // block)
    n = by * bx
    perm = np.random.default_rng([seed, source]).permutation(n)
    out = np.empty(n, dtype=np.int64)
    bounds = np.round(np.cumsum(fractions) / sum(fractions) * n).astype(np.int64)
    start = 0
    for k, stop in enumerate(bounds):
        out[perm[start:stop]] = k
        start = int(stop)
    return out.reshape(by, bx)


def chip_split(blocks: np.ndarray, block: int, chip: int, height: int, width: int, y: int, x: int) -> int:
    """Split index of the chip at (y, x), or -1 when it touches blocks of two splits.

    ``blocks`` comes from :func:`assign_blocks`. Only the chip's pixels inside
    the raster count: padding past the edge touches no block.
    """
    if blocks.size == 1:
        return int(blocks.flat[0])
    y1 = min(y + chip, height) - 1
    x1 = min(x + chip, width) - 1
    touched = blocks[y // block : y1 // block + 1, x // block : x1 // block + 1]
    first = touched.flat[0]
    return int(first) if (touched == first).all() else -1


def window_groups(offsets: Sequence[int], chip: int, block: int, limit: int, cap: int,
                  ) -> list[tuple[int, int, int, int]]:
    """Greedy groups ``(i0, i1, lo, hi)`` of consecutive chips whose block-aligned span ``[lo, hi)`` <= ``cap``.

    Along one axis: chips ``offsets[i0:i1]`` are read in one window ``[lo,
    hi)``, expanded outwards to whole blocks of ``block`` pixels (so the
    reader decodes no block twice) and clipped to ``limit``, the raster size
    along the axis. A group always holds at least one chip, even when that
    chip alone spans more than ``cap``.
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
