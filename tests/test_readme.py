"""The README's quick start runs as written (docs that drift fail here)."""

import os
import pathlib

import rocksds

README = pathlib.Path(__file__).parent.parent / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch):
    text = README.read_text()
    start = text.index("```python\nimport numpy as np\nimport rocksds\n") + len("```python\n")
    code = text[start : text.index("```", start)]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})  # noqa: S102 - our own README, not data
    ds = rocksds.open(os.path.join(tmp_path, "chips.rds"))
    assert len(ds) == 17 and ds[16]["image"].shape == (3, 256, 256)
