"""A writer for the crash tests to kill with SIGKILL, and the content it writes.

Run as a script::

    python _crash_writer.py PATH MODE OP SEED [PAUSE [FLUSH_EVERY]]

``MODE`` is ``wal`` or ``nowal`` (``Writer(wal=False)``), optionally with ``+sync``
(``Writer(sync=True)``: every commit is synced, and so witnessed, SPEC.md 7.1) or ``+tables``: the
writer's table-file threshold is lowered to 1 KiB, so the image and tokens columns of most
commits are ingested as table files while label, name and count go through the
WriteBatch (the path large samples take by default). ``OP`` is how samples
go in: ``append`` (``Writer.append`` with a small ``commit_bytes``, so commits
also happen by themselves), ``extend`` (an iterable of sample dicts),
``stacked`` (a dict of stacked columns), or ``create`` (only create the
dataset, then wait to be killed). The script opens ``PATH`` with
``mode="a"`` if it exists and creates it otherwise, then writes batches of
samples until it is killed. It reports on stdout, one flushed line each:
``ready N`` once open (``N`` = the count it resumes at); ``committed N``
after a commit returned (then it sleeps ``PAUSE`` seconds, default 0.004);
``flushed N`` after a flush returned (with ``nowal`` only, every
``FLUSH_EVERY``-th commit, default 8); ``created`` once ``create`` returned.

Sample ``i``'s content depends on ``i`` alone (:func:`expected_sample`), so a
checker knows what every committed sample must hold.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import rocksds


def crash_schema() -> rocksds.Schema:
    """Fixed, variable, scalar and string fields, with two different codecs."""
    return rocksds.Schema(
        fields={
            "image": rocksds.Field(dtype="float32", shape=(3, 6, 6), compression="lz4"),
            "tokens": rocksds.Field(dtype="int32", shape=(None,), compression="none"),
            "label": rocksds.Field(dtype="int64", shape=()),
            "name": rocksds.Field(dtype="str", compression="snappy"),
        },
        attrs={"purpose": "crash test"},
    )


def expected_sample(i: int) -> dict:
    """The content of sample ``i``: a cheap deterministic function of ``i``."""
    base = np.arange(108, dtype=np.int64)
    image = (((base * 2654435761 + i * 40503) % 65521) / 7.0).astype(np.float32).reshape(3, 6, 6)
    tokens = ((np.arange(i % 23, dtype=np.int64) * 7919 + i) % 100003).astype(np.int32)
    return {"image": image, "tokens": tokens, "label": i, "name": f"sample-{i}-" + "x" * (i % 11)}


def write_expected(path, n: int):
    """A new dataset at ``path`` holding ``expected_sample(0..n-1)``; returns ``path``."""
    with rocksds.create(path, crash_schema()) as w:
        w.extend([expected_sample(i) for i in range(n)])
    return path


def stacked(start: int, n: int) -> dict:
    """Samples ``start..start+n-1`` as one dict of columns (for ``Writer.extend``)."""
    samples = [expected_sample(i) for i in range(start, start + n)]
    return {
        "image": np.stack([s["image"] for s in samples]),
        "tokens": [s["tokens"] for s in samples],
        "label": np.array([s["label"] for s in samples], dtype=np.int64),
        "name": [s["name"] for s in samples],
    }


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(path: str, mode: str, op: str, seed: int, pause: float = 0.004, flush_every: float = 8) -> None:
    wal = mode.split("+")[0] == "wal"
    sync = mode.endswith("+sync")
    if mode.endswith("+tables"):
        rocksds.writer.TABLE_COLUMN_BYTES = 1024
    rng = np.random.default_rng(seed)
    if op == "create":
        _say("imported")
        rocksds.create(path, crash_schema(), wal=wal)
        _say("created")
        time.sleep(60)
        return
    if os.path.exists(path):
        w = rocksds.open(path, mode="a", wal=wal, sync=sync, commit_bytes=3000)
    else:
        w = rocksds.create(path, crash_schema(), wal=wal, sync=sync, commit_bytes=3000)
    _say(f"ready {len(w)}")
    batches = 0
    while True:
        start = len(w) + w.pending
        n = int(rng.integers(1, 16))
        if op == "append":
            for i in range(start, start + n):
                w.append(expected_sample(i))
            w.commit()
        elif op == "extend":
            w.extend(expected_sample(i) for i in range(start, start + n))
        elif op == "stacked":
            w.extend(stacked(start, n))
        else:
            raise SystemExit(f"unknown op {op!r}")
        _say(f"committed {len(w)}")
        batches += 1
        if not wal and batches % int(flush_every) == 0:
            w.flush()
            _say(f"flushed {len(w)}")
        # Keep datasets small so that checking every sample after each kill stays cheap.
        time.sleep(pause)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), *map(float, sys.argv[5:7]))
