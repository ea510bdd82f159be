"""Transfer function measured = a(x) g + b(x) (+ scatter s(x)) and the posterior correction built on it."""

import math

import numpy as np
import pytest
from _seed import seeded
from astropy.table import Table

from mockzgrad.corrections.posterior import correct_with_transfer
from mockzgrad.corrections.transfer import SLOPE_MAX, TransferFunction, fit_transfer
from mockzgrad.errors import ConfigError, DataError

# truth in the model's family: a = A0 + A1/x, b = B0 + B1/x, ln s = C0 + C1/x
A0, A1, B0, B1, C0, C1 = 0.95, -0.55, 0.01, 0.02, math.log(0.012), 0.6
ERR = 0.008  # every mock's reported 1-sigma error, dex/kpc


def a_true(x):
    return A0 + A1 / x


def b_true(x):
    return B0 + B1 / x


def s_true(x):
    return np.exp(C0 + C1 / x)


def synthetic(seed, n, g_max=0.2, discrete=False):
    """A results table drawn from the true transfer function (x log-uniform in [1, 6.4])."""
    rng = np.random.default_rng(seeded(seed))
    x = np.exp(rng.uniform(0.0, math.log(6.4), n))
    if discrete:
        g = rng.choice([-0.2, -0.1, -0.05, 0.05, 0.1, 0.2], n)
    else:
        g = rng.uniform(-g_max, g_max, n)
    m = a_true(x) * g + b_true(x) + rng.normal(0, 1, n) * np.sqrt(s_true(x) ** 2 + ERR**2)
    return Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": m, "x_resolution": x,
                  "grad_z_measured_lo": m - ERR, "grad_z_measured_hi": m + ERR, "mock_index": np.arange(n)})


@pytest.fixture(scope="module")
def fitted():
    return fit_transfer(synthetic(11, 1500), provenance={"suite": "synthetic"})


class TestRecovery:
    def test_slope_and_offset_within_covariance(self, fitted):
        xs = np.array([1.2, 2.0, 3.5, 6.0])
        # the truth is in the family, so the chosen structure must contain it: degree_a >= 1, degree_b >= 1
        assert fitted.structure.degree_a >= 1 and fitted.structure.degree_b >= 1
        za = (fitted.slope(xs) - a_true(xs)) / fitted.slope_std(xs)
        zb = (fitted.offset(xs) - b_true(xs)) / fitted.offset_std(xs)
        # 4 sigma per point (correlated points; a false alarm at < 1e-4 per point)
        assert np.all(np.abs(za) < 4), za
        assert np.all(np.abs(zb) < 4), zb

    def test_scatter_recovered(self, fitted):
        xs = np.array([1.2, 2.0, 6.0])
        # gamma has its covariance: ln s(x) = gamma . (1, 1/x)
        d = np.stack([np.ones_like(xs), 1 / xs], axis=1)
        sd = np.sqrt(np.einsum("ni,ij,nj->n", d, fitted.gamma_covariance, d))
        z = (np.log(fitted.scatter(xs)) - np.log(s_true(xs))) / sd
        assert np.all(np.abs(z) < 4), z
        # the covariance itself is sane: ln s of 1500 points is known to ~ 1/sqrt(2 n) ~ 2 %, not 20 %
        assert np.all(sd < 0.1)

    def test_assessment_and_bounds(self, fitted):
        assert fitted.assessment["transfer_ok"]
        xx = np.linspace(*fitted.x_range, 50)
        assert np.all((fitted.slope(xx) >= 0) & (fitted.slope(xx) <= SLOPE_MAX))

    def test_no_offset_when_there_is_none(self):
        t = synthetic(12, 1500)
        x = np.asarray(t["x_resolution"])
        t["grad_z_measured"] = np.asarray(t["grad_z_measured"]) - b_true(x)
        tf = fit_transfer(t)
        xs = np.array([1.2, 3.0, 6.0])
        assert np.all(np.abs(tf.offset(xs)) < 4 * np.maximum(tf.offset_std(xs), 1e-12))
        assert tf.assessment["ratio_ok"]

    def test_injected_offset_is_flagged_for_the_ratio_model(self):
        # an MSA-like additive bias of +0.05 dex/kpc: the ratio model cannot describe it, the transfer model can
        t = synthetic(13, 600, discrete=True)
        t["grad_z_measured"] = np.asarray(t["grad_z_measured"]) + 0.05
        tf = fit_transfer(t)
        assert not tf.assessment["ratio_ok"]
        assert tf.assessment["transfer_ok"]
        assert any("offset" in r for r in tf.assessment["reasons"])

    def test_anticorrelated_suite_is_refused_in_words(self):
        # measured = -0.5 x intrinsic: no sigma distance to quote; the reason says the slope is not positive
        t = synthetic(14, 600, discrete=True)
        g = np.asarray(t["grad_z_true"])
        t["grad_z_measured"] = -0.5 * g + np.random.default_rng(seeded(15)).normal(0.0, ERR, g.size)
        tf = fit_transfer(t)
        reasons = tf.assessment["reasons"]
        assert not tf.assessment["ratio_ok"] and not tf.assessment["transfer_ok"]
        assert any("does not rise" in r for r in reasons)
        assert not any("sigma from 0" in r for r in reasons)

    def test_offset_shift_is_exact(self):
        # the model is linear: adding a constant to every measurement moves b by that constant and nothing else
        t = synthetic(14, 400, discrete=True)
        tf0 = fit_transfer(t)
        t2 = t.copy()
        for c in ("grad_z_measured", "grad_z_measured_lo", "grad_z_measured_hi"):
            t2[c] = np.asarray(t[c]) + 0.05
        tf1 = fit_transfer(t2)
        assert tf1.structure == tf0.structure
        xs = np.array([1.1, 2.5, 6.0])
        np.testing.assert_allclose(tf1.offset(xs) - tf0.offset(xs), 0.05, atol=1e-6)
        np.testing.assert_allclose(tf1.slope(xs), tf0.slope(xs), atol=1e-6)
        np.testing.assert_allclose(tf1.scatter(xs), tf0.scatter(xs), rtol=1e-4)

    def test_sign_term_found_when_slopes_differ(self):
        rng = np.random.default_rng(seeded(15))
        t = synthetic(15, 1200)
        g = np.asarray(t["grad_z_true"])
        x = np.asarray(t["x_resolution"])
        # negative gradients smeared more: slope lower by 0.2 for g < 0
        t["grad_z_measured"] = (a_true(x) - 0.2 * (g < 0)) * g + rng.normal(0, 0.01, g.size)
        tf = fit_transfer(t)
        assert "sign" in tf.structure.extras
        i = tf.structure.names().index("slope_sign")
        assert abs(tf.coefficients[i] + 0.2) < 4 * math.sqrt(tf.covariance[i, i])


