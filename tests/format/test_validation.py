"""rocksds.validate and `rocksds validate`: every code detected on a purpose-broken dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgpack
import numpy as np
import pytest
import rocksdict as rd

import rocksds
from rocksds.raw import RawHandle
from rocksds.testing import list_column_families, raw_readable, raw_writable
from rocksds.cli import main
from rocksds import spec
from rocksds._witness import write_witness
from rocksds.keys import encode_key
from rocksds.spec import COUNT_KEY, META_CF, SCHEMA_KEY
from rocksds.validation import CODES, ERROR, WARNING, validate

N = 6


def _schema() -> rocksds.Schema:
    return rocksds.Schema(
        fields={
            "a": rocksds.Field(dtype="int32", shape=(2,)),
            "v": rocksds.Field(dtype="uint16", shape=(None,), compression="snappy"),
            "s": rocksds.Field(dtype="str"),
            "flag": rocksds.Field(dtype="bool"),
            "b": rocksds.Field(dtype="bytes", compression="none"),
        },
        attrs={"note": "validator test"},
    )


def _samples(rng: np.random.Generator, n: int = N) -> list[dict]:
    return [
        {
            "a": rng.integers(-100, 100, 2).astype(np.int32),
            "v": rng.integers(0, 9, int(rng.integers(0, 4))).astype(np.uint16),
            "s": f"sample {i} ✓",
            "flag": bool(i % 2),
            "b": rng.bytes(3000),
        }
        for i in range(n)
    ]


@pytest.fixture
def dataset(tmp_path, rng) -> str:
    path = tmp_path / "ds.rds"
    with rocksds.create(path, _schema()) as w:
        w.extend(_samples(rng))
    return str(path)


@contextmanager
def raw(path: str) -> Iterator[RawHandle]:
    """A writable handle on every column family, to break a dataset on purpose.

    Each field's column family keeps its codec, so tables flushed here break only
    what the caller breaks (not the codec the validator compares with the schema).
    """
    codecs: dict[str, str] = {}
    try:
        with raw_readable(path, [META_CF]) as meta:
            fields = msgpack.unpackb(meta.get(META_CF, SCHEMA_KEY))["fields"]
            codecs = {f["column_family"]: f["compression"] for f in fields if f["compression"] in spec.COMPRESSIONS}
    except Exception:
        pass  # a dataset broken beyond reading its schema: default codecs
    cfs = {n: codecs.get(n, "none" if n == META_CF else spec.DEFAULT_COMPRESSION) for n in list_column_families(path)}
    with raw_writable(path, cfs) as st:
        yield st


def _put(path: str, cf: str, key: bytes, value: bytes) -> None:
    with raw(path) as st:
        st.write([(cf, key, value)])


def _delete(path: str, cf: str, key: bytes) -> None:
    with raw(path) as st:
        st.delete_range(cf, key, key + b"\x00")


def _edit_doc(path: str, edit: Callable[[dict], None]) -> None:
    with raw(path) as st:
        doc = msgpack.unpackb(st.get(META_CF, SCHEMA_KEY))
        edit(doc)
        st.write([(META_CF, SCHEMA_KEY, msgpack.packb(doc))])


def _portable() -> rd.Options:
    """Options whose tables follow SPEC.md 6, so a breaker changes only what it means to."""
    opts = rd.Options(raw_mode=True)
    table = rd.BlockBasedOptions()
    table.set_format_version(5)
    table.set_checksum_type(rd.ChecksumType.xxhash64())
    opts.set_block_based_table_factory(table)
    return opts


def _rdict(path: str, options=_portable) -> rd.Rdict:
    names = rd.Rdict.list_cf(path, rd.Options(raw_mode=True))
    return rd.Rdict(path, options(), column_families={n: options() for n in names})


def _non_portable_table(path: str) -> None:
    """A flushed table in RocksDB 9's own defaults (format_version 6, xxh3), holding an ignored metadata key."""
    db = _rdict(path, lambda: rd.Options(raw_mode=True))
    cf = db.get_column_family(META_CF)
    cf[b"reserved-for-later"] = b"x"
    cf.flush(True)
    db.close()


