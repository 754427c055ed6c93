"""Junk a dead process leaves (read-only shadows, build directories) is removed at the next opportunity.

Processes leave through ``os._exit`` (as forked DataLoader workers do) or are
SIGKILLed mid-build; the next open (shadows) or the next build of the same
path removes what they left, and never what a live process still uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rocksds
import rocksds._leftovers
import rocksds._shadow
from _crash_writer import write_expected

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private TMPDIR for shadows; leftovers count as stale at once and every open sweeps."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr(rocksds._leftovers, "STALE_AFTER_S", 0.0)
    monkeypatch.setattr(rocksds._shadow, "STALE_AFTER_S", 0.0)
    return tmp


def _shadows(tmp: Path) -> list[str]:
    return sorted(n for n in os.listdir(tmp) if n.startswith("rocksds-ro-"))


_EXIT_HARD = """
import os, sys
import rocksds
ds = rocksds.open(sys.argv[1])
ds[0]
os._exit(0)
"""


def test_shadows_of_processes_that_exited_hard_are_removed_by_the_next_open(tmpdir_env: Path, tmp_path: Path) -> None:
    path = write_expected(tmp_path / "ds.rds", 10)
    for _ in range(3):
        subprocess.run([sys.executable, "-c", _EXIT_HARD, str(path)], check=True, env={**ENV, "TMPDIR": str(tmpdir_env)})
    assert len(_shadows(tmpdir_env)) == 3
    with rocksds.open(path) as ds:
        assert len(_shadows(tmpdir_env)) == 1  # its own: the three abandoned ones are gone
        with rocksds.open(path) as other:  # a second open sweeps too, and spares the live shadow
            assert len(_shadows(tmpdir_env)) == 2
            assert int(ds[3]["label"]) == 3 and int(other[4]["label"]) == 4
    assert _shadows(tmpdir_env) == []


def test_forked_workers_sharing_a_handle_leave_nothing_behind_for_long(tmpdir_env: Path, tmp_path: Path) -> None:
    path = write_expected(tmp_path / "ds.rds", 10)
    ds = rocksds.open(path)
    for epoch in range(3):
        pids = []
        for worker in range(2):
            pid = os.fork()
            if pid == 0:  # a DataLoader worker: uses the shared handle, leaves through os._exit
                code = 0 if int(ds[worker]["label"]) == worker else 1
                os._exit(code)
            pids.append(pid)
        assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
        ds.refresh()  # the next open in the parent sweeps what the workers left
        assert len(_shadows(tmpdir_env)) == 1, f"epoch {epoch}: {_shadows(tmpdir_env)}"
    ds.close()
    assert _shadows(tmpdir_env) == []


_KILLED_CONVERT = """
import sys, time
import numpy as np
from rocksds.convert import from_npy_folder
import rocksds.writer
real = rocksds.writer.Writer.commit
def slow(self):
    real(self)
    print("committed", flush=True)
    time.sleep(60)
rocksds.writer.Writer.commit = slow
from_npy_folder(sys.argv[1], sys.argv[2], overwrite=True)
"""


def test_a_killed_convert_leaves_build_folders_the_next_convert_removes(tmpdir_env: Path, tmp_path: Path) -> None:
    from rocksds.convert import from_npy_folder

    src = tmp_path / "npy"
    src.mkdir()
    for i in range(4):
        np.save(src / f"{i}.npy", np.arange(3) + i)
    out = tmp_path / "out" / "ds.rds"
    out.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CONVERT, str(src), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("committed"), proc.stderr.read()  # type: ignore[union-attr]
    running = sorted(os.listdir(out.parent))
    assert any(".converting-" in n for n in running), running
    # A second build of the same path while the first still runs leaves the first alone.
    from_npy_folder(str(src), str(out), progress=False)
    assert set(running) <= set(os.listdir(out.parent))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    from_npy_folder(str(src), str(out), overwrite=True, progress=False)
    assert os.listdir(out.parent) == ["ds.rds"]
    with rocksds.open(out) as ds:
        assert len(ds) == 4