class TestFile:
    def test_round_trip(self, fitted, tmp_path):
        p = tmp_path / "tf.json"
        fitted.write(p)
        back = TransferFunction.read(p)
        assert back.structure == fitted.structure
        np.testing.assert_array_equal(back.coefficients, fitted.coefficients)
        np.testing.assert_array_equal(back.covariance, fitted.covariance)
        np.testing.assert_array_equal(back.gamma, fitted.gamma)
        assert back.assessment == fitted.assessment
        xs = np.array([1.5, 4.0])
        np.testing.assert_array_equal(back.mean(xs, 0.1), fitted.mean(xs, 0.1))

    def test_bad_files(self, fitted, tmp_path):
        with pytest.raises(ConfigError, match="json"):
            fitted.write(tmp_path / "tf.ecsv")
        bad = tmp_path / "bad.json"
        bad.write_text('{"format": "other"}')
        with pytest.raises(DataError, match="format"):
            TransferFunction.read(bad)
        with pytest.raises(DataError, match="no such file"):
            TransferFunction.read(tmp_path / "missing.json")

    def test_too_few_mocks(self):
        with pytest.raises(DataError, match="usable mocks"):
            fit_transfer(synthetic(16, 6))


class TestPosterior:
    def test_coverage_of_68_interval_on_held_out_mocks(self):
        # fit on one suite, correct the mocks of an independent one drawn the same way (uniform G in +-0.2,
        # the default prior); the 15.87-84.13 interval must hold the truth in 68.27 % of them
        tf = fit_transfer(synthetic(21, 1500))
        held = synthetic(22, 1200)
        rows = Table({"id": np.asarray(held["mock_index"]).astype(str),
                      "gradient_dex_per_kpc": held["grad_z_measured"], "err_minus": np.full(len(held), ERR),
                      "err_plus": np.full(len(held), ERR), "x_resolution": held["x_resolution"]})
        out = correct_with_transfer(rows, tf, n_grid=801)
        g = np.asarray(held["grad_z_true"])
        lo = np.asarray(out["grad_post"]) - np.asarray(out["grad_post_err_minus"])
        hi = np.asarray(out["grad_post"]) + np.asarray(out["grad_post_err_plus"])
        cover = float(np.mean((g >= lo) & (g <= hi)))
        p = 0.6827
        tol = 3.5 * math.sqrt(p * (1 - p) / g.size)  # binomial error of the held-out count, 3.5 sigma
        assert abs(cover - p) < tol, (cover, tol)
        assert 0.63 < p - tol and p + tol < 0.73  # the tolerance is inside the 0.63-0.73
        # and the posterior median is not biased
        z = (np.asarray(out["grad_post"]) - g)
        assert abs(np.mean(z)) < 4 * np.std(z) / math.sqrt(g.size)

    def test_no_assumed_gradient_and_range_widens(self, fitted):
        rows = Table({"id": ["a", "b"], "gradient_dex_per_kpc": [0.05, 0.05], "err_minus": [0.01, 0.01],
                      "err_plus": [0.01, 0.01]})
        one = correct_with_transfer(rows, fitted, x=2.5)
        rng_ = correct_with_transfer(rows, fitted, x="1.2:4.5")
        w1 = float(one["grad_post_err_minus"][0] + one["grad_post_err_plus"][0])
        w2 = float(rng_["grad_post_err_minus"][0] + rng_["grad_post_err_plus"][0])
        assert w2 > w1
        # the corrected gradient is larger than the measured one, as (m - b(x)) / a(x) with a < 1 says
        expect = (0.05 - fitted.offset(2.5)) / fitted.slope(2.5)
        assert abs(float(one["grad_post"][0]) - expect) < 0.5 * w1
        assert "flat in G" in one.meta["mockzgrad_transfer"]["prior"]

    def test_flags(self, fitted):
        rows = Table({"id": ["tiny", "far"], "gradient_dex_per_kpc": [0.0005, 0.3], "err_minus": [0.001, 0.01],
                      "err_plus": [0.001, 0.01], "x_resolution": [2.0, 9.0]})
        out = correct_with_transfer(rows, fitted)
        assert "below_suite_grad" not in out["grad_post_flag"][1]
        assert "x_outside_suite" in out["grad_post_flag"][1]
        assert "prior_edge" in out["grad_post_flag"][1]

    def test_bad_prior(self, fitted):
        rows = Table({"gradient_dex_per_kpc": [0.05], "err_minus": [0.01], "err_plus": [0.01]})
        with pytest.raises(ConfigError, match="prior"):
            correct_with_transfer(rows, fitted, x=2.0, prior="flat")
        with pytest.raises(ConfigError, match="prior_range"):
            correct_with_transfer(rows, fitted, x=2.0, prior_range=(0.1, -0.1))


