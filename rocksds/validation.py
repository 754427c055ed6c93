"""Check a dataset against SPEC.md and report every violation found.

:func:`validate` reads the raw metadata and records and checks them against the
format itself: it depends on ``spec``, ``keys``, ``schema``, ``records`` and
``_storage`` but never on the reader, so a reader bug cannot hide a format
bug. It opens the dataset read-only through a shadow directory
(``rocksds._storage``), so validating never writes into the dataset.

Every finding is an :class:`Issue` with a stable kebab-case ``code`` (see
:data:`CODES`), a severity and a sentence. Errors make a dataset invalid;
warnings (``uncommitted-record``, ``extra-column-family``, ...) describe data a
reader ignores. ``rocksds validate PATH`` is the command-line front end.

>>> report = rocksds.validate("chips.rds")            # doctest: +SKIP
>>> report.ok, [i.code for i in report.issues]        # doctest: +SKIP
(True, [])
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import asdict, dataclass, field as dc_field
from typing import Any, Literal, Optional

from . import spec
from ._storage import Storage, list_column_families
from ._tables import CODEC_NAMES, read_table_footer, table_properties
from .errors import CorruptionError, RocksdsError, SchemaError
from .keys import decode_count, encode_key
from .records import RecordCodec
from ._document import field_entry, is_writer_map, parse_version
from .schema import Field, Schema, decode_document
from .stats import DatasetStats

__all__ = ["validate", "Issue", "Report", "CODES", "ERROR", "WARNING"]

ERROR: Literal["error"] = "error"
WARNING: Literal["warning"] = "warning"
Severity = Literal["error", "warning"]

#: Every code :func:`validate` can report -> (severity, meaning). Codes are stable API.
CODES: dict[str, tuple[Severity, str]] = {
    "not-a-database": (ERROR, "the path does not exist or is not a RocksDB database (no CURRENT file)"),
    "unreadable": (ERROR, "RocksDB cannot open the database or a column family (damaged MANIFEST or table file)"),
    "missing-metadata": (ERROR, f"there is no {spec.META_CF!r} column family, so this is not a rocksds dataset"),
    "missing-schema": (ERROR, "the metadata column family has no 'schema' record"),
    "malformed-schema": (ERROR, "the schema record is not valid msgpack, or breaks a rule of the schema document"),
    "unsupported-version": (ERROR, "the schema's major format version is not one this validator knows"),
    "unknown-dtype": (ERROR, "a field's dtype is not one of the format's dtypes"),
    "unknown-compression": (ERROR, "a field's compression is not one of the format's codecs"),
    "unknown-reader-feature": (ERROR, "reader_features names a feature this implementation does not know"),
    "unknown-writer-feature": (WARNING, "writer_features names an unknown feature: readable, but not appendable"),
    "malformed-writer-key": (WARNING, "writer_features is not a list of str (readable, not appendable), or writer "
                             "not a map of str to str; readers ignore both"),
    "missing-count": (ERROR, "the metadata column family has no 'count' record"),
    "bad-count": (ERROR, "the 'count' record is not an 8-byte big-endian integer below 2**63"),
    "missing-column-family": (ERROR, "a field's column family does not exist"),
    "missing-record": (ERROR, "a sample below count has no record in a field"),
    "foreign-key": (ERROR, "a field column family holds a key that is not an 8-byte sample key"),
    "bad-record-length": (ERROR, "a fixed-shape record does not have exactly prod(shape) * itemsize bytes"),
    "bad-variable-header": (ERROR, "a variable-shape record's header disagrees with its data length"),
    "invalid-utf8": (ERROR, "a str record is not valid UTF-8"),
    "bad-bool": (ERROR, "a bool record holds a byte other than 0 or 1"),
    "corrupt-block": (ERROR, "RocksDB reports corruption (checksum mismatch, bad block) while reading"),
    "unnamed-table": (ERROR, "table files newer than every file the MANIFEST names are not named by it: the "
                      "MANIFEST was rolled back (truncated or an older copy), and those files hold lost commits"),
    "rolled-back-count": (ERROR, f"count is below the committed-count witness ({spec.WITNESS_FILE}): the MANIFEST "
                          "was rolled back (truncated, or an older copy) and lost commits"),
    "malformed-witness": (ERROR, f"the committed-count witness ({spec.WITNESS_FILE}) is not a regular file of "
                          f"{spec.WITNESS_BYTES} bytes with the right magic, layout and checksum"),
    "damaged-log": (ERROR, "a write-ahead log record is damaged: the commits from there on cannot be read"),
    "non-portable-table": (ERROR, "a table file uses a checksum type or format_version that RocksDB 6 cannot read"),
    "compression-mismatch": (WARNING, "a field's tables use another codec than its schema 'compression' "
                             "(readers decode what the tables hold)"),
    "uncommitted-record": (WARNING, "a record at or beyond count (left by an interrupted ingest; dropped on next append)"),
    "extra-column-family": (WARNING, "a column family that no field of the schema names"),
    "extra-record": (WARNING, "a record in the 'default' column family, where the format stores nothing"),
    "malformed-stats": (ERROR, "the 'stats' record breaks its layout (SPEC.md 2.1) or names fields, dtypes or bands "
                        "the schema does not have"),
    "stale-stats": (WARNING, "the 'stats' record covers fewer or more samples than count (a writer that does not "
                    "maintain statistics appended; `rocksds stats --recompute` updates them)"),
}

#: How many issues of one (code, field) are listed before the rest are only counted.
DEFAULT_MAX_LISTED = 20


@dataclass(frozen=True)
class Issue:
    """One violation.

    Args:
        code: stable kebab-case code, a key of :data:`CODES`.
        severity: ``"error"`` or ``"warning"``.
        message: a sentence for humans.
        field: the field concerned, if any.
        index: the sample index concerned, if any.
    """

    code: str
    severity: Severity
    message: str
    field: Optional[str] = None
    index: Optional[int] = None


@dataclass
class Report:
    """Everything :func:`validate` found.

    Attributes:
        path: the dataset checked.
        issues: listed issues, in the order found (at most ``max_listed`` per code and field).
        counts: code -> total number of occurrences, listed or not.
        unlisted: code -> occurrences beyond the listing limit, counted but not listed.
        count: the committed sample count, if it could be read.
        fields: names of the fields whose records were checked.
        records_checked: records examined in field column families.
        deep: whether every column family was scanned with checksum verification.
    """

    path: str
    issues: list[Issue] = dc_field(default_factory=list)
    counts: Counter[str] = dc_field(default_factory=Counter)
    count: Optional[int] = None
    fields: list[str] = dc_field(default_factory=list)
    records_checked: int = 0
    deep: bool = False
    max_listed: int = DEFAULT_MAX_LISTED
    unlisted: Counter[str] = dc_field(default_factory=Counter)
    _listed: Counter[tuple[str, Optional[str]]] = dc_field(default_factory=Counter, repr=False)

    def add(self, code: str, message: str, *, field: Optional[str] = None, index: Optional[int] = None, n: int = 1) -> None:
        """Record ``n`` occurrences of ``code``; list the first ``max_listed`` per (code, field)."""
        self.counts[code] += n
        slot = (code, field)
        if self._listed[slot] < self.max_listed:
            self._listed[slot] += 1
            self.issues.append(Issue(code, CODES[code][0], message, field, index))
        else:
            self.unlisted[code] += n

    @property
    def errors(self) -> int:
        """Number of error occurrences."""
        return sum(n for c, n in self.counts.items() if CODES[c][0] == ERROR)

    @property
    def warnings(self) -> int:
        """Number of warning occurrences."""
        return sum(n for c, n in self.counts.items() if CODES[c][0] == WARNING)

    @property
    def ok(self) -> bool:
        """True if no error was found (warnings allowed)."""
        return self.errors == 0

    @property
    def ok_strict(self) -> bool:
        """True if nothing at all was found."""
        return not self.counts

    def codes(self, severity: Optional[Severity] = None) -> set[str]:
        """The distinct codes found, optionally of one severity only."""
        return {c for c in self.counts if severity is None or CODES[c][0] == severity}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``rocksds validate --json`` prints)."""
        return {
            "path": self.path,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "count": self.count,
            "fields": self.fields,
            "records_checked": self.records_checked,
            "deep": self.deep,
            "issues": [asdict(i) for i in self.issues],
            "unlisted": dict(sorted(self.unlisted.items())),
        }


