"""Suite files, their expansion into mocks, and resumable parallel runs.

The per-mock work is the cheap deterministic fake of ``_suite_worker.py``
(a module, so that spawned worker processes can import it).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM, Planck18
from astropy.table import Table
from scipy import stats

import _suite_worker
from mockzgrad.config import config_from_dict
from mockzgrad.errors import ConfigError
from mockzgrad.suites.control import FolderLock
from mockzgrad.suites.store import ResultsStore
from mockzgrad.suites.suite import (
    DERIVED_PARAMETERS,
    MockSpec,
    SuiteSpec,
    load_suite,
    parameter_paths,
    run_suite,
    suite_from_dict,
)

TESTS = Path(__file__).parent
FAKE = "_suite_worker:fake_run_mock"

SUITE = """
[suite]
name = "demo"
seed = 42
n_mocks = 12
description = "fake beam-smearing suite"

[fixed]
galaxy.redshift = 5.0
noise.snr = 20.0

[grid]
"galaxy.metallicity.grad_z" = [-0.2, -0.1, 0.0]

[sample]
"galaxy.inclination" = {dist = "uniform", low = 0.0, high = 60.0}
x_resolution = {dist = "loguniform", low = 0.5, high = 8.0}

[recovery]
recipe = "default"
fail_indices = [5]

