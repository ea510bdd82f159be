"""Suites refuse bad input before any mock runs, fail loudly, and survive kills (issue 21)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mockzgrad import cli
from mockzgrad.config import load_recipe
from mockzgrad.errors import ConfigError
from mockzgrad.suites import job
from mockzgrad.suites.recipes import check_recovery, resolve_recipe
from mockzgrad.suites.store import ResultsStore
from mockzgrad.suites.suite import load_suite, run_suite, suite_from_dict

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FLAGSHIP = ROOT / "examples" / "flagship_z5.toml"
JOB = "mockzgrad.suites.job:run_mock"
FAKE = "_suite_worker:fake_run_mock"
sys.path.insert(0, str(TESTS))


def _suite_text(recovery: str = 'recipe = "lee2026"', n_mocks: int = 2, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [suite]
        name = "h"
        seed = 3
        n_mocks = {n_mocks}
        [fixed]
        base = "{FLAGSHIP}"
        [recovery]
        """) + textwrap.dedent(recovery) + "\n" + textwrap.dedent(extra)


def _write(folder: Path, text: str, name: str = "suite.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- [recovery]


class TestRecoveryChecked:
    @pytest.mark.parametrize("recovery, expected", [
        ('recipie = "wang2017"', r"\[recovery\] 'recipie': unknown key \(did you mean 'recipe'\?\)"),
        ('recipe = "lee2062"', r"'lee2062' is not a shipped recipe \(did you mean lee2026\?\)"),
        ('recipe = "lee2026"\noverrides = {"dust.corect" = true}', r"overrides: dust\.corect: unknown key"),
        ('recipe = "lee2026"\noverrides = {"binning.scheme" = "rings"}', r"binning\.scheme = 'rings'"),
        ('recipe = "nothere.toml"', r"recipe file .*nothere\.toml"),
    ])
    def test_refused_before_any_mock_runs(self, tmp_path, recovery, expected):
        spec = load_suite(_write(tmp_path, _suite_text(recovery)))
        with pytest.raises(ConfigError, match=expected) as err:
            run_suite(spec, tmp_path / "out", JOB, executor="serial", progress=False)
        assert "\n" not in str(err.value)
        assert str(err.value).startswith("suite file ")
        assert not (tmp_path / "out").exists()  # nothing was created, nothing ran

    def test_valid_overrides_build_the_recipe_once(self):
        recipe = check_recovery({"recipe": "li2025_kurvs", "overrides": {"dust.correct": False}})
        assert recipe.dust.correct is False
        assert recipe == load_recipe("li2025_kurvs").replace(**{"dust.correct": False})

    def test_cli_exits_2_with_one_line(self, tmp_path, capsys):
        path = _write(tmp_path, _suite_text('recipie = "wang2017"'))
        assert cli.main(["suite", str(path), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "did you mean 'recipe'" in err

    def test_custom_run_mock_table_stays_opaque(self, tmp_path):
        spec = suite_from_dict({"suite": {"name": "c", "seed": 1, "n_mocks": 2},
                                "recovery": {"fail_indices": [1]}})
        run = run_suite(spec, tmp_path, FAKE, executor="serial", progress=False)
        assert (run.n_ok, run.n_failed) == (1, 1)


class TestRecipeResolution:
    def test_relative_path_is_relative_to_the_suite_file(self, tmp_path, monkeypatch):
        folder = tmp_path / "suites"
        recipe = _write(folder, (ROOT / "mockzgrad/recipes/wang2017.toml").read_text(), "mine.toml")
        spec = load_suite(_write(folder, _suite_text('recipe = "mine.toml"')))
        monkeypatch.chdir(tmp_path)  # not the suite's folder
        assert spec.mock(0).recovery["recipe"] == str(recipe.resolve())
        assert check_recovery(spec.recovery, spec.base_dir) == load_recipe(recipe)

    def test_shipped_name_wins_over_a_file_in_the_cwd(self, tmp_path, monkeypatch):
        (tmp_path / "lee2026").mkdir()  # a folder named like the recipe
        monkeypatch.chdir(tmp_path)
        resolved = resolve_recipe("lee2026")
        assert Path(resolved).is_file() and Path(resolved).parent.name == "recipes"
        assert load_recipe(resolved) == load_recipe(ROOT / "mockzgrad/recipes/lee2026.toml")
        spec = suite_from_dict({"suite": {"name": "n", "seed": 1, "n_mocks": 1},
                                "recovery": {"recipe": "lee2026"}})
        assert spec.mock(0).recovery["recipe"] == resolved

    def test_explicit_path_wins_over_a_shipped_name(self, tmp_path):
        _write(tmp_path, (ROOT / "mockzgrad/recipes/wang2017.toml").read_text(), "lee2026.toml")
        assert resolve_recipe("./lee2026.toml", tmp_path) == str((tmp_path / "lee2026.toml").resolve())
        assert resolve_recipe("lee2026.toml", tmp_path) == str((tmp_path / "lee2026.toml").resolve())


class TestFingerprintHashesTheRecipe:
    def _spec(self, folder, text):
        _write(folder, text, "mine.toml")
        return load_suite(_write(folder, _suite_text('recipe = "mine.toml"')))

    def test_content_counts_comments_do_not(self, tmp_path):
        base = (ROOT / "mockzgrad/recipes/lee2026.toml").read_text()
        a = self._spec(tmp_path, base)
        b = self._spec(tmp_path, "# a new comment\n" + base)
        c = self._spec(tmp_path, base.replace("snr_min = 2.5", "snr_min = 3.5"))
        assert a.fingerprint() == b.fingerprint() != c.fingerprint()

    def test_resume_after_editing_the_recipe_is_refused(self, tmp_path):
        base = (ROOT / "mockzgrad/recipes/lee2026.toml").read_text()
        spec = self._spec(tmp_path, base)
        out = tmp_path / "out"
        run_suite(spec, out, FAKE, executor="serial", progress=False)
        edited = self._spec(tmp_path, base.replace("snr_min = 2.5", "snr_min = 3.5"))
        with pytest.raises(ConfigError, match=r"different specification \(changed: recipe_content\)") as err:
            run_suite(edited, out, FAKE, executor="serial", progress=False)
        assert "\n" not in str(err.value)
        run = run_suite(edited, out, FAKE, executor="serial", progress=False, new=True)
        assert run.n_run == 2 and run.fingerprint == edited.fingerprint()

    def test_calibration_files_count(self, tmp_path, monkeypatch):
        from mockzgrad.physics import calibrations

        spec = load_suite(_write(tmp_path, _suite_text()))
        source = Path(calibrations.get_diagnostic("S25_R3").path)
        user = tmp_path / "cal"
        user.mkdir()
        (user / source.name).write_text(source.read_text().replace('"reference"', '"reference"', 1) + "\n")
        monkeypatch.setenv(calibrations.ENV_VAR, str(user))
        calibrations.clear_cache()
        try:
            other = load_suite(_write(tmp_path, _suite_text()))
        finally:
            monkeypatch.delenv(calibrations.ENV_VAR)
            calibrations.clear_cache()
        assert other.fingerprint() != spec.fingerprint()


# --------------------------------------------------------------------------- [sample] bounds


def _first_valid_seed(tables):
    """A suite seed whose mock 0 is valid, and the error of reading the suite with it."""
    for seed in range(200):
        try:
            suite_from_dict({"suite": {"name": "b", "seed": seed, "n_mocks": 4}, **tables})
        except ConfigError as exc:
            if not str(exc).startswith("mock 0"):
                return seed, str(exc)
            continue
        return seed, None
    raise AssertionError("no seed with a valid mock 0")


class TestSampleBounds:
    def test_range_beyond_the_allowed_values_is_refused(self):
        seed, err = _first_valid_seed({"sample": {"galaxy.inclination":
                                                  {"dist": "uniform", "low": 30.0, "high": 100.0}}})
        assert err == ("[sample] galaxy.inclination: high = 100.0 is not allowed: galaxy.inclination = "
                       "100.0 deg; allowed [0.0, 90.0] deg")

    def test_low_bound_and_choice_values_too(self):
        _, err = _first_valid_seed({"sample": {"galaxy.inclination":
                                               {"dist": "uniform", "low": -10.0, "high": 60.0}}})
        assert err.startswith("[sample] galaxy.inclination: low = -10.0 is not allowed")
        _, err = _first_valid_seed({"sample": {"galaxy.pa": {"dist": "choice", "values": [0.0, 10.0, 400.0]}}})
        assert err.startswith("[sample] galaxy.pa: values[2] = 400.0 is not allowed")

    def test_derived_parameter_bounds_go_through_the_derivation(self):
        # x_resolution -> psf fwhm: a tiny x gives a PSF far beyond the allowed FWHM
        _, err = _first_valid_seed({"sample": {"x_resolution": {"dist": "loguniform", "low": 1e-6, "high": 4.0}}})
        assert err is not None and err.startswith("[sample] x_resolution: low = 1e-06 is not allowed")

    def test_valid_ranges_and_shipped_suites_pass(self):
        _, err = _first_valid_seed({"sample": {"galaxy.inclination": {"dist": "uniform", "low": 0.0, "high": 90.0}}})
        assert err is None
        for path in sorted((ROOT / "examples").glob("*suite*.toml")):
            assert load_suite(path).recipe_digest is not None


# --------------------------------------------------------------------------- failures, executors


def _fails_most(spec):
    if spec.index != 3:
        raise ValueError(f"planned failure {spec.index}\nsecond line")
    return {"grad_z_measured": -0.1}


def _fails_one(spec):
    if spec.index == 3:
        raise ValueError("planned failure")
    return {"grad_z_measured": -0.1}


class TestMostlyFailed:
    def test_exit_nonzero_with_count_and_first_error(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setattr(job, "run_mock", _fails_most)
        path = _write(tmp_path, _suite_text(n_mocks=4))
        rc = cli.main(["suite", str(path), "-o", str(tmp_path / "o"), "--executor", "serial", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.count("\n") == 0
        assert "3 of 4 mocks failed; first error (mock 0): ValueError: planned failure 0 second line" in err

    def test_a_few_failures_exit_0(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setattr(job, "run_mock", _fails_one)
        path = _write(tmp_path, _suite_text(n_mocks=4))
        assert cli.main(["suite", str(path), "-o", str(tmp_path / "o"), "--executor", "serial",
                         "--no-progress"]) == 0
        assert "3 ok, 1 failed" in capsys.readouterr().out


class TestExecutorArguments:
    @pytest.mark.parametrize("extra", [["--executor", "serial", "--scheduler", "tcp://127.0.0.1:1"],
                                       ["--executor", "local", "--dask"]])
    def test_contradictory_executor_refused(self, tmp_path, capsys, extra):
        path = _write(tmp_path, _suite_text())
        assert cli.main(["suite", str(path), "-o", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--executor {extra[1]} with" in err

    def test_unreachable_scheduler_fails_fast(self, tmp_path):
        pytest.importorskip("distributed")
        spec = suite_from_dict({"suite": {"name": "s", "seed": 1, "n_mocks": 2}})
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=r"scheduler = 'tcp://127\.0\.0\.1:1': unreachable") as err:
            run_suite(spec, tmp_path, FAKE, executor="dask", scheduler="tcp://127.0.0.1:1", progress=False)
        assert time.monotonic() - t0 < 20  # was 30 s and an OSError traceback
        assert "\n" not in str(err.value)


class TestPartFiles:
    def test_stale_part_files_removed_when_a_run_starts(self, tmp_path):
        spec = suite_from_dict({"suite": {"name": "p", "seed": 1, "n_mocks": 2}, "output": {"keep_cubes": [0]}})
        cubes = tmp_path / "cubes"
        cubes.mkdir()
        stale = [cubes / ".mock_000000.0badf00d.part.fits", cubes / "tmpab12cd.fits.part"]
        for p in stale:
            p.write_bytes(b"half a cube")
        keep = cubes / "notes.part.txt"  # not a writer's temporary file
        keep.write_text("mine")
        run_suite(spec, tmp_path, FAKE, executor="serial", progress=False)
        assert not any(p.exists() for p in stale) and keep.exists()
        assert (cubes / "mock_000000.fits").exists()


# --------------------------------------------------------------------------- kill test, real workers


def _count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM mocks").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _values(outdir: Path) -> dict:
    with ResultsStore(outdir / "results.sqlite", readonly=True) as store:
        rows = store.rows()
    return {r["mock_index"]: {k: v for k, v in r.items() if "time" not in k and "elapsed" not in k}
            for r in rows}


def _small_suite(folder: Path, n_mocks: int) -> Path:
    text = (ROOT / "examples" / "quickstart_suite.toml").read_text()
    text = text.replace('base = "flagship_z5.toml"', f'base = "{FLAGSHIP}"')
    text = text.replace("n_mocks = 80", f"n_mocks = {n_mocks}")
    text = text.replace('"galaxy.metallicity.grad_z" = [-0.2, -0.1, -0.05, -0.01, 0.01, 0.05, 0.1, 0.2]',
                        '"galaxy.metallicity.grad_z" = [-0.2, 0.1]')
    assert f"n_mocks = {n_mocks}" in text and "[-0.2, 0.1]" in text  # the quickstart file still has these lines
    text += f"\n[output]\nkeep_cubes = {list(range(n_mocks))}\n"
    return _write(folder, text)


def _kill_and_resume(suite: Path, outdir: Path, n_mocks: int, n_kills: int) -> None:
    cmd = [sys.executable, "-c", "import sys; from mockzgrad.cli import main; sys.exit(main())",
           "suite", str(suite), "-o", str(outdir), "--workers", "2", "--no-progress"]
    db = outdir / "results.sqlite"
    for k in range(n_kills):
        target = min(n_mocks - 1, _count(db) + 1 + k % 2)
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            t_end = time.monotonic() + 300
            while _count(db) < target and proc.poll() is None:
                assert time.monotonic() < t_end, "suite made no progress"
                time.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read().decode()
            os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-run
        finally:
            proc.wait()
    rc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rc.returncode == 0, rc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("n_mocks, n_kills", [(4, 1), (24, 4)], ids=["fast", "full"])
def test_sigkilled_real_suite_resumes_to_the_uninterrupted_result(tmp_path, n_mocks, n_kills):
    suite = _small_suite(tmp_path, n_mocks)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    _kill_and_resume(suite, killed, n_mocks, n_kills)
    run = run_suite(load_suite(suite), clean, JOB, workers=2, progress=False)
    assert run.n_ok == n_mocks
    a, b = _values(killed), _values(clean)
    assert sorted(a) == list(range(n_mocks))  # every mock exactly once
    assert a == b  # value by value
    cubes = sorted(p.name for p in (killed / "cubes").iterdir())
    assert cubes == sorted(p.name for p in (clean / "cubes").iterdir())  # no .part files left
    assert len(cubes) == n_mocks
