"""rocksds against the formats a user would pick instead, in one run, on the same data.

Run ``python benchmarks/harness.py [--quick] [--out DIR]`` from a checkout (or
``rocksds bench``); without ``--out`` the results go to a new temporary
folder, so the published ``benchmarks/results/`` changes only when named.
For each workload (see ``workloads.py``) every backend is written from the
same in-memory arrays, read back and compared with them (a mismatch aborts
the run), then read in the same shuffled order:

* rocksds's default path first (``backends.rocksds_backend("rocksds")``:
  what a new user writes, no option set), then its tuned variants (``wal=False``,
  ``bulk=True``, a named compression), written only and labelled tuned;
* the peers: h5py (naive, chunk = 1 sample, best), LMDB, .npy files, numpy
  memmap (``backends.py``), LitData, MosaicML Streaming, Zarr v3 and
  WebDataset (``peers.py``);
* write: samples/s and bytes on disk;
* get: ``get(i)`` for up to 10,000 shuffled indices; batch: the whole shuffled
  order in batches of 128 (16 for ``big``);
* DataLoader (``loaders.py``): ``dl_w2`` / ``dl_w0`` are the default path
  (plain ``DataLoader(batch_size, shuffle=True, num_workers)`` after one
  warm-up epoch, fresh workers); ``dl_w2_batched``, ``dl_w2_persistent`` and
  ``dl_w2_persistent_cached`` are tuned;
* cache curve (rocksds, tuned): the batch pass with ``cache_gb`` from 0 to
  more than the data, after one warm-up pass, with the dataset's files evicted
  from the OS page cache before every batch. Mapped pages cannot be evicted, so
  only a block cache holding every table file (read with pread) turns misses
  into disk reads; below that rocksds maps tables that fit in memory and reads
  them from the page cache, as the references LMDB and memmap (read once after
  the same eviction) do. Real disk reads under memory limits: ``larger.py``.

Datasets larger than memory have their own script, ``larger.py``.
Results go to ``OUT/results.json``, ``OUT/REPORT.md`` and ``OUT/*.png``.
Timings are single runs; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import platform
import shutil
import sys
import tempfile
import time
from typing import Any, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script from a checkout: use that checkout's rocksds
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import backends as bk  # noqa: E402
import peers  # noqa: E402
import workloads as wl  # noqa: E402

__all__ = ["main", "run", "run_args", "machine_facts"]

SINGLE_CAP = 10_000
CACHE_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5)
#: (result key, num_workers, tuning) of the DataLoader epochs (see loaders.py). Tuning ``""`` is the default
#: path; "batched" feeds ``__getitems__``; "persistent" times the 2nd epoch of persistent workers; "cached"
#: adds a per-worker rocksds block cache larger than the data (rocksds only: the peers have no such knob).
DL_CONFIGS = (("dl_w2", 2, ""), ("dl_w0", 0, ""), ("dl_w2_batched", 2, "batched"),
              ("dl_w2_persistent", 2, "persistent"), ("dl_w2_persistent_cached", 2, "cached"))
#: Per-worker block cache of the "cached" DataLoader epoch, as a multiple of the raw data.
FITS_CACHE = 1.2


def machine_facts() -> dict[str, Any]:
    """Cores, memory, CPU model, load and library versions of this machine."""
    import h5py
    import lmdb
    import rocksds

    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rocksds": rocksds.__version__,
        "rocksdict": _dist_version("rocksdict"),
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "lmdb": ".".join(map(str, lmdb.version())),
        "py-lmdb": lmdb.__version__,
        **{name: _dist_version(name) for name in ("litdata", "mosaicml-streaming", "zarr", "webdataset")},
    }
    try:
        import psutil

        facts["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            facts["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    except OSError:
        facts["cpu"] = platform.processor() or "?"
    if hasattr(os, "getloadavg"):
        facts["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import torch

        facts["torch"] = torch.__version__
    except ImportError:
        facts["torch"] = None
    return facts


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _read_bytes() -> int:
    try:
        with open("/proc/self/io") as fh:
            for ln in fh:
                if ln.startswith("read_bytes:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _verify(reader: Any, w: wl.Workload, name: str) -> None:
    """Every sample read back (batches, plus single gets) must equal the source exactly.

    A sequential-only reader (``random_access = False``) is read through once, by its ``iterate()``.
    """
    n = w.n
    if not getattr(reader, "random_access", True):
        seen = 0
        for i, got in reader.iterate():
            seen += 1
            for f, a in w.arrays.items():
                if not np.array_equal(np.asarray(got[f]), a[i]):
                    raise AssertionError(f"{name}: sample {i} field {f!r} differs from the source")
        if seen != n:
            raise AssertionError(f"{name}: read back {seen} samples, expected {n}")
        return
    step = 256
    for lo in range(0, n, step):
        idx = np.arange(lo, min(n, lo + step))
        got = reader.get_batch(idx)
        for f, a in w.arrays.items():
            if not np.array_equal(np.asarray(got[f]).reshape(a[idx].shape), a[idx]):
                raise AssertionError(f"{name}: field {f!r} read back differs from the source in samples {lo}..")
    for i in np.linspace(0, n - 1, min(n, 17)).astype(int):
        got = reader.get(int(i))
        for f, a in w.arrays.items():
            if not np.array_equal(np.asarray(got[f]), a[i]):
                raise AssertionError(f"{name}: get({i}) field {f!r} differs from the source")


def _write_backends() -> list[tuple[bk.Backend, bool]]:
    """(backend, is it read afterwards) for every write variant: rocksds's default path first, then its
    tuned variants (written only: write speed and size), then every peer."""
    import rocksds

    out = [(bk.rocksds_backend("rocksds"), True)]
    accepted = set(inspect.signature(rocksds.create).parameters)
    for name, opts in (("rocksds-nowal", {"wal": False}), ("rocksds-bulk", {"bulk": True})):
        if set(opts) <= accepted:
            out.append((bk.rocksds_backend(name, **opts), False))
    for comp in ("none", "lz4", "zstd"):
        out.append((bk.rocksds_backend(f"rocksds-{comp}", comp), False))
    out += [(b, True) for b in bk.peer_backends() + peers.peer_backends()]
    return out


def run_workload(name: str, n: int, work: str, *, dataloader: bool, cache_curve: bool, seed: int,
                 log: Any = print) -> dict[str, Any]:
    """All measurements for one workload; returns its results dict."""
    t0 = time.perf_counter()
    w = wl.make(name, n, seed)
    log(f"[{name}] {w.n} samples, {w.raw_bytes / 2**20:.1f} MiB raw, generated in {time.perf_counter() - t0:.1f}s")
    batch = 16 if name == "big" else 128
    order = np.random.default_rng(seed + 1).permutation(w.n)
    label_sum = int(w.arrays[w.label_field].sum(dtype=np.int64))
    res: dict[str, Any] = {"n": w.n, "raw_bytes": w.raw_bytes, "sample_bytes": w.sample_bytes,
                           "description": w.description, "batch": batch, "write": {}, "read": {}, "cache": []}
    fields = list(w.arrays)
    readable: dict[str, tuple[bk.Backend, str]] = {}
    for b, keep in _write_backends():
        path = os.path.join(work, f"{name}-{b.name}{b.suffix}")
        gc.collect()
        t = time.perf_counter()
        b.write(path, w.arrays)
        dt = time.perf_counter() - t
        size = bk.dir_bytes(path)
        reader = b.reader(path, fields)
        _verify(reader, w, b.name)
        reader.close()
        res["write"][b.name] = {"seconds": dt, "samples_per_s": _rate(w.n, dt), "disk_bytes": size,
                                "disk_ratio": size / w.raw_bytes, "family": b.family, "notes": b.notes,
                                "tuned": b.tuned, "verified": True}
        log(f"[{name}] write {b.name:<22} {w.n / dt:>10.0f} samples/s  {size / 2**20:8.1f} MiB  verified")
        if keep:
            readable[b.name] = (b, path)
        else:
            b.remove(path)
    for bname, (b, path) in readable.items():
        res["read"][bname] = _reads(b, path, w, fields, order, batch, label_sum, dataloader, log, name, seed)
    if cache_curve:
        res["cache"] = _cache_curve(readable, w, fields, order, batch, log, name)
    for b, path in readable.values():
        b.remove(path)
    return res


def _reads(b: bk.Backend, path: str, w: wl.Workload, fields: list[str], order: np.ndarray, batch: int,
           label_sum: int, dataloader: bool, log: Any, wname: str, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reader = b.reader(path, fields)
    line = f"[{wname}] read  {b.name:<14}"
    if getattr(reader, "random_access", True):
        reader.get(0)  # open outside the timings
        k = min(w.n, SINGLE_CAP)
        t = time.perf_counter()
        for i in order[:k]:
            reader.get(int(i))
        out["single"] = _rate(k, time.perf_counter() - t)
        t = time.perf_counter()
        for lo in range(0, w.n, batch):
            reader.get_batch(order[lo : lo + batch])
        out["batch"] = _rate(w.n, time.perf_counter() - t)
        line += f" single {out['single']:>9.0f}/s  batch {out['batch']:>9.0f}/s"
    reader.close()
    if dataloader:
        import loaders

        rocks = path if b.family == "rocksds" else None
        for key, workers, tuned in DL_CONFIGS:
            if tuned and (hasattr(b.reader(path, fields), "loader") or (tuned == "cached" and rocks is None)):
                continue  # own loader: no batched variant; cache knob: rocksds only
            reader = b.reader(path, fields)
            kw = {"batch": batch, "workers": workers, "label": w.label_field, "seed": seed, "rocks_path": rocks}
            if not tuned:
                dt, seen, total = loaders.default_epoch(reader, w.n, **kw)
            else:
                cache = FITS_CACHE * w.raw_bytes / 2**30 if tuned == "cached" else None
                dt, seen, total = loaders.tuned_epoch(reader, w.n, persistent=tuned != "batched", cache_gb=cache, **kw)
            reader.close()
            if seen != w.n or total != label_sum:
                raise AssertionError(f"{b.name}: DataLoader epoch returned {seen} samples / label sum {total}, "
                                     f"expected {w.n} / {label_sum}")
            out[key] = _rate(w.n, dt)
            line += f"  {key} {out[key]:>8.0f}/s"
    log(line)
    return out


def _cold_batch_pass(reader: Any, w: wl.Workload, order: np.ndarray, batch: int,
                     evict: Optional[str] = None) -> tuple[float, int]:
    """(samples/s, bytes read from disk) of one batch pass; ``evict``: drop that path from the page cache
    before every batch (the eviction time is not counted)."""
    r0 = _read_bytes()
    spent = 0.0
    for lo in range(0, w.n, batch):
        if evict:
            bk.drop_page_cache(evict)
        t = time.perf_counter()
        reader.get_batch(order[lo : lo + batch])
        spent += time.perf_counter() - t
    return _rate(w.n, spent), _read_bytes() - r0


def _cache_curve(readable: dict[str, tuple[bk.Backend, str]], w: wl.Workload, fields: list[str], order: np.ndarray,
                 batch: int, log: Any, wname: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    out = []
    _b, path = readable["rocksds"]
    for frac in CACHE_FRACTIONS:
        cache_gb = frac * w.raw_bytes / 2**30
        reader = bk.RocksdsReader(path, fields, cache_gb)
        reader.get_batch(rng.permutation(w.n)[:1])
        for lo in range(0, w.n, batch):  # warm-up pass: fills the block cache
            reader.get_batch(order[lo : lo + batch])
        rate, disk = _cold_batch_pass(reader, w, rng.permutation(w.n), batch, evict=path)
        reader.close()
        out.append({"backend": "rocksds", "cache_fraction": frac, "cache_gb": cache_gb, "samples_per_s": rate,
                    "disk_read_bytes": disk})
        log(f"[{wname}] cache {frac:>5.2f} x data ({cache_gb * 1024:7.1f} MiB): {rate:9.0f} samples/s, "
            f"{disk / 2**20:7.1f} MiB from disk")
    for peer in ("lmdb", "memmap"):
        b, ppath = readable[peer]
        bk.drop_page_cache(ppath)
        reader = b.reader(ppath, fields)
        rate, disk = _cold_batch_pass(reader, w, rng.permutation(w.n), batch)
        reader.close()
        out.append({"backend": peer, "cache_fraction": None, "cache_gb": None, "samples_per_s": rate,
                    "disk_read_bytes": disk})
        log(f"[{wname}] cold  {peer:<6}: {rate:9.0f} samples/s, {disk / 2**20:7.1f} MiB from disk")
    return out


def run(workload_names: list[str], *, quick: bool, out_dir: Optional[str], work_dir: Optional[str] = None,
        dataloader: bool = True, cache_curve: bool = True, seed: int = 0, sizes: Optional[dict[str, int]] = None,
        note: str = "", log: Any = print) -> dict[str, Any]:
    """Run the benchmarks and (if ``out_dir``) write results.json, REPORT.md and the plots."""
    import report

    sizes = sizes or (wl.QUICK_SIZES if quick else wl.SIZES)
    results: dict[str, Any] = {"machine": machine_facts(), "quick": quick, "seed": seed,
                               "missing_peers": peers.missing(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                               "argv": sys.argv[1:], "note": note, "workloads": {}}
    try:
        import loaders

        results["machine"]["rocksds_torch"] = loaders.rocksds_torch_available()
    except ImportError:
        dataloader = False
    work = tempfile.mkdtemp(prefix="rocksds-bench-", dir=work_dir)
    t0 = time.perf_counter()
    try:
        for name in workload_names:
            results["workloads"][name] = run_workload(name, sizes[name], work, dataloader=dataloader,
                                                      cache_curve=cache_curve, seed=seed, log=log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "mnist" in workload_names:
        import bench_reader

        results["reader"] = bench_reader.measure(min(20_000, sizes["mnist"]), work_dir=work_dir, seed=seed)
        r = results["reader"]
        log(f"[reader] ds[i] {r['ds_vs_raw_slowdown']:.2f}x the raw binding's time; "
            f"get_batch(128) {r['batch_vs_getitem_speedup']:.2f}x faster than 128 x ds[i]")
    results["seconds"] = time.perf_counter() - t0
    results["ratios"] = report.ratios(results)
    results["goals"] = report.goals(results)
    if out_dir:
        report.write_all(results, out_dir)
        log(f"results in {out_dir}")
    return results


def run_args(args: argparse.Namespace) -> int:
    """Run with parsed options (see :func:`add_arguments`)."""
    names = [s for s in args.workloads.split(",") if s]
    bad = [s for s in names if s not in wl.WORKLOADS]
    if bad:
        raise SystemExit(f"rocksds bench: unknown workloads {bad}; choose from {wl.WORKLOADS}")
    # The published results (benchmarks/results/) are rewritten only when asked for with --out.
    out = args.out or tempfile.mkdtemp(prefix="rocksds-bench-results-")
    sizes = dict(wl.QUICK_SIZES if args.quick else wl.SIZES)
    if args.samples is not None:
        if args.samples < 2:
            raise SystemExit("rocksds bench: --samples must be at least 2")
        sizes = {k: min(v, args.samples) for k, v in sizes.items()}
    run(names, quick=args.quick, out_dir=out, work_dir=args.work_dir, dataloader=not args.no_dataloader,
        cache_curve=not args.no_cache_curve, seed=args.seed, sizes=sizes, note=args.note)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark options (``rocksds bench`` hands its command line to :func:`main`)."""
    p.add_argument("--quick", action="store_true", help="small sizes (2,000 / 200 / 40 samples); CI smoke size")
    p.add_argument("--out", default=None,
                   help="output directory (default: a new temporary directory, so the published "
                        "benchmarks/results/ is rewritten only when named here)")
    p.add_argument("--workloads", default=",".join(wl.WORKLOADS), help=f"comma-separated subset of {','.join(wl.WORKLOADS)}")
    p.add_argument("--work-dir", default=None, help="where the datasets are written (default: the system temp dir)")
    p.add_argument("--no-dataloader", action="store_true", help="skip the DataLoader epochs (no torch needed)")
    p.add_argument("--no-cache-curve", action="store_true", help="skip the partial-caching curve")
    p.add_argument("--note", default="", help="a line to print in the report header (e.g. about the machine)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the shuffles")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="at most N samples per workload (smoke tests)")


def main(argv: Optional[list[str]] = None, prog: str = "harness.py") -> int:
    """``python benchmarks/harness.py [options]``, or ``rocksds bench [options]``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
