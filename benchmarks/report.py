"""Turn the harness's results into ratios, a goal check, REPORT.md, results.json and PNG plots."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

__all__ = ["ratios", "goals", "write_all", "markdown"]

READ_METRICS = ("single", "batch", "dl_w0_per-sample", "dl_w0_batched", "dl_w2_per-sample", "dl_w2_batched",
                "dl_w2_batched_persistent", "dl_w2_batched_persistent_cached")
#: rocksds metrics compared with a different peer metric: the cache-fits epoch has no peer equivalent
#: (peers have no cache knob), so it is compared with the peers' own persistent-worker epoch.
PEER_METRIC = {"dl_w2_batched_persistent_cached": "dl_w2_batched_persistent"}
PEERS = ("h5py-naive", "h5py-best", "lmdb", "memmap")


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def _best_dl(read: dict[str, float], workers: int) -> Optional[float]:
    """The faster feeding mode of a fresh DataLoader (first epoch)."""
    vals = [read.get(f"dl_w{workers}_{m}") for m in ("per-sample", "batched")]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def _best_rocksds_write(wres: dict[str, Any], compression_free: bool = True) -> tuple[str, float]:
    """The fastest rocksds write path at the default codec (not the codec sweep)."""
    cands = {k: v["samples_per_s"] for k, v in wres.items() if v["family"] == "rocksds"
             and k in ("rocksds", "rocksds-nowal", "rocksds-bulk")}
    name = max(cands, key=cands.__getitem__)
    return name, cands[name]


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """rocksds / peer for every workload and metric (mode-matched; DataLoader also best-vs-best)."""
    out: dict[str, Any] = {}
    for wname, r in results["workloads"].items():
        wr, rd = r["write"], r["read"]
        entry: dict[str, Any] = {"write": {}, "read": {}}
        for k, v in wr.items():
            if v["family"] != "rocksds":
                continue
            entry["write"][k] = {p: _div(v["samples_per_s"], wr[p]["samples_per_s"]) for p in PEERS if p in wr}
        rocks = rd.get("rocksds", {})
        for m in READ_METRICS:
            if m in rocks:
                entry["read"][m] = {p: _div(rocks[m], rd[p].get(PEER_METRIC.get(m, m))) for p in PEERS if p in rd}
        for workers in (0, 2):
            best = _best_dl(rocks, workers)
            if best is None:
                continue
            naive = rd.get("h5py-naive", {}).get(f"dl_w{workers}_per-sample")
            entry["read"][f"dl_w{workers}_best"] = {
                "h5py-naive": _div(best, naive),
                **{p: _div(best, _best_dl(rd[p], workers)) for p in ("h5py-best", "lmdb", "memmap") if p in rd},
            }
        out[wname] = entry
    return out


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each with the measured ratio and whether it was met."""
    rat = results.get("ratios") or ratios(results)
    out: list[dict[str, Any]] = []

    def add(goal: str, wname: str, value: Optional[float], target: float, note: str = "", le: bool = False) -> None:
        met = None if value is None else (value <= target if le else value >= target)
        out.append({"goal": goal, "workload": wname, "measured": value, "target": target, "met": met, "note": note})

    for wname, r in results["workloads"].items():
        best_name, _ = _best_rocksds_write(r["write"])
        w = rat[wname]["write"][best_name]
        add("write >= 6x h5py-naive", wname, w.get("h5py-naive"), 6.0, best_name)
        add("write >= 1x h5py-best", wname, w.get("h5py-best"), 1.0, best_name)
        if wname in ("chips", "big"):
            add("write >= 1x LMDB", wname, w.get("lmdb"), 1.0, best_name)
        dl = rat[wname]["read"].get("dl_w2_best")
        if dl is not None and wname in ("mnist", "chips"):
            add("DataLoader epoch (2 workers) >= 2.4x h5py-naive", wname, dl.get("h5py-naive"), 2.4, "best feeding mode")
            add("DataLoader epoch (2 workers) >= 1x LMDB", wname, dl.get("lmdb"), 1.0, "best mode vs LMDB's best mode")
            pers = rat[wname]["read"].get("dl_w2_batched_persistent", {})
            if pers:
                add("DataLoader epoch (2 workers) >= 1x LMDB", wname, pers.get("lmdb"), 1.0,
                    "2nd epoch, persistent workers, batched")
            cached = rat[wname]["read"].get("dl_w2_batched_persistent_cached", {})
            if cached:
                add("DataLoader epoch (2 workers) >= 1x LMDB", wname, cached.get("lmdb"), 1.0,
                    "2nd epoch, persistent workers, batched, rocksds cache_gb >= data per worker")
        if wname == "mnist":
            add("batch-of-128 reads >= 0.5x memmap", wname, rat[wname]["read"]["batch"].get("memmap"), 0.5)
        if wname == "chips":
            z = r["write"].get("rocksds-bulk-zstd") or (r["write"]["rocksds"] if _default() == "zstd" else None)
            add("zstd on disk <= 0.8x raw", wname, None if z is None else z["disk_ratio"], 0.8, le=True)
    rd = results.get("reader")
    if rd:
        add("ds[i] within 1.25x of the raw binding (time ratio)", "mnist", rd["ds_vs_raw_slowdown"], 1.25, le=True)
        add("get_batch(128) >= 3x 128 x ds[i]", "mnist", rd["batch_vs_getitem_speedup"], 3.0)
    return out