_LOG_ONLY_PUT = """
import os, sys
import rocksdict as rd
names = rd.Rdict.list_cf(sys.argv[1], rd.Options(raw_mode=True))
db = rd.Rdict(sys.argv[1], rd.Options(raw_mode=True), column_families={n: rd.Options(raw_mode=True) for n in names})
batch = rd.WriteBatch(raw_mode=True)
batch.put(b"reserved-for-later", b"x" * 64, db.get_column_family_handle(sys.argv[2]))
db.write(batch, rd.WriteOptions())
os._exit(0)  # no close, so the put lives in the write-ahead log only
"""


def _damaged_log(path: str) -> None:
    """A metadata key the format ignores, left in the write-ahead log only, then one bit of it flipped."""
    subprocess.run([sys.executable, "-c", _LOG_ONLY_PUT, path, META_CF], check=True, timeout=60)
    logs = [f for f in os.listdir(path) if f.endswith(".log") and os.path.getsize(os.path.join(path, f))]
    log = os.path.join(path, max(logs))
    with open(log, "r+b") as fh:
        fh.seek(os.path.getsize(log) - 40)
        byte = fh.read(1)[0]
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte ^ 0x10]))


def _rolled_back_manifest(path: str) -> None:
    """CURRENT and MANIFEST restored from before a session flushed a table (of an ignored key) and another opened."""
    saved = {n: open(os.path.join(path, n), "rb").read() for n in os.listdir(path) if n.startswith(("CURRENT", "MANIFEST-"))}
    db = _rdict(path)
    cf = db.get_column_family(META_CF)
    cf[b"reserved-for-later"] = b"x"
    cf.flush(True)
    del cf  # a live column family object keeps the database (and its lock) open
    db.close()
    _rdict(path).close()  # a later session starts a newer write-ahead log
    for name, data in saved.items():
        with open(os.path.join(path, name), "wb") as fh:
            fh.write(data)


def _field(doc: dict, name: str) -> dict:
    return next(f for f in doc["fields"] if f["name"] == name)


def _drop_cf(path: str) -> None:
    db = _rdict(path)
    db.drop_column_family("s")
    db.close()


def _extra_cf(path: str) -> None:
    db = _rdict(path)
    cf = db.create_column_family("leftover", _portable())
    cf[encode_key(0)] = b"x"
    db.close()


def _corrupt_sst(path: str) -> None:
    """Flip a byte inside the first data block of the largest table file (field 'b')."""
    ssts = [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".sst")]
    biggest = max(ssts, key=os.path.getsize)
    with open(biggest, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _remove_sst(path: str) -> None:
    ssts = [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".sst")]
    os.remove(max(ssts, key=os.path.getsize))


def _not_a_database(path: str) -> None:
    for f in os.listdir(path):
        os.remove(os.path.join(path, f))


def _no_metadata(path: str) -> None:
    db = _rdict(path)
    db.drop_column_family(META_CF)
    db.close()


#: code -> how to break a good dataset so that exactly this code is reported.
def _no_samples_stats() -> bytes:
    """A well-formed stats record of field ``a`` that covers no samples (the dataset has N)."""
    from rocksds.stats import DatasetStats, stats_options

    return DatasetStats.empty(_schema(), stats_options(_schema(), ["a"])).to_bytes()


