"""SPEC.md 1.x clarifications: each rule an independent implementer had to guess, pinned down.

One test (or a few) per point of the clarification list: the reference schema
decoder, record codec, reader, writer, validator and the conformance tools
follow the rule SPEC.md now states. The conformance vectors cover the same
rules across implementations; these tests pin the reference's own behaviour
and the two crashes that were reported (a ``RecursionError`` from the
canonical dump, numpy's "array is too big" from the record codec).
"""

from __future__ import annotations

import json
import os
import struct
import sys

import msgpack
import numpy as np
import pytest

import rocksds
from conformance import canonical, generate, reference_impl, runner, second_reader
from rocksds import spec
from rocksds.errors import CorruptionError, SchemaError, UnsupportedFeatureError, UnsupportedVersionError
from rocksds.records import RecordCodec as Codec
from rocksds.schema import Field, Schema, decode_document
from rocksds.validation import validate

PY = sys.executable


def _doc(**changes):
    doc = Schema(fields={"a": Field(dtype="int8", shape=(2,))}).to_document()
    doc.update(changes)
    return doc


def _nested(depth: int) -> object:
    """A value whose innermost element sits ``depth`` containers below it (``[[...[0]...]]``)."""
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def _dataset(tmp_path, schema_bytes: bytes, name: str = "ds") -> str:
    """A dataset with one int8[2] field ``a`` holding 2 samples, under a schema record given as raw bytes."""
    path = str(tmp_path / name)
    records = [("a", rocksds.keys.encode_key(i), bytes([i, i])) for i in range(2)]
    generate.write_raw(path, {spec.META_CF: "none", "a": spec.DEFAULT_COMPRESSION},
                       [(spec.META_CF, spec.SCHEMA_KEY, schema_bytes), (spec.META_CF, spec.COUNT_KEY,
                                                                        rocksds.keys.encode_count(2))] + records)
    return path


def _refusals(path: str) -> tuple[str, str]:
    """The protocol error class both conformance readers give ``path`` (they must agree)."""
    got = []
    for main in (reference_impl.main, second_reader.main):
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["dump", path])
        got.append(json.loads(out.getvalue()).get("error") if rc else "accepted")
    return got[0], got[1]


# ---------------------------------------------------------------------- 1. order of checks


def test_version_is_checked_before_any_other_rule() -> None:
    doc = _doc(version="2.0", fields={"not": "a list"}, attrs=[1], reader_features="x")
    with pytest.raises(UnsupportedVersionError):
        Schema.from_document(doc)
    with pytest.raises(SchemaError, match="format"):
        Schema.from_document(_doc(format="zarr", version="2.0"))


def test_reader_features_are_checked_before_fields() -> None:
    doc = _doc(reader_features=["bfloat16"])
    doc["fields"][0]["dtype"] = "bfloat16"
    with pytest.raises(UnsupportedFeatureError):
        Schema.from_document(doc)


def test_validator_stops_at_the_first_failed_document_check(tmp_path) -> None:
    cases = {
        "unsupported-version": _doc(version="2.0", fields="x"),
        "malformed-schema": _doc(format="zarr", version="2.0"),
        "unknown-reader-feature": _doc(reader_features=["bfloat16"], fields=[{"dtype": "bfloat16"}]),
    }
    for code, doc in cases.items():
        report = validate(_dataset(tmp_path, msgpack.packb(doc), code), deep=True)
        assert report.codes() == {code}, (code, report.issues)


# ---------------------------------------------------------------------- 2. version grammar


@pytest.mark.parametrize("version", ["01.0", "1.00", "1.01", "99999999999999999999.0", "1.1234567890",
                                     "\u0661.0", "1.\uff10", "+1.0", "1.-0", " 1.0", "1.0.0", "1", ""])
def test_malformed_versions(version: str) -> None:
    with pytest.raises(SchemaError) as info:
        Schema.from_document(_doc(version=version))
    assert not isinstance(info.value, UnsupportedVersionError)


@pytest.mark.parametrize("version", ["1.0", "1.7", "1.999999999", "0.0"])
def test_well_formed_versions(version: str) -> None:
    if version.startswith("0."):
        with pytest.raises(UnsupportedVersionError):
            Schema.from_document(_doc(version=version))
    else:
        assert Schema.from_document(_doc(version=version)).version == version


# ---------------------------------------------------------------------- 3. duplicate keys


def _map(*pairs: tuple[str, object]) -> bytes:
    """A msgpack map from pairs, keeping repeated keys (msgpack.packb of a dict cannot)."""
    return bytes([0x80 | len(pairs)]) + b"".join(msgpack.packb(k) + _pack(v) for k, v in pairs)