def validate(path: str | os.PathLike[str], *, deep: bool = False, max_listed: int = DEFAULT_MAX_LISTED) -> Report:
    """Check the dataset at ``path`` against SPEC.md; never raises for a bad dataset.

    Checks the metadata column family and schema document (format, version,
    features, every field), the count, that every field's column family
    exists, that each holds exactly the keys ``0..count-1`` (no gap, no
    foreign key; keys beyond ``count`` are warnings), and every record against
    its field (fixed length, variable-shape header, UTF-8, bool bytes).
    RocksDB verifies block checksums on every read.

    Args:
        path: the dataset directory.
        deep: also scan every other column family (``default``, metadata,
            ones the schema does not name) with checksum verification.
        max_listed: issues listed per code and field; the rest are counted.
    """
    path = os.fspath(path)
    report = Report(path=path, deep=deep, max_listed=max_listed)
    if not os.path.isfile(os.path.join(path, "CURRENT")):
        report.add("not-a-database", f"{path} does not exist or is not a RocksDB database (no CURRENT file)")
        return report
    try:
        cfs = list_column_families(path)
    except RocksdsError as e:
        report.add("unreadable", f"RocksDB cannot list the column families: {e}")
        return report
    if spec.META_CF not in cfs:
        report.add("missing-metadata", f"no {spec.META_CF!r} column family: this RocksDB database is not a rocksds dataset")
        return report
    _check_tables(report, path)
    _check_manifest(report, path, cfs)
    meta = _open(report, path, [spec.META_CF])
    if meta is None:
        return report
    try:
        fields, claimed = _check_schema(report, meta)
        count = _check_count(report, meta)
        _check_witness(report, path, meta, count)
        _check_stats(report, meta, fields, count, claimed is not None)
        if deep:
            _scan_metadata(report, meta)
    finally:
        meta.close()
    report.count = count
    for cf in cfs if claimed is not None else []:
        if cf not in claimed and cf not in (spec.META_CF, spec.DEFAULT_CF):
            report.add("extra-column-family", f"column family {cf!r} belongs to no field of the schema")
    for name, f in fields.items():
        if f.column_family not in cfs:
            report.add("missing-column-family", f"field {name!r}: column family {f.column_family!r} does not exist",
                       field=name)
    present = {n: f for n, f in fields.items() if f.column_family in cfs}
    others = [cf for cf in cfs if cf != spec.META_CF and cf not in (claimed or ())] if deep else [spec.DEFAULT_CF]
    _check_records(report, path, present, count, others, deep)
    return report


