"""The layers stay honest: an AST scan of every import in the package (function-level imports count).

The rule the tree makes visible: the top-level modules of ``rocksds`` are the
format and its private helpers (the *core*); every subpackage is a layer on
top of it. Checked here:

- no import cycle among rocksds modules;
- only ``rocksds/_storage.py`` imports rocksdict, only ``rocksds/raster/_rasterio.py``
  imports rasterio, and torch is imported only under ``rocksds/torch/``;
- the core imports no subpackage;
- an underscore module is imported only from its own layer (the package-wide
  helpers ``_optional``, ``_paths`` and ``_version`` serve every layer), and
  no module imports another module's underscore name;
- the benchmark harness does not import the CLI that runs it;
- conformance imports no private module, and tests only those of the layer
  their folder mirrors.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rocksds"

#: Private top-level modules meant for every layer of the package (each says so in its docstring).
PACKAGE_HELPERS = {"rocksds._optional", "rocksds._paths", "rocksds._version"}
#: Test folders and the layer each may see the private modules of.
TEST_LAYERS = {"format": "core", "torch": "torch", "raster": "raster", "convert": "convert", "cli": "cli",
               "tools": "tools"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(path: Path, name: str) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, absolute module, imported names)`` of every import statement in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module, [a.name for a in node.names]


def _targets(module: str, names: list[str]) -> list[str]:
    """The rocksds modules an import statement loads: ``from pkg import sub`` loads ``pkg.sub``."""
    if module not in MODULES:
        return []
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return subs if subs and len(subs) == len(names) else [module, *subs]


def _layer(module: str) -> str:
    """``core`` for the top-level modules (and the package itself), else the subpackage's name."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not _is_package(module)):
        return "core"
    return parts[1]


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


GRAPH: dict[str, set[str]] = {name: set() for name in MODULES}
IMPORTS: list[tuple[str, int, str, list[str]]] = []
for _name, _path in MODULES.items():
    for _line, _module, _names in _imports(_path, _name):
        IMPORTS.append((_name, _line, _module, _names))
        GRAPH[_name].update(t for t in _targets(_module, _names) if t != _name)


def _where(name: str, line: int) -> str:
    return f"{MODULES[name].relative_to(ROOT)}:{line}"


def test_the_scan_sees_the_whole_package() -> None:
    assert {"rocksds", "rocksds._storage", "rocksds.torch", "rocksds.raster._rasterio", "rocksds.cli",
            "rocksds.tools.demo", "rocksds.testing"} <= set(MODULES)
    assert "rocksds.writer" in GRAPH["rocksds"]
    # a function-level import is an edge too
    assert "rocksds.torch" in GRAPH["rocksds.convert.torch_dataset"]


def test_no_import_cycles() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "dependency, allowed",
    [("rocksdict", {"rocksds._storage"}), ("rasterio", {"rocksds.raster._rasterio"})],
)
def test_one_module_owns_each_binding(dependency: str, allowed: set[str]) -> None:
    bad = [_where(n, line) for n, line, module, _ in IMPORTS
           if module.split(".")[0] == dependency and n not in allowed]
    assert not bad, f"{dependency} imported outside {sorted(allowed)}: {bad}"


def test_torch_only_inside_the_torch_integration() -> None:
    bad = [_where(n, line) for n, line, module, _ in IMPORTS
           if module.split(".")[0] == "torch" and _layer(n) != "torch"]
    assert not bad, f"torch imported outside rocksds/torch/ (go through rocksds.torch): {bad}"


def test_the_core_imports_no_layer_above_it() -> None:
    bad = [f"{_where(n, line)} imports {t}" for n, line, module, names in IMPORTS if _layer(n) == "core"
           for t in _targets(module, names) if _layer(t) != "core"]
    assert not bad, bad


def test_private_modules_stay_in_their_layer() -> None:
    bad = [f"{_where(n, line)} imports {t}" for n, line, module, names in IMPORTS
           for t in _targets(module, names)
           if _private(t) and _layer(t) != _layer(n) and t not in PACKAGE_HELPERS]
    assert not bad, bad


def test_no_module_imports_another_modules_private_names() -> None:
    bad = [f"{_where(n, line)}: from {module} import {name}" for n, line, module, names in IMPORTS
           if module.startswith("rocksds") for name in names
           if name.startswith("_") and not name.startswith("__") and f"{module}.{name}" not in MODULES]
    assert not bad, bad


def _outside_imports(folder: Path) -> Iterator[tuple[Path, int, str]]:
    for path in sorted(folder.rglob("*.py")):
        for line, module, names in _imports(path, "outside"):
            if module.startswith("rocksds"):
                for t in _targets(module, names) or [module]:
                    yield path, line, t


def test_the_benchmark_harness_does_not_import_the_cli() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line}" for p, line, t in _outside_imports(ROOT / "benchmarks")
           if t == "rocksds.cli" or t.startswith("rocksds.cli.")]
    assert not bad, f"rocksds.cli loads benchmarks/harness.py; the harness must not import it back: {bad}"


def test_conformance_and_tests_use_public_homes() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line} imports {t}" for p, line, t in _outside_imports(ROOT / "conformance")
           if _private(t)]
    tests = ROOT / "tests"
    for p, line, t in _outside_imports(tests):
        folder = p.relative_to(tests).parts[0] if len(p.relative_to(tests).parts) > 1 else ""
        if _private(t) and TEST_LAYERS.get(folder) != _layer(t):
            bad.append(f"{p.relative_to(ROOT)}:{line} imports {t}")
    assert not bad, bad
