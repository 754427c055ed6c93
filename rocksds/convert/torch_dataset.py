"""A map-style ``torch.utils.data.Dataset`` -> rocksds.

>>> from rocksds.convert import from_torch_dataset
>>> from_torch_dataset(TensorDataset(x, y), "xy.rds", names=("image", "label"))  # doctest: +SKIP

Samples may be dicts (their keys are the fields) or tuples/lists (position
``k`` becomes field ``names[k]``). Values may be tensors (moved to the CPU and
converted to numpy), numpy arrays, Python numbers, ``str``, ``bytes`` or
anything with ``__array__`` (such as PIL images, which become ``(H, W[, C])``
arrays). The schema is inferred from sample 0; if a later sample's shape
differs, pass ``variable={"field": (axis, ...)}``.

The dataset is read once, samples ``0 .. len(dataset) - 1`` in order;
verification compares the output with what the dataset actually returned,
so random augmentations do not fail it, but you get one draw of them.
torch is imported only by this module (``pip install torch``); any object
with ``__len__`` and ``__getitem__`` works too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from typing_extensions import Unpack

import numpy as np

from ..errors import ArgumentTypeError, DependencyNotFoundError, InvalidArgumentError, SampleError, SchemaError
from ..schema import Field, Schema
from ._engine import OutputOptions, ConversionReport, FieldSelection, Source, convert_source, field_selection, mark_variable

__all__ = ["from_torch_dataset", "TorchDatasetSource"]


def _torch() -> Any:
    """:mod:`rocksds.torch`, or ``None`` without torch (plain map-style objects need no torch)."""
    try:
        from .. import torch as rocksds_torch
    except DependencyNotFoundError:
        return None
    return rocksds_torch


def _to_value(value: Any, rtorch: Any) -> Any:
    array = None if rtorch is None else rtorch.tensor_to_numpy(value)
    if array is not None:
        return array
    if isinstance(value, (np.ndarray, np.generic, str, bytes, bool, int, float, complex)):
        return value
    if isinstance(value, (Mapping, set)) or value is None:
        raise SampleError(f"cannot store a value of type {type(value).__name__} in a field")
    return np.asarray(value)  # lists, PIL images, anything with __array__


class TorchDatasetSource(Source):
    """Samples ``dataset[0] .. dataset[len(dataset) - 1]`` (see the module docstring).

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``).
        names: field names of tuple positions; required when samples are tuples.
        fields: names to keep, or name -> new field name (after ``names``).
        variable: field -> axes whose length varies per sample.
    """

    format = "torch"

    def __init__(
        self,
        dataset: Any,
        *,
        names: Optional[Sequence[str]] = None,
        fields: FieldSelection = None,
        variable: Optional[Mapping[str, Sequence[int]]] = None,
    ) -> None:
        self._torch = rtorch = _torch()
        if rtorch is not None and rtorch.is_iterable_dataset(dataset):
            raise ArgumentTypeError("IterableDataset has no random access or length; wrap it in a map-style Dataset")
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise ArgumentTypeError(f"a map-style dataset needs __len__ and __getitem__; got {type(dataset).__name__}")
        if isinstance(names, str):
            raise InvalidArgumentError(f"names must be a sequence of field names, not the string {names!r}")
        self.dataset = dataset
        self._names = None if names is None else list(names)
        self._n = len(dataset)
        if self._n == 0:
            raise InvalidArgumentError("the dataset is empty; there is no sample to infer a schema from")
        first = self._raw(0)
        self._select = field_selection(list(first), fields, "sample key")
        sample = self._rename(first)
        inferred = {}
        for name, value in sample.items():  # one at a time: names are checked later, with a rename hint
            try:
                f = Schema.infer({"value": value}).fields["value"]
            except SchemaError as e:
                raise SchemaError(f"sample 0 of {self.describe()}, {name!r}: {e}") from None
            inferred[name] = Field(dtype=f.dtype, shape=f.shape)
        self._fields = mark_variable(inferred, variable)

    def _raw(self, i: int) -> dict[str, Any]:
        item = self.dataset[i]
        if isinstance(item, Mapping):
            if self._names is not None:
                raise InvalidArgumentError("samples are dicts; names applies to tuple samples (use fields= to rename)")
            pairs = list(item.items())
        elif isinstance(item, (tuple, list)):
            if self._names is None:
                raise InvalidArgumentError(
                    f"samples are {len(item)}-tuples; name their positions with names=(...) "
                    f"(--names on the command line), e.g. names={('image', 'label')[:len(item)] or ('x',)!r}"
                )
            if len(item) != len(self._names):
                raise SampleError(f"sample {i} has {len(item)} items but names has {len(self._names)}")
            pairs = list(zip(self._names, item))
        else:
            raise SampleError(f"sample {i} is a {type(item).__name__}; expected a dict or a tuple")
        try:
            return {str(k): _to_value(v, self._torch) for k, v in pairs}
        except SampleError as e:
            raise SampleError(f"sample {i}: {e}") from None

    def _rename(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {new: raw[old] for old, new in self._select.items()}

    def describe(self) -> str:
        return f"torch dataset {type(self.dataset).__name__}"

    def fields(self) -> dict[str, Field]:
        return dict(self._fields)

    def __len__(self) -> int:
        return self._n

    def samples(self) -> Iterator[dict[str, Any]]:
        for i in range(self._n):
            raw = self._raw(i)
            missing = [k for k in self._select if k not in raw]
            if missing:
                raise SampleError(f"sample {i} lacks {missing}, which sample 0 has")
            yield self._rename(raw)


def from_torch_dataset(
    dataset: Any,
    out: str | os.PathLike[str],
    *,
    names: Optional[Sequence[str]] = None,
    fields: FieldSelection = None,
    variable: Optional[Mapping[str, Sequence[int]]] = None,
    **options: Unpack[OutputOptions],
) -> ConversionReport:
    """Convert a map-style torch Dataset, then verify every sample.

    Args:
        dataset, names, fields, variable: see :class:`TorchDatasetSource`.
        out, options: the dataset to create and how (see :func:`rocksds.convert.convert_source`).
    """
    source = TorchDatasetSource(dataset, names=names, fields=fields, variable=variable)
    return convert_source(source, out, **options)