# ---------------------------------------------------------------------- opening


def _check_tables(report: Report, path: str) -> None:
    """Every table file's footer names a portable checksum type and format_version (SPEC.md 6)."""
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not name.endswith(".sst") or name.startswith("."):
            continue
        try:
            if not stat.S_ISREG(os.lstat(full).st_mode):
                continue
        except FileNotFoundError:
            continue  # a live writer compacted it away since the listing
        footer = read_table_footer(full)
        if footer is None:
            continue  # not a block-based table: RocksDB reports it when it opens the file
        if footer.checksum not in spec.PORTABLE_CHECKSUMS or footer.format_version > spec.TABLE_FORMAT_VERSION:
            report.add("non-portable-table", f"table file {name}: checksum {footer.checksum}, format_version "
                       f"{footer.format_version} (portable: {sorted(spec.PORTABLE_CHECKSUMS)}, format_version <= "
                       f"{spec.TABLE_FORMAT_VERSION})")


def _check_manifest(report: Report, path: str, cfs: list[str]) -> None:
    """Table files the MANIFEST should name but does not (see ``Storage.rolled_back_tables``)."""
    try:
        storage = Storage.open_read_only(path, cfs)
    except RocksdsError:
        return  # the opens that follow report why
    try:
        lost = storage.rolled_back_tables()
    finally:
        storage.close()
    for name in lost:
        report.add("unnamed-table", f"table file {name} is newer than every file the MANIFEST names but not named "
                   "by it: the MANIFEST was rolled back (truncated, or replaced by an older copy), so the dataset "
                   "opens without the commits this file holds. Restore the MANIFEST-* and CURRENT files from a "
                   "complete copy; do not open the dataset for appending, which would delete the file")


