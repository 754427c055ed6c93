"""Chip-grid geometry (rocksds.raster.grid): offsets, split blocks, window groups, georeferencing. Needs no rasterio."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import rocksds
from rocksds.raster.grid import assign_blocks, chip_count, chip_georef, chip_offsets, chip_split, window_groups

# ---------------------------------------------------------------------- offsets


@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_chip_offsets_cover_every_pixel_once_per_position(edge):
    for size, chip, stride in itertools.product(range(1, 80), (1, 4, 7, 16), (1, 3, 4, 7, 16)):
        if stride > chip:
            continue
        offs = chip_offsets(size, chip, stride, edge)
        n = chip_count(size, chip, stride, edge)
        assert len(offs) == n
        assert n == (1 if size <= chip else -(-(size - chip) // stride) + 1)
        assert len(set(offs)) == n, "a chip position is emitted twice"
        assert offs == sorted(offs)
        covered = np.zeros(size, bool)
        for o in offs:
            covered[o : o + chip] = True
        assert covered.all(), (size, chip, stride)
        if edge == "shift" and size >= chip:
            assert offs[-1] + chip == size and offs[0] == 0
        if edge == "pad":
            assert offs == [i * stride for i in range(n)]


def test_floor_would_miss_pixels_so_ceil_is_used():
    # 300 = 256 + 44: floor((300 - 256) / 128) + 1 = 1 chip leaves 44 columns uncovered.
    assert chip_count(300, 256, 128) == 2
    assert chip_offsets(300, 256, 128, "shift") == [0, 44]
    assert chip_offsets(300, 256, 128, "pad") == [0, 128]


@pytest.mark.parametrize("bad", [dict(chip=0, stride=1), dict(chip=8, stride=9), dict(chip=8, stride=4, edge="wrap")])
def test_bad_geometry_is_refused(bad):
    with pytest.raises(rocksds.InvalidArgumentError):
        chip_count(100, **bad)


# ---------------------------------------------------------------------- split blocks


@pytest.mark.parametrize("fractions", [[0.8, 0.2], [0.6, 0.2, 0.2], [1.0], [3, 0, 1]])
def test_blocks_are_dealt_by_cumulative_rounding(fractions):
    blocks = assign_blocks(100, 130, 20, fractions, seed=4, source=1)
    assert blocks.shape == (5, 7)  # ceil: the partial last row/column of blocks counts
    n = blocks.size
    bounds = np.round(np.cumsum(fractions) / sum(fractions) * n).astype(int)
    assert [(blocks == k).sum() for k in range(len(fractions))] == list(np.diff(bounds, prepend=0))
    np.testing.assert_array_equal(blocks, assign_blocks(100, 130, 20, fractions, seed=4, source=1))


def test_block_shuffle_depends_on_seed_and_source():
    a = assign_blocks(200, 200, 10, [0.5, 0.5], seed=0, source=0)
    assert not np.array_equal(a, assign_blocks(200, 200, 10, [0.5, 0.5], seed=1, source=0))
    assert not np.array_equal(a, assign_blocks(200, 200, 10, [0.5, 0.5], seed=0, source=1))


@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_chip_split_matches_the_blocks_of_its_pixels(edge):
    height, width, block, chip, stride = 70, 95, 16, 12, 7
    blocks = assign_blocks(height, width, block, [0.5, 0.3, 0.2], seed=2, source=0)
    owner = np.kron(blocks, np.ones((block, block), np.int64))[:height, :width]  # split of every pixel
    seen = set()
    for y in chip_offsets(height, chip, stride, edge):
        for x in chip_offsets(width, chip, stride, edge):
            splits = set(np.unique(owner[y : y + chip, x : x + chip]).tolist())  # padding owns nothing
            expected = splits.pop() if len(splits) == 1 else -1
            got = chip_split(blocks, block, chip, height, width, y, x)
            assert got == expected, (y, x)
            seen.add(got)
    assert seen == {-1, 0, 1, 2}
    one = assign_blocks(height, width, 1000, [1, 1], seed=0, source=0)
    assert one.shape == (1, 1) and chip_split(one, 1000, chip, height, width, 0, 0) == one[0, 0]


# ---------------------------------------------------------------------- window groups


@pytest.mark.parametrize("edge", ["shift", "pad"])
def test_window_groups_cover_chips_with_block_aligned_windows_within_the_cap(edge):
    for size, chip, stride, block, cap in itertools.product((37, 100, 256), (8, 32), (5, 8), (1, 16, 64), (1, 40, 130)):
        offs = chip_offsets(size, chip, stride, edge)
        groups = window_groups(offs, chip, block, size, cap)
        assert [g[0] for g in groups] == [0] + [g[1] for g in groups[:-1]] and groups[-1][1] == len(offs)
        for i0, i1, lo, hi in groups:
            assert i1 > i0 and lo % block == 0 and 0 <= lo < hi <= size
            assert hi == size or hi % block == 0
            assert lo <= offs[i0] and min(offs[i1 - 1] + chip, size) <= hi  # every chip's in-raster part is read
            assert hi - lo <= cap or i1 - i0 == 1  # over the cap only when one chip alone is
            if i1 < len(offs):  # greedy: the next chip would have pushed the window over the cap
                assert min(-(-(offs[i1] + chip) // block) * block, size) - lo > cap


# ---------------------------------------------------------------------- georeferencing


def test_chip_georef_maps_the_chip_corners():
    a, b, c, d, e, f = 0.5, 0.1, 1000.0, -0.2, -0.5, 2000.0  # rotated and sheared

    def to_crs(col, row):
        return a * col + b * row + c, d * col + e * row + f

    transform, bounds = chip_georef((a, b, c, d, e, f), 30, 40, 16)
    assert transform.dtype == bounds.dtype == np.float64
    ta, tb, tc, td, te, tf = transform
    assert (ta, tb, td, te) == (a, b, d, e) and (tc, tf) == pytest.approx(to_crs(40, 30))
    corners = np.array([to_crs(40 + i, 30 + j) for i in (0, 16) for j in (0, 16)])
    np.testing.assert_allclose(bounds, [*corners.min(axis=0), *corners.max(axis=0)])


def test_grid_imports_no_rasterio():
    code = "import sys, rocksds.raster.grid; assert 'rasterio' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
