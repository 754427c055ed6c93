"""The parallel build branch: workers write sorted SST files, one step ingests them all.

The unit of work is a :class:`rocksds.raster.plan.Task` (a band of chip rows of
one scene). How many samples a task keeps is unknown until it has read its
pixels (nodata filtering), so keys cannot be assigned up front. A build runs
in three steps, every intermediate file living in a *staging directory*
(beside the output by default; on shared storage for Dask):

1. **chip** (parallel): each task chips its part of the grid, encodes the
   records and appends them to one *spool* file per split (length-prefixed
   records in sample order), and reports how many samples it kept.
2. **tables** (parallel): the counts give each task its contiguous key range
   (prefix sums in task order); each task rewrites its spool as one sorted
   SST file per field with final keys (same table options as the writer:
   format_version 5, crc32c, the field's compression).
3. **ingest** (one process): per split, a new dataset is created at the path
   it is given (:mod:`rocksds.raster.ingest` gives a build directory beside the
   final path and renames it into place), every field's SST files are ingested
   (IngestExternalFile) and then the new ``count`` is written.

When nothing can be dropped by its pixels (``min_valid == 0``, or rasters without nodata or masks), each task's
count follows from the grid and the split blocks alone, so key ranges are
computed up front and step 1 writes the final SST files directly (no spool,
step 2 is empty).

The result is identical (same samples, same order, same logical content) to
a serial build. Every finished step of a task is recorded by a marker file
written after its outputs; a worker that dies leaves only unmarked files in
the staging directory and nothing in any dataset. Re-running the same command
skips marked work and completes the build; a changed plan discards the
staging directory. If the ingest step itself crashes, the half-built dataset
is never renamed into place. When tables are ingested into an existing
dataset (``Writer.ingest_tables``), a crash can leave records beyond
``count``; they are invisible to readers and deleted the next time the
dataset is opened for append.

Local runs use a process pool (spawned processes). ``scheduler`` may be a
``dask.distributed.Client`` or ``"dask://host:port"``; Dask is an optional
extra (``pip install 'rocksds[dask]'``) and is imported only then.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

from .._optional import require
from ..errors import InvalidArgumentError, RocksdsError
from ..keys import encode_key
from ..records import RecordCodec
from ..stats import DatasetStats
from ..writer import create, field_tables
from .bandstats import TaskBandStats, merge_tasks
from .chips import TaskStats, iter_task
from .plan import ChipPlan, geometric_counts, split_schema

__all__ = ["build", "dask_client", "plan_fingerprint", "WorkerLostError"]

_LEN = struct.Struct("<I")
_MARKER_VERSION = 2


class WorkerLostError(RocksdsError, RuntimeError):
    """A worker process died (killed, out of memory); finished tasks stay staged for a re-run."""


def dask_client(scheduler: Any) -> tuple[Any, bool]:
    """``(client, owned)`` for a Client or a ``"dask://host:port"`` / ``"tcp://host:port"`` address."""
    Client = require("dask.distributed", "rocksds[dask]", what="running tasks on Dask").Client
    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str):
        addr = scheduler
        if addr.startswith("dask://"):
            addr = "tcp://" + addr[len("dask://"):]
        return Client(addr), True
    raise InvalidArgumentError(f"scheduler must be a dask.distributed.Client or 'dask://host:port', got {scheduler!r}")


def plan_fingerprint(plan: ChipPlan) -> str:
    """A digest of everything that decides a build's bytes (not the recorded command)."""
    attrs = {k: v for k, v in plan.schema.attrs.items() if k != "command"}
    doc = {
        "fields": plan.schema.model_copy(update={"attrs": attrs}).to_document(),
        "sources": [[s.width, s.height, s.crs, list(s.transform), {n: i.path for n, i in s.inputs.items()}]
                    for s in plan.sources],
        "geometry": [plan.chip, plan.stride, plan.edge, plan.min_valid_pixels, plan.split_block, plan.seed],
        "splits": [plan.splits, plan.fractions],
        "tasks": [[t.index, t.source, t.row0, t.row1] for t in plan.tasks],
        "stats": plan.stats,
        "marker": _MARKER_VERSION,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------- staging files


def _spool(staging: str, task: int, split: int) -> str:
    return os.path.join(staging, f"t{task:06d}.s{split}.spool")


def _sst(staging: str, task: int, split: int, field: str) -> str:
    return os.path.join(staging, f"t{task:06d}.s{split}.{field}.sst")


def _chip_marker(staging: str, task: int) -> str:
    return os.path.join(staging, f"t{task:06d}.chipped.json")


def _sst_marker(staging: str, task: int, split: int) -> str:
    return os.path.join(staging, f"t{task:06d}.s{split}.tables.json")


def _write_json(path: str, doc: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: str) -> Optional[Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------- worker steps


class _Tables:
    """One sorted SST file per field for a (task, split), keys from ``offset`` on; marked done by :meth:`close`."""

    def __init__(self, plan: ChipPlan, staging: str, task: int, split: int, offset: int) -> None:
        self.paths = {name: _sst(staging, task, split, name) for name in plan.schema.fields}
        self.marker = _sst_marker(staging, task, split)
        self.offset = offset
        self._files = field_tables(plan.schema, list(self.paths.values()))

    @property
    def n(self) -> int:
        return self._files.n

    def add(self, records: Sequence[bytes]) -> None:
        self._files.add(encode_key(self.offset + self._files.n), records)

    def close(self) -> dict[str, Any]:
        self._files.finish()
        doc = {"offset": self.offset, "n": self.n, "files": self.paths}
        _write_json(self.marker, doc)
        return doc


def _chip_task(plan: ChipPlan, task_index: int, staging: str, offsets: Optional[list[int]] = None) -> dict[str, Any]:
    """Step 1 for one task: chip, then write the marker.

    Without ``offsets`` the records go to one spool file per split (step 2
    turns them into tables). With ``offsets`` (each split's first key, known
    up front when no pixel-based filtering can drop chips) they go straight
    into the final tables and step 2 has nothing to do.
    """
    task = plan.tasks[task_index]
    codecs = [RecordCodec(n, f) for n, f in plan.schema.fields.items()]
    files: dict[int, Any] = {}
    tables: dict[int, _Tables] = {}
    stats = TaskStats([0] * len(plan.splits))
    bands = TaskBandStats(plan) if plan.stats is not None else None
    try:
        for k, sample in iter_task(plan, task, stats):
            if bands is not None:
                bands.add(k, sample)
            records = [codec.encode(sample[codec.name]) for codec in codecs]
            if offsets is not None:
                sink = tables.get(k)
                if sink is None:
                    sink = tables[k] = _Tables(plan, staging, task.index, k, offsets[k])
                sink.add(records)
                continue
            fh = files.get(k)
            if fh is None:
                fh = files[k] = open(_spool(staging, task.index, k) + ".tmp", "wb", buffering=2**20)
            for rec in records:
                fh.write(_LEN.pack(len(rec)))
                fh.write(rec)
    finally:
        for fh in files.values():
            fh.close()
    for k in files:
        os.replace(_spool(staging, task.index, k) + ".tmp", _spool(staging, task.index, k))
    for sink in tables.values():
        sink.close()
    doc = {"kept": stats.kept, "grid": stats.grid, "invalid": stats.invalid, "straddling": stats.straddling,
           "bands": None if bands is None else bands.documents()}
    _write_json(_chip_marker(staging, task.index), doc)
    return doc


def _table_task(plan: ChipPlan, task_index: int, split: int, offset: int, n: int, staging: str) -> dict[str, Any]:
    """Step 2 for one (task, split): rewrite the spool as one sorted SST per field with final keys."""
    nfields = len(plan.schema.fields)
    sink = _Tables(plan, staging, task_index, split, offset)
    spool = _spool(staging, task_index, split)
    with open(spool, "rb", buffering=2**20) as fh:
        while True:
            records = []
            for j in range(nfields):
                head = fh.read(_LEN.size)
                if not head and j == 0:
                    break
                (size,) = _LEN.unpack(head)
                rec = fh.read(size)
                if len(rec) != size:
                    raise InvalidArgumentError(f"{spool} is truncated; delete the staging directory and re-run")
                records.append(rec)
            if not records:
                break
            sink.add(records)
    if sink.n != n:
        raise InvalidArgumentError(f"{spool} holds {sink.n} samples, its marker says {n}; delete the staging directory")
    doc = sink.close()
    os.remove(spool)
    return doc


# ---------------------------------------------------------------------- driver


class _Runner:
    """Submits calls to a process pool or a Dask client and returns results in submission order."""

    def __init__(self, workers: int, scheduler: Any) -> None:
        self._client = None
        self._owned = False
        self._pool = None
        if scheduler is not None:
            self._client, self._owned = dask_client(scheduler)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], done: Optional[Callable[[int], None]] = None,
            ) -> list[Any]:
        if not calls:
            return []
        if self._client is not None:
            from dask.distributed import as_completed

            futures = [self._client.submit(fn, *args, pure=False) for args in calls]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                fut.result()  # raise a task's error at once
                if done is not None:
                    done(index[fut.key])
            return [f.result() for f in futures]
        from concurrent.futures import as_completed as cf_completed
        from concurrent.futures.process import BrokenProcessPool

        assert self._pool is not None
        try:
            futures = [self._pool.submit(fn, *args) for args in calls]
            index2 = {f: i for i, f in enumerate(futures)}
            for fut in cf_completed(futures):
                fut.result()
                if done is not None:
                    done(index2[fut])
            return [f.result() for f in futures]
        except BrokenProcessPool:
            raise WorkerLostError(
                "a worker process died (killed or out of memory?); finished tasks are kept in the staging "
                "directory: re-run the same command to complete the build"
            ) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._client is not None and self._owned:
            self._client.close()


