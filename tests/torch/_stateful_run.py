"""One leg of a StatefulDataLoader save/resume trial, run in its own process.

``python _stateful_run.py DATASET KIND WORKERS STATE_FILE OUT_JSON [STOP_AFTER]``: with STOP_AFTER, take that many
batches, save the loader's ``state_dict()`` to STATE_FILE and stop; without it, load STATE_FILE and take the rest
of the epoch. The ``idx`` of every sample taken goes to OUT_JSON.
"""

from __future__ import annotations

import json
import sys

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from rocksds.torch import RocksDataset, RocksIterableDataset, ResumableSampler, collate

BATCH = 4


def make_loader(path: str, kind: str, workers: int) -> StatefulDataLoader:
    """The same loader in both legs: what must match for a state to resume."""
    if kind == "iterable":
        ds = RocksIterableDataset(path, fields=["idx"], shuffle=True, seed=7, batch_size=BATCH, block_size=8,
                                  buffer_size=16)
        return StatefulDataLoader(ds, batch_size=BATCH, num_workers=workers, collate_fn=collate)
    ds = RocksDataset(path, fields=["idx"])
    sampler = ResumableSampler(ds, shuffle=True, seed=7)
    return StatefulDataLoader(ds, batch_size=BATCH, sampler=sampler, num_workers=workers, collate_fn=collate)


def main(path: str, kind: str, workers: str, state_file: str, out: str, stop_after: str | None = None) -> None:
    loader = make_loader(path, kind, int(workers))
    if stop_after is None:
        loader.load_state_dict(torch.load(state_file, weights_only=False))
    seen: list[int] = []
    for step, batch in enumerate(loader):
        seen.extend(batch["idx"].tolist())
        if stop_after is not None and step + 1 == int(stop_after):
            torch.save(loader.state_dict(), state_file)
            break
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
