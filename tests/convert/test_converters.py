"""Converters: every source round-trips exactly, failures leave nothing behind."""

from __future__ import annotations

import os
import pickle
import sys

import h5py
import numpy as np
import pytest
import torch

import rocksds
from rocksds.convert import from_hdf5, from_legacy, from_npy_folder, from_torch_dataset
from rocksds.convert._safe_pickle import safe_loads
from rocksds.convert.npy import natural_key

from legacy_layout import SystemCall, write_legacy


def assert_same(a, b):
    """Exact equality: same dtype (after byte order), shape and bits."""
    if isinstance(a, (str, bytes)):
        assert a == b
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")
    assert a.astype(a.dtype.newbyteorder("<")).tobytes() == b.astype(b.dtype.newbyteorder("<")).tobytes()


def leftovers(parent):
    return [n for n in os.listdir(parent) if ".converting-" in n or ".creating-" in n]


# ---------------------------------------------------------------------- HDF5


@pytest.fixture
def h5_file(tmp_path, rng):
    n = 37
    data = {
        "images": rng.standard_normal((n, 3, 6, 5)).astype(np.float32),
        "meta/labels": rng.integers(-5, 5, n).astype(np.int16),
        "meta/mask": rng.integers(0, 3, (n, 6, 5)).astype(np.uint8),
        "flags": rng.integers(0, 2, (n, 2)).astype(bool),
        "big": rng.standard_normal((n, 4)).astype(">f8"),
    }
    data["images"][0, 0, 0, 0] = np.nan  # NaNs must survive bit for bit
    names = [f"tile_{i}_é" for i in range(n)]
    path = tmp_path / "src.h5"
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f[k] = v
        f.create_dataset("names", data=names, dtype=h5py.string_dtype())
        ragged = f.create_dataset("ragged", (n,), dtype=h5py.vlen_dtype(np.int32))
        for i in range(n):
            ragged[i] = np.arange(i % 5, dtype=np.int32) * i
        f["other"] = np.zeros(n + 1)  # a different length: excluded unless chosen
    return path, data, names


def test_hdf5_round_trip_with_selection_and_compression(h5_file, tmp_path, monkeypatch):
    path, data, names = h5_file
    monkeypatch.setattr("rocksds.convert.hdf5._BLOCK_BYTES", 500)  # several blocks, the last one partial
    out = tmp_path / "out.rds"
    fields = {"images": "image", "meta/labels": "label", "meta/mask": "mask", "flags": "flags",
              "big": "big", "names": "name", "ragged": "ragged"}
    report = from_hdf5(path, out, fields=fields, compression="zstd:5", field_compression={"mask": "none"},
                       attrs={"source": "unit test"})
    assert report.verified and report.count == 37
    assert list(report.fields) == list(fields.values())
    ragged = [np.arange(i % 5, dtype=np.int32) * i for i in range(37)]
    assert report.data_bytes == (sum(v.nbytes for v in data.values()) + sum(len(s.encode()) for s in names)
                                 + sum(r.nbytes for r in ragged))
    assert report.fields["ragged"]["shape"] == [None]
    witness = (out / rocksds.spec.WITNESS_FILE).read_bytes()  # SPEC.md 7.1, written by the Writer it uses
    assert int.from_bytes(witness[12:20], "big") == 37
    with rocksds.open(out) as ds:
        assert len(ds) == 37
        assert ds.attrs == {"source": "unit test"}
        assert ds.schema["image"].compression == "zstd" and ds.schema["image"].compression_level == 5
        assert ds.schema["mask"].compression == "none"
        assert ds.schema["big"].dtype == "float64"
        for i in range(37):
            s = ds[i]
            for src, name in fields.items():
                want = {"names": names, "ragged": ragged}.get(src, data.get(src))
                assert_same(s[name], want[i])
    assert not leftovers(tmp_path)


def test_hdf5_refuses_unequal_lengths_and_names_the_fix(h5_file, tmp_path):
    path, _, _ = h5_file
    with pytest.raises(rocksds.InvalidArgumentError, match="different lengths.*fields="):
        from_hdf5(path, tmp_path / "out.rds")
    assert not os.path.exists(tmp_path / "out.rds")


