"""Suites check mock configurations exactly as a single mock is checked.

A bad value in a suite's grid gives the message of
:func:`mockzgrad.config.config_from_dict` (what ``mockzgrad check`` prints),
after the mock it was found in; the derived ``x_resolution`` goes through
:func:`mockzgrad.config.psf_fwhm_for_x`. Also: the helpers of the suite
modules (dotted tables, merging, distributions) and the failure record of a
mock whose configuration cannot be built.
"""

import subprocess
import sys
import textwrap

import astropy.units as u
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM

from mockzgrad import cli
from mockzgrad.config import x_resolution, MockConfig, config_from_dict, psf_fwhm_for_x, set_path
from mockzgrad.errors import ConfigError
from mockzgrad.suites.params import deep_merge, flatten_table
from mockzgrad.suites.sampling import check_distribution
from mockzgrad.suites.store import ResultsStore
from mockzgrad.suites.suite import load_suite, run_suite, suite_from_dict

FAKE = "_suite_worker:fake_run_mock"


def single_mock_error(changes: dict) -> str:
    """Message of the ConfigError a single mock configuration with ``changes`` raises."""
    data = {}
    for path, value in changes.items():
        set_path(data, path, value)
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    return str(err.value)


def suite_error(**tables) -> str:
    data = {"suite": {"name": "t", "seed": 1, "n_mocks": 2}, "fixed": {}}
    data.update(tables)
    with pytest.raises(ConfigError) as err:
        suite_from_dict(data)
    return str(err.value)


BAD_VALUES = [
    ("galaxy.inclination", 30.0, 95.0),
    ("galaxy.redshift", 5.0, -1.0),
    ("galaxy.r_eff", 2.0, "big"),
    ("noise.snr", 20.0, -3.0),
    ("instrument.psf.kind", "gaussian", "airy"),
    ("instrument.pixel_scale", 0.05, 0.0),
    ("cosmology.om0", 0.3, 1.5),
    ("lines.reference_line", "Hb", "Hx"),
    ("lines.lines", ["OIII_5008", "Hb"], ["OIII_5008", "Hb", "Hx"]),
]


class TestSameMessageAsSingleMock:
    @pytest.mark.parametrize("path, good, bad", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
    def test_bad_grid_value(self, path, good, bad):
        single = single_mock_error({path: bad})
        assert suite_error(grid={path: [good, bad]}) == f"mock 1 (grid point 1) of suite 't': {single}"

    @pytest.mark.parametrize("path, bad", [("galaxy.r_eff", -1.0), ("galaxy.redshift", 0.0),
                                           ("cosmology.h0", 5.0), ("cosmology.name", "Planck99")])
    def test_bad_value_read_by_x_resolution(self, path, bad):
        # x_resolution reads r_eff, redshift and the cosmology: they are checked by the config
        single = single_mock_error({path: bad})
        good = MockConfig()
        for part in path.split("."):
            good = getattr(good, part)
        msg = suite_error(grid={path: [good, bad]}, derived={"x_resolution": 3.0})
        assert msg == f"mock 1 (grid point 1) of suite 't': {single}"

    @pytest.mark.parametrize("bad", [0.0, -2.0, float("nan"), "wide"])
    def test_bad_x_resolution(self, bad):
        with pytest.raises(ConfigError) as err:
            psf_fwhm_for_x(MockConfig(), bad)
        assert suite_error(grid={"x_resolution": [2.0, bad]}) == f"[grid] {err.value}"
        assert suite_error(sample={"x_resolution": {"dist": "choice", "values": [2.0, bad]}}) == f"[sample] {err.value}"

    def test_cli_prints_the_check_message(self, tmp_path, capsys):
        (tmp_path / "mock.toml").write_text("[galaxy]\ninclination = 95.0\n")
        (tmp_path / "suite.toml").write_text(textwrap.dedent("""
            [suite]
            name = "t"
            seed = 1
            [grid]
            "galaxy.inclination" = [30.0, 95.0]
        """))
        assert cli.main(["check", str(tmp_path / "mock.toml")]) == 2
        check = capsys.readouterr().err.strip()
        assert cli.main(["suite", str(tmp_path / "suite.toml"), "-o", str(tmp_path / "out")]) == 2
        suite = capsys.readouterr().err.strip()
        prefix = "mockzgrad: error: "
        assert check.startswith(prefix) and "galaxy.inclination = 95.0" in check
        assert suite == (f"{prefix}suite file {str(tmp_path / 'suite.toml')!r}: mock 1 (grid point 1) "
                         f"of suite 't': {check[len(prefix):]}")


class TestDerivedResolution:
    def test_psf_set_before_the_psf_is_checked(self):
        # an elliptical PSF keeps its axis ratio (0.8) and PA when x_resolution sets its size;
        # x then follows the documented convention (FWHM along the galaxy's major axis)
        spec = suite_from_dict({
            "suite": {"name": "e", "seed": 2, "n_mocks": 2},
            "fixed": {"instrument": {"psf": {"kind": "elliptical_gaussian", "fwhm": 0.5, "fwhm_minor": 0.4}}},
            "grid": {"x_resolution": [1.0, 1.5]},
        })
        for ms in spec.mocks():
            cfg = ms.mock_config()
            psf = cfg.instrument.psf
            assert x_resolution(cfg) == pytest.approx(ms.params["x_resolution"], rel=1e-12)
            assert psf.fwhm_minor / psf.fwhm == pytest.approx(0.8, rel=1e-12)

    def test_non_toml_values_expand_like_plain_ones(self):
        # a numpy integer is not JSON: the derivation is not memoised, the value is the same
        def fwhm(redshift):
            spec = suite_from_dict({"suite": {"name": "n", "seed": 3, "n_mocks": 1},
                                    "fixed": {"galaxy": {"redshift": redshift}}, "derived": {"x_resolution": 2.5}})
            return spec.mock(0).params["instrument.psf.fwhm"]

        assert fwhm(np.int64(3)) == fwhm(3) == fwhm(3.0)

    def test_mock_that_cannot_be_built_is_recorded_with_its_inputs(self, tmp_path, monkeypatch):
        # the sampled values are refused up front now; the run loop's net is tested without that check
        from mockzgrad.suites.spec import SuiteSpec

        monkeypatch.setattr(SuiteSpec, "_validate_sample_bounds", lambda self: None)
        tables = {"sample": {"galaxy.r_eff": {"dist": "choice", "values": [2.0, -1.0]}},
                  "derived": {"x_resolution": 2.0}}
        for seed in range(100):  # a seed whose mock 0 (validated on reading) is buildable
            try:
                spec = suite_from_dict({"suite": {"name": "f", "seed": seed, "n_mocks": 16}, **tables})
                break
            except ConfigError:
                continue
        single = single_mock_error({"galaxy.r_eff": -1.0})
        run = run_suite(spec, tmp_path, FAKE, executor="serial", progress=False)
        with ResultsStore(run.store_path, readonly=True) as store:
            rows = store.rows()
        failed = [r for r in rows if r["status"] == "failed"]
        assert 0 < len(failed) < 16 and run.n_failed == len(failed)
        for row in rows:
            child = np.random.SeedSequence(spec.seed, spawn_key=(row["mock_index"],)).spawn(2)[1]
            assert row["seed"] == int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))
            bad = '"galaxy.r_eff": -1.0' in row["params"]
            assert bad == (row["status"] == "failed")
            if bad:
                assert row["error"].startswith(f"ConfigError: {single} [at ")


