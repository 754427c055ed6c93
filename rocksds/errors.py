"""The rocksds exception hierarchy.

Every error a user can trigger is a :class:`RocksdsError`. Each subclass also
inherits the builtin a caller would naturally catch, so ``except KeyError`` or
``except FileNotFoundError`` keep working. This module imports nothing from the
package.
"""

from __future__ import annotations

__all__ = [
    "RocksdsError",
    "NotADatasetError",
    "SchemaError",
    "UnsupportedVersionError",
    "UnsupportedFeatureError",
    "SampleError",
    "FieldNotFoundError",
    "DatasetExistsError",
    "DatasetLockedError",
    "ReadOnlyError",
    "CorruptionError",
    "UnsupportedCompressionError",
    "ClosedError",
    "DependencyNotFoundError",
    "InvalidArgumentError",
    "ArgumentTypeError",
    "IndexOutOfRangeError",
    "VerificationError",
    "UnsafeInputError",
    "EmptyOutputError",
    "RasterReadError",
]


class RocksdsError(Exception):
    """Base class of every error raised by rocksds."""


class NotADatasetError(RocksdsError, FileNotFoundError):
    """The path does not exist, or is not a rocksds dataset."""


class SchemaError(RocksdsError, ValueError):
    """A schema, or the schema document stored in a dataset, is invalid."""


class UnsupportedVersionError(SchemaError):
    """The dataset was written in a format major version this reader does not know."""


class UnsupportedFeatureError(SchemaError):
    """The dataset requires a feature this implementation does not understand."""


class SampleError(RocksdsError, ValueError):
    """A sample does not match the schema (missing/unknown field, shape, dtype)."""


class FieldNotFoundError(RocksdsError, KeyError):
    """A field name is not part of the schema (or was not opened)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetExistsError(RocksdsError, FileExistsError):
    """``create`` was asked to write where something already exists."""


class DatasetLockedError(RocksdsError, BlockingIOError):
    """Another writer holds the dataset's lock."""


class ReadOnlyError(RocksdsError, PermissionError):
    """A write was attempted through a read-only handle or onto read-only storage."""


class CorruptionError(RocksdsError, OSError):
    """Stored bytes fail a checksum or contradict the schema."""


class UnsupportedCompressionError(RocksdsError, NotImplementedError):
    """A field uses a compression codec that this RocksDB binding cannot decode."""


class ClosedError(RocksdsError, ValueError):
    """The dataset handle was used after ``close()``."""


class DependencyNotFoundError(RocksdsError, ModuleNotFoundError):
    """An optional dependency is missing; the message names the pip command."""


class InvalidArgumentError(RocksdsError, ValueError):
    """An argument has the right type but an unusable value (e.g. ``cache_gb=-1``)."""


class ArgumentTypeError(RocksdsError, TypeError):
    """An argument has the wrong type."""


class IndexOutOfRangeError(RocksdsError, IndexError):
    """A sample index is outside ``0..len(ds)-1`` (after negative-index wrapping)."""


class VerificationError(CorruptionError):
    """A converted dataset, read back, differs from its source; the output was removed."""


class UnsafeInputError(RocksdsError, ValueError):
    """Input would need code execution to load (e.g. a pickle naming a forbidden global); refused."""


class EmptyOutputError(RocksdsError, ValueError):
    """An ingestion would write a dataset (or split) with no samples; the message says what dropped them."""


class RasterReadError(RocksdsError, OSError):
    """An input raster could not be read (a damaged file or block); the message names the file and window."""