def test_hdf5_missing_h5py_names_pip_command(h5_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(rocksds.DependencyNotFoundError, match="pip install h5py"):
        from_hdf5(h5_file[0], tmp_path / "out.rds")


# ---------------------------------------------------------------------- npy / npz folders


def test_natural_order():
    names = ["10.npy", "2.npy", "1.npy", "a10.npy", "a9.npy", "01.npy"]
    assert sorted(names, key=natural_key) == ["01.npy", "1.npy", "2.npy", "10.npy", "a9.npy", "a10.npy"]


def test_npy_folder_natural_order_and_auto_variable(tmp_path, rng):
    folder = tmp_path / "npy"
    folder.mkdir()
    arrays = [rng.integers(0, 1000, (int(rng.integers(1, 5)), 3)).astype(np.uint16) for _ in range(12)]
    for i, a in enumerate(arrays):
        np.save(folder / f"s{i}.npy", a)  # s10 sorts after s9, not after s1
    (folder / ".hidden.npy").write_bytes(b"junk")
    report = from_npy_folder(folder, tmp_path / "out.rds", field="points", filename_field="file")
    assert report.fields["points"]["shape"] == [None, 3]
    with rocksds.open(tmp_path / "out.rds") as ds:
        assert [ds[i]["file"] for i in range(12)] == [f"s{i}.npy" for i in range(12)]
        for i, a in enumerate(arrays):
            assert_same(ds[i]["points"], a)


def test_npy_folder_without_auto_variable_explains(tmp_path):
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "0.npy", np.zeros((2, 3)))
    np.save(folder / "1.npy", np.zeros((4, 3)))
    with pytest.raises(rocksds.SchemaError, match="axis 0 variable"):
        from_npy_folder(folder, tmp_path / "out.rds", variable=None)
    report = from_npy_folder(folder, tmp_path / "out.rds", variable={"data": [0]})
    assert report.fields["data"]["shape"] == [None, 3]


def test_npz_folder_keys_become_fields(tmp_path, rng):
    folder = tmp_path / "npz"
    folder.mkdir()
    samples = [
        {"image": rng.random((2, 4, 4)).astype(np.float32), "label": np.int64(i), "weights": rng.random(3)}
        for i in range(5)
    ]
    for i, s in enumerate(samples):
        np.savez_compressed(folder / f"{i:03d}.npz", **s)
    report = from_npy_folder(folder, tmp_path / "out.rds", fields={"image": "img", "label": "y"})
    assert list(report.fields) == ["img", "y"]
    with rocksds.open(tmp_path / "out.rds") as ds:
        for i, s in enumerate(samples):
            assert_same(ds[i]["img"], s["image"])
            assert_same(ds[i]["y"], s["label"])


def test_npy_refuses_object_arrays_and_mixed_folders(tmp_path):
    folder = tmp_path / "obj"
    folder.mkdir()
    np.save(folder / "0.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(rocksds.SampleError, match="0.npy"):
        from_npy_folder(folder, tmp_path / "out.rds")
    np.save(folder / "1.npy", np.zeros(3))
    np.savez(folder / "2.npz", a=np.zeros(3))
    with pytest.raises(rocksds.InvalidArgumentError, match="mixes"):
        from_npy_folder(folder, tmp_path / "out.rds")
    assert not os.path.exists(tmp_path / "out.rds")


# ---------------------------------------------------------------------- torch


class DictDataset(torch.utils.data.Dataset):
    """Dict samples with a variable-length field, a string and a Python int."""

    def __init__(self, n: int, fail_at: int = -1) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 2, 5, 5, generator=g)
        self.points = [torch.randn(i % 4, 2, generator=g) for i in range(n)]
        self.fail_at = fail_at

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        if i == self.fail_at:
            raise RuntimeError("disk on fire")
        return {"image": self.images[i], "points": self.points[i], "caption": f"chip {i}", "label": i % 3}


def test_torch_tensor_dataset(tmp_path):
    x = torch.randn(25, 3, 4, 4)
    y = torch.randint(0, 10, (25,))
    report = from_torch_dataset(torch.utils.data.TensorDataset(x, y), str(tmp_path / "out.rds"),
                                names=("image", "label"))
    assert report.count == 25
    with rocksds.open(tmp_path / "out.rds") as ds:
        assert ds.schema["image"].dtype == "float32" and ds.schema["label"].dtype == "int64"
        for i in range(25):
            assert_same(ds[i]["image"], x[i].numpy())
            assert_same(ds[i]["label"], y[i].numpy())


