"""The conformance suite: vectors regenerate identically, and both implementations pass the runner."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

import rocksds
from conformance import generate, runner
from conformance.generate import raw_dump
from rocksds.validation import ERROR, WARNING, validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.join(ROOT, "conformance", "vectors")
ALL = sorted(f"{g}/{n}" for g in ("valid", "invalid") for n in os.listdir(os.path.join(VECTORS, g)))
PY = sys.executable


def _expected(vector: str) -> dict:
    with open(os.path.join(VECTORS, vector, "expected.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("regen"))
    generate.generate(out)
    return out


def test_vectors_cover_the_brief() -> None:
    names = {v.split("/")[1] for v in ALL}
    assert {f"compression-{c}" for c in rocksds.spec.COMPRESSIONS} <= names
    assert {"empty", "large-record", "many-fields", "unicode-attrs", "future-minor-version", "variable-shapes",
            "dtypes-scalar", "dtypes-fixed", "bytes-and-str", "missing-schema", "malformed-msgpack",
            "higher-major-version", "unknown-dtype", "missing-column-family", "count-too-large",
            "wrong-record-length", "key-gap", "bad-variable-header", "invalid-utf8", "unknown-reader-feature"} <= names
    dtypes = {f["dtype"] for v in ALL if v.startswith("valid/") for f in _expected(v)["dump"]["schema"]["fields"]}
    assert dtypes == rocksds.spec.DTYPES
    assert _expected("valid/future-minor-version")["dump"]["schema"]["version"] == "1.7"
    assert max(len(_expected("valid/many-fields")["dump"]["fields"]), 0) == 40


def test_regeneration_matches_committed_vectors(regenerated) -> None:
    made = sorted(f"{g}/{n}" for g in ("valid", "invalid") for n in os.listdir(os.path.join(regenerated, "vectors", g)))
    assert made == ALL
    for v in ALL:
        with open(os.path.join(regenerated, "vectors", v, "expected.json"), encoding="utf-8") as fh:
            assert fh.read() == open(os.path.join(VECTORS, v, "expected.json"), encoding="utf-8").read(), v
        assert raw_dump(os.path.join(regenerated, "vectors", v, "dataset")) == raw_dump(
            os.path.join(VECTORS, v, "dataset")), v
    cases = os.path.join(ROOT, "conformance", "write_cases")
    assert sorted(os.listdir(cases)) == sorted(os.listdir(os.path.join(regenerated, "write_cases")))
    for name in os.listdir(cases):
        with open(os.path.join(cases, name), encoding="utf-8") as a, \
                open(os.path.join(regenerated, "write_cases", name), encoding="utf-8") as b:
            assert a.read() == b.read(), name


def test_vector_tables_are_portable_and_cover_both_checksums() -> None:
    from rocksds._tables import read_table_footer

    seen = set()
    for v in ALL:
        folder = os.path.join(VECTORS, v, "dataset")
        want = "crc32c" if v.endswith("/checksum-crc32c") else rocksds.spec.TABLE_CHECKSUM
        for name in os.listdir(folder):
            if name.endswith(".sst"):
                footer = read_table_footer(os.path.join(folder, name))
                assert footer is not None and footer.format_version <= rocksds.spec.TABLE_FORMAT_VERSION, (v, name)
                assert footer.checksum == want, (v, name, footer)
                seen.add(footer.checksum)
    assert seen == set(rocksds.spec.PORTABLE_CHECKSUMS)


def test_vectors_hold_only_reader_files_and_are_small() -> None:
    total = 0
    for v in ALL:
        files = os.listdir(os.path.join(VECTORS, v, "dataset"))
        assert all(generate._KEEP.match(f) for f in files), (v, files)  # no WAL, LOCK, LOG, IDENTITY, OPTIONS
        assert "CURRENT" in files
        total += sum(os.path.getsize(os.path.join(VECTORS, v, "dataset", f)) for f in files)
    assert total < 2 * 2**20


def test_vectors_open_read_only_from_a_fresh_copy(tmp_path) -> None:
    """No WAL is needed, and reading a read-only copy leaves it untouched."""
    for v in ("valid/mixed-compressions", "valid/large-record"):
        copy = tmp_path / v.replace("/", "-")
        shutil.copytree(os.path.join(VECTORS, v, "dataset"), copy)
        for f in copy.iterdir():
            f.chmod(stat.S_IRUSR)
        before = sorted(os.listdir(copy))
        with rocksds.open(copy) as ds:
            assert len(ds) == _expected(v)["dump"]["count"]
            ds[len(ds) - 1]
        assert sorted(os.listdir(copy)) == before


@pytest.mark.parametrize("vector", ALL)
def test_validator_reports_expected_codes(vector) -> None:
    want = _expected(vector)["validator"]
    report = validate(os.path.join(VECTORS, vector, "dataset"), deep=True)
    assert sorted(report.codes(ERROR)) == want["errors"]
    assert sorted(report.codes(WARNING)) == want["warnings"]


def test_reference_implementation_passes_runner() -> None:
    results = runner.run([PY, "-m", "conformance.reference_impl"])
    failed = [(r.name, r.detail) for r in results if not r.passed]
    assert not failed
    assert len(results) == len(ALL) + len(os.listdir(os.path.join(ROOT, "conformance", "write_cases")))
    assert not any(r.skipped_fields for r in results)  # rocksdict decodes every codec


def test_second_reader_passes_runner() -> None:
    results = runner.run([PY, "-m", "conformance.second_reader"], write_cases=None)
    failed = [(r.name, r.detail) for r in results if not r.passed]
    assert not failed
    skipped = {r.name.split("/")[1]: r.skipped_fields for r in results if r.skipped_fields}
    # It lacks zstd, and only zstd, and skips exactly the zstd fields of the vectors that need it.
    need = {v.split("/")[1] for v in ALL if v.startswith("valid/") and _expected(v)["requires_compressions"]
            and "zstd" in _expected(v)["requires_compressions"]}
    assert set(skipped) == need == {"compression-zstd", "mixed-compressions"}
    assert skipped["mixed-compressions"] == {"c_zstd": "zstd"}


def test_second_reader_is_independent_of_rocksds() -> None:
    code = ("import sys; from conformance import second_reader; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('rocksds', 'rocksdict')], sorted(sys.modules)")
    subprocess.run([PY, "-c", code], check=True, cwd=ROOT, env=_env())


def test_runner_cli(tmp_path, capsys) -> None:
    some = ["valid/empty", "invalid/missing-schema"]
    for v in some:
        shutil.copytree(os.path.join(VECTORS, v), tmp_path / "vectors" / v)
    args = ["--impl", f"{PY} -m conformance.second_reader", "--vectors", str(tmp_path / "vectors")]
    status = runner.main([*args, "--no-write", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["passed"] and [r["name"] for r in out["results"]] == [f"read:{v}" for v in some]
    # A reader cannot pass the write checks.
    assert runner.main([*args, "--jobs", "1"]) == 1
    text = capsys.readouterr().out
    assert "FAIL  write:empty" in text and text.rstrip().endswith("2/6 checks passed")


# ---------------------------------------------------------------------- the runner catches bad implementations

_MUTANT = '''
import json, os, sys
sys.path.insert(0, {root!r})
from conformance import reference_impl
mode = {mode!r}
cmd, path = sys.argv[1], sys.argv[2]
if cmd == "dump" and mode == "touch":
    open(os.path.join(path, "LOG"), "w").close()
if cmd == "dump" and mode == "accept":
    print(json.dumps({{"dump": "rocksds-canonical"}}))
    sys.exit(0)
if cmd == "dump" and mode in ("flip", "skip-lz4"):
    out = reference_impl.dump(path)
    name = next(iter(out["fields"]))
    if mode == "flip":
        out["fields"][name][-1] = {{"shape": [1], "sha256": "0" * 64}}
    else:
        out["fields"][name] = {{"unsupported_compression": "lz4"}}
    print(json.dumps(out))
    sys.exit(0)
if cmd == "write" and mode == "drop-last":
    case = json.load(open(path))
    case["samples"] = case["samples"][:-1]
    json.dump(case, open(path + ".cut", "w"))
    sys.argv[2] = path + ".cut"
sys.exit(reference_impl.main(sys.argv[1:]))
'''


@pytest.mark.parametrize(
    ("mode", "vector", "why"),
    [
        ("flip", "valid/compression-lz4", "$.fields.values[15]"),
        ("touch", "valid/empty", "changed the dataset directory"),
        ("accept", "invalid/key-gap", "accepted an invalid dataset"),
        ("skip-lz4", "valid/compression-lz4", "which readers must support"),
    ],
)
def test_runner_rejects_wrong_readers(tmp_path, mode, vector, why) -> None:
    script = tmp_path / "mutant.py"
    script.write_text(_MUTANT.format(root=ROOT, mode=mode))
    result = runner.check_read([PY, str(script)], os.path.join(VECTORS, vector), str(tmp_path / "scratch"))
    assert not result.passed
    assert why in result.detail


def test_runner_rejects_wrong_writer(tmp_path) -> None:
    script = tmp_path / "mutant.py"
    script.write_text(_MUTANT.format(root=ROOT, mode="drop-last"))
    case = tmp_path / "bytes-str-unicode.json"
    shutil.copy(os.path.join(ROOT, "conformance", "write_cases", "bytes-str-unicode.json"), case)
    result = runner.check_write([PY, str(script)], str(case), str(tmp_path / "scratch"))
    assert not result.passed and "$.count" in result.detail
