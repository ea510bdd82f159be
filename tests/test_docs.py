"""The documentation: it builds with warnings as errors, its generated
references follow the code, and the README keeps its first lines and links."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mockzgrad.cli import build_parser
from mockzgrad.config import MockConfig
from mockzgrad.config.dicts import from_dict
from mockzgrad.config.recipe import Recipe
from mockzgrad.config.reference import docstring_parameters, reference_tables
from mockzgrad.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# Tables whose fields only apply in their own mode (or need other fields set first).
_MODE_TABLES = ("instrument.slitstep", "instrument.grism", "lensing")
_INTERVAL = re.compile(r"^(?:integer in )?([\[(])(-?[\d.e+-]+|-inf), (-?[\d.e+-]+|inf)([\])])$")


def _all_fields(root):
    return [(table, f) for table in reference_tables(root) for f in table.fields]


def _subcommands(parser):
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            yield from action.choices.items()


# ----------------------------------------------------------------- the build

@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    """Sphinx builds the docs with -W; every field and every CLI option reaches the pages."""
    for module in ("sphinx", "numpydoc", "myst_parser"):
        pytest.importorskip(module)
    out = tmp_path / "html"
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                        "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-5000:]
    config_html = (out / "reference" / "config.html").read_text(encoding="utf-8")
    for root in ("mock", "recipe"):
        for table, f in _all_fields(root):
            assert f'<span class="pre">{f.name}</span>' in config_html, f"{table.path}.{f.name}"
    cli_html = (out / "reference" / "cli.html").read_text(encoding="utf-8")
    for name, sub in _subcommands(build_parser()):
        assert f"mockzgrad {name}" in cli_html
        for action in sub._actions:
            for option in action.option_strings:
                assert option in cli_html, f"{name} {option}"
    for page in ("guide/quickstart", "guide/suites", "guide/curves", "guide/recipes", "guide/real_data",
                 "modes", "architecture", "reference/api"):
        assert (out / f"{page}.html").is_file(), page


# ------------------------------------------------- the configuration reference

@pytest.mark.parametrize("root, cls", [("mock", MockConfig), ("recipe", Recipe)])
def test_reference_lists_every_field(root, cls):
    """Every init field of every dataclass reachable from the root is in the reference, with a description."""
    import dataclasses
    import typing

    listed = {f.path for _, f in _all_fields(root)}
    tables = {t.path for t in reference_tables(root)}

    def walk(c, path):
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            if not f.init:
                continue
            child = f"{path}.{f.name}" if path else f.name
            sub = [a for a in (hints[f.name], *typing.get_args(hints[f.name])) if dataclasses.is_dataclass(a)]
            if sub:
                assert child in tables
                yield from walk(sub[0], child)
            else:
                assert child in listed
                yield child

    fields = list(walk(cls, ""))
    assert len(fields) == len(listed - {p for p in listed if ".exposures.<label>." in p})
    missing = [f.path for _, f in _all_fields(root) if not (f.description or f.allowed.startswith("one of"))]
    assert not missing, f"fields without a description in their class docstring: {missing}"


def _probe_values(allowed):
    """Values just outside a documented interval (an open end itself is outside)."""
    m = _INTERVAL.match(allowed)
    if not m:
        return []
    lo_open, lo, hi, hi_open = m.group(1) == "(", float(m.group(2)), float(m.group(3)), m.group(4) == ")"
    integer = allowed.startswith("integer")
    out = []
    if math.isfinite(lo):
        out.append(lo if lo_open else lo - (1 if integer else max(1e-3 * abs(lo), 1e-6)))
    if math.isfinite(hi):
        out.append(hi if hi_open else hi + (1 if integer else max(1e-3 * abs(hi), 1e-6)))
    return [int(v) if integer else float(v) for v in out]


def test_reference_ranges_are_the_checks():
    """A value just outside each documented range is refused, naming the field; the default lies inside."""
    probed = 0
    for root in ("mock", "recipe"):
        for table, f in _all_fields(root):
            if table.path.startswith(_MODE_TABLES):
                continue
            for value in _probe_values(f.allowed):
                with pytest.raises(ConfigError, match=re.escape(f.path)):
                    if root == "mock":
                        MockConfig().replace(**{f.path: value})
                    else:
                        from_dict(Recipe, {table.path: {f.name: value}} if table.path else {f.name: value}, "")
                probed += 1
    assert probed > 80


def test_reference_defaults_inside_ranges():
    for root in ("mock", "recipe"):
        for _, f in _all_fields(root):
            m = _INTERVAL.match(f.allowed)
            if not m or f.default == "none":
                continue
            value, lo, hi = float(f.default), float(m.group(2)), float(m.group(3))
            assert (lo < value if m.group(1) == "(" else lo <= value), f.path
            assert (value < hi if m.group(4) == ")" else value <= hi), f.path


def test_docstring_parameters_reads_grouped_names():
    doc = ("Summary.\n\nParameters\n----------\na, b : float\n    Both, kpc.\nc : {\"x\", \"y\"}\n\n"
           "Returns\n-------\nint\n")
    params = docstring_parameters(doc)
    assert params == {"a": ("float", "Both, kpc."), "b": ("float", "Both, kpc."), "c": ('{"x", "y"}', "")}


# ------------------------------------------------------------------ README

def test_readme_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[:4] == ["```bash", "pip install . && mockzgrad demo",
                         'pip install ".[test]" && python -m pytest -q -n 2', "```"]


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if not t.startswith(("http:", "https:"))]
    assert any(t.startswith("docs/") for t in links)
    for target in links:
        assert (ROOT / target).exists(), target
