"""Reader overhead: ``ds[i]`` vs the raw binding, and ``get_batch`` vs many ``ds[i]``.

On one MNIST-shaped dataset (float32 (1,28,28) + uint8 label, lz4), in the
same run and the same shuffled order:

* ``ds[i]`` against rocksdict's own ``get`` on each field's column family
  followed by ``np.frombuffer(...).reshape(...)``: the price of rocksds's
  checks and dict building (goal: within 1.25x);
* ``get_batch`` of 128 samples against 128 calls of ``ds[i]`` (goal: >= 3x).

Run ``python benchmarks/bench_reader.py [-n 20000]``; the harness also runs it
and puts the numbers in the report. Each timing is the best of 3 passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = ["measure", "main"]


def _best(fn: Any, reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(n: int = 20_000, work_dir: Optional[str] = None, seed: int = 0) -> dict[str, Any]:
    """Write ``n`` MNIST-shaped samples, time the four read paths, check they agree; returns rates and ratios."""
    import rocksdict as rd

    import rocksds
    import workloads

    w = workloads.make("mnist", n, seed)
    tmp = tempfile.mkdtemp(prefix="rocksds-bench-reader-", dir=work_dir)
    try:
        path = os.path.join(tmp, "mnist.rds")
        schema = rocksds.Schema(
            fields={f: rocksds.Field(dtype=a.dtype.name, shape=a.shape[1:]) for f, a in w.arrays.items()}
        )
        with rocksds.create(path, schema, wal=False) as wr:
            for lo in range(0, n, 1000):
                wr.extend({f: a[lo : lo + 1000] for f, a in w.arrays.items()})
        order = np.random.default_rng(seed + 1).permutation(n)
        ilist = order.tolist()
        ds = rocksds.open(path)

        # The raw binding, opened the same way (read-only, same block cache size).
        names = list(w.arrays)
        cache = rd.Cache(int(0.25 * 2**30))
        opts = rd.Options(raw_mode=True)
        cf_opts = {}
        for f in ["__rocksds__", *names]:
            o = rd.Options(raw_mode=True)
            t = rd.BlockBasedOptions()
            t.set_block_cache(cache)
            t.set_bloom_filter(10, False)
            o.set_block_based_table_factory(t)
            cf_opts[f] = o
        raw_dir = os.path.join(tmp, "raw")
        shutil.copytree(path, raw_dir)
        db = rd.Rdict(raw_dir, opts, column_families=cf_opts, access_type=rd.AccessType.read_only(False))
        cfs = [(f, db.get_column_family(f), w.arrays[f].dtype, w.arrays[f].shape[1:]) for f in names]
        ro = rd.ReadOptions()
        ro.set_verify_checksums(True)

        def raw_pass() -> None:
            for i in ilist:
                k = i.to_bytes(8, "big")
                {f: np.frombuffer(cf.get(k, None, ro), dt).reshape(shape) for f, cf, dt, shape in cfs}

        def ds_pass() -> None:
            for i in ilist:
                ds[i]

        def batch_pass() -> None:
            for lo in range(0, n, 128):
                ds.get_batch(order[lo : lo + 128])

        def many_get_pass() -> None:
            for lo in range(0, n, 128):
                [ds[i] for i in ilist[lo : lo + 128]]

        # Same answers from every path before timing anything.
        k = ilist[0]
        raw0 = {f: np.frombuffer(cf.get(k.to_bytes(8, "big"), None, ro), dt).reshape(s) for f, cf, dt, s in cfs}
        b = ds.get_batch(order[:128])
        for f in names:
            assert np.array_equal(ds[k][f], raw0[f]) and np.array_equal(raw0[f], w.arrays[f][k])
            assert np.array_equal(b[f], w.arrays[f][order[:128]])
        raw_pass()  # warm both block caches
        ds_pass()
        t_raw, t_ds = _best(raw_pass), _best(ds_pass)
        t_batch, t_many = _best(batch_pass), _best(many_get_pass)
        ds.close()
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "n": n,
        "raw_get_per_s": n / t_raw,
        "ds_getitem_per_s": n / t_ds,
        "ds_vs_raw_slowdown": t_ds / t_raw,
        "get_batch_per_s": n / t_batch,
        "many_getitem_per_s": n / t_many,
        "batch_vs_getitem_speedup": t_many / t_batch,
        "goal_slowdown_max": 1.25,
        "goal_batch_speedup_min": 3.0,
    }


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="samples (default 20,000)")
    args = p.parse_args(argv)
    r = measure(args.n)
    print(f"raw binding get + np.frombuffer : {r['raw_get_per_s']:>10,.0f} samples/s")
    print(f"ds[i]                           : {r['ds_getitem_per_s']:>10,.0f} samples/s "
          f"({r['ds_vs_raw_slowdown']:.2f}x the raw time; goal <= 1.25x)")
    print(f"128 x ds[i]                     : {r['many_getitem_per_s']:>10,.0f} samples/s")
    print(f"get_batch(128)                  : {r['get_batch_per_s']:>10,.0f} samples/s "
          f"({r['batch_vs_getitem_speedup']:.2f}x; goal >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
