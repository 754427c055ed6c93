"""Datasets larger than memory: one shuffled DataLoader epoch inside a memory cgroup, files evicted first.

``python benchmarks/larger.py [--chips 3000] [--limits 1024,400] [--out DIR]``
writes ``--chips`` chips of float32 (4, 256, 256) + uint8 (1, 256, 256) mask
(1.1 MB a sample; 3,000 chips are about 3.3 GB) with every backend, evicts
each backend's files from the page cache, then reads one shuffled epoch
through a DataLoader with 2 workers in a child process confined to each
memory limit (MiB; ``memlimit.run_in_memory_limit``: cgroup v1, page cache
charged to the group, no swap). The first limit is the "larger than memory"
case; at the others nothing may be OOM-killed (a kill is reported as such,
never as a slow run).

rocksds runs with its defaults first; the tuned rows (each codec, with the
default block cache and with none, and block caches of 128 MiB and 1 GiB per
process) show where compression (fewer bytes to read from disk) and the block
cache start to pay. The DataLoader's batch is
16 by default: 2 workers with the default prefetch hold 4 batches, and the
process tree of torch itself takes about 280 MiB, so batches of 128 chips
(140 MB each) alone would not fit the smaller limit.

Results: ``OUT/larger.json``, ``OUT/LARGER.md``, ``OUT/larger.png`` (a
temporary folder unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if __name__ == "__main__":  # run as a script from a checkout: use that checkout's rocksds
    sys.path.insert(1, os.path.dirname(HERE))

import backends as bk  # noqa: E402
import memlimit  # noqa: E402

__all__ = ["main", "run", "make_chips", "BACKENDS"]

#: Label field of the chips (the DataLoader check sums it).
LABEL = "mask"


def make_chips(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` chips: float32 (4,256,256) reflectance + uint8 (1,256,256) mask (see workloads.py)."""
    import workloads as wl

    rng = np.random.default_rng(seed)
    image = wl._reflectance(rng, n, 4, 256)
    mask = np.empty((n, 1, 256, 256), np.uint8)
    for lo in range(0, n, 256):
        m = min(256, n - lo)
        mask[lo : lo + m] = np.digitize(wl._smooth_noise(rng, (m, 1, 256, 256), sigma=16), [-0.8, 0.0, 0.8])
    return {"image": image, "mask": mask}


#: The peers of the new-format family, built only when asked for (a reading child imports no other library:
#: what the parent of forked DataLoader workers has imported, each worker may end up copying).
_PEERS = ("litdata", "mosaic", "zarr-sharded")


def _backends(names: tuple[str, ...] = ()) -> dict[str, bk.Backend]:
    """The backends by name; the peers of ``_PEERS`` only if ``names`` asks for one (or is empty: all)."""
    out = {
        "rocksds": bk.rocksds_backend("rocksds"),
        "rocksds-zstd": bk.rocksds_backend("rocksds-zstd", "zstd"),
        "rocksds-lz4": bk.rocksds_backend("rocksds-lz4", "lz4"),
        "rocksds-none": bk.rocksds_backend("rocksds-none", "none"),
        "rocksds-nocache": bk.rocksds_backend("rocksds-nocache", cache_gb=0.0),
        "rocksds-zstd-nocache": bk.rocksds_backend("rocksds-zstd-nocache", "zstd", cache_gb=0.0),
        "rocksds-none-nocache": bk.rocksds_backend("rocksds-none-nocache", "none", cache_gb=0.0),
        "rocksds-cache128m": bk.rocksds_backend("rocksds-cache128m", cache_gb=0.125),
        "rocksds-cache1g": bk.rocksds_backend("rocksds-cache1g", cache_gb=1.0),
    }
    for b in bk.peer_backends():
        if b.name in ("lmdb", "memmap", "h5py-chunked", "h5py-best"):
            out[b.name] = b
    if not names or set(names) & set(_PEERS):
        import peers

        out.update({b.name: b for b in peers.peer_backends() if b.name in _PEERS})
    return out


