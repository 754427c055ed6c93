"""Train a tiny CNN from a rocksds dataset, on CPU, in seconds.

Builds a synthetic 10-class image dataset (each class is a bright bar at its
own row, plus noise), then trains through ``rocksds.torch``::

    python examples/train_tiny_cnn.py                    # RocksDataset, shuffled DataLoader
    python examples/train_tiny_cnn.py --stream           # RocksIterableDataset (sequential scans)
    python examples/train_tiny_cnn.py --distributed 2    # 2 processes (gloo), DistributedSampler + DDP

Options: ``--workers N`` DataLoader worker processes, ``--epochs``, ``--steps``
(stop each epoch after this many steps), ``--data PATH`` (kept if it exists).
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

import rocksds
from rocksds.torch import RocksDataset, RocksIterableDataset, collate

CLASSES = 10


def make_dataset(path: str, n: int = 4096, seed: int = 0) -> None:
    """Write ``n`` samples: ``image`` float32 (1, 28, 28) and ``label`` uint8."""
    rng = np.random.default_rng(seed)
    schema = rocksds.Schema(
        fields={
            "image": rocksds.Field(dtype="float32", shape=(1, 28, 28)),
            "label": rocksds.Field(dtype="uint8", shape=()),
        },
        attrs={"classes": [f"bar-{k}" for k in range(CLASSES)]},
    )
    with rocksds.create(path, schema) as writer:
        for start in range(0, n, 1024):
            m = min(1024, n - start)
            labels = rng.integers(0, CLASSES, m).astype(np.uint8)
            images = rng.normal(0.0, 0.5, (m, 1, 28, 28)).astype(np.float32)
            rows = 2 + labels.astype(np.int64) * 2
            images[np.arange(m), 0, rows, 4:24] += 2.0  # class k: a bar at row 2 + 2k
            writer.extend({"image": images, "label": labels})


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16 * 7 * 7, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))


def train(args: argparse.Namespace, rank: int = 0, world_size: int = 1) -> float:
    """Train and return the accuracy on the last batch seen."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a model this small only loses time to thread contention
    model: nn.Module = TinyCNN()
    sampler = None
    if args.stream:
        # Ranks come from torch.distributed when it is initialized.
        dataset = RocksIterableDataset(args.data, shuffle=True, seed=0, batch_size=args.batch_size)
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate)
    else:
        dataset = RocksDataset(args.data, fields=["image", "label"])
        if world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=0, drop_last=True)
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            num_workers=args.workers,
            drop_last=True,
            collate_fn=collate,  # batches arrive stacked from RocksDataset.__getitems__
        )
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy = 0.0
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        if isinstance(dataset, RocksIterableDataset):
            dataset.set_epoch(epoch)
        t0, seen = time.perf_counter(), 0
        for step, batch in enumerate(loader):
            if step == args.steps:
                break
            logits = model(batch["image"])
            labels = batch["label"].long()
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(labels)
            accuracy = (logits.argmax(1) == labels).float().mean().item()
        if rank == 0:
            rate = seen / (time.perf_counter() - t0)
            print(f"epoch {epoch}: loss {loss.item():.3f}  accuracy {accuracy:.2f}  {rate:,.0f} samples/s per rank")
    return accuracy


def _distributed_main(rank: int, args: argparse.Namespace, port: int) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.distributed)
    try:
        train(args, rank, args.distributed)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset path (created if missing; default: a temporary directory)")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch at most")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--stream", action="store_true", help="use RocksIterableDataset")
    parser.add_argument("--distributed", type=int, default=0, metavar="N", help="train in N gloo processes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            args.data = os.path.join(tmp, "bars.rds")
        if not os.path.exists(args.data):
            make_dataset(args.data, args.samples)
        if args.distributed > 1:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            torch.multiprocessing.start_processes(
                _distributed_main, args=(args, port), nprocs=args.distributed, start_method="spawn"
            )
            return float("nan")
        return train(args)


if __name__ == "__main__":
    main()
