import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rocksds
from rocksds import spec
from rocksds.errors import SchemaError, UnsupportedFeatureError, UnsupportedVersionError
from rocksds.schema import Field, Schema, document_json_schema


def test_document_has_every_required_key(small_schema):
    doc = msgpack.unpackb(small_schema.to_bytes())
    assert doc["format"] == "rocksds" and doc["version"] == "1.3"
    assert [f["name"] for f in doc["fields"]] == ["image", "mask", "label", "points"]
    for f in doc["fields"]:
        assert set(f) >= {"name", "dtype", "shape", "column_family", "compression"}
    assert doc["fields"][3]["shape"] == [None, 2]
    assert doc["attrs"]["bands"] == ["B4", "B3", "B2"]
    assert doc["reader_features"] == [] and doc["writer_features"] == []


def test_bytes_roundtrip_is_identity(small_schema):
    assert Schema.from_bytes(small_schema.to_bytes()) == small_schema


def test_column_family_defaults_to_name():
    s = Schema(fields={"a": Field(dtype="int8"), "b": Field(dtype="int8", column_family="bee")})
    assert s["a"].column_family == "a" and s["b"].column_family == "bee"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"dtype": "float99"}, "unknown dtype"),
        ({"dtype": "float32", "shape": (-1,)}, "shape entries"),
        ({"dtype": "float32", "shape": (1.5,)}, "shape entries"),
        ({"dtype": "float32", "compression": "brotli"}, "unknown compression"),
        ({"dtype": "str", "shape": (3,)}, "shape must be ()"),
        ({"dtype": "float64", "shape": (2**20, 2**20)}, "exceeds"),
        ({"dtype": "uint8", "shape": (1,) * 33}, "dimensions"),
        ({"dtype": "uint8", "extra_key": 1}, "extra"),
    ],
)
def test_bad_fields_raise_schema_error(kwargs, fragment):
    with pytest.raises(SchemaError, match=fragment):
        Field(**kwargs)


@pytest.mark.parametrize("name", ["__x", "default", "1abc", "a b", "", "x" * 129])
def test_bad_names(name):
    with pytest.raises(SchemaError):
        Schema(fields={name: Field(dtype="int8")})


def test_shared_column_family_rejected():
    with pytest.raises(SchemaError, match="share column family"):
        Schema(fields={"a": Field(dtype="int8", column_family="c"), "b": Field(dtype="int8", column_family="c")})


@pytest.mark.parametrize("attrs", [{"x": object()}, {1: "a"}, {"x": 2**70}, {"x": {"y": set()}}])
def test_attrs_must_be_json_like(attrs):
    with pytest.raises(SchemaError):
        Schema(fields={"a": Field(dtype="int8")}, attrs=attrs)


def test_attrs_depth_limit():
    deep: dict = {}
    cur = deep
    for _ in range(spec.MAX_ATTRS_DEPTH + 2):
        cur["k"] = {}
        cur = cur["k"]
    with pytest.raises(SchemaError, match="nested deeper"):
        Schema(fields={"a": Field(dtype="int8")}, attrs=deep)


def _doc(**changes):
    doc = Schema(fields={"a": Field(dtype="int8", shape=(2,))}).to_document()
    doc.update(changes)
    return doc


def test_higher_major_refused():
    with pytest.raises(UnsupportedVersionError, match="2.0"):
        Schema.from_document(_doc(version="2.0"))


def test_higher_minor_with_unknown_keys_accepted_and_kept():
    doc = _doc(version="1.9", future_thing={"x": 1})
    doc["fields"][0]["future_field_key"] = "y"
    s = Schema.from_document(doc)
    assert s.version == "1.9" and s.extra == {"future_thing": {"x": 1}}
    assert s["a"].shape == (2,)


def test_unknown_reader_feature_refused():
    with pytest.raises(UnsupportedFeatureError, match="sparse-index"):
        Schema.from_document(_doc(reader_features=["sparse-index"]))


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"format": "zarr"},
        _doc(version="1"),
        _doc(version=1.0),
        _doc(fields="x"),
        _doc(fields=[{"name": "a"}]),
        _doc(fields=[]),
        _doc(fields=[{"name": "a", "dtype": "int8", "shape": 3, "column_family": "a", "compression": "none"}]),
        _doc(reader_features="x"),
    ],
)
def test_malformed_documents(doc):
    with pytest.raises(SchemaError):
        Schema.from_document(doc)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x81\xa1a", msgpack.packb([1, 2]) + b"x"])
def test_malformed_msgpack(data):
    with pytest.raises(SchemaError):
        Schema.from_bytes(data)


def test_infer():
    s = Schema.infer(
        {"img": np.zeros((2, 3), np.uint16), "label": 3, "name": "x", "blob": b"\x00", "pts": np.zeros((4, 2))},
        variable={"pts": (0,)},
        attrs={"k": 1},
    )
    assert s["img"].dtype == "uint16" and s["img"].shape == (2, 3)
    assert s["label"].dtype == "int64" and s["label"].shape == ()
    assert s["name"].dtype == "str" and s["blob"].dtype == "bytes"
    assert s["pts"].shape == (None, 2) and s.attrs == {"k": 1}


def test_infer_rejects_unstorable():
    with pytest.raises(SchemaError):
        Schema.infer({"a": np.array(["x", "y"])})


def test_select_and_unknown_field(small_schema):
    assert small_schema.select(["label", "image"]).names == ("label", "image")
    with pytest.raises(rocksds.FieldNotFoundError):
        small_schema.select(["nope"])


def test_json_schema_export_names_required_keys():
    js = document_json_schema()
    assert "fields" in js["properties"] and "format" in js["properties"]


dims = st.one_of(st.none(), st.integers(0, 5))
fields_st = st.builds(
    lambda dtype, shape, comp: Field(dtype=dtype, shape=() if dtype in spec.OPAQUE_DTYPES else shape, compression=comp),
    st.sampled_from(sorted(spec.DTYPES)),
    st.lists(dims, max_size=4).map(tuple),
    st.sampled_from(sorted(spec.COMPRESSIONS)),
)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(
    fields=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), fields_st, min_size=1, max_size=5),
    attrs=st.dictionaries(st.text(max_size=8), json_like, max_size=4),
)
def test_random_schemas_roundtrip(fields, attrs):
    s = Schema(fields=fields, attrs=attrs)
    assert Schema.from_bytes(s.to_bytes()) == s


def test_committed_json_schema_is_current():
    """docs/schema-document.schema.json is generated from the models; regenerate it when they change."""
    import json
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "docs" / "schema-document.schema.json"
    assert json.loads(path.read_text()) == document_json_schema(), (
        "regenerate with: python -c 'import json, rocksds.schema as s; "
        "print(json.dumps(s.document_json_schema(), indent=2, sort_keys=True, ensure_ascii=False))' "
        "> docs/schema-document.schema.json"
    )