def _default() -> str:
    import rocksds

    return rocksds.spec.DEFAULT_COMPRESSION


# --------------------------------------------------------------------- markdown


def _f(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _x(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# rocksds benchmarks",
        "",
        f"Run {results['started']} ({'quick' if results['quick'] else 'full'} sizes, {results['seconds']:.0f} s). "
        f"Machine: {m.get('cpu', '?')}, {m.get('usable_cores')} usable cores (of {m.get('cpu_count')}), "
        f"{m.get('ram_gb', '?')} GiB RAM, load average at start {m.get('loadavg')}.",
        f"Versions: Python {m['python']}, numpy {m['numpy']}, rocksds {m['rocksds']}, rocksdict {m['rocksdict']}, "
        f"h5py {m['h5py']} (HDF5 {m['hdf5']}), LMDB {m['lmdb']} (py-lmdb {m['py-lmdb']}), torch {m.get('torch')}; "
        f"rocksds.torch used for DataLoader epochs: {m.get('rocksds_torch')}.",
        "",
    ]
    if results.get("note"):
        lines += [results["note"], ""]
    lines += [
        "How to reproduce: `rocksds bench` (or `python benchmarks/harness.py`) from a checkout; "
        "`--quick` for small sizes. Every number is one run; every backend's read-back was compared "
        "with the source arrays and found equal. Ratios are rocksds / peer (higher is better for rocksds).",
        "",
        "## Goals",
        "",
        "| goal | workload | measured | met |",
        "|---|---|---|---|",
    ]
    for g in results["goals"]:
        plain = "disk" in g["goal"] or "time ratio" in g["goal"]
        val = "–" if g["measured"] is None else (f"{g['measured']:.2f}" if plain else _x(g["measured"]))
        met = {True: "yes", False: "**no**", None: "–"}[g["met"]]
        note = f" ({g['note']})" if g["note"] else ""
        lines.append(f"| {g['goal']}{note} | {g['workload']} | {val} | {met} |")
    lines.append("")
    for wname, r in results["workloads"].items():
        rat = results["ratios"][wname]
        lines += [f"## {wname}: {r['description']}", "",
                  f"{r['n']:,} samples of {r['sample_bytes']:,} bytes ({r['raw_bytes'] / 2**20:,.1f} MiB raw); "
                  f"batches of {r['batch']}.", "", "### Writes", "",
                  "| backend | setup | samples/s | MiB on disk | disk / raw | x h5py-naive | x h5py-best | x LMDB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for k, v in r["write"].items():
            x = rat["write"].get(k, {})
            lines.append(f"| {k} | {v['notes']} | {_f(v['samples_per_s'])} | {_f(v['disk_bytes'] / 2**20, 1)} | "
                         f"{v['disk_ratio']:.2f} | {_x(x.get('h5py-naive'))} | {_x(x.get('h5py-best'))} | "
                         f"{_x(x.get('lmdb'))} |")
        metrics = [mt for mt in READ_METRICS if any(mt in v for v in r["read"].values())]
        heads = {"single": "single get", "batch": f"batch of {r['batch']}", "dl_w0_per-sample": "DL w0 per-sample",
                 "dl_w0_batched": "DL w0 batched", "dl_w2_per-sample": "DL w2 per-sample",
                 "dl_w2_batched": "DL w2 batched", "dl_w2_batched_persistent": "DL w2 batched, 2nd epoch persistent",
                 "dl_w2_batched_persistent_cached": "DL w2 batched, 2nd epoch persistent, cache >= data"}
        lines += ["", "### Reads (samples/s, shuffled order)", "",
                  "| backend | " + " | ".join(heads[mt] for mt in metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        for k, v in r["read"].items():
            lines.append(f"| {k} | " + " | ".join(_f(v.get(mt)) for mt in metrics) + " |")
        lines += ["", "rocksds read ratios:", "", "| metric | x h5py-naive | x h5py-best | x LMDB | x memmap |",
                  "|---|---:|---:|---:|---:|"]
        for mt, x in rat["read"].items():
            lines.append(f"| {heads.get(mt, mt.replace('_best', ' best mode').replace('dl_w', 'DL w'))} | "
                         f"{_x(x.get('h5py-naive'))} | {_x(x.get('h5py-best'))} | {_x(x.get('lmdb'))} | "
                         f"{_x(x.get('memmap'))} |")
        if r["cache"]:
            lines += ["", "### Partial caching (rocksds batch reads, OS page cache evicted before every batch)", "",
                      "| cache_gb (x data) | MiB | samples/s | MiB read from disk |", "|---|---:|---:|---:|"]
            for c in r["cache"]:
                label = f"{c['cache_fraction']:.2f}" if c["backend"] == "rocksds" else f"{c['backend']} (cold)"
                mib = "–" if c["cache_gb"] is None else _f(c["cache_gb"] * 1024, 1)
                lines.append(f"| {label} | {mib} | {_f(c['samples_per_s'])} | {_f(c['disk_read_bytes'] / 2**20, 1)} |")
            lines.append(f"\n![cache curve]({wname}-cache.png)")
        lines += ["", f"![writes]({wname}-write.png) ![reads]({wname}-read.png)", ""]
    rd = results.get("reader")
    if rd:
        lines += ["## Reader overhead (benchmarks/bench_reader.py)", "",
                  f"{rd['n']:,} MNIST-shaped samples, warm block cache, best of 3 passes.", "",
                  "| path | samples/s |", "|---|---:|",
                  f"| raw rocksdict get + np.frombuffer | {_f(rd['raw_get_per_s'])} |",
                  f"| ds[i] | {_f(rd['ds_getitem_per_s'])} ({rd['ds_vs_raw_slowdown']:.2f}x the raw time) |",
                  f"| 128 x ds[i] | {_f(rd['many_getitem_per_s'])} |",
                  f"| get_batch(128) | {_f(rd['get_batch_per_s'])} ({rd['batch_vs_getitem_speedup']:.2f}x) |", ""]
    lines += ["## Method", "", "* " + "\n* ".join(_METHOD), ""]
    return "\n".join(lines)


_METHOD = [
    "Data: seeded synthetic stand-ins generated in memory (benchmarks/workloads.py); every backend is written "
    "from the same arrays and read in the same shuffled order.",
    "rocksds: `rocksds.create` + `Writer.extend` of about 1,000 samples (at most 64 MiB) per atomic WriteBatch, "
    "default schema settings; `-nowal` passes `wal=False` (commits reach disk at the final atomic flush); `-bulk` "
    "variants pass `bulk=True` (each 64 MiB commit is one sorted table file per field, ingested); "
    "reads through `rocksds.open` (default 0.25 GiB block cache per process).",
    "h5py-naive: contiguous datasets, written and read one element at a time (the original baseline). "
    "h5py-best: contiguous, 64 MiB block writes, batches read with one sorted fancy selection per field.",
    "LMDB: one key per sample (fields concatenated), 64 MiB append-mode write transactions with writemap, "
    "read-only lock-free environment, batches via one cursor.",
    "npy-files: one .npy per sample for array fields (labels in one small array); memmap: one .npy per field "
    "opened with `np.load(mmap_mode='r')`, batches by fancy indexing.",
    "DataLoader: a fresh `DataLoader(batch_size, sampler=<fixed shuffled order>)` per epoch (workers start cold, "
    "as without `persistent_workers`), fed per sample (`__getitem__` + default_collate) or batched (`__getitems__`); "
    "'2nd epoch persistent' times the second epoch of one DataLoader with `persistent_workers=True` (open handles "
    "and per-worker caches survive), after a first epoch in another order; '..., cache >= data' does the same "
    "with a rocksds block cache of 1.2x the raw data per worker (compared with the peers' own persistent epoch). "
    "Batches are dealt to workers in turn, so in the second epoch each worker mostly asks for samples the other "
    "one read in the first: per-process caches pay off only over more epochs.",
    "Partial caching: open with `cache_gb` (a fraction of the raw, uncompressed data: the block cache holds "
    "uncompressed blocks), one warm-up pass, then the measured pass in a new shuffled order with fsync + "
    "`posix_fadvise(POSIX_FADV_DONTNEED)` on every file of the dataset before every batch (not timed), so every "
    "block-cache miss is a disk read; disk bytes from /proc/self/io. LMDB and memmap (cold): one eviction, then one "
    "pass; they map their files and mapped pages cannot be evicted, so each page is read from disk once, then from "
    "RAM: a best case for them.",
]


# --------------------------------------------------------------------- plots


def plots(results: dict[str, Any], out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for wname, r in results["workloads"].items():
        names = list(r["write"])
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.2))
        colors = ["tab:blue" if r["write"][k]["family"] == "rocksds" else "tab:gray" for k in names]
        ax.barh(names, [r["write"][k]["samples_per_s"] for k in names], color=colors)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("write samples/s (log)")
        ax.set_title(f"{wname}: writes ({r['n']:,} samples)")
        fig.tight_layout()
        written.append(_save(fig, out_dir, f"{wname}-write.png"))
        plt.close(fig)

        metrics = [m for m in READ_METRICS if any(m in v for v in r["read"].values())]
        bnames = list(r["read"])
        fig, ax = plt.subplots(figsize=(10, 4))
        width = 0.8 / len(bnames)
        for j, b in enumerate(bnames):
            ax.bar([i + j * width for i in range(len(metrics))], [r["read"][b].get(m, 0) for m in metrics],
                   width, label=b)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))], metrics, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("samples/s (log)")
        ax.set_title(f"{wname}: reads")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        written.append(_save(fig, out_dir, f"{wname}-read.png"))
        plt.close(fig)

        if r["cache"]:
            pts = [c for c in r["cache"] if c["backend"] == "rocksds"]
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot([c["cache_fraction"] * 100 for c in pts], [c["samples_per_s"] for c in pts], "o-",
                    label="rocksds (page cache evicted)")
            for c, style in zip([c for c in r["cache"] if c["backend"] != "rocksds"], ("--", ":")):
                ax.axhline(c["samples_per_s"], ls=style, color="gray", label=f"{c['backend']} cold")
            ax.set_xlabel("block cache size (% of the raw data)")
            ax.set_ylabel(f"samples/s (batches of {r['batch']})")
            ax.set_title(f"{wname}: what a partial cache buys")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
            fig.tight_layout()
            written.append(_save(fig, out_dir, f"{wname}-cache.png"))
            plt.close(fig)
    return written


def _save(fig: Any, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=100)
    return path


def write_all(results: dict[str, Any], out_dir: str) -> None:
    """results.json, REPORT.md and the PNG plots into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=float)
    plots(results, out_dir)
    with open(os.path.join(out_dir, "REPORT.md"), "w") as fh:
        fh.write(markdown(results))
