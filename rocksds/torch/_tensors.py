"""Tensors and torch datasets seen from outside torch: what the torch-dataset converter asks of torch."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from ..errors import SampleError

__all__ = ["tensor_to_numpy", "is_iterable_dataset"]


def tensor_to_numpy(value: Any) -> Optional[np.ndarray]:
    """A tensor's values as a numpy array (detached, on the CPU), or ``None`` when ``value`` is no tensor.

    Raises:
        SampleError: a bfloat16 tensor (numpy has no such dtype).
    """
    if not isinstance(value, torch.Tensor):
        return None
    value = value.detach()
    if value.dtype == torch.bfloat16:
        raise SampleError("bfloat16 tensors have no numpy dtype; convert with tensor.float() in the dataset")
    return value.cpu().resolve_conj().resolve_neg().numpy()


def is_iterable_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` is a ``torch.utils.data.IterableDataset`` (no random access)."""
    return isinstance(dataset, torch.utils.data.IterableDataset)