class TestScatterForm:
    def test_varying_scatter_keeps_the_inverse_x_form(self, fitted):
        # the truth's ln s changes by C1 (1 - 1/6.4) ~ 0.5 over x: the flat form must lose by > 1 standard error
        assert fitted.structure.scatter == "inverse_x"

    def test_no_excess_scatter_gives_a_flat_floor_not_a_blow_up(self):
        # mocks scattered by exactly their reported errors: s(x) must stay far below the errors over the whole
        # x range (a bounded, flat form), not run off at the edge of the data
        t = synthetic(16, 600, discrete=True)
        rng = np.random.default_rng(seeded(16))
        x, g = np.asarray(t["x_resolution"]), np.asarray(t["grad_z_true"])
        t["grad_z_measured"] = a_true(x) * g + b_true(x) + rng.normal(0, ERR, x.size)
        t["grad_z_measured_lo"], t["grad_z_measured_hi"] = t["grad_z_measured"] - ERR, t["grad_z_measured"] + ERR
        tf = fit_transfer(t)
        xx = np.linspace(*tf.x_range, 200)
        # excess variance of 600 mocks is known to ~ ERR^2 sqrt(2/600) ~ 0.06 ERR^2: s below 0.5 ERR is 8 sigma
        assert np.all(tf.scatter(xx) < 0.5 * ERR), tf.scatter(xx).max()
        assert tf.structure.scatter == "flat"
        assert np.all(np.isfinite(tf.gamma))

    def test_flat_form_round_trips(self, tmp_path):
        t = synthetic(17, 300, discrete=True)
        t["grad_z_measured"] = np.asarray(t["grad_z_true"]) * 0.8
        tf = fit_transfer(t)
        tf.write(tmp_path / "f.json")
        back = TransferFunction.read(tmp_path / "f.json")
        assert back.structure == tf.structure
        np.testing.assert_array_equal(back.scatter(np.array([1.5, 4.0])), tf.scatter(np.array([1.5, 4.0])))
