"""A re-creation of the in-house writer that predates rocksds, to make fixtures.

It writes the layout ``rocksds.convert.legacy`` reads: one column family per
field (raw array bytes, no header), decimal ASCII keys listed in ``keys.dat``
and a pickled ``metadata.dat`` of shapes and numpy dtypes. Tests only: the
library itself never writes pickles.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import rocksdict


def write_legacy(
    path: str | os.PathLike[str],
    arrays: Mapping[str, Sequence[np.ndarray]],
    keys: Sequence[str],
    *,
    metadata: Optional[Mapping[str, Any]] = None,
    protocol: int = pickle.DEFAULT_PROTOCOL,
    keys_sep: str = "\n",
) -> None:
    """Write ``arrays[field][j]`` under key ``keys[j]`` and the two side files.

    ``metadata`` defaults to ``{field: {"shape": arr.shape, "dtype": arr.dtype}}`` of
    each field's first array, as the old writer recorded it.
    """
    path = os.fspath(path)
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    cfs = {name: rocksdict.Options(raw_mode=True) for name in arrays}
    db = rocksdict.Rdict(path, opts, column_families=cfs)
    try:
        for name, values in arrays.items():
            cf = db.get_column_family(name)
            for j, key in enumerate(keys):
                # slicing keeps the array's byte order; values[j] would be a native-order scalar
                value = values[j : j + 1] if isinstance(values, np.ndarray) else np.asarray(values[j])
                cf[key.encode("ascii")] = value.tobytes()
    finally:
        db.close()
    if metadata is None:
        metadata = {
            name: {"shape": np.asarray(v[0]).shape, "dtype": np.asarray(v[0]).dtype} for name, v in arrays.items()
        }
    with open(os.path.join(path, "metadata.dat"), "wb") as fh:
        pickle.dump(dict(metadata), fh, protocol=protocol)
    with open(os.path.join(path, "keys.dat"), "w", encoding="ascii") as fh:
        fh.write(keys_sep.join(keys) + "\n")


class SystemCall:
    """Pickles as a call to ``os.system(command)``: what a hostile metadata.dat would hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))
