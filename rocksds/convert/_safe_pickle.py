"""A pickle loader that cannot run code, for the legacy layout's ``metadata.dat``.

This is the only module of rocksds that touches :mod:`pickle`, and it exists
only because the in-house layout that predates rocksds stored its metadata
(field shapes and numpy dtypes) as a pickle. Unpickling an ordinary pickle
runs whatever callable the file names (``os.system`` included), so a dataset
downloaded from elsewhere could take over the machine that converts it.

:func:`safe_loads` subclasses :class:`pickle.Unpickler` and overrides
``find_class``, the single hook through which a pickle reaches any global.
Only these globals resolve:

- ``numpy.dtype`` (how numpy 1.x and 2.x pickle a ``np.dtype``);
- ``numpy.<scalar type>`` for the numeric types of the rocksds format
  (``numpy.float32`` ...: a legacy writer may have stored the type, not a dtype);
- ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``
  (numpy 1.x / 2.x names for a numpy scalar such as ``np.int64(28)``), replaced
  by a function that only accepts a numeric dtype and its exact bytes;
- ``_codecs.encode``, which protocol-2 pickles use to carry bytes, replaced by
  a function that only turns a ``str`` into ``latin-1`` bytes.

Everything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, any
class) raises :class:`~rocksds.errors.UnsafeInputError` before it is looked
up, so nothing it names is imported or called. Plain containers, numbers,
strings and bytes need no globals and load as usual. Persistent IDs are
refused by :class:`pickle.Unpickler` itself.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable

import numpy as np

from .. import spec
from ..errors import UnsafeInputError

__all__ = ["safe_loads", "MAX_PICKLE_BYTES"]

#: Refuse larger inputs: the legacy metadata is a few hundred bytes.
MAX_PICKLE_BYTES = spec.MAX_SCHEMA_BYTES


def _numeric_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or dtype.fields is not None:
        raise UnsafeInputError(f"pickle builds a numpy scalar of dtype {dtype!r}; only numeric scalars are allowed")
    return dtype


def _scalar(dtype: Any, data: Any = None) -> np.generic:
    """``numpy.core.multiarray.scalar`` for numeric dtypes only."""
    dt = _numeric_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise UnsafeInputError(f"pickle gives {dt} scalar malformed data")
    return np.frombuffer(data, dtype=dt)[0]


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it: a str of code points < 256 -> bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeInputError("pickle calls _codecs.encode with arguments other than (str, 'latin1')")
    return text.encode("latin1")


_SCALAR_TYPES: dict[tuple[str, str], Any] = {("numpy", name): np.dtype(code).type for name, code in
                                             spec.NUMERIC_DTYPES.items()}
_SCALAR_TYPES[("numpy", "bool_")] = np.bool_  # numpy 1.x spelling

_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("_codecs", "encode"): _latin1,
    **_SCALAR_TYPES,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeInputError(
                f"refusing to load {module}.{name}: this pickle names a global that could run code; "
                "only containers, numbers, strings and numpy dtypes are accepted"
            ) from None


def safe_loads(data: bytes, *, what: str = "pickle") -> Any:
    """Load ``data`` with only the globals listed in the module docstring.

    Args:
        data: the pickle bytes.
        what: how to name the input in error messages (e.g. a file path).

    Raises:
        UnsafeInputError: the pickle names a forbidden global, or is malformed or too large.
    """
    if len(data) > MAX_PICKLE_BYTES:
        raise UnsafeInputError(f"{what} is {len(data)} bytes; refusing pickles over {MAX_PICKLE_BYTES} bytes")
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafeInputError as e:
        raise UnsafeInputError(f"{what}: {e}") from None
    except Exception as e:  # malformed pickles raise many types (EOFError, UnpicklingError, TypeError...)
        raise UnsafeInputError(f"{what} is not a readable pickle: {type(e).__name__}: {e}") from None