BREAKERS: dict[str, Callable[[str], None]] = {
    "not-a-database": _not_a_database,
    "unreadable": _remove_sst,
    "missing-metadata": _no_metadata,
    "missing-schema": lambda p: _delete(p, META_CF, SCHEMA_KEY),
    "malformed-schema": lambda p: _put(p, META_CF, SCHEMA_KEY, b"\x92\x01"),  # msgpack array [1, <missing>]
    "unsupported-version": lambda p: _edit_doc(p, lambda d: d.update(version="2.0")),
    "unknown-dtype": lambda p: _edit_doc(p, lambda d: _field(d, "a").update(dtype="bfloat16")),
    "unknown-compression": lambda p: _edit_doc(p, lambda d: _field(d, "a").update(compression="brotli")),
    "unknown-reader-feature": lambda p: _edit_doc(p, lambda d: d.update(reader_features=["sharded"])),
    "unknown-writer-feature": lambda p: _edit_doc(p, lambda d: d.update(writer_features=["sharded"])),
    "malformed-writer-key": lambda p: _edit_doc(p, lambda d: d.update(writer={"name": 3})),
    "missing-count": lambda p: _delete(p, META_CF, COUNT_KEY),
    "bad-count": lambda p: _put(p, META_CF, COUNT_KEY, b"\x00\x06"),
    "missing-column-family": _drop_cf,
    "missing-record": lambda p: _delete(p, "v", encode_key(3)),
    "foreign-key": lambda p: _put(p, "a", b"\x00\x00\x00\x01", b"12345678"),
    "bad-record-length": lambda p: _put(p, "a", encode_key(1), b"1234567"),
    "bad-variable-header": lambda p: _put(p, "v", encode_key(2), b"\x05\x00\x00\x00\x01\x00"),
    "invalid-utf8": lambda p: _put(p, "s", encode_key(4), b"\xc3\x28"),
    "bad-bool": lambda p: _put(p, "flag", encode_key(0), b"\x07"),
    "corrupt-block": _corrupt_sst,
    "damaged-log": _damaged_log,
    "unnamed-table": _rolled_back_manifest,
    "non-portable-table": _non_portable_table,
    "compression-mismatch": lambda p: _edit_doc(p, lambda d: _field(d, "b").update(compression="zstd")),
    "uncommitted-record": lambda p: _put(p, "a", encode_key(N), b"\x00" * 8),
    "extra-column-family": _extra_cf,
    "extra-record": lambda p: _put(p, "default", b"stray", b"x"),
    "malformed-stats": lambda p: _put(p, META_CF, spec.STATS_KEY, b"\xc1"),  # a byte msgpack never uses
    "stale-stats": lambda p: _put(p, META_CF, spec.STATS_KEY, _no_samples_stats()),
    "rolled-back-count": lambda p: write_witness(p, N + 1),
    "malformed-witness": lambda p: open(os.path.join(p, spec.WITNESS_FILE), "wb").close(),  # 0 bytes
}


def _listing(path: str) -> dict[str, tuple[int, int]]:
    return {f: (os.stat(os.path.join(path, f)).st_mtime_ns, os.path.getsize(os.path.join(path, f)))
            for f in sorted(os.listdir(path))}


def test_every_code_has_a_breaking_test() -> None:
    assert set(BREAKERS) == set(CODES)


def test_valid_dataset_is_clean(dataset) -> None:
    for deep in (False, True):
        report = validate(dataset, deep=deep)
        assert report.ok_strict, report.issues
        assert report.count == N
        assert report.records_checked == N * 5
        assert report.fields == ["a", "v", "s", "flag", "b"]


@pytest.mark.parametrize("code", sorted(BREAKERS))
def test_each_violation_is_detected(dataset, code) -> None:
    BREAKERS[code](dataset)
    report = validate(dataset, deep=True)
    assert report.codes() == {code}, [(i.code, i.message) for i in report.issues]
    severity = CODES[code][0]
    assert report.ok == (severity == WARNING)
    assert not report.ok_strict
    issue = report.issues[0]
    assert issue.severity == severity and issue.message


def test_reports_every_violation_at_once(dataset) -> None:
    for code in ("missing-record", "bad-record-length", "invalid-utf8", "bad-bool", "uncommitted-record",
                 "unknown-writer-feature", "extra-record"):
        BREAKERS[code](dataset)
    report = validate(dataset)
    assert report.codes(ERROR) == {"missing-record", "bad-record-length", "invalid-utf8", "bad-bool"}
    assert report.codes(WARNING) == {"uncommitted-record", "unknown-writer-feature", "extra-record"}
    by_code = {i.code: i for i in report.issues}
    assert by_code["missing-record"].field == "v" and by_code["missing-record"].index == 3
    assert by_code["invalid-utf8"].index == 4 and by_code["bad-record-length"].index == 1


def test_gap_ranges_and_listing_limit(tmp_path, rng) -> None:
    path = str(tmp_path / "big.rds")
    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="uint8", shape=(3,))})
    with rocksds.create(path, schema) as w:
        w.extend({"x": rng.integers(0, 9, (200, 3)).astype(np.uint8)})
    with raw(path) as st:
        st.delete_range("x", encode_key(10), encode_key(20))
        st.write([("x", encode_key(i), b"\x01") for i in range(100, 150)])
    report = validate(path, max_listed=5)
    assert report.counts["missing-record"] == 10
    assert [i.message for i in report.issues if i.code == "missing-record"] == ["field 'x': no record for samples 10..19"]
    assert report.counts["bad-record-length"] == 50
    assert sum(i.code == "bad-record-length" for i in report.issues) == 5
    assert report.to_dict()["unlisted"] == {"bad-record-length": 45}