def _open(report: Report, path: str, names: list[str]) -> Optional[Storage]:
    try:
        return Storage.open_read_only(path, names)
    except RocksdsError as e:
        low = str(e).lower()
        code = "corrupt-block" if "corrupt" in low and "no such file" not in low else "unreadable"
        if code == "corrupt-block" and _report_damaged_log(report, path):
            return None
        report.add(code, f"cannot open column families {names}: {e}")
        return None


def _report_damaged_log(report: Report, path: str) -> bool:
    """Whether the damage an open reported is in the write-ahead log (reported, with what a salvage keeps).

    Opens differ only in how they replay the log, so if an open that stops
    at the first damaged log record succeeds, the damage is in the log.
    """
    try:
        salvaged = Storage.open_read_only(path, [spec.META_CF], salvage=True)
    except RocksdsError:
        return False
    try:
        raw = salvaged.get(spec.META_CF, spec.COUNT_KEY)
    finally:
        salvaged.close()
    kept = decode_count(raw) if raw is not None and len(raw) == 8 else None
    report.add("damaged-log", f"the write-ahead log (*.log) is damaged, so commits after the damage cannot be "
               f"read; what precedes it holds {kept if kept is not None else 'an unknown number of'} samples. "
               "Restore the dataset from a copy, or keep only those samples (permanently) with "
               "rocksds.open(path, mode='a', salvage_log=True)")
    return True


# ---------------------------------------------------------------------- metadata


def _check_schema(report: Report, meta: Storage) -> tuple[dict[str, Field], Optional[set[str]]]:
    """Check the schema record; return the usable fields and every column family the document names
    (``None`` when no document could be read, so no column family can be called extra)."""
    try:
        raw = meta.get(spec.META_CF, spec.SCHEMA_KEY)
    except RocksdsError as e:
        report.add("corrupt-block", f"cannot read the schema record: {e}")
        return {}, None
    if raw is None:
        report.add("missing-schema", f"the {spec.META_CF!r} column family has no 'schema' record")
        return {}, None
    try:
        doc = decode_document(raw)
    except SchemaError as e:
        report.add("malformed-schema", str(e))
        return {}, None
    if not isinstance(doc, dict):
        report.add("malformed-schema", f"the schema document must be a map, got {type(doc).__name__}")
        return {}, None
    # SPEC.md 8: format, then version, then reader_features, then the rest; each check that fails
    # ends the document's checks, since the later rules hold only for documents that pass it.
    if doc.get("format") != spec.FORMAT_NAME:
        report.add("malformed-schema", f"'format' must be {spec.FORMAT_NAME!r}, got {str(doc.get('format'))[:40]!r}")
        return {}, None
    try:
        major, _minor = parse_version(doc.get("version"))
    except SchemaError as e:
        report.add("malformed-schema", str(e))
        return {}, None
    if major != spec.FORMAT_MAJOR:
        report.add("unsupported-version",
                   f"format version {doc['version']} has major {major}; this validator knows major {spec.FORMAT_MAJOR}")
        return {}, None
    features = doc.get("reader_features", [])
    if not isinstance(features, list) or not all(isinstance(x, str) for x in features):
        report.add("malformed-schema", "'reader_features' must be a list of strings")
        return {}, None
    if set(features) - spec.KNOWN_READER_FEATURES:
        report.add("unknown-reader-feature", "reader_features names features this implementation does not know: "
                   f"{sorted(set(features) - spec.KNOWN_READER_FEATURES)}")
        return {}, None
    _check_writer_keys(report, doc)
    fields, claimed, specific = _check_fields(report, doc.get("fields"))
    if specific:
        return fields, claimed
    try:
        # Rules spanning fields (duplicate names or column families), attrs.
        Schema.from_document({**doc, "writer_features": []})
    except SchemaError as e:
        report.add("malformed-schema", str(e))
    return fields, claimed