[output]
keep_cubes = [0, 3]
"""


def write(tmp_path, text, name="suite.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def base_dict(**over):
    data = {"suite": {"name": "t", "seed": 1, "n_mocks": 4}, "fixed": {}}
    for key, value in over.items():
        data[key] = value
    return data


def table_rows(outdir, drop=("elapsed_s",)):
    with ResultsStore(Path(outdir) / "results.sqlite") as store:
        rows = store.rows()
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


# --------------------------------------------------------------------------
# parsing and expansion
# --------------------------------------------------------------------------

class TestExpansion:
    def test_grid_points_get_equal_shares(self):
        spec = suite_from_dict(base_dict(
            suite={"name": "g", "seed": 3, "n_mocks": 12},
            grid={"galaxy.r_eff": [1.0, 2.0, 3.0], "galaxy.inclination": [10.0, 50.0]},
        ))
        assert spec.grid_size == 6
        points = [tuple(sorted(spec.mock(i).params.items())) for i in range(12)]
        counts = {p: points.count(p) for p in set(points)}
        assert len(counts) == 6 and set(counts.values()) == {2}
        # sorted names, last fastest: galaxy.inclination outer, galaxy.r_eff inner
        assert [spec.mock(i).params["galaxy.r_eff"] for i in range(3)] == [1.0, 2.0, 3.0]
        assert [spec.mock(i).params["galaxy.inclination"] for i in (0, 3)] == [10.0, 50.0]
        assert spec.mock(7).params == spec.mock(1).params  # replicate of grid point 1
        assert spec.mock(7).seed != spec.mock(1).seed

    def test_values_reach_the_mock_config(self):
        spec = suite_from_dict(base_dict(
            grid={"galaxy.metallicity.grad_z": [-0.3, 0.1]},
            sample={"instrument.lsf_sigma": {"dist": "uniform", "low": 50.0, "high": 60.0}},
            fixed={"galaxy": {"redshift": 2.0}},
        ))
        for ms in spec.mocks():
            cfg = config_from_dict(ms.config)
            assert cfg.galaxy.metallicity.grad_z == ms.params["galaxy.metallicity.grad_z"]
            assert cfg.instrument.lsf_sigma == ms.params["instrument.lsf_sigma"]
            assert cfg.galaxy.redshift == 2.0
            assert cfg.seed == ms.seed == ms.config["seed"]

    def test_sampled_distributions(self):
        spec = suite_from_dict(base_dict(
            suite={"name": "s", "seed": 11, "n_mocks": 1500},
            sample={
                "galaxy.inclination": {"dist": "uniform", "low": 10.0, "high": 70.0},
                "galaxy.r_eff": {"dist": "loguniform", "low": 0.5, "high": 8.0},
                "galaxy.pa": {"dist": "choice", "values": [0.0, 45.0, 90.0]},
            },
        ))
        params = [spec.mock(i).params for i in range(spec.n_mocks)]
        incl = np.array([p["galaxy.inclination"] for p in params])
        reff = np.array([p["galaxy.r_eff"] for p in params])
        pa = [p["galaxy.pa"] for p in params]
        assert stats.kstest(incl, stats.uniform(10.0, 60.0).cdf).pvalue > 1e-3
        assert stats.kstest(np.log(reff), stats.uniform(np.log(0.5), np.log(16.0)).cdf).pvalue > 1e-3
        assert set(pa) == {0.0, 45.0, 90.0}
        assert stats.chisquare([pa.count(v) for v in (0.0, 45.0, 90.0)]).pvalue > 1e-3

    def test_deterministic_and_independent_of_n_mocks(self, tmp_path):
        path = write(tmp_path, SUITE)
        a, b = load_suite(path), load_suite(path)
        full = list(a.mocks())
        assert [m.params for m in full] == [b.mock(i).params for i in range(a.n_mocks)]
        assert full[7] == b.mock(7)  # a single mock rebuilt alone
        bigger = load_suite(write(tmp_path, SUITE.replace("n_mocks = 12", "n_mocks = 24"), "big.toml"))
        assert [bigger.mock(i).params for i in range(12)] == [m.params for m in full]
        assert a.fingerprint() == bigger.fingerprint()
        other = load_suite(write(tmp_path, SUITE.replace("seed = 42", "seed = 43"), "other.toml"))
        assert other.mock(0).params != a.mock(0).params
        assert other.fingerprint() != a.fingerprint()

    def test_seed_follows_the_style_rule(self):
        spec = suite_from_dict(base_dict())
        for i in range(4):
            child = np.random.SeedSequence(1, spawn_key=(i,)).spawn(2)[1]
            assert spec.mock(i).seed == int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))
        assert len({spec.mock(i).seed for i in range(4)}) == 4

    def test_mock_spec_is_picklable(self):
        import pickle

        ms = suite_from_dict(base_dict()).mock(2)
        assert isinstance(ms, MockSpec)
        assert pickle.loads(pickle.dumps(ms)) == ms

    @pytest.mark.parametrize("cosmo_table, astropy_cosmo", [
        ({}, FlatLambdaCDM(H0=70 * u.km / u.s / u.Mpc, Om0=0.3, Tcmb0=0 * u.K)),
        ({"name": "Planck18"}, Planck18),
    ])
    def test_x_resolution_sets_psf_fwhm(self, cosmo_table, astropy_cosmo):
        spec = suite_from_dict(base_dict(
            suite={"name": "x", "seed": 5, "n_mocks": 8},
            fixed={"cosmology": cosmo_table},
            grid={"galaxy.redshift": [1.5, 5.0]},
            sample={"x_resolution": {"dist": "loguniform", "low": 0.5, "high": 8.0},
                    "galaxy.r_eff": {"dist": "uniform", "low": 0.5, "high": 4.0}},
        ))
        for ms in spec.mocks():
            z, r_eff = ms.params["galaxy.redshift"], ms.params["galaxy.r_eff"]
            kpc_per_arcsec = astropy_cosmo.kpc_proper_per_arcmin(z).to_value(u.kpc / u.arcmin) / 60.0
            fwhm = ms.config["instrument"]["psf"]["fwhm"]
            assert ms.params["instrument.psf.fwhm"] == fwhm
            assert 2 * (r_eff / kpc_per_arcsec) / fwhm == pytest.approx(ms.params["x_resolution"], rel=1e-9)
            assert config_from_dict(ms.config).instrument.psf.fwhm == fwhm

    def test_fixed_derived_value(self):
        spec = suite_from_dict(base_dict(derived={"x_resolution": 3.0}))
        ms = spec.mock(0)
        assert ms.params["x_resolution"] == 3.0
        assert "instrument.psf.fwhm" in spec.parameters

    def test_base_file_and_nested_tables(self, tmp_path):
        write(tmp_path, """
            seed = 99
            [galaxy]
            redshift = 2.0
            r_eff = 3.0
            [noise]
            snr = 10.0
        """, "mock.toml")
        quoted = load_suite(write(tmp_path, """
            [suite]
            seed = 1
            [fixed]
            base = "mock.toml"
            galaxy.r_eff = 1.5
            [grid]
            "galaxy.inclination" = [0.0, 30.0]
        """, "a.toml"))
        nested = load_suite(write(tmp_path, """
            [suite]
            seed = 1
            [fixed]
            base = "mock.toml"
            galaxy.r_eff = 1.5
            [grid]
            galaxy.inclination = [0.0, 30.0]
        """, "b.toml"))
        assert quoted.n_mocks == 2  # defaults to the grid size
        assert quoted.name == "a"
        assert quoted.fixed["galaxy"] == {"redshift": 2.0, "r_eff": 1.5}
        assert quoted.fixed["noise"] == {"snr": 10.0}
        assert "seed" not in quoted.fixed
        assert quoted.fingerprint() == nested.fingerprint()
        assert [m.params for m in quoted.mocks()] == [m.params for m in nested.mocks()]

    def test_fingerprint_ignores_labels_only(self):
        a = suite_from_dict(base_dict())
        b = suite_from_dict(base_dict(suite={"name": "other", "seed": 1, "n_mocks": 8,
                                             "description": "words"}))
        c = suite_from_dict(base_dict(recovery={"recipe": "fast"}))
        assert a.fingerprint() == b.fingerprint() != c.fingerprint()
        assert len(a.fingerprint()) == 64

    def test_direct_construction_is_checked(self):
        spec = SuiteSpec(name="d", seed=1, n_mocks=4, grid={"galaxy": {"r_eff": [1.0, 2.0]}})
        assert spec.grid == {"galaxy.r_eff": [1.0, 2.0]} and spec.mock(3).params == {"galaxy.r_eff": 2.0}
        with pytest.raises(ConfigError, match=r"suite\.name = ''"):
            SuiteSpec(name="", seed=1, n_mocks=1)

    def test_parameter_paths(self):
        paths = parameter_paths()
        assert "galaxy.metallicity.grad_z" in paths and "instrument.psf.fwhm" in paths
        assert "seed" not in paths and "galaxy" not in paths
        assert set(DERIVED_PARAMETERS) == {"x_resolution"}


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

class TestErrors:
    def test_malformed_toml(self, tmp_path):
        path = write(tmp_path, "[suite]\nseed = = 1\n")
        with pytest.raises(ConfigError, match=r"suite\.toml.*not valid TOML"):
            load_suite(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="cannot read"):
            load_suite(tmp_path / "nope.toml")

    def test_unknown_table(self):
        with pytest.raises(ConfigError, match=r"\[grd\]: unknown table \(did you mean \[grid\]\?\)"):
            suite_from_dict(base_dict(grd={"galaxy.r_eff": [1.0]}))

    def test_unknown_parameter_named_with_suggestion(self, tmp_path):
        path = write(tmp_path, SUITE.replace('"galaxy.inclination"', '"galaxy.inclinaton"'))
        with pytest.raises(ConfigError) as err:
            load_suite(path)
        msg = str(err.value)
        assert "'galaxy.inclinaton' is not a mock parameter" in msg
        assert "did you mean 'galaxy.inclination'" in msg
        assert "[sample]" in msg and "suite.toml" in msg

    def test_unknown_leaf_suggests_full_path(self):
        with pytest.raises(ConfigError, match=r"'r_eff'.*did you mean.*'galaxy\.r_eff'"):
            suite_from_dict(base_dict(grid={"r_eff": [1.0, 2.0]}, suite={"seed": 1, "n_mocks": 2}))

    @pytest.mark.parametrize("dist, match", [
        ({"dist": "normal", "low": 0, "high": 1}, r"dist = 'normal' \(did you mean 'uniform'\?\); allowed: 'uniform', 'loguniform', 'choice'"),
        ({"low": 0, "high": 1}, r"no dist given; allowed: 'uniform'"),
        ({"dist": "uniform", "low": 5.0, "high": 1.0}, r"low = 5.0 >= high = 1.0"),
        ({"dist": "uniform", "low": 1.0, "high": 1.0}, r"low = 1.0 >= high = 1.0"),
        ({"dist": "loguniform", "low": 0.0, "high": 1.0}, r"loguniform needs 0 < low"),
        ({"dist": "uniform", "low": 0.0}, r"missing: high"),
        ({"dist": "uniform", "low": 0.0, "high": 1.0, "sigma": 2}, r"unknown: sigma"),
        ({"dist": "choice", "values": []}, r"non-empty list"),
        ({"dist": "uniform", "low": "a", "high": 1.0}, r"low = 'a'"),
    ])
    def test_bad_distribution(self, dist, match):
        with pytest.raises(ConfigError, match=r"\[sample\] galaxy\.inclination.*" + match):
            suite_from_dict(base_dict(sample={"galaxy.inclination": dist}))

    @pytest.mark.parametrize("over, match", [
        ({"suite": {"name": "t", "n_mocks": 4}}, r"suite\.seed is missing"),
        ({"suite": {"seed": 1}}, r"suite\.n_mocks is missing"),
        ({"suite": {"seed": 1, "n_mock": 3}}, r"suite\.n_mock: unknown key \(did you mean n_mocks\?\)"),
        ({"suite": {"seed": -1, "n_mocks": 3}}, r"suite\.seed = -1"),
        ({"suite": {"seed": 1, "n_mocks": 5}, "grid": {"galaxy.r_eff": [1.0, 2.0]}},
         r"n_mocks = 5 is not a multiple of the grid size 2.*4 or 6"),
        ({"grid": {"galaxy.r_eff": []}}, r"\[grid\] galaxy\.r_eff = \[\]: expected a non-empty list"),
        ({"output": {"keep_cubes": [7]}}, r"output\.keep_cubes: mock index = 7; allowed \[0, 3\]"),
        ({"output": {"keep": [0]}}, r"output\.keep: unknown key"),
        ({"fixed": {"seed": 3}}, r"\[fixed\] seed"),
        ({"grid": {"seed": [1, 2]}}, r"\[grid\] seed: the mock seed is derived"),
        ({"grid": {"galaxy.r_eff": [1.0, 2.0]}, "sample": {"galaxy.r_eff": {"dist": "choice", "values": [1]}},
          "suite": {"seed": 1, "n_mocks": 2}}, r"galaxy\.r_eff: in both \[grid\] and \[sample\]"),
        ({"grid": {"instrument.psf.fwhm": [0.1]}, "derived": {"x_resolution": 2.0}, "suite": {"seed": 1}},
         r"\[grid\] instrument\.psf\.fwhm: set by the derived parameter x_resolution"),
        ({"derived": {"x_res": 2.0}}, r"\[derived\] 'x_res': unknown derived parameter \(did you mean 'x_resolution'"),
        ({"derived": {"x_resolution": -1.0}}, r"\[derived\] x_resolution = -1.0"),
        ({"derived": {"x_resolution": True}}, r"x_resolution = true but"),
        ({"grid": {"x_resolution": [0.0, 1.0]}, "suite": {"seed": 1}}, r"\[grid\] x_resolution = 0\.0; allowed: > 0"),
        ({"fixed": {"galaxy": {"inclination": 120.0}}}, r"mock 0 of suite 't': galaxy\.inclination = 120\.0"),
        ({"fixed": {"galaxy": {"r_ef": 1.0}}}, r"galaxy\.r_ef: unknown key \(did you mean r_eff\?\)"),
        ({"grid": {"galaxy.redshift": [5.0, -1.0]}, "suite": {"seed": 1}},
         r"mock 1 \(grid point 1\).*galaxy\.redshift"),
        ({"fixed": {"base": "missing.toml"}}, r"fixed\.base = 'missing\.toml': mock file '.*missing\.toml': cannot read"),
    ])
    def test_bad_suite(self, over, match):
        with pytest.raises(ConfigError, match=match):
            suite_from_dict(base_dict(**over))

    def test_mock_index_out_of_range(self):
        spec = suite_from_dict(base_dict())
        with pytest.raises(ConfigError, match=r"mock index = 4; allowed \[0, 3\]"):
            spec.mock(4)


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo suite run on 2 local worker processes."""
    root = tmp_path_factory.mktemp("runs")
    spec = load_suite(write(root, SUITE))
    return spec, run_suite(spec, root / "local", FAKE, workers=2, progress=False)