def test_torch_tuples_need_names(tmp_path):
    ds = torch.utils.data.TensorDataset(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(rocksds.InvalidArgumentError, match="names="):
        from_torch_dataset(ds, str(tmp_path / "out.rds"))


def test_torch_dict_dataset_with_variable_field(tmp_path):
    dataset = DictDataset(11)
    # sample 0 has 0 points; without variable= the schema would fix that axis
    with pytest.raises(rocksds.SampleError, match="sample 1"):
        from_torch_dataset(dataset, str(tmp_path / "out.rds"))
    assert not os.path.exists(tmp_path / "out.rds") and not leftovers(tmp_path)
    from_torch_dataset(dataset, str(tmp_path / "out.rds"), variable={"points": (0,)})
    with rocksds.open(tmp_path / "out.rds") as ds:
        for i in range(11):
            want = dataset[i]
            got = ds[i]
            assert_same(got["image"], want["image"].numpy())
            assert_same(got["points"], want["points"].numpy())
            assert got["caption"] == want["caption"] and int(got["label"]) == want["label"]


def test_source_failure_midway_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="disk on fire"):
        from_torch_dataset(DictDataset(8, fail_at=5), str(tmp_path / "out.rds"), variable={"points": (0,)})
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- legacy layout


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_legacy_round_trip_keeps_listed_key_order(tmp_path, rng, protocol):
    n = 15
    keys = [str(k) for k in rng.permutation(n)]  # listed out of numeric order
    inputs = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, n).astype(">i4")  # a big-endian legacy dtype
    src = tmp_path / "legacy"
    metadata = {
        "inputs": {"shape": (1, 28, 28), "dtype": np.dtype("float32")},
        "labels": {"shape": (), "dtype": np.dtype(">i4")},
    }
    write_legacy(src, {"inputs": inputs, "labels": labels}, keys, metadata=metadata, protocol=protocol)
    report = from_legacy(src, tmp_path / "out.rds", key_field="key")
    assert report.count == n and report.fields["labels"]["dtype"] == "int32"
    with rocksds.open(tmp_path / "out.rds") as ds:
        assert [ds[i]["key"] for i in range(n)] == keys
        for i in range(n):
            assert_same(ds[i]["inputs"], inputs[i])
            assert_same(ds[i]["labels"], labels[i])


def test_legacy_metadata_with_numpy_scalars_and_types(tmp_path, rng):
    # shapes built from arrays hold np.int64; some writers stored np.float32 (the type)
    values = rng.random((4, 3, 2))
    src = tmp_path / "legacy"
    meta = {"x": {"shape": tuple(np.array([3, 2])), "dtype": np.float64}}
    write_legacy(src, {"x": values}, ["0", "1", "2", "3"], metadata=meta, protocol=2, keys_sep=",")
    from_legacy(src, tmp_path / "out.rds")
    with rocksds.open(tmp_path / "out.rds") as ds:
        assert_same(ds[:]["x"], values)


def test_legacy_unknown_axis_becomes_variable(tmp_path, rng):
    rows = [rng.standard_normal((k, 2)).astype(np.float32) for k in (1, 3, 2)]
    src = tmp_path / "legacy"
    write_legacy(src, {"pts": rows}, ["0", "1", "2"], metadata={"pts": {"shape": (-1, 2), "dtype": np.dtype("f4")}})
    from_legacy(src, tmp_path / "out.rds")
    with rocksds.open(tmp_path / "out.rds") as ds:
        assert ds.schema["pts"].shape == (None, 2)
        for i, r in enumerate(rows):
            assert_same(ds[i]["pts"], r)


def test_legacy_wrong_record_size_is_corruption(tmp_path):
    src = tmp_path / "legacy"
    write_legacy(src, {"x": [np.zeros(3), np.zeros(4)]}, ["0", "1"],
                 metadata={"x": {"shape": (3,), "dtype": np.dtype("float64")}})
    with pytest.raises(rocksds.CorruptionError, match="key 1"):
        from_legacy(src, tmp_path / "out.rds")
    assert not os.path.exists(tmp_path / "out.rds") and not leftovers(tmp_path)


def test_malicious_metadata_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "legacy"
    write_legacy(src, {"x": [np.zeros(2)]}, ["0"],
                 metadata={"x": {"shape": (2,), "dtype": SystemCall(f"touch {marker}")}})
    with pytest.raises(rocksds.UnsafeInputError, match="posix.system|os.system"):
        from_legacy(src, tmp_path / "out.rds")
    assert not marker.exists()
    assert not os.path.exists(tmp_path / "out.rds")


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(SystemCall("touch /tmp/never")),
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"csubprocess\nPopen\n(S'true'\ntR.",
        b"cnumpy\nload\n(S'x'\ntR.",  # numpy, but not a dtype
        b"\x80\x04\x95\x05\x00",  # truncated
    ],
)
def test_safe_loads_refuses_everything_but_data_and_dtypes(payload):
    with pytest.raises(rocksds.UnsafeInputError):
        safe_loads(payload)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_safe_loads_accepts_dtypes_and_plain_data(protocol):
    value = {
        "dtypes": [np.dtype(t) for t in ("bool", "u1", ">i2", "<i4", "i8", "f2", "f4", ">f8", "c8", "c16")],
        "types": [np.float32, np.int64, np.bool_],
        "scalars": (np.int64(28), np.float32(0.5)),
        "plain": [1, 2.5, "s", b"raw", None, True, (1, 2), {"nested": [1]}],
    }
    assert safe_loads(pickle.dumps(value, protocol=protocol)) == value


