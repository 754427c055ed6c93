import pytest

from rocksds.keys import decode_count, decode_key, encode_count, encode_key, encode_keys


def test_key_is_8_byte_big_endian():
    assert encode_key(0) == b"\x00" * 8
    assert encode_key(1) == b"\x00" * 7 + b"\x01"
    assert encode_key(258) == b"\x00" * 6 + b"\x01\x02"


def test_key_order_is_index_order():
    indices = [0, 1, 2, 255, 256, 65535, 65536, 2**32, 2**40 + 3]
    assert sorted(encode_keys(indices)) == encode_keys(indices)


@pytest.mark.parametrize("i", [0, 7, 2**31, 2**63 - 1])
def test_roundtrip(i):
    assert decode_key(encode_key(i)) == i
    assert decode_count(encode_count(i)) == i


@pytest.mark.parametrize("bad", [b"", b"\x00" * 7, b"\x00" * 9, b"\xff" * 8])
def test_decode_rejects_malformed(bad):
    with pytest.raises(ValueError):
        decode_key(bad)
