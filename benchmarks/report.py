"""Turn the harness's results into ratios, the goal check, REPORT.md, results.json and PNG plots.

The report shows the default path first (rocksds exactly as a new user calls
it, each peer as its documentation shows), then the tuned modes, labelled.
Every ratio is rocksds-default / peer, both measured in the same run.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

__all__ = ["ratios", "goals", "write_all", "markdown", "DEFAULT_METRICS", "TUNED_METRICS"]

#: The default-path columns: (result key, heading).
DEFAULT_METRICS = (("single", "get"), ("batch", "batch"), ("dl_w2", "DL w=2"), ("dl_w0", "DL w=0"))
#: The tuned DataLoader epochs: (result key, heading).
TUNED_METRICS = (("dl_w2_batched", "DL w=2 batched (__getitems__)"),
                 ("dl_w2_persistent", "DL w=2 batched, 2nd epoch, persistent workers"),
                 ("dl_w2_persistent_cached", "same, rocksds cache_gb 1.2x data per worker"))
#: Peers whose DataLoader epochs are random access (a map-style dataset or a sampler-free own shuffle).
RANDOM_ACCESS_PEERS = ("litdata", "mosaic", "mosaic-stream", "zarr", "zarr-sharded")


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """rocksds (default path) / every other backend, per workload, for writes and each read metric."""
    out: dict[str, Any] = {}
    for wname, r in results["workloads"].items():
        wr, rd = r["write"], r["read"]
        mine_w = wr.get("rocksds", {}).get("samples_per_s")
        mine_r = rd.get("rocksds", {})
        entry: dict[str, Any] = {
            "write": {p: _div(mine_w, v["samples_per_s"]) for p, v in wr.items() if p != "rocksds"},
            "read": {},
        }
        for m, _h in DEFAULT_METRICS + TUNED_METRICS:
            if m in mine_r:
                peer_m = "dl_w2_persistent" if m == "dl_w2_persistent_cached" else m
                entry["read"][m] = {p: _div(mine_r[m], v.get(peer_m)) for p, v in rd.items()
                                    if p != "rocksds" and v.get(peer_m)}
        out[wname] = entry
    return out


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the "fast by default" issue, each with the measured ratio and whether it was met."""
    rat = results.get("ratios") or ratios(results)
    out: list[dict[str, Any]] = []

    def add(wname: str, metric: str, peer: str, target: float) -> None:
        if wname not in rat:
            return
        table = rat[wname]["write"] if metric == "write" else rat[wname]["read"].get(metric, {})
        value = table.get(peer)
        heading = {"single": "get", "batch": "batch", "dl_w2": "DL epoch w=2", "write": "write"}[metric]
        out.append({"goal": f"{heading} >= {target:g}x {peer}", "workload": wname, "metric": metric, "peer": peer,
                    "measured": value, "target": target, "met": None if value is None else value >= target})

    for m in ("single", "batch", "dl_w2", "write"):
        add("chips", m, "lmdb", 1.0)
    add("chips", "dl_w2", "memmap", 0.9)
    for m in ("single", "dl_w2"):
        add("big", m, "lmdb", 1.0)
    add("mnist", "dl_w2", "lmdb", 1.0)
    add("mnist", "batch", "lmdb", 1.0)
    add("mnist", "single", "lmdb", 0.7)
    add("mnist", "write", "h5py-naive", 6.0)
    for wname in ("chips", "mnist"):
        for peer in RANDOM_ACCESS_PEERS:
            if peer in results["workloads"].get(wname, {}).get("read", {}):
                add(wname, "dl_w2", peer, 1.0)
    larger = results.get("larger")
    if larger:
        out.extend(larger_goals(larger))
    return out


#: The references of the larger-than-memory goal.
_REFS = ("lmdb", "memmap", "h5py-chunked", "h5py-best")