#: Backends measured by default, in report order (rocksds's default first).
BACKENDS = ("rocksds", "lmdb", "memmap", "h5py-chunked", "h5py-best", "litdata", "mosaic", "zarr-sharded",
            "rocksds-none", "rocksds-lz4", "rocksds-zstd", "rocksds-nocache", "rocksds-none-nocache",
            "rocksds-zstd-nocache", "rocksds-cache128m", "rocksds-cache1g")
#: Tuned rocksds rows share another row's files where only the reader differs.
_SAME_FILES = {"rocksds-nocache": "rocksds", "rocksds-cache128m": "rocksds", "rocksds-cache1g": "rocksds",
               "rocksds-zstd-nocache": "rocksds-zstd", "rocksds-none-nocache": "rocksds-none"}


def read_epoch(backend: str, path: str, n: int, batch: int, workers: int, seed: int) -> dict[str, Any]:
    """One shuffled epoch (no warm-up: the point is the cold read); run inside the confined child."""
    import loaders

    b = _backends((backend,))[backend]
    reader = b.reader(path, ["image", LABEL])
    rocks = path if b.family == "rocksds" else None
    if rocks is not None and reader.cache_gb is not None:  # tuned cache: RocksDataset(path, cache_gb=...)
        dt, seen, total = loaders.tuned_epoch(reader, n, batch=batch, workers=workers, label=LABEL, seed=seed,
                                              rocks_path=rocks, cache_gb=reader.cache_gb, warmup=False)
    else:
        dt, seen, total = loaders.default_epoch(reader, n, batch=batch, workers=workers, label=LABEL, seed=seed,
                                                rocks_path=rocks, warmup=False)
    return {"seconds": dt, "seen": seen, "label_sum": total}


