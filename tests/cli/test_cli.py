"""The rocksds command: convert, info and head (with --png) as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

import rocksds
from rocksds.cli import main
from rocksds.tools.preview import render

from legacy_layout import SystemCall, write_legacy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def h5(tmp_path, rng):
    path = tmp_path / "chips.h5"
    with h5py.File(path, "w") as f:
        f["x"] = rng.standard_normal((12, 4, 9, 7)).astype(np.float32)
        f["y"] = rng.integers(0, 3, (12, 9, 7)).astype(np.uint8)
    return path


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_convert_hdf5_then_info_and_head_png(tmp_path, h5, capsys):
    out = tmp_path / "chips.rds"
    rc, stdout, err = run(capsys, "convert", "hdf5", h5, out, "--field", "x=image", "--field", "y=mask",
                          "--compression", "zstd:3", "--field-compression", "mask=lz4",
                          "--attrs", '{"bands": ["B2", "B3", "B4", "B8"]}', "--quiet", "--json")
    assert rc == 0 and err == ""
    report = json.loads(stdout)
    assert report["count"] == 12 and report["verified"] is True
    assert report["fields"]["image"] == {"dtype": "float32", "shape": [4, 9, 7], "compression": "zstd"}

    rc, stdout, _ = run(capsys, "info", out, "--json")
    info = json.loads(stdout)
    assert rc == 0 and info["count"] == 12 and info["attrs"]["bands"][3] == "B8"
    assert [f["compression"] for f in info["fields"]] == ["zstd", "lz4"]

    prefix = tmp_path / "prev"
    rc, stdout, _ = run(capsys, "head", out, "-n", "2", "--png", prefix)
    assert rc == 0 and stdout.count("saved") == 2
    with Image.open(f"{prefix}-1.png") as im:
        assert (im.mode, im.size) == ("RGB", (7, 9))
    rc, _, _ = run(capsys, "head", out, "--index", "0", "--png", tmp_path / "nir", "--bands", "B8,B4,B3")
    with Image.open(tmp_path / "nir-0.png") as im, rocksds.open(out) as ds:
        assert rc == 0
        np.testing.assert_array_equal(np.asarray(im), render(ds[0]["image"], bands=[3, 2, 1]))
        # without --bands, attrs["bands"] picks B4, B3, B2 as RGB
        with Image.open(f"{prefix}-0.png") as default:
            np.testing.assert_array_equal(np.asarray(default), render(ds[0]["image"], bands=[2, 1, 0]))
    rc, _, _ = run(capsys, "head", out, "--index", "5", "--png", prefix, "--field", "mask")
    with Image.open(f"{prefix}-5.png") as im, rocksds.open(out) as ds:
        assert im.size == (7, 9)
        classes = ds[5]["mask"]
        assert (np.asarray(im)[classes == 0] == 0).all()


def test_convert_progress_bar_unless_quiet(tmp_path, h5, capsys):
    rc, stdout, err = run(capsys, "convert", "hdf5", h5, tmp_path / "a.rds")
    assert rc == 0 and "convert hdf5" in err and "verified against hdf5" in stdout


def test_convert_npy_with_variable_axes(tmp_path, capsys, rng):
    folder = tmp_path / "npy"
    folder.mkdir()
    arrays = [rng.random((i + 1, 2)) for i in range(4)]
    for i, a in enumerate(arrays):
        np.save(folder / f"{i}.npy", a)
    rc, _, err = run(capsys, "convert", "npy", folder, tmp_path / "o.rds", "--npy-field", "pts",
                     "--no-auto-variable", "-q")
    assert rc == 2 and "--variable" in err
    rc, stdout, _ = run(capsys, "convert", "npy", folder, tmp_path / "o.rds", "--npy-field", "pts",
                        "--variable", "pts=0", "-q", "--json")
    assert rc == 0 and json.loads(stdout)["fields"]["pts"]["shape"] == [None, 2]
    with rocksds.open(tmp_path / "o.rds") as ds:
        assert all(np.array_equal(ds[i]["pts"], a) for i, a in enumerate(arrays))


def test_convert_torch_from_a_python_file(tmp_path, capsys):
    script = tmp_path / "mydata.py"
    script.write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.utils.data.TensorDataset(torch.arange(12.).reshape(6, 2), torch.arange(6))\n"
    )
    rc, stdout, _ = run(capsys, "convert", "torch", f"{script}:make", tmp_path / "t.rds", "--names", "x,y",
                        "-q", "--json")
    assert rc == 0 and json.loads(stdout)["count"] == 6
    with rocksds.open(tmp_path / "t.rds") as ds:
        assert ds[5]["x"].tolist() == [10.0, 11.0] and int(ds[5]["y"]) == 5


def test_convert_legacy_refuses_malicious_pickle_in_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    src = tmp_path / "legacy"
    write_legacy(src, {"x": [np.zeros(2)]}, ["0"], metadata={"x": SystemCall(f"touch {marker}")})
    rc, _, err = run(capsys, "convert", "legacy", src, tmp_path / "o.rds", "-q")
    assert rc == 2
    assert err.startswith("rocksds: error: ") and err.count("\n") == 1 and "refusing to load" in err
    assert not marker.exists() and not (tmp_path / "o.rds").exists()


def test_convert_legacy_ok(tmp_path, capsys, rng):
    src = tmp_path / "legacy"
    values = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)
    write_legacy(src, {"inputs": values}, ["3", "1", "4", "0", "2"])
    rc, stdout, _ = run(capsys, "convert", "legacy", src, tmp_path / "o.rds", "-q", "--json")
    assert rc == 0 and json.loads(stdout)["count"] == 5
    with rocksds.open(tmp_path / "o.rds") as ds:
        np.testing.assert_array_equal(ds[:]["inputs"], values)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["convert", "hdf5", "{tmp}/missing.h5", "{tmp}/o.rds"], "missing.h5 is not a file"),
        (["convert", "hdf5", "{h5}", "{tmp}/o.rds", "--compression", "brotli"], "unknown compression 'brotli'"),
        (["convert", "hdf5", "{h5}", "{tmp}/o.rds", "--field", "nope"], "no HDF5 dataset ['nope']"),
        (["convert", "hdf5", "{h5}", "{tmp}/o.rds", "--attrs", "[1]"], "--attrs must be a JSON object"),
        (["info", "{tmp}/missing.rds"], "does not exist"),
        (["head", "{tmp}/missing.rds"], "does not exist"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, h5, argv, message):
    argv = [a.format(tmp=tmp_path, h5=h5) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "rocksds.cli", *argv, "-q"] if argv[0] == "convert" else
        [sys.executable, "-m", "rocksds.cli", *argv],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("rocksds: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.rds").exists()