def _check_writer_keys(report: Report, doc: dict[str, Any]) -> None:
    """``writer_features`` and ``writer``: rules for writers that readers ignore (SPEC.md 3.2), so warnings."""
    features = doc.get("writer_features", [])
    if not isinstance(features, list) or not all(isinstance(x, str) for x in features):
        report.add("malformed-writer-key", "'writer_features' is not a list of strings: readers ignore it, "
                   "but no writer can append")
    elif set(features) - spec.KNOWN_WRITER_FEATURES:
        report.add("unknown-writer-feature", "writer_features names features this implementation does not know: "
                   f"{sorted(set(features) - spec.KNOWN_WRITER_FEATURES)}")
    if not is_writer_map(doc.get("writer", {})):
        report.add("malformed-writer-key", "'writer' is not a map of strings to strings (informational; readers ignore it)")


def _check_fields(report: Report, raw: Any) -> tuple[dict[str, Field], set[str], bool]:
    """Check each ``fields`` entry on its own; return usable fields, claimed CFs, and whether any failed."""
    if not isinstance(raw, list):
        report.add("malformed-schema", "'fields' must be a list")
        return {}, set(), True
    fields: dict[str, Field] = {}
    claimed: set[str] = set()
    failed = False
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            report.add("malformed-schema", f"fields[{i}] must be a map")
            failed = True
            continue
        name = entry.get("name")
        label = f"{name!r}" if isinstance(name, str) else f"fields[{i}]"
        cf = entry.get("column_family")
        if isinstance(cf, str):
            claimed.add(cf)
        if entry.get("dtype") not in spec.DTYPES:
            report.add("unknown-dtype", f"field {label}: unknown dtype {entry.get('dtype')!r}",
                       field=name if isinstance(name, str) else None)
            failed = True
            continue
        if entry.get("compression") not in spec.COMPRESSIONS:
            report.add("unknown-compression", f"field {label}: unknown compression {entry.get('compression')!r}",
                       field=name if isinstance(name, str) else None)
            failed = True
            continue
        try:
            name, known = field_entry(entry, i)
            f = Field(**known)
        except SchemaError as e:
            report.add("malformed-schema", f"field {label}: {e}")
            failed = True
            continue
        if name in fields:
            report.add("malformed-schema", f"field name {name!r} appears twice")
            failed = True
            continue
        fields[name] = f
    return fields, claimed, failed


def _check_count(report: Report, meta: Storage) -> Optional[int]:
    try:
        raw = meta.get(spec.META_CF, spec.COUNT_KEY)
    except RocksdsError as e:
        report.add("corrupt-block", f"cannot read the count record: {e}")
        return None
    if raw is None:
        report.add("missing-count", f"the {spec.META_CF!r} column family has no 'count' record")
        return None
    try:
        return decode_count(raw)
    except ValueError as e:
        report.add("bad-count", f"the count record ({raw[:16].hex()}) is malformed: {e}")
        return None