def _pack(value: object) -> bytes:
    return value if isinstance(value, bytes) else msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize("where", ["top", "field", "attrs", "unknown"])
def test_duplicate_map_keys_are_refused_anywhere(where: str) -> None:
    doc = _doc()
    field = doc["fields"][0]
    field_bytes = _map(*field.items(), *([("dtype", "uint8")] if where == "field" else []))
    top = [("format", "rocksds"), ("version", "1.0"), ("fields", b"\x91" + field_bytes),
           ("attrs", _map(("k", 1), ("k", 2)) if where == "attrs" else {}),
           ("future", _map(("x", 1), ("x", 1)) if where == "unknown" else 0)]
    if where == "top":
        top.append(("version", "1.0"))
    data = _map(*top)
    with pytest.raises(SchemaError, match="twice"):
        decode_document(data)


# ---------------------------------------------------------------------- 4./5. nesting depth


@pytest.mark.parametrize("depth", [spec.MAX_DOCUMENT_DEPTH, spec.MAX_DOCUMENT_DEPTH + 1, 600, 1000])
def test_document_nesting_limit(depth: int) -> None:
    # The unknown key's value sits at depth 1, so the innermost 0 of _nested(depth - 1) at `depth`.
    doc = _doc(future=_nested(depth - 1))
    data = msgpack.packb(doc)
    if depth <= spec.MAX_DOCUMENT_DEPTH:
        assert Schema.from_bytes(data).extra["future"] == _nested(depth - 1)
    else:
        with pytest.raises(SchemaError, match="nested"):
            decode_document(data)


def test_deeply_nested_unknown_key_is_refused_by_both_dumps_not_a_crash(tmp_path) -> None:
    """Reproduces the RecursionError the canonical dump raised for ~500-1023 levels."""
    path = _dataset(tmp_path, msgpack.packb(_doc(future=_nested(900))))
    assert _refusals(path) == ("malformed-schema", "malformed-schema")
    assert validate(path).codes() == {"malformed-schema"}


def test_attrs_depth_counts_the_attrs_map_as_depth_zero() -> None:
    # A value directly in attrs is at depth 1; the innermost 0 of _nested(31) is at depth 32.
    assert Schema.from_document(_doc(attrs={"k": _nested(31)})).attrs == {"k": _nested(31)}
    empty: list = []
    for _ in range(31):
        empty = [empty]  # 32 lists, the innermost (empty) one at depth 32
    assert Schema.from_document(_doc(attrs={"k": empty})).attrs == {"k": empty}
    with pytest.raises(SchemaError, match="nested deeper"):
        Schema.from_document(_doc(attrs={"k": _nested(32)}))


# ---------------------------------------------------------------------- 6. compression_level nil


def test_compression_level_nil_is_absent() -> None:
    doc = _doc()
    doc["fields"][0]["compression_level"] = None
    assert Schema.from_document(doc)["a"].compression_level is None
    for bad in (2**31, -(2**31) - 1, True, 1.0, "3"):
        doc["fields"][0]["compression_level"] = bad
        with pytest.raises(SchemaError):
            Schema.from_document(doc)


# ---------------------------------------------------------------------- 7./8. size limits of shapes


@pytest.mark.parametrize("shape", [(None, 65536, 32768), (0, 2**32 - 1, 2**32 - 1), (0, None, 2**31),
                                   (2**32 - 1, 0, 2**32 - 1)])
def test_shape_size_limit_counts_zero_as_one_and_applies_to_variable_shapes(shape) -> None:
    with pytest.raises(SchemaError, match="exceeds"):
        Field(dtype="uint8" if None in shape else "uint64", shape=shape)


def test_zero_beside_huge_dims_is_refused_not_a_numpy_crash(tmp_path) -> None:
    """Reproduces numpy's "array is too big" from the record codec for [0, 2**32-1, 2**32-1] uint64."""
    doc = _doc()
    doc["fields"][0].update(dtype="uint64", shape=[0, 2**32 - 1, 2**32 - 1])
    path = _dataset(tmp_path, msgpack.packb(doc))
    assert _refusals(path) == ("malformed-schema", "malformed-schema")
    codec = Codec("v", Field(dtype="uint64", shape=(None, None, None)))
    with pytest.raises(CorruptionError, match="limit"):
        codec.decode(struct.pack("<III", 0, 2**32 - 1, 2**32 - 1))
    assert codec.check(struct.pack("<III", 0, 2**32 - 1, 2**32 - 1))[0] == "bad-variable-header"
    assert codec.decode(struct.pack("<III", 0, 2**16, 2**11)).shape == (0, 2**16, 2**11)


# ---------------------------------------------------------------------- 9. bool bytes


