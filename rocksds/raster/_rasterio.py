"""The one module that imports rasterio: inspect rasters, read windows, write GeoTIFFs.

Everything else in :mod:`rocksds.raster` works on the plain data this module
returns (:class:`InputInfo`, numpy arrays), so only here does a missing
rasterio turn into :class:`~rocksds.errors.DependencyNotFoundError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional

import numpy as np

from .._optional import require
from ..errors import InvalidArgumentError, RasterReadError

__all__ = ["InputInfo", "inspect", "WindowReader", "write_geotiff"]


def _rasterio() -> ModuleType:
    rasterio = require("rasterio", "rocksds[raster]", what="raster ingestion")
    import rasterio.enums  # noqa: F401
    import rasterio.errors  # noqa: F401
    import rasterio.windows  # noqa: F401

    return rasterio


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


def _crs_string(crs: Any) -> str:
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


#: Colour interpretations that name a band (GDAL's ``undefined``, ``palette`` and the like do not).
_NAMED_COLOURS = frozenset({"gray", "red", "green", "blue", "alpha", "hue", "saturation", "lightness", "cyan",
                            "magenta", "yellow", "black", "Y", "Cb", "Cr"})


def _band_names(src: Any) -> list[Optional[str]]:
    """Each band's description, else its colour interpretation when that names it (RGB.byte: red, green, blue)."""
    out: list[Optional[str]] = []
    for desc, colour in zip(src.descriptions, src.colorinterp):
        name = getattr(colour, "name", None)
        out.append(desc or (name if name in _NAMED_COLOURS else None))
    return out


def inspect(path: str) -> tuple[InputInfo, dict[str, Any]]:
    """One raster's :class:`InputInfo` and its grid (``crs``, ``transform``, ``width``, ``height``); reads no pixels."""
    rasterio = _rasterio()
    MaskFlags = rasterio.enums.MaskFlags
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
            descriptions=_band_names(src),
            scales=[float(x) for x in src.scales],
            offsets=[float(x) for x in src.offsets],
            mask_kind=kind,
            block_shape=tuple(src.block_shapes[0]),  # type: ignore[arg-type]
        )
        grid = {"crs": _crs_string(src.crs), "transform": tuple(src.transform)[:6], "width": src.width,
                "height": src.height}
    return info, grid


class WindowReader:
    """Open inputs of one scene under a bounded GDAL block cache; read windows of pixels and validity.

    Use as a context manager; the handles and the cache setting end with it.
    """

    def __init__(self, inputs: Mapping[str, InputInfo], cache_bytes: int) -> None:
        self._inputs = dict(inputs)
        self._cache_bytes = cache_bytes
        self._env: Any = None
        self._window: Any = None
        self._handles: dict[str, Any] = {}

    def __enter__(self) -> "WindowReader":
        rasterio = _rasterio()
        self._window = rasterio.windows.Window
        self._env = rasterio.Env(GDAL_CACHEMAX=self._cache_bytes)
        self._env.__enter__()
        self._errors = (rasterio.errors.RasterioError,)
        try:
            for name, info in self._inputs.items():
                try:
                    self._handles[name] = rasterio.open(info.path)
                except self._errors as e:
                    raise RasterReadError(f"cannot open input {name!r} ({info.path}): {e}") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles.values():
            h.close()
        self._handles.clear()
        if self._env is not None:
            env, self._env = self._env, None
            env.__exit__(None, None, None)

    def read(self, name: str, y0: int, y1: int, x0: int, x1: int, need_mask: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Pixels ``(bands, y1 - y0, x1 - x0)`` of input ``name``, and (with ``need_mask``) where every band is valid."""
        src, info = self._handles[name], self._inputs[name]
        win = self._window(x0, y0, x1 - x0, y1 - y0)
        try:
            data = src.read(window=win)
            valid = None
            if need_mask and info.mask_kind != "all_valid":
                if info.mask_kind == "nodata" and info.nodata is not None:
                    nd = info.nodata
                    valid = ~np.isnan(data).any(axis=0) if math.isnan(nd) else (data != nd).all(axis=0)
                else:
                    valid = (src.read_masks(window=win) != 0).all(axis=0)
        except self._errors as e:
            # GDAL says only "Read failed"; where it failed is what lets someone find the bad block.
            raise RasterReadError(
                f"input {name!r} ({info.path}) cannot be read in the window rows {y0}..{y1 - 1}, columns "
                f"{x0}..{x1 - 1}: {e.__cause__ or e}; the file is damaged or truncated (check it with gdalinfo -checksum)"
            ) from None
        return data, valid


def write_geotiff(
    path: str,
    rows: Iterable[tuple[int, np.ndarray]],
    *,
    width: int,
    height: int,
    bands: int,
    dtype: str,
    crs: str,
    transform: Sequence[float],
    nodata: Optional[float],
    block: tuple[int, int],
    tiled: bool,
    compress: Optional[str] = None,
    descriptions: Optional[Sequence[str]] = None,
) -> str:
    """Write a GeoTIFF one band of rows at a time: ``rows`` yields ``(y0, array (bands, h, width))``.

    ``transform`` is the affine ``(a, b, c, d, e, f)``; ``block`` is ``(rows, cols)``
    of the tiles (``tiled``) or the strip height (``block[0]``, otherwise).
    """
    rasterio = _rasterio()
    from rasterio.transform import Affine

    profile: dict[str, Any] = {
        "driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": dtype, "crs": crs,
        "transform": Affine(*transform[:6]), "nodata": nodata, "tiled": tiled, "interleave": "pixel",
        "blockysize": block[0],
    }
    if tiled:
        profile["blockxsize"] = block[1]
    if compress:
        profile["compress"] = compress
    with rasterio.open(path, "w", **profile) as dst:
        for b, text in enumerate(descriptions or ()):
            dst.set_band_description(b + 1, text)
        for y0, data in rows:
            dst.write(data, window=rasterio.windows.Window(0, y0, width, data.shape[1]))
    return path
