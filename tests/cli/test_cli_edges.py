"""The rocksds command's rough edges a new user hits: warnings, --quiet, pipes, help, JSON shape."""

from __future__ import annotations

import argparse
import json
import os
import pydoc
import subprocess
import sys

import numpy as np
import pytest

import rocksds
from rocksds.cli import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def chips(tmp_path):
    path = tmp_path / "chips.rds"
    attrs = {"bands": [f"B{i}" for i in range(40)], "classes": ["water", "field"], "crs": "EPSG:32633"}
    with rocksds.create(path, rocksds.Schema(fields={"x": rocksds.Field(dtype="uint8", shape=(3,))}, attrs=attrs)) as w:
        w.extend({"x": np.zeros((200, 3), np.uint8)})
    return path


def _striped(tmp_path) -> str:
    from rocksds.testing import write_synthetic_geotiff

    return write_synthetic_geotiff(str(tmp_path / "striped.tif"), 96, 96, tiled=False, block=64)


def test_raster_warning_is_one_line_and_quiet_hides_everything(tmp_path, capsys):
    pytest.importorskip("rasterio")
    src = _striped(tmp_path)
    assert main(["ingest-raster", str(tmp_path / "a.rds"), "--input", f"image={src}", "--chip", "32"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].split("\r")[-1].startswith("rocksds: warning: ") and "striped" in err
    assert "RasterLayoutWarning" not in err and "plan_chips(" not in err  # no class name, no source line
    assert main(["ingest-raster", str(tmp_path / "b.rds"), "--input", f"image={src}", "--chip", "32", "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def test_ingest_json_without_split_names_one_dataset(tmp_path, capsys):
    pytest.importorskip("rasterio")
    from rocksds.testing import write_synthetic_geotiff

    src = write_synthetic_geotiff(str(tmp_path / "s.tif"), 64, 64, block=32)
    assert main(["ingest-raster", str(tmp_path / "a.rds"), "--input", f"image={src}", "--chip", "32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == str(tmp_path / "a.rds") and report["count"] == 4
    assert "datasets" not in report and "counts" not in report


def test_info_into_a_closed_pipe_ends_quietly(chips):
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run(f"{sys.executable} -m rocksds.cli info {chips} | head -n 1", shell=True, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(str(chips)) and done.stderr == ""


def test_info_prints_attrs_one_key_per_line(chips, capsys):
    assert main(["info", str(chips)]) == 0
    out = capsys.readouterr().out
    attrs_part = out[out.index("attrs:") :]
    assert '\n    "classes": ["water", "field"],\n' in attrs_part and '\n    "crs": "EPSG:32633"\n' in attrs_part
    assert max(len(line) for line in attrs_part.splitlines()) <= 84  # long lists wrap instead of one huge line


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {n}", a) for n, a in _all_actions(sub))
        else:
            yield parser.prog, action


def test_every_argument_has_help_and_quiet_is_spelled_the_same_everywhere():
    for where, action in _all_actions(build_parser()):
        assert action.help, f"{where}: {action.dest} has no help"
        if action.dest == "quiet":
            assert action.option_strings == ["-q", "--quiet"], where


def test_help_of_open_lists_its_options_example_and_errors():
    text = pydoc.render_doc(rocksds.open, renderer=pydoc.plaintext)
    for word in ("cache_gb", "bloom_bits", "wal", "sync", "commit_bytes", "bulk", "Example", "Raises",
                 "NotADatasetError", "DatasetLockedError"):
        assert word in text, word
