"""The module map's rules (DESIGN.md): data flows one way."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mockzgrad"


def _imports(path: Path) -> set[str]:
    """Package-internal modules imported by a file, as dotted names under mockzgrad."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [f"{mod}.{a.name}" for a in node.names] if not node.module else [mod]
                out.update(names)
            elif node.module and node.module.startswith("mockzgrad"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mockzgrad"))
    return out


def _files(sub=""):
    return sorted((PKG / sub).glob("*.py"))


@pytest.mark.parametrize("path", _files("recovery"), ids=lambda p: p.name)
def test_recovery_never_imports_the_model(path):
    bad = {m for m in _imports(path) if m.startswith(("mockzgrad.source.galaxy", "mockzgrad.source.lineflux",
                                                      "mockzgrad.observe.ifu.build", "mockzgrad.suites.job"))}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("name", ["physics/calibrations", "physics/lines", "physics/dust", "physics/cosmology",
                                  "errors", "physics/units"])
def test_physics_data_import_nothing_above_them(name):
    bad = {m for m in _imports(PKG / f"{name}.py")
           if not m.startswith(("mockzgrad.errors", "mockzgrad.physics", "mockzgrad.calibration_curves"))
           and m != "mockzgrad"}
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("path", _files("kernels"), ids=lambda p: p.name)
def test_kernels_depend_on_nothing_but_numpy_numba(path):
    bad = {m for m in _imports(path) if not m.startswith("mockzgrad.kernels") and m != "mockzgrad.errors"}
    assert not bad, f"{path.name} imports {bad}"


def test_nothing_imports_the_cli():
    for path in PKG.rglob("*.py"):
        if path.name == "cli.py":
            continue
        assert "mockzgrad.cli" not in _imports(path), path