def larger_goals(larger: dict[str, Any]) -> list[dict[str, Any]]:
    """Larger than memory: rocksds's epoch >= the best of LMDB, memmap, h5py at the larger limit; no OOM kill
    at the smaller one."""
    out = []
    runs = larger["runs"]
    limits = sorted({r["limit_bytes"] for r in runs}, reverse=True)
    big = [r for r in runs if r["limit_bytes"] == limits[0]]
    mine = next((r for r in big if r["backend"] == "rocksds"), None)
    refs = [r for r in big if r["backend"] in _REFS and r["ok"]]
    best = max(refs, key=lambda r: r["samples_per_s"], default=None)
    value = _div(mine["samples_per_s"] if mine and mine["ok"] else None, best["samples_per_s"] if best else None)
    failed = mine is not None and not mine["ok"]
    what = ("OOM-killed" if mine["oom_killed"] else f"failed rc={mine['rc']}") if failed else ""
    goal = (f"larger than memory, {limits[0] / 2**20:.0f} MiB limit: DL epoch >= 1x the best of LMDB, memmap, "
            f"h5py ({best['backend'] if best else '?'})" + (f"; rocksds {what}" if what else ""))
    met = False if failed else (None if value is None else value >= 1.0)
    out.append({"goal": goal, "workload": "larger", "metric": "dl_w2", "peer": best["backend"] if best else None,
                "measured": value, "target": 1.0, "met": met})
    for lim in limits[1:]:
        mine = next((r for r in runs if r["limit_bytes"] == lim and r["backend"] == "rocksds"), None)
        out.append({"goal": f"larger than memory, {lim / 2**20:.0f} MiB limit: no OOM kill", "workload": "larger",
                    "metric": "oom", "peer": None, "measured": None if mine is None else float(mine["oom_kills"]),
                    "target": 0.0, "met": None if mine is None else not mine["oom_killed"]})
    return out


# --------------------------------------------------------------------- markdown


