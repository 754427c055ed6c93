"""Check an implementation of the rocksds format, in any language, against the conformance vectors.

    python -m conformance.runner --impl "python -m conformance.reference_impl"
    python -m conformance.runner --impl "python -m conformance.second_reader" --no-write
    python -m conformance.runner --impl "./my-reader" --json

The implementation is a command, split into words by :func:`split_impl`
(POSIX shell quoting, nothing else of a shell), that the runner
extends with ``dump PATH`` and ``write CASE.json OUTDIR``; README.md in this
folder specifies the protocol. Read check: every vector is copied to a
scratch directory, dumped, and the dump compared with ``expected.json``
(valid vectors), or the refusal's error class checked (invalid ones); the
copy must be unchanged afterwards (readers never write). Write check: each
write case is written by the implementation, validated with the reference
validator (``rocksds.validate``, strict and deep) and dumped by the reference
reader, and the result compared with what the case describes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Optional

from .canonical import decode_value, record_entry

__all__ = ["Result", "check_read", "check_write", "run", "main", "split_impl", "REQUIRED_COMPRESSIONS"]

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "vectors")
WRITE_CASES = os.path.join(HERE, "write_cases")
#: Codecs every reader must decode (SPEC.md); a reader may skip fields using others.
REQUIRED_COMPRESSIONS = frozenset({"none", "snappy", "lz4"})
TIMEOUT_S = 120


@dataclass
class Result:
    """The outcome of one check: ``name`` is ``read:valid/<vector>``, ``write:<case>`` and so on."""

    name: str
    passed: bool
    detail: str = ""
    skipped_fields: Optional[dict[str, str]] = None


def split_impl(impl: str) -> list[str]:
    """The words of an ``--impl`` string: ``shlex.split`` (POSIX quoting and escapes).

    Nothing else of a shell applies: no variable assignments (``VAR=x cmd``; write
    ``env VAR=x cmd``), expansions, redirections or pipes. The first word is the
    program, looked up on ``PATH``.
    """
    return shlex.split(impl)


def _call(impl: Sequence[str], *args: str) -> tuple[int, str, str]:
    """Run ``impl`` with ``args``; a program that cannot be started counts as a failed run (exit 127)."""
    try:
        proc = subprocess.run([*impl, *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, ValueError) as e:  # not found, not executable, NUL in an argument
        return 127, "", f"cannot run {list(impl)[:1]!r} (the --impl words are {list(impl)!r}): {e}"
    return proc.returncode, proc.stdout, proc.stderr


def _snapshot(path: str) -> dict[str, tuple[str, int]]:
    out = {}
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def first_difference(got: Any, want: Any, where: str = "$") -> Optional[str]:
    """Where two JSON values first differ, or ``None`` if equal."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if k not in got:
                return f"{where}.{k}: missing"
            if k not in want:
                return f"{where}.{k}: unexpected"
            d = first_difference(got[k], want[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return f"{where}: {len(got)} items, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            d = first_difference(g, w, f"{where}[{i}]")
            if d:
                return d
        return None
    if type(got) is not type(want) and not (isinstance(got, (int, float)) and isinstance(want, (int, float))):
        return f"{where}: {got!r} is a {type(got).__name__}, expected {want!r}"
    return None if got == want else f"{where}: {str(got)[:80]!r}, expected {str(want)[:80]!r}"


def check_read(impl: Sequence[str], vector: str, scratch: str) -> Result:
    """Dump one vector with ``impl`` and judge the outcome against its ``expected.json``."""
    group, name = vector.rstrip(os.sep).split(os.sep)[-2:]
    label = f"read:{group}/{name}"
    with open(os.path.join(vector, "expected.json"), encoding="utf-8") as fh:
        expected = json.load(fh)
    copy = os.path.join(scratch, group, name)
    shutil.copytree(os.path.join(vector, "dataset"), copy)
    before = _snapshot(copy)
    try:
        rc, out, err = _call(impl, "dump", copy)
    except subprocess.TimeoutExpired:
        return Result(label, False, f"no answer within {TIMEOUT_S} s")
    if _snapshot(copy) != before:
        return Result(label, False, "the implementation changed the dataset directory while reading it")
    if expected["kind"] == "invalid":
        must, code = expected["reader"]["must_reject"], expected["reader"]["error"]
        if rc == 0:
            return Result(label, not must, "accepted an invalid dataset" if must else "not required to reject")
        try:
            got = json.loads(out)["error"]
        except (ValueError, KeyError, TypeError):
            return Result(label, False, f"exit {rc} without an error object on stdout: {(out or err)[-300:]}")
        ok = got == code or not must
        return Result(label, ok, f"error {got!r}" + ("" if ok else f", expected {code!r}"))
    if rc != 0:
        return Result(label, False, f"exit {rc}: {(out + err)[-300:]}")
    try:
        got = json.loads(out)
    except ValueError as e:
        return Result(label, False, f"stdout is not JSON: {e}")
    want = expected["dump"]
    skipped = {}
    for fname, value in list(got.get("fields", {}).items()) if isinstance(got, dict) else []:
        if isinstance(value, dict) and "unsupported_compression" in value:
            codec = value["unsupported_compression"]
            field_codec = next((f["compression"] for f in want["schema"]["fields"] if f["name"] == fname), None)
            if codec in REQUIRED_COMPRESSIONS or codec != field_codec:
                return Result(label, False, f"field {fname!r} skipped for codec {codec!r}, which readers must support")
            skipped[fname] = codec
    if skipped:
        want = {**want, "fields": {**want["fields"], **{f: got["fields"][f] for f in skipped}}}
    diff = first_difference(got, want)
    return Result(label, diff is None, diff or "", skipped or None)


def expected_from_case(case: dict[str, Any]) -> dict[str, Any]:
    """The parts of a canonical dump a write case determines."""
    fields = case["schema"]["fields"]
    return {
        "fields_doc": [{k: f[k] for k in ("name", "dtype", "shape", "compression")} for f in fields],
        "attrs": case["schema"].get("attrs", {}),
        "count": len(case["samples"]),
        "fields": {f["name"]: [record_entry(f["dtype"], decode_value(f["dtype"], s[f["name"]]))
                               for s in case["samples"]] for f in fields},
    }


def check_write(impl: Sequence[str], case_path: str, scratch: str) -> Result:
    """Have ``impl`` write one case, then validate and dump it with the reference implementation."""
    from rocksds.validation import validate

    from .reference_impl import dump

    name = os.path.splitext(os.path.basename(case_path))[0]
    label = f"write:{name}"
    out = os.path.join(scratch, "write", name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    try:
        rc, stdout, err = _call(impl, "write", case_path, out)
    except subprocess.TimeoutExpired:
        return Result(label, False, f"no answer within {TIMEOUT_S} s")
    if rc != 0:
        return Result(label, False, f"exit {rc}: {(stdout + err)[-300:]}")
    report = validate(out, deep=True)
    if not report.ok_strict:
        return Result(label, False, "reference validator: " + "; ".join(f"{i.code}: {i.message}" for i in report.issues[:5]))
    with open(case_path, encoding="utf-8") as fh:
        want = expected_from_case(json.load(fh))
    got = dump(out)
    doc = got["schema"]
    got_parts = {
        "fields_doc": [{k: f.get(k) for k in ("name", "dtype", "shape", "compression")} for f in doc["fields"]],
        "attrs": doc.get("attrs"),
        "count": got["count"],
        "fields": got["fields"],
    }
    diff = first_difference(got_parts, want)
    return Result(label, diff is None, diff or "")


def run(impl: Sequence[str] | str, *, vectors: str = VECTORS, write_cases: Optional[str] = WRITE_CASES,
        jobs: int = 0) -> list[Result]:
    """Every read check (and write check unless ``write_cases`` is ``None``) of ``impl``."""
    cmd = split_impl(impl) if isinstance(impl, str) else list(impl)
    if not cmd:
        raise ValueError("the implementation command is empty")
    paths = [os.path.join(vectors, g, n) for g in ("valid", "invalid") if os.path.isdir(os.path.join(vectors, g))
             for n in sorted(os.listdir(os.path.join(vectors, g)))]
    cases = [] if write_cases is None else sorted(
        os.path.join(write_cases, n) for n in os.listdir(write_cases) if n.endswith(".json"))
    with tempfile.TemporaryDirectory(prefix="rocksds-conformance-") as scratch:
        with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
            reads = [pool.submit(check_read, cmd, p, scratch) for p in paths]
            writes = [pool.submit(check_write, cmd, c, scratch) for c in cases]
            return [f.result() for f in reads + writes]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--impl", required=True, help="command of the implementation, e.g. 'python -m conformance.reference_impl'")
    parser.add_argument("--vectors", default=VECTORS, help="vectors folder (default: the committed one)")
    parser.add_argument("--write-cases", default=WRITE_CASES, help="write cases folder (default: the committed one)")
    parser.add_argument("--no-write", action="store_true", help="read checks only (for read-only implementations)")
    parser.add_argument("--jobs", type=int, default=0, help="parallel checks (default: CPU count)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        impl = split_impl(args.impl)
    except ValueError as e:  # unbalanced quotes
        parser.error(f"--impl {args.impl!r}: {e}")
    if not impl:
        parser.error("--impl is empty")
    results = run(impl, vectors=args.vectors, write_cases=None if args.no_write else args.write_cases,
                  jobs=args.jobs)
    failed = [r for r in results if not r.passed]
    if args.json:
        print(json.dumps({"passed": not failed, "results": [asdict(r) for r in results]}, indent=1, ensure_ascii=False))
    else:
        for r in results:
            extra = f"  (skipped fields: {r.skipped_fields})" if r.skipped_fields else ""
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}  {r.detail}{extra}".rstrip())
        print(f"{len(results) - len(failed)}/{len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