def _check_witness(report: Report, path: str, meta: Storage, count: Optional[int]) -> None:
    """The committed-count witness (SPEC.md 7.1), read just before ``meta``'s snapshot: well formed, not above ``count``.

    A count below it is looked at once more, as readers do: an ``overwrite``
    that renamed a smaller dataset into place between the witness and the
    snapshot is no rollback.
    """
    witness = meta.witness
    if witness.problem is not None:
        report.add("malformed-witness", f"{witness.problem}; readers refuse the dataset until it is restored from a "
                   f"copy, or {spec.WITNESS_FILE} is deleted once every sample is known to be there")
    elif witness.count is not None and count is not None and count < witness.count and not _agrees_now(path):
        report.add("rolled-back-count", f"count is {count}, but {witness.count} samples were committed "
                   f"({spec.WITNESS_FILE}): the MANIFEST was rolled back (truncated, or replaced by an older copy) "
                   "and lost commits. Restore CURRENT and the MANIFEST-* files from a complete copy; do not open "
                   "the dataset for appending")


def _agrees_now(path: str) -> bool:
    """Whether a fresh snapshot of ``path`` has a count at or above its witness (False if it cannot tell)."""
    try:
        again = Storage.open_read_only(path, [spec.META_CF])
    except RocksdsError:
        return False
    try:
        raw = again.get(spec.META_CF, spec.COUNT_KEY)
        witness = again.witness
        return (raw is not None and witness.problem is None and witness.count is not None
                and decode_count(raw) >= witness.count)
    except (RocksdsError, ValueError):
        return False
    finally:
        again.close()


def _check_stats(report: Report, meta: Storage, fields: dict[str, Field], count: Optional[int], schema_ok: bool) -> None:
    """The optional ``stats`` record (SPEC.md 2.1): its layout, its fields against the schema, its count."""
    try:
        raw = meta.get(spec.META_CF, spec.STATS_KEY)
    except RocksdsError as e:
        report.add("corrupt-block", f"cannot read the stats record: {e}")
        return
    if raw is None or not schema_ok:
        return
    try:
        stats = DatasetStats.from_bytes(raw, fields)
    except CorruptionError as e:
        report.add("malformed-stats", str(e))
        return
    if count is not None and stats.count != count:
        report.add("stale-stats", f"the stats record covers {stats.count} samples, count is {count}")


def _scan_metadata(report: Report, meta: Storage) -> None:
    """Read every metadata record, so its blocks' checksums are verified.

    Keys other than ``schema`` and ``count`` are reserved for later minor
    versions (SPEC.md, section 2), so they are not reported.
    """
    try:
        for _key, _value in meta.iterate(spec.META_CF):
            pass
    except RocksdsError as e:
        report.add("corrupt-block", f"reading the metadata column family: {e}")


# ---------------------------------------------------------------------- records


def _check_records(
    report: Report, path: str, fields: dict[str, Field], count: Optional[int], others: list[str], deep: bool
) -> None:
    names = [f.column_family for f in fields.values()] + others
    if not names:
        return
    opened = _open_many(report, path, names)
    if opened is None:
        return
    storage, names = opened
    try:
        for name, f in fields.items():
            if f.column_family in names:
                report.fields.append(name)
                _check_field(report, storage, name, f, count)
        _check_table_codecs(report, path, storage, fields)
        for cf in others:
            if cf in names:
                _scan_other(report, storage, cf, deep)
    finally:
        storage.close()


def _open_many(report: Report, path: str, names: list[str]) -> Optional[tuple[Storage, list[str]]]:
    """Open all ``names`` at once; if that fails, report the ones that cannot be opened and open the rest."""
    try:
        return Storage.open_read_only(path, names), names
    except RocksdsError:
        pass
    good = []
    for n in names:
        probe = _open(report, path, [n])
        if probe is not None:
            probe.close()
            good.append(n)
    if not good:
        return None
    try:
        return Storage.open_read_only(path, good), good
    except RocksdsError as e:  # pragma: no cover - each opened alone
        report.add("unreadable", f"cannot open column families {good} together: {e}")
        return None


