"""The curves object: plain meta values round-trip through ECSV, provenance is checked, new curves are stamped."""

import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

import mockzgrad
from mockzgrad.corrections.binning import RunningMedian
from mockzgrad.corrections.curveset import (
    TABLE_COLUMNS,
    CorrectionCurves,
    Curve,
    check_provenance,
    yaml_safe,
)
from mockzgrad.corrections.polyfit import PolynomialFit
from mockzgrad.errors import ConfigError

PROV = {"suite": "s.toml", "package_version": "0.1.0", "recipe": "lee2026", "calibrations": ["S25_R3"]}


class TestYamlSafe:
    def test_numpy_and_paths_become_plain(self):
        value = {"a": np.float32(0.5), "b": np.int64(3), "c": np.bool_(True), "d": np.arange(3),
                 "e": (1, np.float64(2.5)), "f": Path("/tmp/x"), 7: None, "g": {"h": [np.int8(1)]}}
        out = yaml_safe(value, "settings")
        assert out == {"a": 0.5, "b": 3, "c": True, "d": [0, 1, 2], "e": [1, 2.5], "f": "/tmp/x", "7": None,
                       "g": {"h": [1]}}
        kinds = [type(out[k]) for k in ("a", "b", "c", "f")] + [type(v) for v in out["d"]]
        assert kinds == [float, int, bool, str, int, int, int]

    def test_round_trips_through_ecsv(self, tmp_path):
        meta = yaml_safe({"x": np.float64(0.1) + np.float64(0.2), "n": np.int32(4), "l": [np.nan, 1e-300],
                          "nested": {"t": (np.float64(1.0) / 3.0,)}}, "meta")
        t = Table({"a": [1]})
        t.meta.update(meta)
        t.write(tmp_path / "m.ecsv", format="ascii.ecsv")
        back = Table.read(tmp_path / "m.ecsv", format="ascii.ecsv").meta
        assert back["x"] == meta["x"] and back["n"] == 4 and back["nested"] == meta["nested"]
        assert np.isnan(back["l"][0]) and back["l"][1] == 1e-300

    def test_other_objects_named(self):
        with pytest.raises(ConfigError, match=r"settings.a\[1\] = .*object"):
            yaml_safe({"a": [1, object()]}, "settings")


class TestProvenance:
    def test_required_keys(self):
        with pytest.raises(ConfigError, match=r"lacks \['recipe'\]"):
            check_provenance({k: v for k, v in PROV.items() if k != "recipe"})
        with pytest.raises(ConfigError, match="mapping"):
            check_provenance("suite.toml")

    def test_extra_keys_kept_plain(self):
        out = check_provenance({**PROV, "seed": np.int64(7)})
        assert out["seed"] == 7 and type(out["seed"]) is int and out["recipe"] == "lee2026"


def one_curve(g=0.1, sign="both"):
    return Curve(abs_grad=g, sign=sign, fit=PolynomialFit(coefficients=[0.5, 0.1], covariance=np.zeros((2, 2))),
                 running=RunningMedian(x_lo=[1.0, 2.0], x_hi=[2.0, 3.0], x_center=[1.5, 2.5], n=[5, 6],
                                       median=[0.6, 0.75], p16=[0.5, 0.7], p84=[0.7, 0.8]),
                 x_range=(1.0, 3.0), n_mocks=11)


class TestCreate:
    def test_stamped_and_checked(self):
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        c = CorrectionCurves.create([one_curve(0.2), one_curve(0.1)], provenance=PROV,
                                    checks={"n": np.int64(1)}, settings={"x": (1, 2)})
        created = datetime.datetime.fromisoformat(c.created)
        assert created.tzinfo is not None and before <= created <= before + datetime.timedelta(minutes=1)
        assert c.mockzgrad_version == str(mockzgrad.__version__)
        assert c.checks == {"n": 1} and c.settings == {"x": [1, 2]}
        assert [cv.abs_grad for cv in c.curves] == [0.1, 0.2]  # sorted
        with pytest.raises(ConfigError, match="provenance"):
            CorrectionCurves.create([one_curve()], provenance={"suite": "s"}, checks={}, settings={})

    def test_table_columns_and_rows(self, tmp_path):
        c = CorrectionCurves.create([one_curve(0.1), one_curve(0.1, "pos")], provenance=PROV, checks={},
                                    settings={})
        t = c.to_table()
        assert t.colnames == list(TABLE_COLUMNS)
        assert all(t[k].description == d for k, d in TABLE_COLUMNS.items())
        np.testing.assert_array_equal(t["ratio_fit"], 0.5 + 0.1 * t["x_center"])
        assert list(t["sign"]) == ["both", "both", "pos", "pos"] and list(t["bin"]) == [0, 1, 0, 1]
        c.write(tmp_path / "c.ecsv")
        back = CorrectionCurves.read(tmp_path / "c.ecsv")
        for a, b in zip(c.curves, back.curves):
            np.testing.assert_array_equal(a.running.median, b.running.median)
            np.testing.assert_array_equal(a.fit.coefficients, b.fit.coefficients)
        assert back.provenance == PROV and back.created == c.created
