"""Chip-grid geometry (rocksds.grid): chip offsets and counts. Needs no rasterio."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rocksds
from rocksds.grid import chip_count, chip_offsets

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
