"""Shared-memory blocks that carry batches out of DataLoader workers, reused once both sides let go.

A worker hands each batch to the main process in shared memory. A fresh block
per batch costs far more than the copy into it: every page is faulted in and
zeroed, in the worker and again in the kernel's bookkeeping when it is freed
(measured: 19 ms to create and fill a 35 MB block, against 2.6 ms to fill one
already mapped; 130 us per 278 KB chip). So each worker keeps a few blocks and
refills one as soon as nothing refers to it in either process:

* A block starts with a header of two 64-bit counters: ``sent`` (written only by
  the worker, each time it pickles the block) and ``returned`` (written only by
  the receiving process, when the last tensor over what it received is freed).
  One writer per counter, so the processes need no lock.
* Tensors over a block are views of one tensor built on a numpy array of the
  block's bytes, the *lease*: when the lease dies, no tensor over the block is
  left in that process. A block is free for the worker once its own lease is
  gone and ``returned == sent``.
* The receiving process gets ordinary tensors over the shared pages (not
  ``is_shared()``: passing one on to yet another process copies it, as it
  would any tensor).

Only :func:`take` allocates; outside a DataLoader worker nothing here is used.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch

__all__ = ["Block", "take", "receive", "POOL_BLOCKS"]

#: Bytes before the batch: the ``sent`` and ``returned`` counters, padded to the alignment.
_HEADER = 64
#: Byte alignment of each tensor inside a block.
_ALIGN = 64
#: Blocks a worker keeps for reuse. The DataLoader has at most ``prefetch_factor`` (2) batches per
#: worker in flight, and the training loop holds one or two, so three cover the steady state. When all
#: are still held, a new block takes the oldest one's place (that one is freed once let go), so a
#: training loop that keeps batches never makes the pool hold more memory.
POOL_BLOCKS = 3
#: A free block is reused for a batch needing at least this fraction of it (a last, short batch gets
#: its own block rather than pin a big one).
_MIN_FILL = 0.5

Spec = tuple[tuple[int, ...], torch.dtype]


def _nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * dtype.itemsize


def _layout(specs: Sequence[Spec]) -> tuple[list[int], int]:
    offsets, total = [], 0
    for shape, dtype in specs:
        offsets.append(total)
        total += -(-_nbytes(shape, dtype) // _ALIGN) * _ALIGN
    return offsets, total


def _views(whole: torch.Tensor, specs: Sequence[Spec], offsets: Sequence[int]) -> tuple[list[torch.Tensor], Any]:
    """Tensors over ``whole``'s batch bytes, and the lease (numpy array) every one of them keeps alive."""
    lease = whole.numpy()
    flat = torch.from_numpy(lease)
    return [
        flat[_HEADER + o : _HEADER + o + _nbytes(shape, dtype)].view(dtype).view(shape)
        for o, (shape, dtype) in zip(offsets, specs)
    ], lease


class Block:
    """One shared-memory block of a worker: header + batch bytes (see the module docstring)."""

    __slots__ = ("storage", "capacity", "_counters", "_leased", "__weakref__")

    def __init__(self, capacity: int) -> None:
        self.storage = torch.UntypedStorage._new_shared(_HEADER + max(capacity, 1))
        self.capacity = capacity
        self._counters = self._whole().numpy()[:16].view(np.uint64)
        self._counters[:] = 0
        self._leased = False

    def _whole(self) -> torch.Tensor:
        return torch.empty(0, dtype=torch.uint8).set_(self.storage)

    @property
    def free(self) -> bool:
        """Nothing refers to the block any more, here or in a process it was sent to."""
        return not self._leased and int(self._counters[0]) == int(self._counters[1])

    def lease(self, specs: Sequence[Spec], layout: Optional[tuple[list[int], int]] = None) -> list[torch.Tensor]:
        """Empty tensors of the given (shape, dtype), laid out in this block (``layout``: ``_layout(specs)``)."""
        offsets, total = layout or _layout(specs)
        if total > self.capacity:
            raise ValueError(f"{total} bytes do not fit a block of {self.capacity}")
        tensors, lease = _views(self._whole(), specs, offsets)
        self._leased = True
        weakref.finalize(lease, _unlease, weakref.ref(self))
        return tensors

    def offset_of(self, t: torch.Tensor) -> Optional[int]:
        """Where contiguous tensor ``t`` starts among the batch bytes, or ``None`` if it is not inside."""
        if not t.is_contiguous():
            return None
        start = t.data_ptr() - self.storage.data_ptr() - _HEADER
        if 0 <= start and start + t.numel() * t.element_size() <= self.capacity:
            return start
        return None

    def sent(self) -> torch.Tensor:
        """Count one more copy handed to another process; returns the tensor to pickle for it."""
        self._counters[0] += 1
        return self._whole()


def _unlease(ref: "weakref.ref[Block]") -> None:
    block = ref()
    if block is not None:
        block._leased = False


def receive(whole: torch.Tensor, specs: Sequence[Spec], offsets: Sequence[int]) -> list[torch.Tensor]:
    """In the receiving process: tensors over a block that was sent, handed back when they are all freed."""
    tensors, lease = _views(whole, specs, offsets)
    weakref.finalize(lease, _returned, whole, os.getpid())
    return tensors


def _returned(whole: torch.Tensor, receiver: int) -> None:
    if os.getpid() == receiver:  # a forked child dropping its inherited copy returns nothing
        whole.numpy()[8:16].view(np.uint64)[0] += 1


_pool: list[Block] = []
_pool_pid: Optional[int] = None


def take(specs: Sequence[Spec]) -> tuple[Block, list[torch.Tensor]]:
    """A free block of this worker (or a new one) and empty tensors of ``specs`` laid out in it."""
    global _pool, _pool_pid
    if _pool_pid != os.getpid():  # a forked child never shares its parent's blocks
        _pool, _pool_pid = [], os.getpid()
    layout = _layout(specs)
    need = layout[1]
    for i, block in enumerate(_pool):
        if block.free:
            if need <= block.capacity and need >= _MIN_FILL * block.capacity:
                return block, block.lease(specs, layout)
            del _pool[i]  # free but the wrong size: make room for one that fits
            break
    block = Block(need)
    if len(_pool) >= POOL_BLOCKS:
        _pool.pop(0)  # held elsewhere for long (a training loop keeping batches): let it go when freed
    _pool.append(block)
    return block, block.lease(specs, layout)
