"""Converters: existing data -> a verified rocksds dataset.

Each converter infers the schema from its source, writes every sample, then
reopens the result with :func:`rocksds.open` and compares every value with
what the source gave (exact, bit for bit) before it returns a
:class:`ConversionReport`. A conversion that fails, or fails verification,
leaves nothing at the output path. All take ``compression`` (default codec,
``"name"`` or ``"name:level"``), ``field_compression`` (field -> codec),
``attrs``, ``overwrite`` and ``progress`` (a tqdm bar).

- :func:`from_hdf5`: HDF5 datasets sharing a leading sample axis (needs h5py).
- :func:`from_npy_folder`: one ``.npy`` or ``.npz`` file per sample, natural name order.
- :func:`from_torch_dataset`: any map-style ``torch.utils.data.Dataset``.
- :func:`from_legacy`: the in-house RocksDB layout (``keys.dat`` + pickled
  ``metadata.dat``, read with a restricted unpickler that cannot run code).

The command line front end is ``rocksds convert {hdf5,npy,torch,legacy} SRC OUT``.
Importing this package imports neither h5py nor torch.
"""

from __future__ import annotations

from ._engine import ConversionReport, Source, convert_source
from .hdf5 import from_hdf5
from .legacy import from_legacy
from .npy import from_npy_folder
from .torch_dataset import from_torch_dataset

__all__ = [
    "ConversionReport",
    "Source",
    "convert_source",
    "from_hdf5",
    "from_npy_folder",
    "from_torch_dataset",
    "from_legacy",
]
