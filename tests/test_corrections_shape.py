"""Ratio curves worth plotting: bounded, no turning point the medians do not show, per-sign only with enough
mocks; `correct --sign`; `mockzgrad curves` prints its checks and refuses a suite neither model describes."""

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from _seed import seeded
from astropy.table import Table

from mockzgrad.corrections.correct import correct_table
from mockzgrad.corrections.curves import CurvesShapeWarning, CurvesWarning, derive_curves
from mockzgrad.corrections.curveset import CorrectionCurves
from mockzgrad.errors import ConfigError

PROV = {"suite": "synthetic", "package_version": "test", "recipe": "lee2026", "calibrations": []}


def suite(seed, n_per, grads=(0.05, 0.1, 0.2), noise=0.004, offset=0.0):
    """Saturating smearing a(x) = 1 - exp(-x / 1.5) applied to the gradient, plus an additive offset and noise
    on the measured gradient (dex/kpc), x log-uniform in [1, 6.4]."""
    rng = np.random.default_rng(seeded(seed))
    rows = {k: [] for k in ("status", "grad_z_true", "grad_z_measured", "x_resolution", "snr")}
    for g in grads:
        for s in (1, -1):
            x = np.exp(rng.uniform(0, math.log(6.4), n_per))
            m = (1 - np.exp(-x / 1.5)) * s * g + offset + rng.normal(0, noise, n_per)
            rows["status"] += ["ok"] * n_per
            rows["grad_z_true"] += [s * g] * n_per
            rows["grad_z_measured"] += list(m)
            rows["x_resolution"] += list(x)
            rows["snr"] += list(rng.uniform(20, 100, n_per))
    return Table(rows)


def quiet(table, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CurvesWarning)
        return derive_curves(table, provenance=PROV, **kw)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_small_noisy_suites_give_bounded_monotone_curves(seed):
    # 12 mocks per sign and |grad_z| (the demo's size), noisy: unconstrained BIC fits swing out of [0, 1.2]
    # or turn over where the data do not
    c = quiet(suite(seed, 12, noise=0.006))
    for cv in c.curves:
        xx = np.linspace(*cv.x_range, 300)
        y = cv.fit(xx)
        assert y.min() >= 0.0 and y.max() <= 1.2, (cv.abs_grad, cv.sign, y.min(), y.max())
        assert not turns_over(cv), (cv.abs_grad, cv.sign, cv.fit.degree)


def turns_over(cv, n_sigma=1.0):
    """The curve comes back from its running extremum (in the direction of its trend) by more than n_sigma
    times its own uncertainty somewhere in its x range."""
    xx = np.linspace(*cv.x_range, 300)
    y = cv.fit(xx)
    back = np.maximum.accumulate(y) - y if y[-1] >= y[0] else y - np.minimum.accumulate(y)
    return bool(np.any(back > n_sigma * cv.fit.std(xx) + 1e-9))


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15, 16, 17, 18])
def test_sparse_bins_do_not_turn_down(seed):
    # the demo's density: 10 mocks per sign and |grad_z|, pooled, ~5 mocks per x bin; the truth saturates
    # monotonically, so a fitted curve coming back from a maximum by more than ~0.02 (2 % of the ratio, visible
    # on the figure; 0.021 allows for where the extremum falls between grid points) is a turnover the data do
    # not have, whatever the fit's own (large) uncertainty there
    c = quiet(suite(seed, 10, noise=0.006))
    for cv in c.curves:
        xx = np.linspace(*cv.x_range, 300)
        y = cv.fit(xx)
        back = np.maximum.accumulate(y) - y if y[-1] >= y[0] else y - np.minimum.accumulate(y)
        assert back.max() <= 0.021 or any(p["abs_grad"] == cv.abs_grad and p["sign"] == cv.sign
                                                for p in c.checks["shape"]), (cv.abs_grad, cv.fit.degree, back.max())


