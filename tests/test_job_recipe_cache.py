"""run_mock reads a suite's recipe once per process and again when its file changes."""

import os

from mockzgrad.config import load_recipe
from mockzgrad.suites import job


def test_recipe_is_read_once_per_name(monkeypatch):
    calls = []
    monkeypatch.setattr(job, "load_recipe", lambda name: calls.append(name) or load_recipe(name))
    job._RECIPES.clear()
    a, b = job._recipe("lee2026"), job._recipe("lee2026")
    assert a is b and calls == ["lee2026"]
    assert a == load_recipe("lee2026")


def test_an_edited_recipe_file_is_read_again(tmp_path, monkeypatch):
    path = tmp_path / "mine.toml"
    path.write_text('[binning]\nscheme = "annuli"\n')
    job._RECIPES.clear()
    first = job._recipe(str(path))
    assert first.binning.scheme == "annuli"
    path.write_text('[binning]\nscheme = "annuli"\n\n[metallicity]\nmethod = "II"\n')
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second = job._recipe(str(path))
    assert second is not first and second.metallicity.method == "II"
