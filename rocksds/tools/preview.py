"""Quick-look PNGs of samples: ``rocksds head --png PREFIX`` and :func:`save_png`.

>>> from rocksds.tools.preview import save_png
>>> save_png(ds[0], "chip0.png", field="image")            # doctest: +SKIP

How a field's value is drawn:

- ``(C, H, W)`` with ``C >= 3``: three bands as RGB. ``bands`` picks them (indices,
  or names looked up in ``attrs["bands"]``); otherwise ``attrs["rgb_bands"]``
  if present; otherwise the bands named red/green/blue (``B4, B3, B2`` or
  ``B04, B03, B02`` for Sentinel-2 and Landsat 8) in ``attrs["bands"]``;
  otherwise the first three. An array whose first axis is long and last axis
  is at most 4 is read as ``(H, W, C)``.
- ``(H, W)``, or ``C`` of 1 or 2: grayscale (the first band, or ``bands[0]``).
- masks: bool arrays, or integer arrays with ``kind="mask"`` (``"auto"`` also
  treats integer fields named like ``mask``, ``label``, ``seg``, ``class`` or
  ``target`` as masks) get a fixed palette: 0 is black, each class a distinct
  color, negative values (ignore indices) gray.

Images are stretched per band between the 2nd and 98th percentile of their
finite values (``stretch``), falling back to min..max when those are equal;
a constant band draws black, NaN and infinities black. PNGs are written with
Pillow (it comes with matplotlib), imported only when a PNG is saved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

from .._optional import require
from ..errors import ArgumentTypeError, FieldNotFoundError, InvalidArgumentError

__all__ = ["save_png", "render", "PALETTE", "MASK_WORDS"]

#: Class colors of masks: class 0 is black, class k > 0 is PALETTE[(k - 1) % len(PALETTE)].
PALETTE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (255, 255, 255),
        (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
        (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229), (255, 255, 0),
    ],
    dtype=np.uint8,
)
_IGNORE_COLOR = (128, 128, 128)
#: Words in a field name that make an integer field a mask (drawn with the palette).
MASK_WORDS = ("mask", "label", "seg", "class", "target")
_RGB_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("b4", "b3", "b2"), ("b04", "b03", "b02"))

Band = Union[int, str]


def _channels_first(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if arr.shape[0] > 16 and arr.shape[2] <= 4:
            return np.moveaxis(arr, 2, 0)
        return arr
    raise InvalidArgumentError(f"cannot draw an array of shape {arr.shape}; expected (H, W), (C, H, W) or (H, W, C)")


def _band_index(band: Band, count: int, names: Optional[list[str]]) -> int:
    if isinstance(band, str):
        lowered = [n.lower() for n in names or []]
        if band.lower() not in lowered:
            raise InvalidArgumentError(f"no band named {band!r}; attrs['bands'] is {names!r}")
        band = lowered.index(band.lower())
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)):
        raise ArgumentTypeError(f"bands are indices or names, got {band!r}")
    if not -count <= band < count:
        raise InvalidArgumentError(f"band {band} does not exist; the image has {count} bands")
    return int(band) % count


def _default_rgb(count: int, attrs: Mapping[str, Any]) -> list[Band]:
    if isinstance(attrs.get("rgb_bands"), list) and len(attrs["rgb_bands"]) == 3:
        return list(attrs["rgb_bands"])
    names = attrs.get("bands")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        lowered = [n.lower() for n in names]
        for rgb in _RGB_NAMES:
            if all(n in lowered for n in rgb):
                return [lowered.index(n) for n in rgb]
    return [0, 1, 2]


def _stretch(band: np.ndarray, stretch: Optional[tuple[float, float]]) -> np.ndarray:
    """One band -> uint8, linearly between two percentiles of its finite values."""
    band = band.astype(np.float64)
    finite = np.isfinite(band)
    if not finite.any():
        return np.zeros(band.shape, np.uint8)
    values = band[finite]
    lo, hi = np.percentile(values, stretch) if stretch else (values.min(), values.max())
    if hi <= lo:
        lo, hi = values.min(), values.max()
    if hi <= lo:  # constant band
        return np.zeros(band.shape, np.uint8)
    scaled = np.clip((np.where(finite, band, lo) - lo) / (hi - lo), 0.0, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def _mask_colors(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.int64)
    rgb = PALETTE[(np.maximum(m, 1) - 1) % len(PALETTE)]
    rgb[m == 0] = 0
    rgb[m < 0] = _IGNORE_COLOR
    return rgb


def render(
    value: Any,
    *,
    bands: Optional[Sequence[Band]] = None,
    attrs: Optional[Mapping[str, Any]] = None,
    kind: str = "auto",
    name: str = "",
    stretch: Optional[tuple[float, float]] = (2.0, 98.0),
) -> np.ndarray:
    """One field value -> a uint8 ``(H, W)`` grayscale or ``(H, W, 3)`` RGB array.

    Args:
        value: the array to draw.
        bands: bands to draw (3 for RGB, 1 for grayscale), as indices or names.
        attrs: the dataset's attrs (``bands``, ``rgb_bands``) to pick RGB bands from.
        kind: ``"image"``, ``"mask"`` or ``"auto"``.
        name: the field's name (``"auto"`` uses it to recognize masks).
        stretch: percentiles to stretch between; ``None`` for min..max.
    """
    if kind not in ("auto", "image", "mask"):
        raise InvalidArgumentError(f"kind must be 'auto', 'image' or 'mask', got {kind!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"cannot draw {arr.dtype} values; only numeric and bool arrays")
    chw = _channels_first(arr)
    attrs = attrs or {}
    names = attrs.get("bands") if isinstance(attrs.get("bands"), list) else None
    is_mask = kind == "mask" or (
        kind == "auto"
        and (arr.dtype.kind == "b" or (arr.dtype.kind in "iu" and any(w in name.lower() for w in MASK_WORDS)))
    )
    count = chw.shape[0]
    if bands is not None:
        if isinstance(bands, (str, int)) or len(bands) not in (1, 3):
            raise InvalidArgumentError(f"bands must list 1 (grayscale) or 3 (RGB) bands, got {bands!r}")
        picked = [_band_index(b, count, names) for b in bands]
    elif is_mask or count < 3:
        picked = [0]
    else:
        picked = [_band_index(b, count, names) for b in _default_rgb(count, attrs)]
    if is_mask:
        if len(picked) != 1:
            raise InvalidArgumentError("a mask is drawn from one band; pass one band")
        return _mask_colors(chw[picked[0]])
    planes = [_stretch(chw[b], stretch) for b in picked]
    return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)


def field_attrs(attrs: Optional[Mapping[str, Any]], field: str) -> dict[str, Any]:
    """``attrs`` with ``bands`` set to the band names of ``field`` that raster ingestion keeps in
    ``attrs["inputs"][field]["bands"]``, unless ``attrs["bands"]`` already names them."""
    out = dict(attrs or {})
    inputs = out.get("inputs")
    names = inputs.get(field, {}).get("bands") if isinstance(inputs, dict) and isinstance(inputs.get(field), dict) else None
    if "bands" not in out and isinstance(names, list):
        out["bands"] = names
    return out


def save_png(
    sample: Union[Mapping[str, Any], np.ndarray],
    path: Union[str, "os.PathLike[str]"],
    field: str = "image",
    bands: Optional[Sequence[Band]] = None,
    *,
    attrs: Optional[Mapping[str, Any]] = None,
    kind: str = "auto",
    stretch: Optional[tuple[float, float]] = (2.0, 98.0),
) -> str:
    """Draw ``sample[field]`` (see the module docstring) and write it as a PNG of the same height and width.

    Args:
        sample: a sample dict, or the array itself.
        path: the PNG file to write.
        field: which field of the sample to draw.
        bands, attrs, kind, stretch: see :func:`render`.

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: the file cannot be written (e.g. its folder does not exist).
    """
    if isinstance(sample, Mapping):
        if field not in sample:
            raise FieldNotFoundError(
                f"sample has no field {field!r} to draw; it has {list(sample)} (pick one with --field)"
            )
        value = sample[field]
    else:
        value = sample
    image = render(value, bands=bands, attrs=field_attrs(attrs, field), kind=kind, name=field, stretch=stretch)
    Image = require("PIL.Image", "pillow", what="saving PNGs")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"cannot save {path}: folder {folder} does not exist")
    try:
        Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")  # uint8: "L" or "RGB"
    except OSError as e:
        raise InvalidArgumentError(f"cannot save {path}: {e.strerror or e}") from None
    return path
