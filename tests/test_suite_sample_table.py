"""[sample.table]: suites drawn jointly from a table of real galaxies.

The expectation is the table itself: every mock carries one row's values,
all columns together, and rows are drawn uniformly, so the mocks' joint
distribution is the table's. Frequencies and means are tested with
tolerances from the number of draws.
"""

import math

import numpy as np
import pytest
from _seed import seeded
from scipy import stats

from mockzgrad.errors import ConfigError
from mockzgrad.suites.sampling import SAMPLE_ROW, inclination_from_axis_ratio
from mockzgrad.suites.spec import suite_from_dict

CSV = """redshift,r_eff,inclination,snr,psf_fwhm
4.2,1.1,25.0,30.0,0.16
5.1,2.3,40.0,15.0,0.18
5.8,0.9,60.0,60.0,0.20
4.6,1.7,10.0,22.0,0.17
5.3,3.0,55.0,40.0,0.19
"""
PARAMS = {"redshift": "galaxy.redshift", "r_eff": "galaxy.r_eff", "inclination": "galaxy.inclination",
          "snr": "noise.snr", "psf_fwhm": "instrument.psf.fwhm"}


def _suite(tmp_path, n_mocks, seed=1, table=None, **extra):
    (tmp_path / "sample.csv").write_text(CSV)
    data = {"suite": {"name": "t", "seed": seed, "n_mocks": n_mocks}, "fixed": {},
            "sample": {"table": table or {"file": "sample.csv"}}}
    data.update(extra)
    return suite_from_dict(data, base_dir=tmp_path)


def _table():
    rows = [line.split(",") for line in CSV.strip().splitlines()]
    return {h: np.array([float(r[j]) for r in rows[1:]]) for j, h in enumerate(rows[0])}


def test_mocks_reproduce_the_tables_joint_distribution(tmp_path):
    n = 1500
    spec = _suite(tmp_path, n, seed=seeded(11))
    tab = _table()
    k = tab["redshift"].size
    rows = np.empty(n, dtype=int)
    for i, m in enumerate(spec.mocks()):
        r = m.params[SAMPLE_ROW]
        rows[i] = r
        for col, name in PARAMS.items():  # every column of the same galaxy, jointly
            assert m.params[name] == tab[col][r]
        assert m.config["galaxy"]["r_eff"] == tab["r_eff"][r]
        assert m.config["instrument"]["psf"]["fwhm"] == tab["psf_fwhm"][r]
    # rows drawn uniformly: Pearson chi^2 with k - 1 dof, false-alarm rate 1e-3
    counts = np.bincount(rows, minlength=k)
    chi2 = np.sum((counts - n / k) ** 2 / (n / k))
    assert chi2 < stats.chi2.ppf(0.999, k - 1)
    # each column's mean and the redshift-size covariance match the table's within 4 standard errors
    for col, name in PARAMS.items():
        v = tab[col][rows]
        assert abs(v.mean() - tab[col].mean()) < 4 * tab[col].std() / math.sqrt(n)
    cov_draw = np.mean((tab["redshift"][rows] - tab["redshift"].mean()) * (tab["r_eff"][rows] - tab["r_eff"].mean()))
    prod = (tab["redshift"] - tab["redshift"].mean()) * (tab["r_eff"] - tab["r_eff"].mean())
    assert abs(cov_draw - prod.mean()) < 4 * prod.std() / math.sqrt(n)


def test_sample_row_is_a_results_column_and_not_a_config_field(tmp_path):
    spec = _suite(tmp_path, 8)
    m = spec.mock(3)
    assert SAMPLE_ROW in spec.parameters and SAMPLE_ROW in m.params
    assert SAMPLE_ROW not in m.config
    assert spec.mock(3).params == m.params  # rebuilt alone, the same mock
    assert "sample_table" in spec.canonical()


def test_ecsv_units_and_axis_ratio(tmp_path):
    # r_eff in pc is converted to kpc; an observed b/a gives the inclination through q0
    q0 = 0.2
    incl = np.array([20.0, 50.0, 75.0])
    ba = np.sqrt(np.cos(np.radians(incl)) ** 2 + q0 ** 2 * np.sin(np.radians(incl)) ** 2)
    lines = ["# %ECSV 1.0", "# ---", "# datatype:", "# - {name: r_eff, unit: pc, datatype: float64}",
             "# - {name: axis_ratio, datatype: float64}", "# schema: astropy-2.0", "r_eff axis_ratio"]
    lines += [f"{r} {float(b)!r}" for r, b in zip((1500.0, 2500.0, 900.0), ba)]
    (tmp_path / "s.ecsv").write_text("\n".join(lines) + "\n")
    data = {"suite": {"name": "t", "seed": 2, "n_mocks": 30}, "fixed": {"galaxy": {"q0": q0}},
            "sample": {"table": {"file": "s.ecsv"}}}
    spec = suite_from_dict(data, base_dir=tmp_path)
    for m in spec.mocks():
        r = m.params[SAMPLE_ROW]
        assert m.params["galaxy.r_eff"] == pytest.approx((1.5, 2.5, 0.9)[r], rel=1e-12)
        assert m.params["galaxy.inclination"] == pytest.approx(incl[r], abs=1e-9)
    assert inclination_from_axis_ratio(q0 / 2, q0) == 90.0


def test_table_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        _suite(tmp_path, 4, table={"file": "missing.csv"})
    with pytest.raises(ConfigError, match=r"galaxy.redshift: set by \[sample.table\] and in \[grid\]"):
        _suite(tmp_path, 4, grid={"galaxy.redshift": [4.0, 5.0]})
    with pytest.raises(ConfigError, match="x_resolution"):
        _suite(tmp_path, 4, sample={"table": {"file": "sample.csv"},
                                    "x_resolution": {"dist": "uniform", "low": 1.0, "high": 2.0}})
    (tmp_path / "bad.csv").write_text("redshift,r_eff\n5.0,-1.0\n")
    with pytest.raises(ConfigError, match=r"\[sample.table\] row 0: galaxy.r_eff"):
        _suite(tmp_path, 4, table={"file": "bad.csv"})
    with pytest.raises(ConfigError, match="no usable column"):
        (tmp_path / "none.csv").write_text("foo,bar\n1,2\n")
        _suite(tmp_path, 4, table={"file": "none.csv"})
