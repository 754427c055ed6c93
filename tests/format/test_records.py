import numpy as np
import pytest

from rocksds import spec
from rocksds.errors import CorruptionError, SampleError
from rocksds.records import RecordCodec
from rocksds.schema import Field


def codec(dtype, shape=()):
    return RecordCodec("f", Field(dtype=dtype, shape=shape))


def test_fixed_record_is_raw_little_endian_c_order():
    arr = np.arange(6, dtype=">i4").reshape(2, 3)  # big-endian input
    rec = codec("int32", (2, 3)).encode(arr)
    assert rec == np.arange(6, dtype="<i4").tobytes()
    fortran = np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3))
    assert codec("int32", (2, 3)).encode(fortran) == rec


def test_variable_record_layout_is_header_then_data():
    c = codec("uint16", (None, 2, None))
    value = np.arange(3 * 2 * 4, dtype=np.uint16).reshape(3, 2, 4)
    rec = c.encode(value)
    assert rec[:8] == np.array([3, 4], "<u4").tobytes()
    assert rec[8:] == value.astype("<u2").tobytes()
    out = c.decode(rec)
    assert out.shape == (3, 2, 4) and np.array_equal(out, value)


@pytest.mark.parametrize("dtype", sorted(spec.NUMERIC_DTYPES))
def test_every_numeric_dtype_roundtrips(dtype):
    rng = np.random.default_rng(1)
    np_dtype = np.dtype(spec.NUMERIC_DTYPES[dtype])
    if np_dtype.kind == "b":
        value = rng.integers(0, 2, (4, 3)).astype(bool)
    elif np_dtype.kind in "iu":
        info = np.iinfo(np_dtype)
        value = rng.integers(info.min, info.max, (4, 3), dtype=np_dtype, endpoint=True)
    elif np_dtype.kind == "c":
        value = (rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3))).astype(np_dtype)
    else:
        value = rng.standard_normal((4, 3)).astype(np_dtype)
    c = codec(dtype, (4, 3))
    out = c.decode(c.encode(value))
    assert out.dtype == np_dtype and np.array_equal(out, value)
    assert not out.flags.writeable


def test_str_and_bytes():
    s = codec("str")
    assert s.encode("héllo ✓") == "héllo ✓".encode()
    assert s.decode(s.encode("")) == ""
    b = codec("bytes")
    assert b.decode(b.encode(b"\x00\xff")) == b"\x00\xff"


@pytest.mark.parametrize(
    "dtype, shape, value, fragment",
    [
        ("float32", (2,), np.zeros(3, np.float32), "expects shape"),
        ("float32", (2,), np.zeros(2, np.float64), "cannot cast float64 safely"),
        ("uint8", (), 300, "cannot convert|exactly"),
        ("int64", (), 3.5, "exactly"),
        ("int64", (), "3", "expects a int64 array"),
        ("str", (), b"x", "expects str"),
        ("bytes", (), "x", "expects bytes"),
        ("float32", (None,), np.zeros((2, 2), np.float32), "expects shape"),
    ],
)
def test_encode_rejects(dtype, shape, value, fragment):
    with pytest.raises(SampleError, match=fragment):
        codec(dtype, shape).encode(value)


def test_python_scalars_that_fit_are_accepted():
    assert codec("uint8").encode(255) == b"\xff"
    assert codec("float32").encode(0.5) == np.float32(0.5).tobytes()
    assert codec("bool").encode(True) == b"\x01"


def test_decode_detects_wrong_lengths():
    with pytest.raises(CorruptionError, match="expected 8"):
        codec("float32", (2,)).decode(b"\x00" * 7)
    c = codec("float32", (None,))
    with pytest.raises(CorruptionError, match="header declares"):
        c.decode(np.array([5], "<u4").tobytes() + b"\x00" * 8)
    with pytest.raises(CorruptionError, match="shorter than its header"):
        c.decode(b"\x01")


def test_decode_batch_stacks_writable():
    c = codec("int16", (2,))
    recs = [c.encode(np.array([i, -i], np.int16)) for i in range(5)]
    out = c.decode_batch(recs)
    assert out.shape == (5, 2) and out.flags.writeable
    assert out[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_check_codes():
    assert codec("str").check(b"\xff\xfe")[0] == "invalid-utf8"
    assert codec("int8", (2,)).check(b"\x00")[0] == "bad-record-length"
    assert codec("int8", (None,)).check(b"\x09\x00\x00\x00\x01")[0] == "bad-variable-header"
    assert codec("bool", (2,)).check(b"\x01\x02")[0] == "bad-bool"
    assert codec("bool", (2,)).check(b"\x01\x00") is None