# ---------------------------------------------------------------------- shared behaviour


def test_verification_catches_a_wrong_record_and_removes_output(tmp_path, monkeypatch):
    from rocksds.records import RecordCodec

    original = RecordCodec.encode
    calls = {"n": 0}

    def corrupting(self, value):
        data = original(self, value)
        calls["n"] += 1
        if calls["n"] == 4:  # the record of sample 3 is written wrong
            data = bytes([data[0] ^ 1]) + data[1:]
        return data

    monkeypatch.setattr(RecordCodec, "encode", corrupting)
    ds = torch.utils.data.TensorDataset(torch.arange(10.0).reshape(5, 2))
    with pytest.raises(rocksds.VerificationError, match="sample 3, field 'x'.*removed"):
        from_torch_dataset(ds, str(tmp_path / "out.rds"), names=["x"])
    assert os.listdir(tmp_path) == []


def test_existing_output_needs_overwrite_and_must_be_a_dataset(tmp_path):
    ds = torch.utils.data.TensorDataset(torch.arange(4))
    out = str(tmp_path / "out.rds")
    from_torch_dataset(ds, out, names=["a"])
    with pytest.raises(rocksds.DatasetExistsError, match="overwrite"):
        from_torch_dataset(ds, out, names=["a"])
    report = from_torch_dataset(torch.utils.data.TensorDataset(torch.arange(6)), out, names=["b"], overwrite=True)
    assert report.count == 6 and rocksds.open(out).field_names == ("b",)
    (tmp_path / "plain").mkdir()
    with pytest.raises(rocksds.NotADatasetError):
        from_torch_dataset(ds, str(tmp_path / "plain"), names=["a"], overwrite=True)


def test_legacy_keys_must_be_decimal_and_unique(tmp_path):
    for keys, message in ((["0", "x1"], "not a decimal number"), (["0", "1", "0"], "listed twice")):
        src = tmp_path / f"legacy{len(keys)}"
        write_legacy(src, {"x": np.zeros((len(keys), 2))}, keys)
        with pytest.raises(rocksds.CorruptionError, match=message):
            from_legacy(src, tmp_path / "out.rds")


def test_invalid_source_names_suggest_renaming(tmp_path):
    ds = [{"2d": np.zeros(2)}]
    with pytest.raises(rocksds.SchemaError, match="--field SRC=NAME"):
        from_torch_dataset(ds, tmp_path / "out.rds")
    assert from_torch_dataset(ds, tmp_path / "out.rds", fields={"2d": "xy"}).fields["xy"]["shape"] == [2]


def test_converters_store_band_statistics(tmp_path) -> None:
    """A converted dataset carries per-band statistics of its numeric fields, equal to numpy's."""
    from rocksds.convert import from_npy_folder

    rng = np.random.default_rng(11)
    folder = tmp_path / "npy"
    folder.mkdir()
    arrays = [rng.integers(0, 200, (2, 5, 5)).astype(np.uint8) for _ in range(6)]
    for i, a in enumerate(arrays):
        np.save(folder / f"{i}.npy", a)
    from_npy_folder(str(folder), str(tmp_path / "out.rds"))
    with rocksds.open(tmp_path / "out.rds") as ds:
        fs = ds.stats["data"]
    stacked = np.moveaxis(np.stack(arrays), 1, 0).reshape(2, -1)
    np.testing.assert_array_equal(fs.count, [stacked.shape[1]] * 2)
    np.testing.assert_array_equal(fs.mean, stacked.mean(axis=1))
    from_npy_folder(str(folder), str(tmp_path / "bare.rds"), stats=False)
    with rocksds.open(tmp_path / "bare.rds") as ds:
        assert ds.stats is None


def test_hdf5_file_and_dataset_attributes_are_kept(tmp_path) -> None:
    src = tmp_path / "a.h5"
    with h5py.File(src, "w") as f:
        f.attrs["sensor"] = "Sentinel-2"
        f.attrs["resolution_m"] = np.float32(10.0)
        f.attrs["raw"] = np.void(b"\x00\x01")  # not representable in attrs: left out
        d = f.create_dataset("image", data=np.zeros((3, 2, 4, 4), np.uint16))
        d.attrs["bands"] = np.array([b"B4", b"B8"])
        d.attrs["scale"] = 1e-4
    from_hdf5(str(src), str(tmp_path / "out.rds"), attrs={"sensor": "S2A"})
    with rocksds.open(tmp_path / "out.rds") as ds:
        meta = ds.attrs["hdf5"]
        assert meta["file"] == {"sensor": "Sentinel-2", "resolution_m": 10.0}
        assert meta["fields"]["image"] == {"bands": ["B4", "B8"], "scale": 1e-4}
        assert ds.attrs["sensor"] == "S2A"  # the user's attrs win
