"""PNG previews: size, band choice, stretch, masks, degenerate images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

import rocksds
from rocksds.tools.preview import PALETTE, render, save_png


def read_png(path):
    with Image.open(path) as im:
        return im.mode, im.size, np.asarray(im)


def test_multiband_chip_is_rgb_of_its_height_and_width(tmp_path, rng):
    chip = rng.standard_normal((4, 20, 30)).astype(np.float32)
    out = save_png({"image": chip}, tmp_path / "chip.png")
    mode, size, pixels = read_png(out)
    assert (mode, size) == ("RGB", (30, 20))
    # default bands are the first three, each stretched 2..98 %
    for c in range(3):
        np.testing.assert_array_equal(pixels[..., c], render(chip[c]))
    assert pixels.min() == 0 and pixels.max() == 255


def test_percentile_stretch_clips_outliers(rng):
    band = rng.random((50, 50))
    band[0, 0] = 1e9  # one hot pixel must not flatten everything else
    img = render(band)
    lo, hi = np.percentile(band, [2, 98])
    inside = (band > lo) & (band < hi)
    assert img[inside].std() > 50
    assert img[0, 0] == 255


def test_constant_and_all_nan_images_do_not_divide_by_zero(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = save_png({"image": np.full((1, 8, 9), 3.5, np.float32)}, tmp_path / "c.png")
        nan = save_png({"image": np.full((3, 8, 9), np.nan)}, tmp_path / "n.png")
    mode, size, pixels = read_png(out)
    assert (mode, size) == ("L", (9, 8)) and not pixels.any()
    assert read_png(nan)[1] == (9, 8) and not read_png(nan)[2].any()


def test_attrs_pick_rgb_bands_and_names_resolve(rng):
    chip = rng.standard_normal((4, 6, 7))
    attrs = {"bands": ["B2", "B3", "B4", "B8"]}  # Sentinel-2 order: blue, green, red, NIR
    rgb = render(chip, attrs=attrs)
    for c, band in enumerate([2, 1, 0]):
        np.testing.assert_array_equal(rgb[..., c], render(chip[band]))
    np.testing.assert_array_equal(render(chip, bands=["B8", "B4", "B3"], attrs=attrs),
                                  render(chip, bands=[3, 2, 1]))
    np.testing.assert_array_equal(render(chip, attrs={"rgb_bands": [3, 0, 1]}), render(chip, bands=[3, 0, 1]))


def test_channels_last_and_grayscale_layouts(tmp_path, rng):
    hwc = rng.integers(0, 255, (40, 30, 3)).astype(np.uint8)
    assert render(hwc).shape == (40, 30, 3)
    two_band = rng.random((2, 10, 12))
    np.testing.assert_array_equal(render(two_band), render(two_band[0]))
    assert read_png(save_png(rng.random((10, 12)), tmp_path / "g.png"))[:2] == ("L", (12, 10))


def test_masks_get_palette_colors(tmp_path, rng):
    mask = rng.integers(0, 4, (1, 16, 16)).astype(np.uint8)
    mask[0, 0, 0] = 0
    mode, size, pixels = read_png(save_png({"mask": mask}, tmp_path / "m.png", field="mask"))
    assert (mode, size) == ("RGB", (16, 16))
    for k in range(4):
        want = (0, 0, 0) if k == 0 else tuple(PALETTE[k - 1])
        assert (pixels[mask[0] == k] == want).all()
    ignore = render(np.array([[-1, 1]]), kind="mask")
    assert tuple(ignore[0, 0]) == (128, 128, 128)
    assert render(np.array([[True, False]])).shape == (1, 2, 3)  # bool -> mask


def test_errors_say_what_to_change(tmp_path):
    with pytest.raises(rocksds.FieldNotFoundError, match="--field"):
        save_png({"mask": np.zeros((2, 2))}, tmp_path / "x.png")
    with pytest.raises(rocksds.InvalidArgumentError, match="shape"):
        save_png({"image": np.zeros((1, 2, 3, 4))}, tmp_path / "x.png")
    with pytest.raises(rocksds.InvalidArgumentError, match="band 5"):
        render(np.zeros((3, 2, 2)), bands=[5, 1, 0])
