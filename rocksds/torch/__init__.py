"""PyTorch datasets over rocksds: map-style, streamed, sharded and resumable.

Install with ``pip install 'rocksds[torch]'``; the rest of rocksds never
imports torch.

Map-style (random access, shuffled by the DataLoader's sampler)::

    from torch.utils.data import DataLoader
    from rocksds.torch import RocksDataset, collate

    ds = RocksDataset("chips.rds", fields=["image", "mask"], cache_gb=1.0)
    loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=4,
                        drop_last=True, collate_fn=collate)
    for batch in loader:            # {"image": FloatTensor[128, ...], "mask": ByteTensor[128, ...]}
        ...

Samples are dicts keyed by field name (name the fields ``image``, ``mask``,
``bounds``, ``crs`` to follow TorchGeo's conventions); numeric values become
tensors of the field's dtype, ``bytes`` and ``str`` values stay Python
objects. :class:`RocksDataset` implements ``__getitems__``, so the DataLoader
fetches each batch with one RocksDB MultiGet per field, already stacked. With
``collate_fn=rocksds.torch.collate`` that stacked batch is used as is (no
per-sample work at all); the stock ``default_collate`` does the same (the
batch's row type is registered in PyTorch's ``default_collate_fn_map``), so
a plain DataLoader never splits and re-stacks a batch. Variable-shape,
``bytes`` and ``str`` fields come back as lists from :func:`collate` (the
stock collate cannot stack tensors of different shapes).

``transform`` maps one sample dict to another; ``batch_transform`` maps the
stacked batch dict (after ``transform`` and stacking) to another, e.g. an
augmentation applied to the whole batch at once; both run in the worker
processes.

Tensors share memory with the fetched bytes where that is safe: a batch is
decoded once into writable memory and the tensors (and per-sample views) are
built over it without a copy. A single-sample read (``ds[i]``) gets read-only
bytes from RocksDB, so it is copied once: no tensor is ever a writable view
over a read-only buffer, and PyTorch prints no "non-writable array" warning.

The dataset object keeps only its path and options (it is picklable); each
process opens its own RocksDB handle on first use, so it works with the
``fork``, ``spawn`` and ``forkserver`` start methods and with
``persistent_workers=True``. The block cache (``cache_gb``) is per process.
The length is fixed when the dataset object is created: samples appended
later are not seen until you create it again.

Several processes or machines: :class:`torch.utils.data.DistributedSampler` works with
:class:`RocksDataset` unchanged::

    sampler = DistributedSampler(ds, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(ds, batch_size=128, sampler=sampler, num_workers=4, collate_fn=collate)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...

To stop and resume mid-epoch with a map-style dataset, use
:class:`ResumableSampler` (a seeded shuffle, optionally sharded over ranks,
with ``set_epoch``, ``state_dict`` and ``load_state_dict``)::

    sampler = ResumableSampler(ds, seed=0)            # ranks from torch.distributed, if initialized
    loader = DataLoader(ds, batch_size=128, sampler=sampler, num_workers=4, collate_fn=collate)
    ...
    state = sampler.state_dict(consumed=steps * 128)  # with workers, say what the loop consumed
    sampler.load_state_dict(state)                    # in the new process, before iterating

Streaming: :class:`RocksIterableDataset` reads each worker's share with
sequential RocksDB scans instead of point lookups. Each epoch's order is a
pure function of ``(seed, epoch)`` and the options: the order of blocks of
``block_size`` consecutive samples is shuffled, the epoch is split into one
contiguous stretch per rank and into batch-sized units dealt round robin to
the DataLoader workers, and each worker shuffles its stream within windows of
``buffer_size`` samples (see ``rocksds.torch._schedule`` for the exact recipe)::

    ds = RocksIterableDataset("chips.rds", shuffle=True, seed=0, batch_size=128)
    loader = DataLoader(ds, batch_size=128, num_workers=4, collate_fn=collate)
    for epoch in range(epochs):
        ds.set_epoch(epoch)                     # reaches persistent workers too
        for batch in loader: ...

Every sample is seen exactly once per epoch across all workers and ranks.
When ``world_size`` does not divide the sample count, ``uneven="exact"`` (the
default) gives the first ``n % world_size`` ranks one sample more, so ranks
can differ by one batch (harmless for evaluation; DDP training prefers equal
batch counts), ``uneven="drop"`` skips the last ``n % world_size`` samples
of the epoch's order (different ones each epoch when shuffling) and
``uneven="pad"`` repeats the first samples of the epoch's order. Ranks come
from ``torch.distributed`` when it is initialized (create the dataset, or
call ``set_epoch``, after ``init_process_group``), or from explicit ``rank=``
and ``world_size=``.

Mid-epoch save and restore (:class:`RocksIterableDataset`)::

    ds.set_epoch(epoch)
    for step, batch in enumerate(loader, start=1):
        ...
        state = ds.state_dict(consumed=step * 128)    # samples this rank's loop has taken
    # later, in a new process:
    ds = RocksIterableDataset("chips.rds", shuffle=True, seed=0, batch_size=128)
    ds.load_state_dict(state)                         # also restores the epoch
    for batch in DataLoader(ds, batch_size=128, num_workers=4, collate_fn=collate):
        ...                                           # exactly the rest of that epoch

With ``num_workers=0`` ``ds.state_dict()`` counts by itself. With worker
processes the dataset cannot see what the training loop has consumed (the
workers run ahead), so pass ``consumed=`` yourself: with several workers it
must be a whole number of batches, ``batch_size`` must equal the
DataLoader's, the DataLoader must keep ``in_order=True`` (the default), and
the restarted DataLoader must use the same number of workers (the state
records it, and a mismatch raises). Under
torchdata's ``StatefulDataLoader`` plain ``state_dict()`` calls made inside
the workers record each worker's own position instead, which it restores
per worker (with ``RocksDataset``, give the loader a ``ResumableSampler``:
it saves the sampler's position). Both run under torchdata 0.11's real
loader with 0 and 2 workers, resumed in a new process. A loaded state applies to its own epoch until ``set_epoch``
moves to another; call ``load_state_dict`` before the DataLoader starts its
workers.

Normalisation and class balance from what the store keeps (no pass over the data)::

    ds = RocksDataset("train.rds", transform=Normalize("train.rds", mode="percentile"))
    sampler = ClassBalancedSampler("train.rds", "mask_counts", seed=0)   # weights from per-chip class counts
    loader = DataLoader(ds, batch_size=64, sampler=sampler, num_workers=4, collate_fn=collate)

Timing the batch path against per-sample reads: ``RocksDataset(...,
use_getitems=False)`` hides ``__getitems__`` so the DataLoader falls back to
one ``__getitem__`` call per sample (use ``default_collate`` there).
"""

from __future__ import annotations

from .._optional import require

require("torch", "rocksds[torch]", what="rocksds.torch")

from ._batch import Batch, collate, stack_samples
from ._map import RocksDataset
from ._stream import ResumableSampler, RocksIterableDataset
from ._sampler import ClassBalancedSampler, Normalize, class_balanced_weights
from ._loader import shuffled_loader
from ._tensors import is_iterable_dataset, tensor_to_numpy

__all__ = [
    "RocksDataset",
    "RocksIterableDataset",
    "ResumableSampler",
    "Normalize",
    "ClassBalancedSampler",
    "class_balanced_weights",
    "Batch",
    "collate",
    "stack_samples",
    "shuffled_loader",
    "tensor_to_numpy",
    "is_iterable_dataset",
]