def _f(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _x(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}x"


def _header(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    lines = [
        "# rocksds benchmarks",
        "",
        f"Run {results['started']} ({'quick' if results['quick'] else 'full'} sizes, {results['seconds']:.0f} s). "
        f"Machine: {m.get('cpu', '?')}, {m.get('usable_cores')} usable cores (of {m.get('cpu_count')}), "
        f"{m.get('ram_gb', '?')} GiB RAM, load average at start {m.get('loadavg')}.",
        f"Versions: Python {m['python']}, numpy {m['numpy']}, rocksds {m['rocksds']}, rocksdict {m['rocksdict']}, "
        f"h5py {m['h5py']} (HDF5 {m['hdf5']}), LMDB {m['lmdb']} (py-lmdb {m['py-lmdb']}), torch {m.get('torch')}, "
        f"litdata {m.get('litdata')}, mosaicml-streaming {m.get('mosaicml-streaming')}, zarr {m.get('zarr')}, "
        f"webdataset {m.get('webdataset')}.",
        "",
    ]
    if results.get("missing_peers"):
        lines += [f"Peers not measured (library does not import here): {', '.join(results['missing_peers'])}.", ""]
    if results.get("note"):
        lines += [results["note"], ""]
    lines += [
        "How to reproduce: `rocksds bench --out DIR` (or `python benchmarks/harness.py --out DIR`) from a checkout; "
        "`--quick` for small sizes; `python benchmarks/larger.py --out DIR` for the larger-than-memory runs. "
        "Every number is one run; every backend's read-back was compared with the source arrays and found equal. "
        "Ratios are rocksds (default path) / peer, measured in the same run (higher is better for rocksds).",
        "",
    ]
    return lines


def _goal_lines(results: dict[str, Any]) -> list[str]:
    lines = ["## Goals (rocksds defaults)", "", "| goal | workload | measured | met |", "|---|---|---:|---|"]
    misses = []
    for g in results["goals"]:
        val = _x(g["measured"]) if g["metric"] != "oom" else f"{_f(g['measured'])} OOM kills"
        met = {True: "yes", False: "**no**", None: "–"}[g["met"]]
        lines.append(f"| {g['goal']} | {g['workload']} | {val} | {met} |")
        if g["met"] is not True:
            misses.append(f"{g['workload']}: {g['goal']} (measured {val})")
    lines += ["", f"Missed or not measured ({len(misses)}):", ""] + [f"* {m}" for m in misses] + [""]
    return lines


def _workload_lines(wname: str, r: dict[str, Any], rat: dict[str, Any]) -> list[str]:
    wr, rd = r["write"], r["read"]
    lines = [f"## {wname}: {r['description']}", "",
             f"{r['n']:,} samples of {r['sample_bytes']:,} bytes ({r['raw_bytes'] / 2**20:,.1f} MiB raw); "
             f"batches of {r['batch']}.", "", "### Default path (samples/s; rocksds / peer in brackets)", "",
             "| backend | setup | write | " + " | ".join(h for _m, h in DEFAULT_METRICS) + " | disk / raw |",
             "|---|---|---:|" + "---:|" * len(DEFAULT_METRICS) + "---:|"]
    for name, v in wr.items():
        if v.get("tuned"):
            continue
        read = rd.get(name, {})
        cells = [_f(v["samples_per_s"]) + ("" if name == "rocksds" else f" ({_x(rat['write'].get(name))})")]
        for m, _h in DEFAULT_METRICS:
            val = read.get(m)
            ratio = rat["read"].get(m, {}).get(name)
            cells.append(_f(val) + ("" if name == "rocksds" or val is None else f" ({_x(ratio)})"))
        label = f"**{name}**" if name == "rocksds" else name
        lines.append(f"| {label} | {v['notes']} | " + " | ".join(cells) + f" | {v['disk_ratio']:.2f} |")
    lines += ["", f"![writes]({wname}-write.png) ![reads]({wname}-read.png)", "",
              "### Tuned modes (not the default path)", "", "Writes, rocksds with options set:", "",
              "| variant | setup | samples/s | x rocksds default | disk / raw |", "|---|---|---:|---:|---:|"]
    base = wr.get("rocksds", {}).get("samples_per_s")
    for name, v in wr.items():
        if v.get("tuned"):
            lines.append(f"| {name} | {v['notes']} | {_f(v['samples_per_s'])} | "
                         f"{_x(_div(v['samples_per_s'], base))} | {v['disk_ratio']:.2f} |")
    metrics = [(m, h) for m, h in TUNED_METRICS if any(m in v for v in rd.values())]
    if metrics:
        lines += ["", "Tuned DataLoader epochs (samples/s; rocksds's cached epoch is compared with the peers' "
                  "persistent epoch):", "", "| backend | " + " | ".join(h for _m, h in metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        for name, v in rd.items():
            if any(m in v for m, _h in metrics):
                lines.append(f"| {name} | " + " | ".join(_f(v.get(m)) for m, _h in metrics) + " |")
    if r["cache"]:
        lines += ["", "### Partial caching (tuned: rocksds batch reads with `cache_gb`, OS page cache evicted "
                  "before every batch)", "", "| cache_gb (x data) | MiB | samples/s | MiB read from disk |",
                  "|---|---:|---:|---:|"]
        for c in r["cache"]:
            label = f"{c['cache_fraction']:.2f}" if c["backend"] == "rocksds" else f"{c['backend']} (cold)"
            mib = "–" if c["cache_gb"] is None else _f(c["cache_gb"] * 1024, 1)
            lines.append(f"| {label} | {mib} | {_f(c['samples_per_s'])} | {_f(c['disk_read_bytes'] / 2**20, 1)} |")
        lines.append(f"\n![cache curve]({wname}-cache.png)")
    lines.append("")
    return lines


def larger_lines(larger: dict[str, Any]) -> list[str]:
    """The larger-than-memory section (benchmarks/larger.py)."""
    lines = ["## Larger than memory (benchmarks/larger.py)", "",
             f"{larger['n']:,} chips f32(4,256,256) + u8 mask ({larger['raw_bytes'] / 2**20:,.0f} MiB raw) per "
             f"backend; one shuffled DataLoader epoch (batch {larger['batch']}, {larger['workers']} workers) in a "
             "process tree confined to a memory cgroup (cgroup v1, page cache charged), after evicting the files "
             "from the page cache. Rows marked tuned are not the default path. Peak is the group's largest "
             "charge; anon / page cache / shm are the largest values of memory.stat's rss, cache and shmem, "
             "sampled every 50 ms.", "",
             "| limit | backend | setup | samples/s | x best of LMDB, memmap, h5py | peak MiB | "
             "peak anon / page cache / shm MiB "
             "| MiB on disk | outcome |",
             "|---:|---|---|---:|---:|---:|---:|---:|---|"]
    best: dict[int, float] = {}
    for r in larger["runs"]:
        if r["ok"] and r["backend"] in _REFS:
            best[r["limit_bytes"]] = max(best.get(r["limit_bytes"], 0.0), r["samples_per_s"])
    for r in larger["runs"]:
        x = _div(r["samples_per_s"] if r["ok"] else None, best.get(r["limit_bytes"]))
        outcome = "ok" if r["ok"] else ("**OOM-killed**" if r["oom_killed"] else f"**failed rc={r['rc']}**")
        name = ("**rocksds**" if r["backend"] == "rocksds" else r["backend"]) + (" (tuned)" if r.get("tuned") else "")
        lines.append(f"| {r['limit_bytes'] / 2**20:.0f} MiB | {name} | {r['notes']} | "
                     f"{_f(r['samples_per_s'] if r['ok'] else None)} | {_x(x)} | "
                     f"{_f(r['peak_bytes'] / 2**20)} | {_stat(r)} | {_f(r['disk_bytes'] / 2**20)} | {outcome} |")
    lines += ["", "The ratio column is that row / the fastest of LMDB, memmap and h5py that finished under the same "
              "limit: a tuned rocksds row above the default one shows where compression (fewer bytes from disk) "
              "or the block cache pays.", "",
              "![larger than memory](larger.png)", ""]
    return lines


def _stat(run: dict[str, Any]) -> str:
    sp = run.get("stat_peaks") or {}
    return " / ".join(_f(sp[k] / 2**20) if k in sp else "–" for k in ("rss", "cache", "shmem"))


def markdown(results: dict[str, Any]) -> str:
    lines = _header(results) + _goal_lines(results)
    for wname, r in results["workloads"].items():
        lines += _workload_lines(wname, r, results["ratios"][wname])
    if results.get("larger"):
        lines += larger_lines(results["larger"])
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
    "from the same arrays and read in the same shuffled order (get and batch: one numpy permutation; DataLoader: "
    "`shuffle=True` with the same seeded generator), except LitData, MosaicML `StreamingDataset` and WebDataset "
    "epochs, which shuffle by themselves.",
    "rocksds default path: `rocksds.create(path, Schema(fields={...}))` with fields that name no compression, "
    "`Writer.extend` in blocks of 1,000, `rocksds.open(path)` and `RocksDataset(path)` with no arguments, a plain "
    "`DataLoader(batch_size=128, shuffle=True, num_workers=2)` (16 for big chips) with the default collate. "
    "Tuned variants set `wal=False`, `bulk=True`, a compression, or a `cache_gb`, and are labelled.",
    "h5py-naive: contiguous datasets, written and read one element at a time (the original baseline). "
    "h5py-chunked: one chunk per sample. h5py-best: contiguous, 64 MiB block writes, batches read with one "
    "sorted fancy selection per field.",
    "LMDB: one key per sample (fields concatenated), 64 MiB append-mode write transactions with writemap, "
    "read-only lock-free environment, batches via one cursor.",
    "npy-files: one .npy per sample for array fields (labels in one small array); memmap: one .npy per field "
    "opened with `np.load(mmap_mode='r')`, batches by fancy indexing.",
    "Peers (benchmarks/peers.py): LitData `optimize(chunk_bytes='64MB')` + `StreamingDataset`/`StreamingDataLoader`; "
    "MosaicML `MDSWriter` + `LocalDataset` (random access) and `StreamingDataset(local=...)` (`mosaic-stream`); "
    "Zarr v3 with one chunk per sample, unsharded and in ~64 MiB shards, default codecs; WebDataset tar shards "
    "(sequential only: no get or batch).",
    "DataLoader (default): an untimed warm-up epoch, then the timed epoch with a new DataLoader (fresh workers). "
    "Peers are fed per sample through `__getitem__`. Tuned epochs: batched through `__getitems__`; the 2nd epoch of "
    "one DataLoader with `persistent_workers=True`; the same with a rocksds block cache of 1.2x the raw data per "
    "worker.",
    "Partial caching: open with `cache_gb` (a fraction of the raw data), one warm-up pass, then the measured pass "
    "in a new shuffled order with fsync + `posix_fadvise(POSIX_FADV_DONTNEED)` on every file of the dataset before "
    "every batch (not timed); disk bytes from /proc/self/io. Mapped pages cannot be evicted, so where rocksds maps "
    "its table files (a block cache smaller than the tables, and tables that fit in half the memory) its misses "
    "are served from the page cache, as LMDB's and memmap's are (cold: one eviction, then one pass): a best case "
    "for all three. Only a block cache holding every table file reads blocks with pread, and there every miss is "
    "a disk read. Where compression and the block cache pay with real disk reads is measured in memory cgroups by "
    "`larger.py` (LARGER.md).",
]


# --------------------------------------------------------------------- plots


def plots(results: dict[str, Any], out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for wname, r in results["workloads"].items():
        names = [k for k, v in r["write"].items() if not v.get("tuned")] + \
            [k for k, v in r["write"].items() if v.get("tuned")]
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.2))
        colors = [("tab:cyan" if r["write"][k].get("tuned") else "tab:blue") if r["write"][k]["family"] == "rocksds"
                  else "tab:gray" for k in names]
        ax.barh([k + (" (tuned)" if r["write"][k].get("tuned") else "") for k in names],
                [r["write"][k]["samples_per_s"] for k in names], color=colors)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("write samples/s (log)")
        ax.set_title(f"{wname}: writes ({r['n']:,} samples)")
        fig.tight_layout()
        written.append(_save(fig, out_dir, f"{wname}-write.png"))
        plt.close(fig)

        metrics = [(m, h) for m, h in DEFAULT_METRICS if any(m in v for v in r["read"].values())]
        bnames = list(r["read"])
        fig, ax = plt.subplots(figsize=(11, 4))
        width = 0.8 / len(bnames)
        for j, b in enumerate(bnames):
            ax.bar([i + j * width for i in range(len(metrics))], [r["read"][b].get(m, 0) for m, _h in metrics],
                   width, label=b, edgecolor="black" if b == "rocksds" else None)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))], [h for _m, h in metrics])
        ax.set_yscale("log")
        ax.set_ylabel("samples/s (log)")
        ax.set_title(f"{wname}: reads, default path")
        ax.legend(fontsize=7, ncol=4)
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
    if results.get("larger"):
        written.append(larger_plot(results["larger"], out_dir))
    return written