@pytest.mark.parametrize("shape", [(), (3,), (None,), (2, None)])
def test_bool_bytes_other_than_0_and_1_are_corrupt(shape) -> None:
    codec = Codec("flag", Field(dtype="bool", shape=shape))
    header = struct.pack("<I", 3) * shape.count(None)
    n = 1 if shape == () else 3 * (2 if shape == (2, None) else 1)
    good = header + bytes([1, 0, 1, 1, 0, 0][:n])
    bad = header + bytes([1, 7, 1, 1, 0, 0][:n] if n > 1 else [7])
    assert codec.check(good) is None and codec.decode(good).dtype == np.bool_
    assert codec.check(bad)[0] == "bad-bool"
    with pytest.raises(CorruptionError, match="bool"):
        codec.decode(bad)
    if None not in shape:
        with pytest.raises(CorruptionError, match="bool"):
            codec.decode_batch([good, bad])
        big = [good] * (2**20 // len(good) + 1)
        assert codec.decode_batch(big).shape == (len(big), *shape)
        with pytest.raises(CorruptionError, match="bool"):
            codec.decode_batch(big + [bad])


def test_reader_refuses_a_bad_bool_by_key(tmp_path) -> None:
    path = tmp_path / "b.rds"
    with rocksds.create(path, Schema(fields={"flag": Field(dtype="bool", shape=(None,), compression="none")})) as w:
        w.extend([{"flag": np.array([True, False])}, {"flag": np.array([True])}])
    with rocksds.open(path) as ds:
        assert ds[1]["flag"].tolist() == [True]
    cfg = rocksds._storage.CFConfig(compression="none")
    storage = rocksds._storage.Storage.open_writable(str(path), {spec.META_CF: cfg, "flag": cfg}, create=False)
    try:
        storage.write([("flag", rocksds.keys.encode_key(1), struct.pack("<I", 1) + b"\x07")])
    finally:
        storage.close()
    with rocksds.open(path) as ds:
        assert ds[0]["flag"].tolist() == [True, False]
        with pytest.raises(CorruptionError, match="bool"):
            ds[1]
        with pytest.raises(CorruptionError, match="bool"):
            list(ds)


# ---------------------------------------------------------------------- 10./11. error classes, UTF-8, U+FEFF


def test_not_a_database_is_not_a_dataset(tmp_path) -> None:
    (tmp_path / "plain").mkdir()
    for path in (tmp_path / "missing", tmp_path / "plain"):
        assert _refusals(str(path)) == ("not-a-dataset", "not-a-dataset")
        assert validate(path).codes() == {"not-a-database"}


def test_invalid_utf8_in_a_schema_string_is_malformed() -> None:
    data = _map(("format", "rocksds"), ("version", "1.0"), ("fields", msgpack.packb(_doc()["fields"])),
                ("attrs", b"\x81" + msgpack.packb("k") + b"\xa2\xff\xfe"))
    with pytest.raises(SchemaError):
        decode_document(data)


def test_leading_bom_of_a_str_record_is_kept() -> None:
    codec = Codec("s", Field(dtype="str"))
    assert codec.decode("\ufeffx".encode()) == "\ufeffx"
    assert codec.encode("\ufeffx") == b"\xef\xbb\xbfx"


# ---------------------------------------------------------------------- 12. writer_features and writer


def test_readers_ignore_malformed_writer_features_and_writer_but_appenders_refuse(tmp_path) -> None:
    doc = _doc(writer_features="not-a-list", writer={"name": 3})
    schema = Schema.from_document(doc)
    assert schema.writer_features is None and schema.writer == {}
    path = _dataset(tmp_path, msgpack.packb(doc))
    assert _refusals(path) == ("accepted", "accepted")
    with rocksds.open(path) as ds:
        assert [s["a"].tolist() for s in ds] == [[0, 0], [1, 1]]
    report = validate(path, deep=True)
    assert report.ok and report.codes() == {"malformed-writer-key"}
    with pytest.raises(UnsupportedFeatureError, match="writer_features"):
        rocksds.open(path, mode="a")


# ---------------------------------------------------------------------- 13. canonical dump


def test_canonical_dump_escapes_dollar_keys_and_widens_float32() -> None:
    doc = {"a": {"$hex": "00"}, "b": b"\x00", "c": {"$$x": 1, "$float": "nan", "y": float("-inf")}}
    assert canonical.document_to_json(doc) == {
        "a": {"$$hex": "00"}, "b": {"$hex": "00"}, "c": {"$$$x": 1, "$$float": "nan", "y": {"$float": "-inf"}}}
    f32 = msgpack.unpackb(msgpack.packb(0.1, use_single_float=True))
    assert json.loads(json.dumps(canonical.document_to_json(f32))) == float(np.float32(0.1))


# ---------------------------------------------------------------------- 14. two-phase open


def test_both_opens_of_a_reader_see_one_snapshot_even_if_the_dataset_is_replaced(tmp_path, monkeypatch) -> None:
    path = tmp_path / "swap.rds"
    with rocksds.create(path, Schema(fields={"x": Field(dtype="int8")})) as w:
        w.append({"x": 1})
    real = rocksds.reader.read_schema
    calls = []

    def replacing_read(storage):
        schema = real(storage)
        calls.append(schema.names)
        if len(calls) == 1:  # between the metadata open and the open of the fields
            with rocksds.create(path, Schema(fields={"y": Field(dtype="int16")}), overwrite=True) as w:
                w.extend([{"y": 2}, {"y": 3}])
        return schema

    monkeypatch.setattr(rocksds.reader, "read_schema", replacing_read)
    with rocksds.open(path) as ds:
        assert ds.field_names == ("x",) and [int(s["x"]) for s in ds] == [1]
        ds.refresh()
        assert ds.field_names == ("y",) and [int(s["y"]) for s in ds] == [2, 3]
    assert calls == [("x",), ("y",)]


# ---------------------------------------------------------------------- 17. the runner's --impl


def test_runner_reports_an_implementation_that_cannot_start(tmp_path, capsys) -> None:
    vectors = tmp_path / "vectors" / "valid"
    vectors.mkdir(parents=True)
    src = os.path.join(runner.VECTORS, "valid", "empty")
    import shutil

    shutil.copytree(src, vectors / "empty")
    status = runner.main(["--impl", f"VAR=x {PY} -m conformance.second_reader", "--vectors",
                          str(tmp_path / "vectors"), "--no-write"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL  read:valid/empty" in out and "cannot run" in out
    assert runner.split_impl("env VAR='a b' ./reader --x") == ["env", "VAR=a b", "./reader", "--x"]


# ---------------------------------------------------------------------- 15. schema compression vs table codec


def test_table_properties_name_each_files_codec_and_never_raise(tmp_path) -> None:
    from rocksds._tables import CODEC_NAMES, table_properties

    folder = os.path.join(runner.VECTORS, "valid", "mixed-compressions", "dataset")
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".sst"):
            props = table_properties(os.path.join(folder, name))
            found[props["rocksdb.column.family.name"]] = CODEC_NAMES[props["rocksdb.compression"]]
    assert found == {spec.META_CF: "none", **{f"c_{c}": c for c in spec.COMPRESSIONS}}
    data = open(os.path.join(folder, sorted(os.listdir(folder))[-1]), "rb").read()
    for i, junk in enumerate([b"", b"x" * 100, data[: len(data) // 2], data[:-1], data[:-60] + data[-53:],
                              bytes(len(data))]):
        (tmp_path / f"{i}.sst").write_bytes(junk)
        assert table_properties(str(tmp_path / f"{i}.sst")) is None
    assert table_properties(str(tmp_path / "missing.sst")) is None


def test_the_tables_codec_wins_and_a_mismatch_is_a_warning() -> None:
    path = os.path.join(runner.VECTORS, "valid", "compression-mismatch", "dataset")
    report = validate(path, deep=True)
    assert report.ok and report.codes() == {"compression-mismatch"}
    with rocksds.open(path) as ds:
        assert ds.schema["values"].compression == "none"
        assert [float(s["values"][0]) for s in ds] == [0.0, 1.0, 2.0, 3.0]


def test_vectors_cover_the_clarifications() -> None:
    names = set(os.listdir(os.path.join(runner.VECTORS, "invalid"))) | set(
        os.listdir(os.path.join(runner.VECTORS, "valid")))
    assert {"version-2-breaks-1x-rules", "reader-feature-before-fields", "wrong-format",  # 1
            "version-leading-zero", "version-too-long",  # 2
            "duplicate-key",  # 3
            "too-deep", "at-the-limits", "attrs-too-deep",  # 4, 5
            "compression-level-nil",  # 6
            "fixed-part-too-large",  # 7
            "zero-beside-huge-dims", "variable-header-beyond-limit",  # 8
            "bad-bool", "bad-bool-variable",  # 9
            "unknown-compression",  # 10
            "schema-invalid-utf8", "str-leading-bom",  # 11
            "malformed-writer-keys",  # 12
            "canonical-escapes",  # 13
            "compression-mismatch"} <= names  # 15
    with open(os.path.join(runner.VECTORS, "invalid", "bad-bool", "expected.json"), encoding="utf-8") as fh:
        assert json.load(fh)["reader"] == {"must_reject": True, "error": "corrupt"}
