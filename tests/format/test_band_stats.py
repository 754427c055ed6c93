"""Per-band statistics (SPEC.md 2.1): computed by the Writer, equal to numpy's, kept by appends, checked by the validator."""

from __future__ import annotations

import json
import os

import msgpack
import numpy as np
import pytest

import rocksds
from rocksds import Field, Schema, spec
from rocksds.cli import main
from rocksds.errors import CorruptionError, InvalidArgumentError
from rocksds.stats import DatasetStats
from rocksds.testing import raw_readable, raw_writable
from rocksds.tools.stats import recompute
from rocksds.validation import validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.join(ROOT, "conformance", "vectors")

SCHEMA = Schema(fields={
    "image": Field(dtype="uint16", shape=(3, 8, 8)),
    "dem": Field(dtype="float32", shape=(1, 8, 8)),
    "label": Field(dtype="str"),
})
OPTIONS = {"image": {"nodata": 0}, "dem": {}}


def _batch(seed: int, n: int) -> dict:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 3000, (n, 3, 8, 8)).astype(np.uint16)
    image[:, :, :2, :] = 0  # nodata rows
    dem = rng.normal(200, 50, (n, 1, 8, 8)).astype(np.float32)
    dem[:, :, 0, 0] = np.nan
    return {"image": image, "dem": dem, "label": [f"s{i}" for i in range(n)]}


def _bands(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)


def _check_against_numpy(stats: DatasetStats, image: np.ndarray, dem: np.ndarray) -> None:
    fs = stats["image"]
    for b, band in enumerate(_bands(image)):
        v = band[band != 0]
        assert fs.bands[b].count == v.size
        assert fs.bands[b].min == v.min() and fs.bands[b].max == v.max()
        assert fs.mean[b] == pytest.approx(v.astype(np.float64).mean(), rel=1e-15)
        assert fs.std[b] == pytest.approx(v.astype(np.float64).std(), rel=1e-12)
        np.testing.assert_array_equal(fs.percentile([0, 2, 50, 98, 100])[b],
                                      np.percentile(v, [0, 2, 50, 98, 100], method="inverted_cdf"))
    d = dem[np.isfinite(dem)].astype(np.float64)
    ds = stats["dem"]
    assert ds.bands[0].count == d.size and ds.min[0] == d.min() and ds.max[0] == d.max()
    assert ds.mean[0] == pytest.approx(d.mean(), rel=1e-12) and ds.std[0] == pytest.approx(d.std(), rel=1e-10)
    # bfloat16 bins: percentiles within one bin (2**-7 relative) of numpy's
    for q in (2, 50, 98):
        assert ds.percentile(q)[0] == pytest.approx(np.percentile(d, q, method="inverted_cdf"), rel=2**-7)


def test_writer_stats_equal_numpy_and_survive_appends(tmp_path) -> None:
    path = tmp_path / "s.rds"
    a, b = _batch(1, 10), _batch(2, 7)
    with rocksds.create(path, SCHEMA, stats=OPTIONS) as w:
        w.extend({k: v[:4] for k, v in a.items()})
        for i in range(4, 10):
            w.append({k: v[i] for k, v in a.items()})
    with rocksds.open(path, mode="a") as w:
        w.extend(b)
    with rocksds.open(path) as ds:
        stats = ds.stats
        assert stats is not None and stats.count == len(ds) == 17
    _check_against_numpy(stats, np.concatenate([a["image"], b["image"]]), np.concatenate([a["dem"], b["dem"]]))
    assert validate(path).ok_strict


def test_integer_stats_do_not_depend_on_batching(tmp_path) -> None:
    a = _batch(3, 12)
    docs = []
    for k, chunks in enumerate([[12], [1] * 12, [5, 7]]):
        path = tmp_path / f"b{k}.rds"
        with rocksds.create(path, SCHEMA, stats=OPTIONS) as w:
            start = 0
            for n in chunks:
                w.extend({f: v[start:start + n] for f, v in a.items()})
                start += n
        with rocksds.open(path) as ds:
            docs.append(ds.stats.to_document()["fields"]["image"])
    assert docs[0] == docs[1] == docs[2]


def test_no_stats_by_default_and_discarded_samples_do_not_count(tmp_path) -> None:
    with rocksds.create(tmp_path / "plain.rds", SCHEMA) as w:
        w.extend(_batch(4, 2))
    with rocksds.open(tmp_path / "plain.rds") as ds:
        assert ds.stats is None
    a = _batch(5, 3)
    with rocksds.create(tmp_path / "d.rds", SCHEMA, stats=True) as w:
        w.extend({k: v[:2] for k, v in a.items()})
        w.append({k: v[2] for k, v in a.items()})
        w.discard()
    with rocksds.open(tmp_path / "d.rds") as ds:
        assert ds.stats.count == 2 and set(ds.stats.fields) == {"image", "dem"}
        assert ds.stats["image"].bands[0].count == 2 * 64  # stats=True: no nodata, every value counts


def test_stats_options_are_checked() -> None:
    for bad in ({"label": {}}, {"missing": {}}, {"image": {"axis": 5}}, {"image": {"nodata": "x"}}, "image"):
        with pytest.raises(InvalidArgumentError):
            rocksds.create("/nonexistent/never", SCHEMA, stats=bad)