class TestHelpers:
    def test_flatten_nested_and_dotted(self):
        nested = flatten_table("grid", {"galaxy": {"r_eff": [1], "metallicity": {"grad_z": [0]}}}, lambda v: False)
        dotted = flatten_table("grid", {"galaxy.r_eff": [1], "galaxy.metallicity.grad_z": [0]}, lambda v: False)
        assert nested == dotted == {"galaxy.r_eff": [1], "galaxy.metallicity.grad_z": [0]}
        with pytest.raises(ConfigError, match=r"\[grid\] 'galaxy\.r_eff' is given twice"):
            flatten_table("grid", {"galaxy": {"r_eff": [1]}, "galaxy.r_eff": [2]}, lambda v: False)

    def test_deep_merge(self):
        base = {"galaxy": {"r_eff": 2.0, "redshift": 5.0}, "noise": {"snr": 10.0}, "lines": {"lines": ["a"]}}
        over = {"galaxy": {"r_eff": 1.5}, "lines": {"lines": ["b", "c"]}, "cosmology": {"h0": 67.0}}
        before = (repr(base), repr(over))
        out = deep_merge(base, over)
        assert out == {"galaxy": {"r_eff": 1.5, "redshift": 5.0}, "noise": {"snr": 10.0},
                       "lines": {"lines": ["b", "c"]}, "cosmology": {"h0": 67.0}}
        assert (repr(base), repr(over)) == before
        out["lines"]["lines"].append("d")
        assert over["lines"]["lines"] == ["b", "c"]  # copies, not shared

    def test_distribution_normalised(self):
        assert check_distribution("galaxy.r_eff", {"dist": "loguniform", "low": 1, "high": 4}) == {
            "dist": "loguniform", "low": 1.0, "high": 4.0}
        values = [[1, 2], [3]]
        out = check_distribution("lines.lines", {"dist": "choice", "values": values})
        assert out["values"] == values and out["values"][0] is not values[0]

    def test_executors_import_no_numerics(self):
        # a worker imports this module for its initializer before it may load numpy/numba
        code = "import sys, mockzgrad.suites.executors; print(sorted({'numpy', 'numba'} & set(sys.modules)))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]"

    def test_suite_module_keeps_its_public_names(self, tmp_path):
        import mockzgrad.suites.suite as suite

        for name in suite.__all__:
            assert getattr(suite, name) is not None
        path = tmp_path / "s.toml"
        path.write_text("[suite]\nseed = 1\nn_mocks = 1\n")
        assert load_suite(path).mock(0).config["seed"] == suite.suite_from_dict(
            {"suite": {"seed": 1, "n_mocks": 1}}).mock(0).seed
