"""End-to-end round trips through create -> open, for every dtype, shape kind and codec."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import rocksds
from rocksds import spec


def _value(rng, dtype, shape):
    if dtype == "str":
        return "".join(rng.choice(list("aé✓😀 z"), size=int(rng.integers(0, 8))))
    if dtype == "bytes":
        return rng.integers(0, 256, int(rng.integers(0, 16)), dtype=np.uint8).tobytes()
    concrete = tuple(int(rng.integers(0, 4)) if d is None else d for d in shape)
    np_dtype = np.dtype(spec.NUMERIC_DTYPES[dtype])
    if np_dtype.kind == "b":
        return rng.integers(0, 2, concrete).astype(bool)
    if np_dtype.kind in "iu":
        info = np.iinfo(np_dtype)
        return rng.integers(info.min, info.max, concrete, dtype=np_dtype, endpoint=True)
    if np_dtype.kind == "c":
        return (rng.standard_normal(concrete) + 1j * rng.standard_normal(concrete)).astype(np_dtype)
    return rng.standard_normal(concrete).astype(np_dtype)


def _same(a, b):
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("compression", sorted(spec.COMPRESSIONS))
def test_every_compression(tmp_path, compression):
    rng = np.random.default_rng(2)
    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="float32", shape=(16, 16), compression=compression)})
    data = rng.standard_normal((30, 16, 16)).astype(np.float32)
    with rocksds.create(tmp_path / "d.rds", schema) as w:
        w.extend({"x": data})
    ds = rocksds.open(tmp_path / "d.rds")
    assert np.array_equal(ds[0:30]["x"], data)


def test_every_dtype_and_shape_kind(tmp_path):
    rng = np.random.default_rng(3)
    fields = {}
    for dtype in sorted(spec.DTYPES):
        if dtype in spec.OPAQUE_DTYPES:
            fields[dtype] = rocksds.Field(dtype=dtype)
            continue
        fields[f"{dtype}_scalar"] = rocksds.Field(dtype=dtype, shape=())
        fields[f"{dtype}_fixed"] = rocksds.Field(dtype=dtype, shape=(2, 3))
        fields[f"{dtype}_var"] = rocksds.Field(dtype=dtype, shape=(None, 2, None))
        fields[f"{dtype}_empty"] = rocksds.Field(dtype=dtype, shape=(0, 4))
    schema = rocksds.Schema(fields=fields, attrs={"名前": "データ", "emoji": "🛰️", "nested": {"a": [1, 2.5, None, True]}})
    samples = [{n: _value(rng, f.dtype, f.shape) for n, f in fields.items()} for _ in range(6)]
    with rocksds.create(tmp_path / "d.rds", schema) as w:
        w.extend(samples)
    ds = rocksds.open(tmp_path / "d.rds")
    assert ds.attrs == schema.attrs
    for i, s in enumerate(samples):
        got = ds[i]
        for n in fields:
            assert _same(got[n], s[n]), (i, n)
    for i, got in enumerate(ds):
        assert all(_same(got[n], samples[i][n]) for n in fields)
    batch = ds.get_batch([5, 0])
    assert np.array_equal(batch["float32_fixed"][1], samples[0]["float32_fixed"])
    assert _same(batch["int16_var"][0], samples[5]["int16_var"])


def test_empty_dataset(tmp_path):
    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="uint8", shape=(2,))})
    rocksds.create(tmp_path / "d.rds", schema).close()
    ds = rocksds.open(tmp_path / "d.rds")
    assert len(ds) == 0 and list(ds) == [] and ds[0:0]["x"].shape == (0, 2)


def test_record_larger_than_a_block(tmp_path):
    rng = np.random.default_rng(4)
    schema = rocksds.Schema(fields={"x": rocksds.Field(dtype="float32", shape=(13, 64, 64), compression="zstd")})
    data = rng.standard_normal((3, 13, 64, 64)).astype(np.float32)
    with rocksds.create(tmp_path / "d.rds", schema) as w:
        w.extend({"x": data})
    assert np.array_equal(rocksds.open(tmp_path / "d.rds")[0:3]["x"], data)


dims = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def schema_and_samples(draw):
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=4, unique=True))
    fields = {}
    for n in names:
        dtype = draw(st.sampled_from(sorted(spec.DTYPES)))
        shape = () if dtype in spec.OPAQUE_DTYPES else tuple(draw(st.lists(dims, max_size=3)))
        comp = draw(st.sampled_from(["none", "snappy", "lz4", "zstd"]))
        fields[n] = rocksds.Field(dtype=dtype, shape=shape, compression=comp)
    seed = draw(st.integers(0, 2**32 - 1))
    n_samples = draw(st.integers(0, 5))
    rng = np.random.default_rng(seed)
    samples = [{n: _value(rng, f.dtype, f.shape) for n, f in fields.items()} for _ in range(n_samples)]
    return rocksds.Schema(fields=fields), samples


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=schema_and_samples())
def test_random_schemas_and_arrays_roundtrip(tmp_path_factory, case):
    schema, samples = case
    path = tmp_path_factory.mktemp("prop") / "d.rds"
    with rocksds.create(path, schema) as w:
        w.extend(samples)
    with rocksds.open(path) as ds:
        assert ds.schema.fields == schema.fields and len(ds) == len(samples)
        for i, s in enumerate(samples):
            got = ds[i]
            assert all(_same(got[n], s[n]) for n in schema.fields)