def test_conformance_vector_decodes_to_the_generator_record() -> None:
    path = os.path.join(VECTORS, "valid", "stats", "dataset")
    with rocksds.open(path) as ds:
        stats = ds.stats
        image = np.stack([ds[i]["image"] for i in range(len(ds))])
    with raw_readable(path, [spec.META_CF]) as storage:
        raw = storage.get(spec.META_CF, spec.STATS_KEY)
    assert stats.to_document() == msgpack.unpackb(raw)
    for b, band in enumerate(_bands(image)):
        v = band[band != 0]
        assert stats["image"].bands[b].count == v.size and stats["image"].mean[b] == v.mean()


def _put_stats(path, record: bytes) -> None:
    with raw_writable(str(path)) as storage:
        storage.write([(spec.META_CF, spec.STATS_KEY, record)])


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(version=2),
    lambda d: d["fields"]["image"]["bands"].pop(),
    lambda d: d["fields"]["image"]["bands"][0].update(count=-1),
    lambda d: d["fields"]["image"]["bands"][0]["counts"].append(1),
    lambda d: d["fields"]["image"]["bands"][0].update(bins=[70000], counts=[d["fields"]["image"]["bands"][0]["count"]]),
    lambda d: d["fields"]["image"].update(dtype="float32"),
    lambda d: d["fields"].update(nothere=d["fields"]["dem"]),
])
def test_malformed_stats_are_reported_and_samples_stay_readable(tmp_path, mutate) -> None:
    path = tmp_path / "m.rds"
    with rocksds.create(path, SCHEMA, stats=OPTIONS) as w:
        w.extend(_batch(6, 2))
    with rocksds.open(path) as ds:
        doc = ds.stats.to_document()
    mutate(doc)
    _put_stats(path, msgpack.packb(doc))
    assert validate(path).codes() == {"malformed-stats"}
    with rocksds.open(path) as ds:
        assert len(ds) == 2 and ds[1]["label"] == "s1"
        with pytest.raises(CorruptionError):
            ds.stats
    with rocksds.open(path, mode="a") as w:  # appending leaves the broken record alone
        w.extend(_batch(7, 1))
    recompute(str(path))
    with rocksds.open(path) as ds:
        assert ds.stats.count == 3
    assert validate(path).ok_strict


def test_stale_stats_warn_and_recompute_brings_them_up_to_date(tmp_path, capsys) -> None:
    path = tmp_path / "st.rds"
    a = _batch(8, 5)
    with rocksds.create(path, SCHEMA, stats=OPTIONS) as w:
        w.extend({k: v[:3] for k, v in a.items()})
    with rocksds.open(path) as ds:
        old = ds.stats.to_bytes()
    with rocksds.open(path, mode="a") as w:
        w.extend({k: v[3:] for k, v in a.items()})
    _put_stats(path, old)  # as a writer that does not know the stats record would leave it
    assert validate(path).codes() == {"stale-stats"}
    with rocksds.open(path, mode="a") as w:  # a writer does not extend stale statistics
        assert w.stats is None
    assert main(["stats", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stale"] is True
    assert main(["stats", str(path), "--recompute"]) == 0
    assert "statistics of 5 of 5 samples" in capsys.readouterr().out
    with rocksds.open(path) as ds:
        _check_against_numpy(ds.stats, a["image"], a["dem"])
    assert validate(path).ok_strict


def test_recompute_a_dataset_without_stats(tmp_path, capsys) -> None:
    path = tmp_path / "n.rds"
    a = _batch(9, 4)
    with rocksds.create(path, SCHEMA) as w:
        w.extend(a)
    assert main(["stats", str(path)]) == 0
    assert "no statistics stored" in capsys.readouterr().out
    recompute(str(path), OPTIONS)
    with rocksds.open(path) as ds:
        _check_against_numpy(ds.stats, a["image"], a["dem"])


def test_signed_bool_and_wide_integer_fields_equal_numpy(tmp_path) -> None:
    rng = np.random.default_rng(12)
    cols = {"i8": rng.integers(-128, 128, (9, 2, 5)).astype(np.int8),
            "i16": rng.integers(-32768, 32768, (9, 5)).astype(np.int16),
            "flag": rng.random((9, 7)) < 0.3,
            "i64": rng.integers(-2**40, 2**40, (9, 3)).astype(np.int64)}
    schema = Schema(fields={"i8": Field(dtype="int8", shape=(2, 5)), "i16": Field(dtype="int16", shape=(5,)),
                            "flag": Field(dtype="bool", shape=(7,)), "i64": Field(dtype="int64", shape=(3,))})
    with rocksds.create(tmp_path / "i.rds", schema, stats={"i8": {}, "i16": {"axis": None}, "flag": {"axis": None},
                                                         "i64": {"axis": None}}) as w:
        w.extend({k: v[:4] for k, v in cols.items()})
        w.extend({k: v[4:] for k, v in cols.items()})
    with rocksds.open(tmp_path / "i.rds") as ds:
        st = ds.stats
    for name, axis in (("i8", 0), ("i16", None), ("flag", None), ("i64", None)):
        a = cols[name].astype(np.float64)
        bands = _bands(a) if axis == 0 else a.reshape(1, -1)
        fs = st[name]
        np.testing.assert_array_equal(fs.min, bands.min(1))
        np.testing.assert_array_equal(fs.max, bands.max(1))
        np.testing.assert_allclose(fs.mean, bands.mean(1), rtol=1e-12)
        np.testing.assert_allclose(fs.std, bands.std(1), rtol=1e-9)
        if name != "i64":  # exact histograms: exact percentiles
            np.testing.assert_array_equal(fs.percentile([5, 50, 95]),
                                          np.percentile(bands, [5, 50, 95], axis=1, method="inverted_cdf").T)
    assert st["i8"].histogram == "exact" and st["i8"].offset == -128 and st["i64"].histogram == "bfloat16"