def larger_plot(larger: dict[str, Any], out_dir: str) -> str:
    """Samples/s per backend and memory limit (an OOM kill or failure is drawn as a zero bar, marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limits = sorted({r["limit_bytes"] for r in larger["runs"]}, reverse=True)
    names = list(dict.fromkeys(r["backend"] for r in larger["runs"]))
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(names) * len(limits) + 1.5))
    height = 0.8 / len(limits)
    for j, lim in enumerate(limits):
        runs = {r["backend"]: r for r in larger["runs"] if r["limit_bytes"] == lim}
        vals = [runs[n]["samples_per_s"] if n in runs and runs[n]["ok"] else 0 for n in names]
        bars = ax.barh([i + j * height for i in range(len(names))], vals, height, label=f"{lim / 2**20:.0f} MiB")
        for bar, n in zip(bars, names):
            if n in runs and not runs[n]["ok"]:
                ax.text(0, bar.get_y() + height / 2, " OOM" if runs[n]["oom_killed"] else " failed", va="center",
                        fontsize=7, color="red")
    tuned = {r["backend"] for r in larger["runs"] if r.get("tuned")}
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))],
                  [n + (" (tuned)" if n in tuned else "") for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("DataLoader epoch samples/s (2 workers, files evicted first)")
    ax.set_title(f"larger than memory: {larger['n']:,} chips f32(4,256,256), memory cgroup")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, out_dir, "larger.png")
    plt.close(fig)
    return path


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