def test_missing_records_at_the_end(dataset) -> None:
    _put(dataset, META_CF, COUNT_KEY, (N + 2).to_bytes(8, "big"))
    report = validate(dataset)
    assert report.codes() == {"missing-record"}
    assert report.counts["missing-record"] == 5 * 2  # every field lacks samples N, N+1


def test_validate_never_writes(dataset) -> None:
    BREAKERS["uncommitted-record"](dataset)
    BREAKERS["invalid-utf8"](dataset)
    before = _listing(dataset)
    validate(dataset)
    validate(dataset, deep=True)
    assert main(["validate", dataset, "--deep", "--json"]) == 1
    assert _listing(dataset) == before


def test_cli_exit_codes_and_text(dataset, capsys) -> None:
    assert main(["validate", dataset]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{dataset}: OK (0 errors, 0 warnings; count {N}, 5 fields, {N * 5} records checked)")
    BREAKERS["uncommitted-record"](dataset)
    assert main(["validate", dataset]) == 0
    assert "OK with warnings" in capsys.readouterr().out
    assert main(["validate", dataset, "--strict"]) == 1
    assert "uncommitted-record" in capsys.readouterr().out
    BREAKERS["bad-bool"](dataset)
    assert main(["validate", dataset]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "bad-bool" in out and "sample 0" in out


def test_cli_json(dataset, capsys) -> None:
    BREAKERS["bad-record-length"](dataset)
    BREAKERS["uncommitted-record"](dataset)
    assert main(["validate", dataset, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["passed"] is False and report["strict"] is False
    assert report["errors"] == 1 and report["warnings"] == 1 and report["count"] == N
    assert {i["code"] for i in report["issues"]} == {"bad-record-length", "uncommitted-record"}
    issue = next(i for i in report["issues"] if i["code"] == "bad-record-length")
    assert issue == {"code": "bad-record-length", "severity": "error", "field": "a", "index": 1,
                     "message": issue["message"]}
    assert "7 bytes" in issue["message"]


def test_cli_on_missing_path(tmp_path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "not-a-database" in capsys.readouterr().out


def test_uncommitted_records_are_removed_by_append(dataset) -> None:
    BREAKERS["uncommitted-record"](dataset)
    assert validate(dataset).codes() == {"uncommitted-record"}
    rocksds.open(dataset, mode="a").close()
    assert validate(dataset).ok_strict


def test_public_export() -> None:
    assert rocksds.validate is validate
    assert "validate" in rocksds.__all__


def test_corrupt_block_costs_only_its_samples(tmp_path, rng) -> None:
    """Each 20 KB record fills a table block of its own; flipping one byte loses one sample, not the rest."""
    path = str(tmp_path / "blocks.rds")
    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="uint8", shape=(20_000,), compression="none")})
    with rocksds.create(path, schema) as w:
        w.extend({"x": rng.integers(0, 255, (30, 20_000), dtype=np.uint8)})
    sst = max((os.path.join(path, f) for f in os.listdir(path) if f.endswith(".sst")), key=os.path.getsize)
    with open(sst, "r+b") as fh:  # the middle of sample 10's block (blocks are ~20 KB apart)
        fh.seek(10 * 20_000 + 10_000)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 1]))
    report = validate(path)
    assert report.codes() == {"corrupt-block"}
    assert report.counts["corrupt-block"] == 1
    assert report.issues[0].index == 10 and "checksum" in report.issues[0].message
    assert report.records_checked == 29


def test_reserved_metadata_keys_are_not_violations(dataset) -> None:
    """SPEC.md reserves other metadata keys for later minor versions; readers ignore them."""
    _put(dataset, META_CF, b"index", b"\x01\x02")
    assert validate(dataset, deep=True).ok_strict


def test_count_at_2_63_is_bad(dataset) -> None:
    _put(dataset, META_CF, COUNT_KEY, (2**63).to_bytes(8, "big"))
    assert validate(dataset).codes() == {"bad-count"}
