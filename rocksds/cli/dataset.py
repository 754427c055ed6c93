"""``rocksds info``, ``head``, ``report``, ``stats`` and ``validate``: the commands that look at one dataset.

Parsing and printing only: each handler calls :func:`rocksds.tools.info.info`,
:func:`rocksds.open` with :mod:`rocksds.tools.preview`, :mod:`rocksds.tools.stats`,
:func:`rocksds.tools.report.write_report`
or :func:`rocksds.validate`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np

from .. import open as open_dataset
from ..tools.info import info, readable_json
from ..tools.stats import recompute, summary
from ..validation import validate

__all__ = ["register"]


def _cmd_info(args: argparse.Namespace) -> int:
    report = info(args.path)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"{report['path']}: rocksds {report['format_version']}, {report['count']} samples, "
          f"{report['disk_bytes'] / 2**20:.1f} MiB on disk")
    for f in report["fields"]:
        shape = "(" + ", ".join("*" if d is None else str(d) for d in f["shape"]) + ")"
        raw = "" if f["raw_bytes"] is None else f", {f['raw_bytes'] / 2**20:.1f} MiB raw"
        print(f"  {f['name']:<16} {f['dtype']:<10} {shape:<20} {f['compression']}{raw}")
    if report["attrs"]:
        print("  attrs: " + "\n  ".join(readable_json(report["attrs"]).splitlines()))
    if report["writer"]:
        print("  written by: " + ", ".join(f"{k} {v}" for k, v in report["writer"].items()))
    return 0


def _summarize(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return f"{value.dtype}{list(value.shape)} (empty)"
        if value.ndim == 0 or value.size <= 6:
            return f"{value.dtype}{list(value.shape)} {value.tolist()}"
        if value.dtype.kind in "biuf":
            return (f"{value.dtype}{list(value.shape)} min={value.min():.4g} max={value.max():.4g} "
                    f"mean={value.astype(np.float64).mean():.4g}")
        return f"{value.dtype}{list(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _band_list(text: str) -> list[int | str]:
    """``"3,2,1"`` -> [3, 2, 1]; ``"B4,B3,B2"`` -> band names."""
    return [int(b) if b.lstrip("-").isdigit() else b for b in text.split(",")]


def _cmd_head(args: argparse.Namespace) -> int:
    with open_dataset(args.path, cache_gb=0) as ds:
        n = min(args.n, len(ds))
        indices = args.index if args.index else list(range(n))
        for i in indices:
            sample = ds[i]
            print(f"[{i}]")
            for name, value in sample.items():
                print(f"  {name}: {_summarize(value)}")
            if args.png:
                from ..tools.preview import save_png

                out = save_png(sample, f"{args.png.rstrip(os.sep)}-{i}.png", field=args.field,
                               bands=args.bands, attrs=ds.attrs)
                print(f"  saved {out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ..tools.report import write_report

    out = args.output or os.path.basename(os.path.abspath(args.path)).removesuffix(".rds") + "-report.html"
    write_report(args.path, out, sample=args.sample, thumbs=args.thumbs, seed=args.seed)
    if not args.quiet:
        print(f"wrote {out} ({os.path.getsize(out) / 2**10:.0f} KiB, self-contained: open it in a browser)")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    if args.recompute:
        recompute(args.path)
    report = summary(args.path)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    if not report["stored"]:
        print(f"{args.path}: no statistics stored ({report['count']} samples); `rocksds stats {args.path} "
              "--recompute` computes them")
        return 0
    stale = f", STALE: they cover {report['stats_count']} (run with --recompute)" if report["stale"] else ""
    print(f"{args.path}: statistics of {report['stats_count']} of {report['count']} samples{stale}")

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.6g}"

    for name, f in report["fields"].items():
        nodata = "" if f["nodata"] is None else f", nodata {f['nodata']:g}"
        print(f"  {name} ({f['dtype']}{nodata}):")
        print(f"    {'band':<12} {'count':>12} {'min':>10} {'max':>10} {'mean':>10} {'std':>10} {'p2':>10} {'p98':>10}")
        for b in f["bands"]:
            print(f"    {b['name']:<12} {b['count']:>12} " + " ".join(
                f"{num(b[k]):>10}" for k in ("min", "max", "mean", "std", "p2", "p98")))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    report = validate(args.path, deep=args.deep)
    failed = not (report.ok_strict if args.strict else report.ok)
    geo = []
    if (args.geo or args.against) and report.ok:
        from ..tools.geocheck import check_geometry

        geo = check_geometry(args.path, args.against or [])
        failed = failed or bool(geo)
    if args.json:
        extra = {"geo": [g.to_dict() for g in geo]} if (args.geo or args.against) else {}
        print(json.dumps({**report.to_dict(), **extra, "strict": args.strict, "passed": not failed}, indent=2,
                         ensure_ascii=False))
        return 1 if failed else 0
    verdict = "INVALID" if not report.ok else ("OK with warnings" if report.warnings else "OK")
    count = "unknown count" if report.count is None else f"count {report.count}"
    print(f"{report.path}: {verdict} ({report.errors} errors, {report.warnings} warnings; {count}, "
          f"{len(report.fields)} fields, {report.records_checked} records checked{', deep' if report.deep else ''})")
    for issue in report.issues:
        print(f"  {issue.severity:<7} {issue.code:<22} {issue.message}")
    for code, n in report.to_dict()["unlisted"].items():
        print(f"  ... and {n} more {code}")
    if args.geo or args.against:
        print(f"  geometry: {'OK' if not geo else f'{len(geo)} issues listed'}")
        for g in geo:
            print(f"  error   {g.code:<22} {g.message}")
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add ``info``, ``head``, ``report``, ``stats`` and ``validate`` to the ``rocksds`` command's subparsers."""
    p = sub.add_parser("info", help="schema, count, sizes and attrs of a dataset")
    p.add_argument("path", help="the rocksds dataset directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser("head", aliases=["show"], help="print the first samples (or --index ones)")
    p.add_argument("path", help="the rocksds dataset directory")
    p.add_argument("-n", type=int, default=3, help="how many samples from the start (default 3)")
    p.add_argument("--index", type=int, action="append", help="sample index to show (repeatable)")
    p.add_argument("--png", metavar="PREFIX", help="also save each sample's image as PREFIX-<i>.png")
    p.add_argument("--field", default="image", help="field to render with --png (default: image)")
    p.add_argument("--bands", type=_band_list, metavar="B,G,R",
                   help="bands to render as RGB with --png: indices, or names from attrs['bands']")
    p.set_defaults(handler=_cmd_head)

    p = sub.add_parser("report", help="write one self-contained HTML page: schema, sizes, band statistics, "
                       "chip thumbnails, footprints")
    p.add_argument("path", help="the rocksds dataset directory")
    p.add_argument("-o", "--output", metavar="FILE.html", help="the page to write (default: <name>-report.html here)")
    p.add_argument("--sample", type=int, default=256, help="chips read for the band statistics (default 256)")
    p.add_argument("--thumbs", type=int, default=16, help="chips shown as thumbnails (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the chip and pixel sample (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("stats", help="per-band statistics stored with a dataset (count, min, max, mean, std, p2, p98)")
    p.add_argument("path", help="the rocksds dataset directory")
    p.add_argument("--recompute", action="store_true",
                   help="recompute them from the records and store them (takes the writer lock)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_stats)

    p = sub.add_parser("validate", help="check a dataset against the format; exit 1 on any violation")
    p.add_argument("path", help="the dataset directory to check (never written to)")
    p.add_argument("--deep", action="store_true",
                   help="also scan every other column family (default, metadata, unknown) with checksum verification")
    p.add_argument("--strict", action="store_true", help="fail on warnings too (e.g. uncommitted-record)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--geo", action="store_true",
                   help="also check chip geometry: bounds vs transform, attrs, sources (raster-ingestion datasets)")
    p.add_argument("--against", action="append", metavar="OTHER",
                   help="with --geo: fail if a chip overlaps a chip of OTHER from the same scene (split leakage; "
                        "repeatable)")
    p.set_defaults(handler=_cmd_validate)
