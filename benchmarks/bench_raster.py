"""Benchmark: chip a large synthetic GeoTIFF; report chips/s and peak memory for 1 and 2 workers.

    PYTHONPATH=$PWD python benchmarks/bench_raster.py            # 10000^2 and 20000^2, 4 bands
    PYTHONPATH=$PWD python benchmarks/bench_raster.py --quick    # 2000^2 and 4000^2

The scene (4 bands, tiled 256x256, deflate, nodata in one corner) is written
block row by block row, so generating it never holds it in memory. Each
(size, workers) run is a fresh child process; a sampler thread adds up the
RSS of that process and all its children (psutil) every 50 ms, so the peak
includes the worker pool. The goal is a peak under 1 GiB that does not grow
with the raster. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_one(args: argparse.Namespace) -> dict:
    """Chip ``args.scene`` once in this process (the child side)."""
    from rocksds.raster import ingest_raster

    import psutil

    peak = [0, 0, 0]  # process tree, this process, children
    stop = threading.Event()
    me = psutil.Process()

    def sample() -> None:
        while not stop.is_set():
            total = _tree_rss(os.getpid())
            own = me.memory_info().rss
            peak[0] = max(peak[0], total)
            peak[1] = max(peak[1], own)
            peak[2] = max(peak[2], total - own)
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = os.path.join(args.workdir, f"out-{args.size}-{args.workers}.rds")
    t = time.perf_counter()
    report = ingest_raster(
        out, {"image": args.scene}, chip=args.chip, stride=args.stride, min_valid=args.min_valid, workers=args.workers,
        batch_bytes=args.batch_mb * 2**20, cache_bytes=args.cache_mb * 2**20, overwrite=True,
    )
    secs = time.perf_counter() - t
    stop.set()
    th.join()
    peak[0] = max(peak[0], _tree_rss(os.getpid()))
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "size": args.size, "workers": args.workers, "grid_chips": report["grid"],
        "kept": sum(report["counts"].values()), "seconds": secs, "chips_per_s": report["grid"] / secs,
        "peak_rss_mib": peak[0] / 2**20, "peak_main_mib": peak[1] / 2**20, "peak_children_mib": peak[2] / 2**20,
        "min_valid": args.min_valid, "dataset_mib": size / 2**20,
        "phases": {k: round(v, 2) for k, v in report["phases"].items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2000^2 and 4000^2 instead of 10000^2 and 20000^2")
    ap.add_argument("--sizes", type=int, nargs="+", help="scene sides to run (overrides --quick)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chip", type=int, default=256)
    ap.add_argument("--stride", type=int, default=256)
    ap.add_argument("--dtype", default="uint8")
    ap.add_argument("--min-valid", type=float, default=0.5,
                    help="0.5 (default) filters nodata chips (spool path); 0 lets workers write final tables directly")
    ap.add_argument("--batch-mb", type=int, default=32)
    ap.add_argument("--cache-mb", type=int, default=64)
    ap.add_argument("--workdir", help="where scenes and datasets go (default: a temporary directory, removed)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--run", action="store_true", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--scene", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        args.workers = args.workers[0]
        print(json.dumps(run_one(args)))
        return 0

    from rocksds.testing import write_synthetic_geotiff

    sizes = args.sizes or ([2000, 4000] if args.quick else [10000, 20000])
    own = args.workdir is None
    workdir = args.workdir or tempfile.mkdtemp(prefix="rocksds-bench-raster-")
    os.makedirs(workdir, exist_ok=True)
    rows = []
    try:
        for size in sizes:
            scene = os.path.join(workdir, f"scene-{size}.tif")
            t = time.perf_counter()
            if not os.path.exists(scene):
                write_synthetic_geotiff(scene, size, size, bands=4, dtype=args.dtype, block=256, compress="deflate",
                                        nodata_corner=0.2)
            if not args.json:
                print(f"scene {size}x{size}x4 {args.dtype}: {os.path.getsize(scene) / 2**20:.0f} MiB on disk "
                      f"(generated in {time.perf_counter() - t:.1f}s)", flush=True)
            for w in args.workers:
                cmd = [sys.executable, os.path.abspath(__file__), "--run", "--scene", scene, "--size", str(size),
                       "--workers", str(w), "--chip", str(args.chip), "--stride", str(args.stride),
                       "--batch-mb", str(args.batch_mb), "--min-valid", str(args.min_valid), "--cache-mb", str(args.cache_mb), "--workdir", workdir]
                res = subprocess.run(cmd, check=True, capture_output=True, text=True)
                row = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append(row)
                if not args.json:
                    print(f"  workers={w}: {row['grid_chips']} chips ({row['kept']} kept) in {row['seconds']:.1f}s = "
                          f"{row['chips_per_s']:.0f} chips/s, peak RSS {row['peak_rss_mib']:.0f} MiB "
                          f"(main {row['peak_main_mib']:.0f}, children {row['peak_children_mib']:.0f}), dataset {row['dataset_mib']:.0f} MiB; phases {row['phases']}", flush=True)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"chip": args.chip, "stride": args.stride, "dtype": args.dtype, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
