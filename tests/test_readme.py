"""Every code block of the README runs, in order, in a fresh folder (docs that drift fail here).

The blocks are run as a new user would paste them: ``python`` blocks share one namespace (like one
interpreter session), ``bash`` blocks run in ``bash -euo pipefail`` with ``rocksds`` on the PATH, and
``console`` blocks run each ``$ command`` and compare its output with the lines shown. ``text`` blocks are
sample output, not code. The install block at the top keeps only what is not an installation: its
``pip install`` steps are what ``.ci/run`` does, and its test command is the run this test is part of.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import rocksds

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
RUNNABLE = {"python", "bash", "console"}

pytest.importorskip("torch")
pytest.importorskip("rasterio")
pytest.importorskip("h5py")


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the README, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text())]


def _shell_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a ``rocksds`` that runs this checkout (not whatever is installed), TMPDIR inside tmp_path."""
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    script = bin_dir / "rocksds"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rocksds.cli "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "python").symlink_to(sys.executable)
    tmp = tmp_path / ".tmp"
    tmp.mkdir()
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _without_installs(code: str) -> str:
    """The install block's commands minus ``pip install`` and the test run (see the module docstring)."""
    kept = []
    for line in code.splitlines():
        line = line.split("  #")[0]
        steps = [s.strip() for s in line.split("&&")]
        kept += [s for s in steps if s and not s.startswith("pip install") and "pytest" not in s]
    return "\n".join(kept)


def _run_console(code: str, env: dict[str, str], cwd: Path) -> None:
    lines = code.splitlines()
    commands = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    assert commands, f"a console block without a $ command:\n{code}"
    for j, i in enumerate(commands):
        end = commands[j + 1] if j + 1 < len(commands) else len(lines)
        expected = "\n".join(lines[i + 1 : end]).strip()
        done = subprocess.run(lines[i][2:], shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.stdout.strip() == expected, f"{lines[i]}\n{done.stdout}{done.stderr}"


def test_readme_has_the_sections_a_new_user_runs():
    langs = [lang for lang, _ in readme_blocks()]
    assert set(langs) <= RUNNABLE | {"text"}, langs
    assert langs.count("python") >= 5 and langs.count("bash") >= 3


@pytest.mark.slow
def test_every_readme_block_runs_in_order_in_a_fresh_folder(tmp_path, monkeypatch):
    work = tmp_path / "clone"
    work.mkdir()
    env = _shell_env(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))  # `from mydata import ...`, as `python` in that folder would
    namespace: dict = {"__name__": "__main__"}
    for n, (lang, code) in enumerate(readme_blocks()):
        if lang == "python":
            exec(compile(code, f"README.md block {n}", "exec"), namespace)  # noqa: S102 - our own README
        elif lang == "bash":
            script = _without_installs(code) if n == 0 else code
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"README.md block {n}:\n{script}\n{done.stdout}\n{done.stderr}"
        elif lang == "console":
            _run_console(code, env, work)
    # What the blocks promise they made.
    ds = rocksds.open(work / "chips.rds")
    assert len(ds) == 17 and ds[16]["image"].shape == (3, 256, 256)
    for split in ("train", "val"):
        assert len(rocksds.open(work / "out" / f"{split}.rds")) > 0
    for name in ("train-h5.rds", "points.rds", "train-torch.rds", "train-py.rds"):
        assert rocksds.validate(work / name).ok, name
    assert namespace["report"].count == 64 and namespace["report"].verified