def _direct_offsets(plan: ChipPlan) -> Optional[list[list[int]]]:
    """Each task's first key per split when counts follow from geometry alone (``ChipPlan.filters_by_pixels`` false), else None."""
    if plan.filters_by_pixels:
        return None
    out, offsets = [], [0] * len(plan.splits)
    for t in plan.tasks:
        out.append(list(offsets))
        offsets = [o + n for o, n in zip(offsets, geometric_counts(plan, t))]
    return out


def _prepare_staging(staging: str, fingerprint: str) -> None:
    stamp = os.path.join(staging, "plan.sha256")
    if os.path.isdir(staging):
        try:
            with open(stamp, encoding="utf-8") as fh:
                same = fh.read().strip() == fingerprint
        except OSError:
            same = False
        if not same:
            shutil.rmtree(staging)
    os.makedirs(staging, exist_ok=True)
    if not os.path.exists(stamp):
        with open(stamp, "w", encoding="utf-8") as fh:
            fh.write(fingerprint)


def _tables_present(staging: str, task: int, split: int) -> bool:
    doc = _read_json(_sst_marker(staging, task, split))
    return bool(doc) and all(os.path.exists(p) for p in doc["files"].values())


def _tables_ok(staging: str, task: int, split: int, offset: int) -> bool:
    doc = _read_json(_sst_marker(staging, task, split))
    return bool(doc) and doc["offset"] == offset and all(os.path.exists(p) for p in doc["files"].values())


