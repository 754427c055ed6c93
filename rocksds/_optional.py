"""Optional dependencies: the one import guard, and the one progress bar.

Every integration that needs a package outside the core dependencies (torch,
rasterio, dask, Pillow, h5py, tqdm) imports it through :func:`require`, so a
missing package always raises :class:`~rocksds.errors.DependencyNotFoundError`
with the pip command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Optional

from .errors import DependencyNotFoundError

__all__ = ["require", "ProgressBar"]


def require(module: str, extra: str, *, what: str = "this") -> ModuleType:
    """Import ``module``, or raise :class:`DependencyNotFoundError` naming ``pip install <extra>``.

    Args:
        module: the dotted module name to import (``"rasterio"``, ``"dask.distributed"``).
        extra: what to pip install: a rocksds extra such as ``"rocksds[raster]"`` or a plain package name.
        what: the feature that needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        target = f"'{extra}'" if "[" in extra else extra  # quoted where a shell would glob the brackets
        raise DependencyNotFoundError(
            f"{what} needs {module.split('.')[0]}; install it with: pip install {target} ({e})"
        ) from None


class ProgressBar:
    """A tqdm bar that is a convenience, never a requirement: silent when disabled or tqdm is missing.

    Feed it with :meth:`update` (the total given up front) or call it as
    ``bar(n, total)``, the ``progress`` callback of ingestion (the total known
    only once work starts). The tqdm bar is created on the first update.
    """

    def __init__(self, desc: str, unit: str, total: Optional[int] = None, *, enabled: bool = True) -> None:
        self.desc, self.unit, self.total, self.enabled = desc, unit, total, enabled
        self._bar: Optional[Any] = None

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` units."""
        if self._bar is None:
            if not self.enabled:
                return
            try:
                from tqdm import tqdm
            except ImportError:
                self.enabled = False
                return
            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, dynamic_ncols=True, leave=False)
        self._bar.update(n)

    def __call__(self, n: int, total: int) -> None:
        if self._bar is None:
            self.total = total
        self.update(n)

    def close(self) -> None:
        """End the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