def run(n: int, limits_mib: list[int], *, out_dir: Optional[str], work_dir: Optional[str] = None,
        names: tuple[str, ...] = BACKENDS, batch: int = 16, workers: int = 2, seed: int = 0,
        timeout: float = 1800, log: Any = print) -> dict[str, Any]:
    """Write, evict and read every backend under every limit; returns (and writes) the results."""
    if not memlimit.available():
        raise SystemExit("larger.py: no memory cgroup can be made here (needs root and cgroup v1 at "
                         f"{memlimit.MEMORY_ROOT})")
    t0 = time.perf_counter()
    arrays = make_chips(n, seed)
    label_sum = int(arrays[LABEL].sum(dtype=np.int64))
    raw = sum(a.nbytes for a in arrays.values())
    log(f"[larger] {n} chips, {raw / 2**20:.0f} MiB raw, generated in {time.perf_counter() - t0:.0f}s")
    table = _backends(names)
    work = tempfile.mkdtemp(prefix="rocksds-larger-", dir=work_dir)
    results: dict[str, Any] = {"n": n, "raw_bytes": raw, "batch": batch, "workers": workers,
                               "limits_bytes": [m * 2**20 for m in limits_mib], "runs": []}
    try:
        paths: dict[str, tuple[str, float, int]] = {}
        for name in names:
            b = table[name]
            src = _SAME_FILES.get(name)
            if src in paths:
                paths[name] = paths[src]
                continue
            path = os.path.join(work, name + b.suffix)
            t = time.perf_counter()
            b.write(path, arrays)
            paths[name] = (path, time.perf_counter() - t, bk.dir_bytes(path))
            log(f"[larger] wrote {name:<16} {n / paths[name][1]:8.0f} samples/s  {paths[name][2] / 2**20:8.0f} MiB")
        del arrays
        for lim in limits_mib:
            for name in names:
                b = table[name]
                path, wsec, disk = paths[name]
                bk.drop_page_cache(path)
                cmd = [sys.executable, os.path.abspath(__file__), "--read", name, path, "--chips", str(n),
                       "--batch", str(batch), "--workers", str(workers), "--seed", str(seed)]
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                                                os.environ.get("PYTHONPATH")]))}
                res = memlimit.run_in_memory_limit(cmd, lim * 2**20, timeout=timeout, env=env)
                got: dict[str, Any] = {}
                if res.rc == 0:
                    got = json.loads(res.stdout.strip().splitlines()[-1])
                ok = res.ok and got.get("seen") == n and got.get("label_sum") == label_sum
                if res.ok and not ok:
                    raise AssertionError(f"{name}: epoch returned {got}, expected {n} samples / label sum {label_sum}")
                row = {"backend": name, "limit_bytes": lim * 2**20, "notes": b.notes, "tuned": b.tuned,
                       "rc": res.rc, "oom_killed": res.oom_killed, "oom_kills": res.oom_kills,
                       "peak_bytes": res.peak_bytes, "stat_peaks": res.stat_peaks, "ok": ok,
                       "seconds": got.get("seconds"),
                       "samples_per_s": n / got["seconds"] if ok else None, "disk_bytes": disk,
                       "write_samples_per_s": n / wsec, "stderr_tail": "" if ok else res.stderr[-600:]}
                results["runs"].append(row)
                state = f"{row['samples_per_s']:8.0f} samples/s" if ok else \
                    ("OOM-killed" if res.oom_killed else f"failed rc={res.rc}")
                sp = {k: round(v / 2**20) for k, v in res.stat_peaks.items()}
                log(f"[larger] {lim:>5} MiB  {name:<16} {state}  peak {res.peak_bytes / 2**20:6.0f} MiB  {sp}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - t0
    if out_dir:
        write(results, out_dir)
        log(f"[larger] results in {out_dir}")
    return results


def write(results: dict[str, Any], out_dir: str) -> None:
    """larger.json, LARGER.md (with the goal check) and larger.png into ``out_dir``.

    If ``out_dir`` already holds a ``rocksds bench`` run (results.json), the
    larger-than-memory results join it: its REPORT.md and goal table are
    rewritten with them.
    """
    import report

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "larger.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    bench_json = os.path.join(out_dir, "results.json")
    if os.path.isfile(bench_json):
        with open(bench_json) as fh:
            bench = json.load(fh)
        bench["larger"] = results
        bench["goals"] = report.goals(bench)
        report.write_all(bench, out_dir)
    lines = report.larger_lines(results) + ["| goal | measured | met |", "|---|---:|---|"]
    for g in report.larger_goals(results):
        val = "–" if g["measured"] is None else (f"{g['measured']:.0f} kills" if g["metric"] == "oom"
                                                 else f"{g['measured']:.2f}x")
        lines.append(f"| {g['goal']} | {val} | {'yes' if g['met'] else '**no**'} |")
    with open(os.path.join(out_dir, "LARGER.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    report.larger_plot(results, out_dir)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="larger.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--chips", type=int, default=3000, help="chips per backend (3,000 is about 3.3 GB)")
    p.add_argument("--limits", default="1024,400", help="memory limits in MiB, comma-separated; the first is "
                                                        "the larger-than-memory case")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default: a new temporary directory)")
    p.add_argument("--work-dir", default=None, help="where the datasets are written (default: the system temp dir)")
    p.add_argument("--read", nargs=2, metavar=("BACKEND", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.read:
        res = read_epoch(args.read[0], args.read[1], args.chips, args.batch, args.workers, args.seed)
        print(json.dumps(res), flush=True)
        return 0
    names = tuple(s for s in args.backends.split(",") if s)
    bad = [s for s in names if s not in _backends()]
    if bad:
        raise SystemExit(f"larger.py: unknown backends {bad}; choose from {sorted(_backends())}")
    out = args.out or tempfile.mkdtemp(prefix="rocksds-larger-results-")
    run(args.chips, [int(x) for x in args.limits.split(",") if x], out_dir=out, work_dir=args.work_dir,
        names=names, batch=args.batch, workers=args.workers, seed=args.seed, log=functools.partial(print, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