def _check_field(report: Report, storage: Storage, name: str, f: Field, count: Optional[int]) -> None:
    """Walk one field's column family in key order, checking keys and records.

    A corrupt block stops a RocksDB iterator; the walk then resumes at the next
    sample key, so one bad block costs the samples it holds, not the rest.
    """
    cf = f.column_family
    assert cf is not None
    codec = RecordCodec(name, f)
    expected = 0  # the next sample index we expect to see
    beyond = 0
    start: Optional[bytes] = None
    while True:
        try:
            for key, value in storage.iterate(cf, start):
                if len(key) != spec.KEY_BYTES:
                    report.add("foreign-key", f"field {name!r}: key {key[:16].hex()} is {len(key)} bytes, "
                               f"not {spec.KEY_BYTES}", field=name)
                    continue
                index = int.from_bytes(key, "big")
                if count is not None and index >= count:
                    beyond += 1
                    continue
                if index > expected:
                    _missing(report, name, expected, index)
                expected = index + 1
                report.records_checked += 1
                problem = codec.check(value)
                if problem is not None:
                    code, message = problem
                    report.add(code, f"field {name!r}, sample {index}: {message}", field=name, index=index)
            break
        except RocksdsError as e:
            report.add("corrupt-block", f"field {name!r}, sample {expected}: cannot be read: {e}",
                       field=name, index=expected)
            expected += 1
            if count is None or expected >= count:
                return
            start = encode_key(expected)
    if count is not None and expected < count:
        _missing(report, name, expected, count)
    if beyond:
        report.add("uncommitted-record", f"field {name!r}: {beyond} record(s) at or beyond count={count} "
                   "(left by an interrupted ingest; removed when the dataset is next opened for append)",
                   field=name, n=beyond)


def _check_table_codecs(report: Report, path: str, storage: Storage, fields: dict[str, Field]) -> None:
    """Compare each field's ``compression`` with the codec its table files record (SPEC.md 6).

    The tables' codec is what readers decode, so a mismatch is a warning: it
    misleads only a reader deciding from the schema whether it can open the field.
    """
    by_cf = {f.column_family: (name, f.compression) for name, f in fields.items()}
    try:
        files = storage.table_files()
    except RocksdsError:
        return  # the record checks already reported what RocksDB could not read
    found: dict[str, set[str]] = {}
    for fname in files:
        props = table_properties(os.path.join(path, fname)) or {}
        cf, codec = props.get("rocksdb.column.family.name"), CODEC_NAMES.get(props.get("rocksdb.compression", ""))
        if cf in by_cf and codec is not None:
            found.setdefault(cf, set()).add(codec)
    for cf, codecs in sorted(found.items()):
        name, declared = by_cf[cf]
        if codecs - {declared}:
            report.add("compression-mismatch", f"field {name!r}: the schema says {declared!r} but its tables are "
                       f"{', '.join(sorted(codecs))}; readers decode what the tables hold", field=name)


def _missing(report: Report, name: str, start: int, stop: int) -> None:
    what = f"sample {start}" if stop - start == 1 else f"samples {start}..{stop - 1}"
    report.add("missing-record", f"field {name!r}: no record for {what}", field=name, index=start, n=stop - start)


def _scan_other(report: Report, storage: Storage, cf: str, deep: bool) -> None:
    """Records in column families no field owns; ``default`` is only peeked at unless ``deep``."""
    try:
        for key, _value in storage.iterate(cf):
            if cf == spec.DEFAULT_CF:
                report.add("extra-record", f"the 'default' column family holds key {key[:16].hex()}; it must be empty")
                if not deep:
                    return
    except RocksdsError as e:
        report.add("corrupt-block", f"reading column family {cf!r}: {e}")
