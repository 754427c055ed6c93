"""The inputs of an ingestion: scenes from a CSV, globs or lists, as one ``{input name: path}`` dict per scene."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

from ..errors import InvalidArgumentError

__all__ = ["Inputs", "read_sources_csv", "group_inputs", "expand_inputs"]

#: What ``ingest_raster`` accepts: input name -> path, glob or list of paths; or one dict per scene.
Inputs = Union[Mapping[str, Union[str, Sequence[str]]], Sequence[Mapping[str, str]]]


def read_sources_csv(path: str) -> list[dict[str, str]]:
    """Scenes from a CSV whose header names the inputs (``image,mask``) and each row gives one scene's paths.

    Relative paths are taken relative to the CSV's directory.
    """
    import csv

    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InvalidArgumentError(f"{path} has no scenes (expected a header naming inputs, then one row per scene)")
    return [{k.strip(): os.path.join(base, v.strip()) for k, v in row.items()} for row in rows]


def group_inputs(pairs: Iterable[tuple[str, str]]) -> dict[str, Union[str, list[str]]]:
    """``(name, path)`` pairs (``--input NAME=PATH``, repeatable) -> input name -> path, or list of paths in order."""
    grouped: dict[str, list[str]] = {}
    for name, path in pairs:
        grouped.setdefault(name, []).append(path)
    return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}


def expand_inputs(inputs: Inputs) -> list[dict[str, str]]:
    """Normalize inputs to one dict per scene.

    Accepts a list of scene dicts, or one dict of input name -> path, glob
    pattern or list of paths; globs expand sorted, and the i-th match of each
    input forms scene i (every input must match the same number of files).
    """
    if isinstance(inputs, Mapping):
        expanded: dict[str, list[str]] = {}
        for name, v in inputs.items():
            if isinstance(v, (str, os.PathLike)):
                v = os.fspath(v)
                paths = sorted(glob.glob(v)) if glob.has_magic(v) else [v]
                if not paths:
                    raise InvalidArgumentError(f"input {name!r}: pattern {v!r} matches no file")
            else:
                paths = [os.fspath(p) for p in v]
            expanded[name] = paths
        counts = {k: len(v) for k, v in expanded.items()}
        if len(set(counts.values())) > 1:
            raise InvalidArgumentError(f"inputs match different numbers of files {counts}; pair them with a CSV")
        n = next(iter(counts.values()), 0)
        return [{k: v[i] for k, v in expanded.items()} for i in range(n)]
    return [{k: os.fspath(p) for k, p in s.items()} for s in inputs]