def test_turnover_kept_when_medians_show_it():
    # a ratio that truly peaks inside the data (ratio = 1 - 0.08 (x - 3.5)^2): the fit may turn over
    rng = np.random.default_rng(seeded(8))
    n = 400
    x = rng.uniform(1.0, 6.0, n)
    g = rng.choice([-0.1, 0.1], n)
    m = (1 - 0.08 * (x - 3.5) ** 2) * g + rng.normal(0, 0.002, n)
    c = quiet(Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": m, "x_resolution": x}))
    cv = c.curve(0.1, "both")
    xx = np.linspace(*cv.x_range, 300)
    assert 2.5 < xx[np.argmax(cv.fit(xx))] < 4.5
    assert not c.checks["shape"]


def test_out_of_bounds_suite_warns():
    # an additive offset of 0.05 dex/kpc: ratios of the 0.05 dex/kpc mocks run from ~1 to ~2 for positive
    # gradients and below 0 for negative ones, so the pooled curve cannot be an admissible ratio
    t = suite(9, 40, grads=(0.02, 0.2), offset=0.05)
    with pytest.warns(CurvesShapeWarning, match="0.02"):
        c = derive_curves(t, provenance=PROV)
    assert any(p["abs_grad"] == 0.02 for p in c.checks["shape"])


def test_per_sign_curves_need_enough_mocks():
    with pytest.warns(CurvesWarning, match="no per-sign curves"):
        c = derive_curves(suite(10, 12), provenance=PROV)
    assert c.signs == ("both",)
    assert not c.settings["per_sign"]["groups"][0]["per_sign_curves"]
    c2 = quiet(suite(10, 30))
    assert c2.signs == ("both", "pos", "neg")


class TestSignModes:
    coef = {(0.1, "both"): [0.45, 0.1], (0.1, "pos"): [0.5, 0.1], (0.1, "neg"): [0.4, 0.1]}

    def table(self):
        return Table({"id": ["p", "n"], "gradient_dex_per_kpc": [0.06, -0.05], "err_minus": [0.01, 0.01],
                      "err_plus": [0.01, 0.01]})

    @pytest.mark.parametrize("sign,rp,rn", [("auto", 0.7, 0.6), ("matched", 0.7, 0.6), ("pooled", 0.65, 0.65),
                                            ("positive", 0.7, 0.7), ("negative", 0.6, 0.6)])
    def test_modes(self, sign, rp, rn):
        c = CorrectionCurves.from_polynomials(self.coef, x_range=(0.5, 5.0), provenance=PROV)
        out = correct_table(self.table(), c, x=2.0, sign=sign, rng=1)
        assert out["grad_corr_g0.1"][0] == pytest.approx(0.06 / rp)
        assert out["grad_corr_g0.1"][1] == pytest.approx(-0.05 / rn)

    def test_auto_pooled_without_per_sign(self):
        c = CorrectionCurves.from_polynomials({0.1: [0.45, 0.1]}, x_range=(0.5, 5.0), provenance=PROV)
        out = correct_table(self.table(), c, x=2.0, rng=1)
        assert out.meta["mockzgrad_correct"]["sign"] == "both"
        with pytest.raises(ConfigError, match="pooled"):
            correct_table(self.table(), c, x=2.0, sign="positive")
        with pytest.raises(ConfigError, match="allowed"):
            correct_table(self.table(), c, x=2.0, sign="up")

    def test_row_below_smallest_grad_is_named(self):
        c = CorrectionCurves.from_polynomials({0.05: [0.8, 0.0], 0.1: [0.7, 0.0]}, x_range=(0.5, 5.0),
                                              provenance=PROV)
        t = Table({"id": ["tiny", "ok"], "gradient_dex_per_kpc": [0.004, 0.06], "err_minus": [0.002, 0.01],
                   "err_plus": [0.002, 0.01]})
        with pytest.warns(Warning, match=r"below the smallest \|grad_z\| = 0.05 dex/kpc for rows tiny"):
            correct_table(t, c, x=2.0, rng=1)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mockzgrad.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_curves_prints_checks_and_writes_transfer(tmp_path):
    t = suite(11, 30)
    t.write(tmp_path / "r.ecsv")
    r = cli("curves", tmp_path / "r.ecsv", "-o", tmp_path / "c.ecsv")
    assert r.returncode == 0, r.stderr
    assert "check snr  |grad_z| = 0.05" in r.stdout and "check sign |grad_z| = 0.2" in r.stdout, r.stdout
    assert "transfer function" in r.stdout and (tmp_path / "c_transfer.json").exists()
    g = tmp_path / "g.csv"
    Table({"id": ["a"], "gradient_dex_per_kpc": [0.05], "err_minus": [0.01], "err_plus": [0.01]}).write(g)
    r = cli("correct", g, "--curves", tmp_path / "c.ecsv", "--transfer", tmp_path / "c_transfer.json",
            "--x", "1.2:4.5", "--sign", "pooled", "-o", tmp_path / "o.ecsv")
    assert r.returncode == 0, r.stderr
    out = Table.read(tmp_path / "o.ecsv")
    assert {"grad_post", "grad_corr_g0.05", "grad_selfcons"} <= set(out.colnames)
    assert "flat in G" in r.stdout


def test_cli_curves_refuses_a_suite_no_model_describes(tmp_path):
    # measured gradients that do not follow the intrinsic ones: offset and scatter >> signal
    t = suite(12, 30, noise=0.5, offset=0.3)
    t.write(tmp_path / "r.ecsv")
    r = cli("curves", tmp_path / "r.ecsv", "-o", tmp_path / "c.ecsv")
    assert r.returncode != 0 and "neither" in r.stderr and "--force" in r.stderr, r.stderr
    assert not (tmp_path / "c.ecsv").exists() and not (tmp_path / "c_transfer.json").exists()
    r = cli("curves", tmp_path / "r.ecsv", "-o", tmp_path / "c.ecsv", "--force")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c_transfer.json").exists() and "FORCED" in r.stdout