class TestRun:
    def test_executors_agree(self, demo_run, tmp_path):
        spec, local_run = demo_run
        local = table_rows(local_run.outdir)
        assert len(local) == spec.n_mocks
        runs = {"local": local_run}
        for executor in ("dask", "serial"):
            runs[executor] = run_suite(spec, tmp_path / executor, FAKE, workers=2, executor=executor,
                                       progress=False)
            assert table_rows(runs[executor].outdir) == local, executor
        for run in runs.values():
            assert run.complete and run.interrupted is None
            assert (run.n_ok, run.n_failed, run.n_run, run.n_skipped) == (11, 1, 12, 0)

    def test_workers_run_one_thread_each(self, tmp_path):
        spec = suite_from_dict(base_dict(suite={"name": "p", "seed": 1, "n_mocks": 6}))
        run = run_suite(spec, tmp_path, "_suite_worker:thread_probe", workers=2, progress=False)
        with ResultsStore(run.store_path) as store:
            table = store.to_table()
        assert set(table["numba_threads"]) == {1} and set(table["omp"]) == {"1"}
        assert len(set(table["pid"])) == 2 and os.getpid() not in set(table["pid"])

    def test_rows_hold_inputs_and_results(self, demo_run):
        spec, run = demo_run
        with ResultsStore(run.store_path) as store:
            table = store.to_table()
            meta = store.meta
        assert list(table["mock_index"]) == list(range(12))
        ok = table[table["status"] == "ok"]
        for row in ok:
            ms = spec.mock(int(row["mock_index"]))
            assert row["seed"] == ms.seed
            assert row["x_resolution"] == ms.params["x_resolution"]
            assert row["galaxy.metallicity.grad_z"] == ms.params["galaxy.metallicity.grad_z"]
            expected = _suite_worker.fake_measurement(ms.params["galaxy.metallicity.grad_z"],
                                                      ms.params["x_resolution"], ms.seed)
            assert row["grad_z_measured"] == expected
        assert meta["fingerprint"] == spec.fingerprint()
        assert meta["suite_toml"] == spec.source
        assert meta["n_mocks"] == "12" and meta["suite_name"] == "demo"
        assert "mockzgrad_version" in meta and "created_utc" in meta

    def test_failure_recorded_others_fine(self, demo_run):
        _, run = demo_run
        with ResultsStore(run.store_path) as store:
            table = store.to_table()
        failed = table[table["status"] == "failed"]
        assert list(failed["mock_index"]) == [5]
        assert failed["error"][0].startswith("ValueError: planned failure of mock 5 [at _suite_worker.py:")
        assert failed["grad_z_measured"].mask[0]
        ok = table[table["status"] == "ok"]
        assert len(ok) == 11 and not np.any(np.ma.getmaskarray(ok["grad_z_measured"]))

    def test_kept_cubes(self, demo_run):
        _, run = demo_run
        cubes = sorted(p.name for p in (run.outdir / "cubes").iterdir())
        assert cubes == ["mock_000000.fits", "mock_000003.fits"]

    def test_resume_skips_finished_and_retries_failed(self, demo_run, tmp_path):
        spec, _ = demo_run
        outdir = tmp_path / "copy"
        first = run_suite(spec, outdir, FAKE, executor="serial", progress=False)
        before = table_rows(outdir, drop=())
        again = run_suite(spec, outdir, FAKE, executor="serial", progress=False)
        assert (again.n_skipped, again.n_run) == (12, 0)
        assert table_rows(outdir, drop=()) == before
        retry = run_suite(spec, outdir, FAKE, executor="serial", progress=False, retry_failed=True)
        assert (retry.n_skipped, retry.n_run, retry.n_failed) == (11, 1, 1)
        after = table_rows(outdir, drop=())
        assert len(after) == 12
        assert [r for r in after if r["mock_index"] != 5] == [r for r in before if r["mock_index"] != 5]
        assert first.fingerprint == spec.fingerprint()

    def test_n_mocks_may_grow_not_shrink(self, tmp_path):
        small = suite_from_dict(base_dict(suite={"name": "g", "seed": 2, "n_mocks": 4}))
        big = suite_from_dict(base_dict(suite={"name": "g", "seed": 2, "n_mocks": 6}))
        run_suite(small, tmp_path, FAKE, executor="serial", progress=False)
        before = table_rows(tmp_path, drop=())
        run = run_suite(big, tmp_path, FAKE, executor="serial", progress=False)
        assert (run.n_skipped, run.n_run) == (4, 2)
        assert table_rows(tmp_path, drop=())[:4] == before
        with pytest.raises(ConfigError, match=r"n_mocks = 4, but outdir .* already holds mock 5"):
            run_suite(small, tmp_path, FAKE, executor="serial", progress=False)

    def test_changed_suite_refused_and_new_moves_aside(self, tmp_path):
        a = suite_from_dict(base_dict(grid={"galaxy.r_eff": [1.0, 2.0]}))
        b = suite_from_dict(base_dict(grid={"galaxy.r_eff": [1.0, 3.0]}, recovery={"recipe": "x"}))
        run_suite(a, tmp_path, FAKE, executor="serial", progress=False)
        old_rows = table_rows(tmp_path, drop=())
        with pytest.raises(ConfigError) as err:
            run_suite(b, tmp_path, FAKE, executor="serial", progress=False)
        msg = str(err.value)
        assert f"outdir {str(tmp_path)!r} holds suite 't' with a different specification" in msg
        assert "changed: grid.galaxy.r_eff, recipe_content, recovery.recipe" in msg
        assert "new=True" in msg
        run = run_suite(b, tmp_path, FAKE, executor="serial", progress=False, new=True)
        assert run.n_run == 4
        aside = sorted(tmp_path.glob("results.*.sqlite"))
        assert len(aside) == 1 and aside[0].name != "results.sqlite"
        with ResultsStore(aside[0], readonly=True) as old:
            assert old.get_meta("fingerprint") == a.fingerprint()
            assert [{k: v for k, v in r.items()} for r in old.rows()] == old_rows
        with ResultsStore(tmp_path / "results.sqlite") as store:
            assert store.get_meta("fingerprint") == b.fingerprint()

    def test_busy_folder_refused(self, tmp_path):
        spec = suite_from_dict(base_dict())
        with FolderLock(tmp_path):
            with pytest.raises(ConfigError, match=r"is in use by another suite run \(pid \d+\)"):
                run_suite(spec, tmp_path, FAKE, executor="serial", progress=False)

    def test_run_mock_must_reach_workers(self, tmp_path):
        spec = suite_from_dict(base_dict())
        with pytest.raises(ConfigError, match="cannot be sent to worker processes"):
            run_suite(spec, tmp_path, lambda ms: {}, executor="local", progress=False)
        with pytest.raises(ConfigError, match=r"executor = 'threads'; allowed"):
            run_suite(spec, tmp_path, FAKE, executor="threads")
        with pytest.raises(ConfigError, match="cannot import"):
            run_suite(spec, tmp_path, "_suite_worker:nope", executor="serial")
        run = run_suite(spec, tmp_path, lambda ms: {"i": ms.index}, executor="serial", progress=False)
        assert run.n_ok == 4

    def test_dead_worker_recorded_alone(self, tmp_path):
        spec = suite_from_dict(base_dict(suite={"name": "d", "seed": 4, "n_mocks": 10},
                                         recovery={"die_indices": [3]}))
        run = run_suite(spec, tmp_path, FAKE, workers=2, progress=False)
        assert (run.n_ok, run.n_failed) == (9, 1)
        with ResultsStore(run.store_path) as store:
            row = store.rows([3])[0]
        assert row["status"] == "failed" and row["error"].startswith("WorkerDied:")

    def test_export_round_trip(self, demo_run, tmp_path):
        _, run = demo_run
        with ResultsStore(run.store_path) as store:
            table = store.to_table()
            for ext in ("csv", "ecsv", "parquet"):
                path = store.export(tmp_path / f"results.{ext}")
                back = Table.read(path)
                assert back.colnames == table.colnames
                for name in table.colnames:
                    a, b = table[name], back[name]
                    mask = np.ma.getmaskarray(a)
                    assert np.array_equal(mask, np.ma.getmaskarray(b)), (ext, name)
                    if a.dtype.kind == "f":
                        assert np.allclose(np.asarray(a)[~mask], np.asarray(b)[~mask], rtol=1e-15, atol=0)
                    else:
                        assert list(np.asarray(a)[~mask]) == list(np.asarray(b)[~mask]), (ext, name)
            assert Table.read(tmp_path / "results.ecsv").meta["fingerprint"] == store.get_meta("fingerprint")


