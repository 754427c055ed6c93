"""Values <-> record bytes for one field (SPEC.md, "Records").

A fixed-shape record is the array's little-endian, C-order bytes and nothing
else. A variable-shape record starts with one little-endian uint32 per null
dimension of the field's shape (the actual lengths, in order), then the data.
``bytes`` records are the value itself; ``str`` records are its UTF-8 bytes.
No keys and no storage here.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

from .errors import CorruptionError, SampleError
from .schema import Field
from .spec import MAX_RECORD_BYTES, VAR_DIM_BYTES

__all__ = ["RecordCodec", "Value"]

Value = Union[np.ndarray, str, bytes]

#: decode_batch joins smaller batches into a bytearray, larger ones into a numpy buffer.
_JOIN_BELOW = 2**20
#: bool data at least this long is checked with numpy, shorter data with bytes.translate (measured crossover).
_BOOL_SCAN_WITH_NUMPY = 2048


class RecordCodec:
    """Encodes and decodes the records of one field.

    Built once per field per handle, so the per-record work is only what the
    record itself needs.
    """

    __slots__ = ("name", "field", "dtype", "shape", "nvar", "var_axes", "record_bytes", "_header", "_fixed", "_bool")

    def __init__(self, name: str, field: Field) -> None:
        self.name = name
        self.field = field
        self.shape = field.shape
        self.dtype = field.numpy_dtype
        self.var_axes = tuple(i for i, d in enumerate(field.shape) if d is None)
        self.nvar = len(self.var_axes)
        self.record_bytes = field.record_bytes
        self._header = np.dtype("<u4")
        #: bool records are checked byte by byte: numpy would return a byte 7 as a "true" that is not 1.
        self._bool = field.dtype == "bool"
        #: A fixed-shape numeric field other than bool: decode is one length check and one frombuffer.
        self._fixed = field.dtype not in ("bytes", "str", "bool") and self.nvar == 0

    # ------------------------------------------------------------------ encode

    def encode(self, value: Any) -> bytes:
        """Validate one value against the field and return its record bytes.

        Raises:
            SampleError: wrong type, shape or a dtype that cannot be cast safely.
        """
        kind = self.field.dtype
        if kind == "bytes":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise SampleError(f"field {self.name!r} expects bytes, got {type(value).__name__}")
            data = bytes(value)
            self._check_size(len(data))
            return data
        if kind == "str":
            if not isinstance(value, str):
                raise SampleError(f"field {self.name!r} expects str, got {type(value).__name__}")
            try:
                data = value.encode("utf-8")
            except UnicodeEncodeError as e:
                raise SampleError(f"field {self.name!r}: string is not encodable as UTF-8 ({e.reason})") from None
            self._check_size(len(data))
            return data
        arr = self._as_array(value)
        if self.nvar == 0:
            return arr.tobytes()
        # SPEC.md 5.5: zero-size data makes any shape cheap, so the limit counts every 0 as 1
        # (this also keeps each dimension within the uint32 header); other sizes _as_array checked.
        if not arr.size and math.prod(d or 1 for d in arr.shape) * self.dtype.itemsize > MAX_RECORD_BYTES:
            raise SampleError(f"field {self.name!r}: shape {arr.shape} exceeds the {MAX_RECORD_BYTES}-byte record-size "
                              "limit (SPEC.md 5.5: every dimension of length 0 counted as 1)")
        return np.array([arr.shape[a] for a in self.var_axes], dtype=self._header).tobytes() + arr.tobytes()

    def encode_stacked(self, column: np.ndarray) -> list[bytes]:
        """Records of a fixed-shape field from an array with a leading sample axis."""
        self._check_cast(column)
        if column.ndim < 1:
            raise SampleError(f"batch field {self.name!r} needs a leading sample axis")
        try:
            self._check_shape(column.shape[1:])
        except SampleError as e:
            raise SampleError(f"{e} (for every sample of the batch)") from None
        if column.dtype != self.dtype:
            column = column.astype(self.dtype)
        # One copy per record (C order whatever the input layout); rows stay arrays of self.dtype.
        rows = column.reshape(len(column), math.prod(column.shape[1:]))
        return [row.tobytes() for row in rows]

    def _check_cast(self, src: np.ndarray) -> None:
        if src.dtype != self.dtype and not np.can_cast(src.dtype, self.dtype, casting="safe"):
            raise SampleError(
                f"field {self.name!r} expects {self.field.dtype}; cannot cast {src.dtype} safely "
                f"(convert explicitly, e.g. value.astype({self.field.dtype!r}))"
            )

    def _as_array(self, value: Any) -> np.ndarray:
        target = self.dtype
        if isinstance(value, (np.ndarray, np.generic)):
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            self._check_cast(arr)
        else:
            if isinstance(value, (str, bytes, bytearray, dict)) or value is None:
                raise SampleError(f"field {self.name!r} expects a {self.field.dtype} array, got {type(value).__name__}")
            try:
                probe = np.asarray(value)
                arr = np.asarray(value, dtype=target)
            except (ValueError, TypeError, OverflowError) as e:
                raise SampleError(f"field {self.name!r}: cannot convert value to {self.field.dtype}: {e}") from None
            if probe.dtype.kind not in "biufc" or probe.shape != arr.shape or not np.array_equal(probe, arr):
                raise SampleError(
                    f"field {self.name!r}: value cannot be represented exactly as {self.field.dtype}"
                )
        self._check_shape(arr.shape)
        if arr.dtype != target or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr, dtype=target)
        self._check_size(arr.nbytes + VAR_DIM_BYTES * self.nvar)
        return arr

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        want = self.shape
        if len(shape) != len(want) or any(w is not None and w != s for w, s in zip(want, shape)):
            shown = tuple("*" if w is None else w for w in want)
            raise SampleError(f"field {self.name!r} expects shape {shown}, got {shape}")

    def _check_size(self, n: int) -> None:
        if n > MAX_RECORD_BYTES:
            raise SampleError(f"field {self.name!r}: record of {n} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")

    # ------------------------------------------------------------------ decode

    def decode(self, record: bytes) -> Value:
        """One record -> its value. Arrays are read-only views over ``record`` (no copy).

        Raises:
            CorruptionError: the record contradicts the schema.
        """
        if self._fixed:
            if len(record) != self.record_bytes:
                raise CorruptionError(
                    f"field {self.name!r}: record is {len(record)} bytes, expected {self.record_bytes}"
                )
            # One call builds the shaped view (frombuffer + reshape cost 1.6x as much).
            return np.ndarray(self.shape, self.dtype, record)  # type: ignore[arg-type]
        kind = self.field.dtype
        if kind == "bytes":
            return record
        if kind == "str":
            try:
                return record.decode("utf-8")
            except UnicodeDecodeError:
                raise CorruptionError(f"field {self.name!r}: record is not valid UTF-8") from None
        if self.nvar == 0:
            if len(record) != self.record_bytes:
                raise CorruptionError(
                    f"field {self.name!r}: record is {len(record)} bytes, expected {self.record_bytes}"
                )
            if self._bool:
                self._check_bool(record)
            return np.frombuffer(record, dtype=self.dtype).reshape(self.shape)  # type: ignore[arg-type]
        shape = self.record_shape(record)
        if self._bool:
            self._check_bool(memoryview(record)[VAR_DIM_BYTES * self.nvar :])
        return np.frombuffer(record, dtype=self.dtype, offset=VAR_DIM_BYTES * self.nvar).reshape(shape)

    def _check_bool(self, data: Any) -> None:
        """SPEC.md 4: a bool element is the byte 0 or 1; anything else makes the record invalid."""
        # bytes.translate costs ~0.1 us on a short record but ~1 ns a byte; numpy's max ~1 us plus ~0.05 ns a byte.
        if len(data) < _BOOL_SCAN_WITH_NUMPY:
            bad = bool(bytes(data).translate(None, b"\x00\x01"))
        else:
            bad = bool(np.frombuffer(data, dtype=np.uint8).max() > 1)
        if bad:
            raise CorruptionError(f"field {self.name!r}: bool record holds a byte other than 0 or 1")

    def record_shape(self, record: bytes) -> tuple[int, ...]:
        """The shape a variable-shape record declares, checked against its length."""
        hb = VAR_DIM_BYTES * self.nvar
        if len(record) < hb:
            raise CorruptionError(f"field {self.name!r}: record of {len(record)} bytes is shorter than its header")
        dims = iter(int(d) for d in np.frombuffer(record, dtype=self._header, count=self.nvar))
        shape = tuple(next(dims) if d is None else d for d in self.shape)
        # SPEC.md 5.5: the actual shape obeys the record-size limit with every 0 counted as 1, so a
        # zero-length record cannot declare a shape numpy refuses to describe ("array is too big").
        if math.prod(d or 1 for d in shape) * self.dtype.itemsize > MAX_RECORD_BYTES:
            raise CorruptionError(
                f"field {self.name!r}: header declares shape {shape}, beyond the {MAX_RECORD_BYTES}-byte "
                "record-size limit (a 0 counted as 1)"
            )
        expected = math.prod(shape) * self.dtype.itemsize
        if len(record) - hb != expected:
            raise CorruptionError(
                f"field {self.name!r}: header declares shape {shape} ({expected} bytes) "
                f"but the record holds {len(record) - hb} data bytes"
            )
        return shape

    def decode_batch(self, records: list[bytes]) -> Union[np.ndarray, list[Value]]:
        """Many records -> one stacked, writable array (fixed shape) or a list (variable)."""
        if self.field.is_variable:
            return [self.decode(r) for r in records]
        n = len(records)
        size = self.record_bytes
        assert size is not None
        if not all(len(r) == size for r in records):
            bad = next(len(r) for r in records if len(r) != size)
            raise CorruptionError(f"field {self.name!r}: record is {bad} bytes, expected {size}")
        total = n * size
        if total < _JOIN_BELOW:
            buf: Any = bytearray().join(records)  # one C-level copy; writable
        else:
            # numpy asks the kernel for huge pages for large buffers: filling a
            # fresh 33 MB batch costs ~4x fewer page faults than a bytearray.
            buf = np.empty(total, np.uint8)
            view = memoryview(buf)
            offset = 0
            for r in records:
                view[offset : offset + size] = r
                offset += size
        if self._bool and total:
            self._check_bool(buf)  # one pass over the joined records
        return np.frombuffer(buf, dtype=self.dtype).reshape((n, *self.shape))  # type: ignore[arg-type]

    def check(self, record: bytes) -> Optional[tuple[str, str]]:
        """Everything SPEC.md requires of one record: ``None``, or (code, message)."""
        kind = self.field.dtype
        if kind == "str":
            try:
                record.decode("utf-8")
            except UnicodeDecodeError as e:
                return "invalid-utf8", f"record is not valid UTF-8 at byte {e.start}"
            return None
        if kind == "bytes":
            return None
        try:
            if self.nvar:
                self.record_shape(record)
            elif len(record) != self.record_bytes:
                return "bad-record-length", f"record is {len(record)} bytes, expected {self.record_bytes}"
        except CorruptionError as e:
            return "bad-variable-header", str(e).split(": ", 1)[1]
        if self._bool:
            try:
                self._check_bool(memoryview(record)[VAR_DIM_BYTES * self.nvar :])
            except CorruptionError as e:
                return "bad-bool", str(e).split(": ", 1)[1]
        return None
