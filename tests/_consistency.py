"""Checks the reliability tests run on a dataset after a crash or an interruption.

:func:`assert_valid` is the one entry point: it checks the dataset against
SPEC.md from its raw records, below the reader, so a reader bug cannot hide a
format bug. :func:`assert_samples` checks content against
``_crash_writer.expected_sample``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

import rocksds
from _crash_writer import expected_sample
from rocksds.testing import list_column_families, raw_readable, read_count, read_schema
from rocksds.keys import encode_key
from rocksds.records import RecordCodec
from rocksds.spec import COUNT_KEY, DEFAULT_CF, META_CF, SCHEMA_KEY

PathLike = Union[str, Path]


def assert_valid(path: PathLike, *, tail_ok: bool = False) -> int:
    """Assert that ``path`` is a consistent dataset; return its ``count``.

    ``tail_ok`` tolerates records beyond ``count`` (invisible to readers,
    deleted when a writer opens), which a crash during a ``wal=False`` flush
    may leave.
    """
    report = rocksds.validate(path, deep=True)
    assert report.ok, report.to_dict()
    allowed = {"uncommitted-record"} if tail_ok else set()
    assert report.codes() <= allowed, report.to_dict()
    return raw_consistency_check(path, tail_ok=tail_ok)


def raw_consistency_check(path: PathLike, *, tail_ok: bool = False) -> int:
    """Scan every column family through a raw handle (``rocksds.testing.raw_readable``); return ``count``.

    Checks: the metadata column family holds exactly ``schema`` and
    ``count``; the column families are exactly the schema's plus metadata and
    ``default`` (which is empty); every field's keys are exactly
    ``0..count-1`` in order (or ``0..m-1``, ``m >= count``, with
    ``tail_ok``), and every record passes ``RecordCodec.check`` (length,
    variable-shape header, UTF-8).
    """
    path = os.fspath(path)
    cfs = list_column_families(path)
    assert META_CF in cfs, cfs
    with raw_readable(path, cfs) as storage:
        schema = read_schema(storage)
        count = read_count(storage)
        field_cfs = {f.column_family for f in schema.fields.values()}
        assert set(cfs) == field_cfs | {META_CF, DEFAULT_CF}, (cfs, field_cfs)
        assert [k for k, _ in storage.iterate(DEFAULT_CF)] == []
        assert sorted(k for k, _ in storage.iterate(META_CF)) == sorted([COUNT_KEY, SCHEMA_KEY])
        for name, field in schema.fields.items():
            codec = RecordCodec(name, field)
            n = 0
            for key, record in storage.iterate(field.column_family):  # type: ignore[arg-type]
                assert key == encode_key(n), f"field {name!r}: key {key.hex()} where sample {n} was expected"
                problem = codec.check(record)
                assert problem is None, f"field {name!r}, sample {n}: {problem}"
                n += 1
            if tail_ok:
                assert n >= count, f"field {name!r} has {n} records but count is {count}"
            else:
                assert n == count, f"field {name!r} has {n} records but count is {count}"
    return count


def assert_samples(path: PathLike, count: int, start: int = 0, chunk: int = 512) -> None:
    """Assert that ``path`` holds ``count`` samples and ``start..count-1`` match ``expected_sample``."""
    with rocksds.open(path, cache_gb=0) as ds:
        assert len(ds) == count
        for lo in range(start, count, chunk):
            hi = min(lo + chunk, count)
            batch = ds[lo:hi]
            want = [expected_sample(i) for i in range(lo, hi)]
            np.testing.assert_array_equal(batch["image"], np.stack([w["image"] for w in want]))
            np.testing.assert_array_equal(batch["label"], [w["label"] for w in want])
            assert batch["name"] == [w["name"] for w in want]
            assert len(batch["tokens"]) == hi - lo
            for got, w in zip(batch["tokens"], want):
                np.testing.assert_array_equal(got, w["tokens"])
        if count > start:  # one single-sample read, through the other code path
            last = ds[count - 1]
            np.testing.assert_array_equal(last["image"], expected_sample(count - 1)["image"])


def dir_state(path: PathLike) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime_ns) of every entry of a directory, plus the directory itself."""
    path = os.fspath(path)
    state = {"": (0, os.stat(path).st_mtime_ns)}
    for name in os.listdir(path):
        st = os.lstat(os.path.join(path, name))
        state[name] = (st.st_size, st.st_mtime_ns)
    return state