def build(
    plan: ChipPlan,
    paths: Sequence[str],
    *,
    workers: int = 2,
    scheduler: Any = None,
    staging_dir: Optional[str] = None,
    progress: Optional[Callable[[int], None]] = None,
    keep_staging: bool = False,
    timings: Optional[dict[str, float]] = None,
) -> list[TaskStats]:
    """Run a :class:`rocksds.raster.plan.ChipPlan` in parallel and write one new dataset per split at ``paths``.

    Args:
        plan: from :func:`rocksds.raster.plan.plan_chips`.
        paths: dataset path of each split, in ``plan.splits`` order (must not exist); the caller places them.
        workers: process-pool size (ignored with ``scheduler``).
        scheduler: ``None`` (process pool), a ``dask.distributed.Client``, or ``"dask://host:port"``.
        staging_dir: where spool and SST files go; must be visible to every
            worker (shared storage for Dask) and should be on the filesystem of
            the outputs so ingestion moves rather than copies. Defaults to
            ``<first output>.rocksds-staging``.
        progress: called with a task's number of chip rows as each task is chipped.
        keep_staging: keep the staging directory after success (for debugging).
        timings: if given, receives the seconds of each step (``chip``, ``tables``, ``ingest``).

    Returns:
        One :class:`rocksds.raster.chips.TaskStats` per task.
    """
    staging = os.path.abspath(staging_dir or (paths[0].rstrip(os.sep) + ".rocksds-staging"))
    _prepare_staging(staging, plan_fingerprint(plan))
    try:
        return _build_staged(plan, paths, staging, runner=_Runner(workers, scheduler), progress=progress,
                             keep_staging=keep_staging, timings={} if timings is None else timings)
    except WorkerLostError as e:
        raise WorkerLostError(f"{e} (staged in {staging})") from None
    except RocksdsError:
        # An input or plan error: what was staged cannot be trusted for a re-run (the input must change).
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _build_staged(plan: ChipPlan, paths: Sequence[str], staging: str, *, runner: "_Runner",
                  progress: Optional[Callable[[int], None]], keep_staging: bool,
                  timings: dict[str, float]) -> list[TaskStats]:
    """The three steps of :func:`build` in ``staging`` (prepared), with ``runner`` (closed here)."""
    nsplit = len(plan.splits)
    clock = time.perf_counter()
    try:
        # Step 1: chip every task without a valid marker.
        docs: dict[int, Any] = {t.index: _read_json(_chip_marker(staging, t.index)) for t in plan.tasks}
        todo = []
        for t in plan.tasks:
            doc = docs[t.index]
            if doc is None or any(
                n and not os.path.exists(_spool(staging, t.index, k)) and not _tables_present(staging, t.index, k)
                for k, n in enumerate(doc["kept"])
            ):
                todo.append(t)
        for t in plan.tasks:
            if t not in todo and progress is not None:
                progress(t.row1 - t.row0)
        direct = _direct_offsets(plan)
        results = runner.map(
            _chip_task, [(plan, t.index, staging, None if direct is None else direct[t.index]) for t in todo],
            None if progress is None else (lambda i: progress(todo[i].row1 - todo[i].row0)),
        )
        for t, doc in zip(todo, results):
            docs[t.index] = doc
        timings["chip"] = time.perf_counter() - clock
        clock = time.perf_counter()
        # Step 2: key ranges from the counts, then tables for every (task, split) not done.
        offsets = [0] * nsplit
        calls = []
        layout: list[list[tuple[int, int]]] = [[] for _ in range(nsplit)]
        for t in plan.tasks:
            for k, n in enumerate(docs[t.index]["kept"]):
                if n:
                    layout[k].append((t.index, n))
                    if not _tables_ok(staging, t.index, k, offsets[k]):
                        if not os.path.exists(_spool(staging, t.index, k)):
                            raise InvalidArgumentError(
                                f"staging directory {staging} lost the output of task {t.index}; delete it and re-run"
                            )
                        calls.append((plan, t.index, k, offsets[k], n, staging))
                    offsets[k] += n
        runner.map(_table_task, calls)
    finally:
        runner.close()
    timings["tables"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # Step 3: one ingest per split (count last).
    names = list(plan.schema.fields)
    for k, path in enumerate(paths):
        stats = None
        if plan.stats is not None:
            stats = merge_tasks(plan, k, [DatasetStats.from_document(docs[t.index]["bands"][k]) for t in plan.tasks])
        with create(path, split_schema(plan, k), wal=False, stats=plan.stats or False) as w:
            w.ingest_tables({name: [_sst(staging, t, k, name) for t, _ in layout[k]] for name in names}, offsets[k],
                            stats=stats)
    timings["ingest"] = time.perf_counter() - clock
    if not keep_staging:
        shutil.rmtree(staging, ignore_errors=True)
    return [TaskStats(**{k: v for k, v in docs[t.index].items() if k != "bands"}) for t in plan.tasks]