# --------------------------------------------------------------------------
# interruption: kill the running suite, re-run, compare
# --------------------------------------------------------------------------

KILL_SUITE = """
[suite]
name = "kill"
seed = 7
n_mocks = 40
[sample]
"galaxy.metallicity.grad_z" = {dist = "uniform", low = -0.3, high = 0.0}
[recovery]
sleep = 0.05
"""


def _count(db):
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM mocks").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, sig):
    suite_path = write(tmp_path, KILL_SUITE)
    outdir = tmp_path / "out"
    db = outdir / "results.sqlite"
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_suite_worker.py"), "run", str(suite_path), str(outdir), "--workers", "2"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        t_end = time.monotonic() + 60
        while _count(db) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < t_end, "suite made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on failure
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGINT:
        assert rc == 130, proc.stderr.read().decode()
    else:
        assert rc == -signal.SIGKILL
    with ResultsStore(db) as store:
        assert store.integrity_check() == "ok"
        before = store.rows()
    assert 6 <= len(before) < 40
    spec = load_suite(suite_path)
    run = run_suite(spec, outdir, FAKE, workers=2, progress=False)
    assert run.complete and run.n_skipped == len(before)
    with ResultsStore(db) as store:
        after = store.rows()
        raw = store._c().execute("SELECT mock_index FROM mocks").fetchall()
    assert sorted(r[0] for r in raw) == list(range(40))  # each index exactly once
    by_index = {r["mock_index"]: r for r in after}
    for row in before:  # finished before the kill: untouched
        assert by_index[row["mock_index"]] == row
    assert all(r["status"] == "ok" for r in after)
