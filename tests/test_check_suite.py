"""`mockzgrad check` on a suite file: detected by its [suite] table, validated as `suite` would, summarised."""

import math
from pathlib import Path

import pytest

from mockzgrad.cli import main

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["flagship_suite.toml", "niriss_suite.toml"])
def test_check_accepts_a_suite(name, capsys):
    path = EXAMPLES / name
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    n_grid = math.prod(len(v) for v in data.get("grid", {}).values()) if data.get("grid") else 1
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid suite" in out
    n = data["suite"]["n_mocks"]
    assert f"# {n} mocks = {n_grid} grid point(s) x {n // n_grid} replicate(s)" in out
    assert f"# recipe: {data['recovery']['recipe']}" in out


def test_check_suite_bad_value_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad_suite.toml"
    bad.write_text('[suite]\nname = "x"\nseed = 1\nn_mocks = 2\n\n[fixed]\ngalaxy.inclination = 95.0\n',
                   encoding="utf-8")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "galaxy.inclination = 95.0" in err


def test_check_suite_bad_recipe_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad_recipe.toml"
    bad.write_text('[suite]\nname = "x"\nseed = 1\nn_mocks = 1\n\n[recovery]\nrecipe = "lee2062"\n',
                   encoding="utf-8")
    assert main(["check", str(bad)]) == 2
    assert "lee2062" in capsys.readouterr().err
