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


class TestSaturatingGradTerm:
    """A slope reduced only at the largest |grad_z| (a calibration range clipping strong gradients) must not be
    extrapolated to the small gradients."""

    LEVELS = (0.01, 0.05, 0.1, 0.2)
    DROP = 0.25  # slope at |grad_z| = 0.2 is a(x) - DROP; below 0.1 it is a(x)

    def suite(self, seed, n):
        rng = np.random.default_rng(seeded(seed))
        x = np.exp(rng.uniform(0.0, math.log(6.4), n))
        g = rng.choice(self.LEVELS, n) * rng.choice([-1.0, 1.0], n)
        slope = a_true(x) - self.DROP * (np.abs(g) > 0.15)
        m = slope * g + b_true(x) + rng.normal(0, 1, n) * np.sqrt(s_true(x) ** 2 + ERR**2)
        return Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": m, "x_resolution": x,
                      "grad_z_measured_lo": m - ERR, "grad_z_measured_hi": m + ERR, "mock_index": np.arange(n)})

    def test_knee_candidates_are_the_inner_levels(self):
        from mockzgrad.corrections.transfer import knee_candidates, read_suite_mocks

        assert knee_candidates(read_suite_mocks(self.suite(41, 200))) == (0.0, 0.05, 0.1)

    def test_small_gradients_keep_the_unclipped_slope(self):
        from mockzgrad.corrections.transfer import Structure, _make, fit_structure, read_suite_mocks, references

        t = self.suite(42, 1500)
        tf = fit_transfer(t)
        assert "abs_grad" in tf.structure.extras and tf.structure.knee == pytest.approx(0.1)
        xx = np.linspace(1.1, 6.2, 12)
        for ag in (0.01, 0.075):
            g = np.full_like(xx, ag)
            dev = np.abs(tf.slope(xx, g) - a_true(xx)) / tf.slope_std(xx, g)
            assert np.all(dev < 3.5), (ag, dev.max())  # within the Monte Carlo error of the suite
        g2 = np.full_like(xx, 0.2)
        dev2 = np.abs(tf.slope(xx, g2) - (a_true(xx) - self.DROP)) / tf.slope_std(xx, g2)
        assert np.all(dev2 < 3.5), dev2.max()
        # the test can fail: a slope linear in |grad_z| (knee 0) carries the clipping down to |grad_z| = 0.075
        mocks = read_suite_mocks(t)
        refs = references(mocks)
        lin = Structure(tf.structure.degree_a, tf.structure.degree_b, ("abs_grad",), tf.structure.scatter, 0.0)
        tl = _make(lin, fit_structure(lin, mocks, refs), refs, mocks, [], None)
        g = np.full_like(xx, 0.01)
        assert np.max(np.abs(tl.slope(xx, g) - a_true(xx)) / tl.slope_std(xx, g)) > 5

    def test_knee_round_trips(self, tmp_path):
        tf = fit_transfer(self.suite(43, 600))
        tf.write(tmp_path / "k.json")
        back = TransferFunction.read(tmp_path / "k.json")
        assert back.structure == tf.structure
        xs, g = np.array([1.5, 4.0]), np.array([0.01, 0.2])
        np.testing.assert_array_equal(back.slope(xs, g), tf.slope(xs, g))


@pytest.mark.slow
class TestPerSignSlope:
    """Positive and negative gradients flattened differently and at a different rate in 1/x (the flagship's
    case): the per-sign x-dependence (sign_inv_x) is found and recovered within its covariance; a suite whose
    signs differ by a constant does not get it."""

    D_SIGN, D_INV = -0.05, 0.30  # a_neg(x) = a_true(x) + D_SIGN + D_INV / x: 1/x coefficient A1 + D_INV

    def suite(self, seed, n, d_inv=D_INV, d_sign=D_SIGN):
        rng = np.random.default_rng(seeded(seed))
        x = np.exp(rng.uniform(0.0, math.log(6.4), n))
        g = rng.choice([0.05, 0.1, 0.2], n) * rng.choice([-1.0, 1.0], n)
        m = self.a(x, g, d_inv, d_sign) * g + b_true(x) + rng.normal(0, 1, n) * np.sqrt(s_true(x) ** 2 + ERR**2)
        return Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": m, "x_resolution": x,
                      "grad_z_measured_lo": m - ERR, "grad_z_measured_hi": m + ERR, "mock_index": np.arange(n)})

    @staticmethod
    def a(x, g, d_inv=D_INV, d_sign=D_SIGN):
        return a_true(x) + (np.asarray(g) < 0) * (d_sign + d_inv / np.asarray(x))

    @pytest.fixture(scope="class")
    @classmethod
    def per_sign(cls):
        t = cls.suite(cls, 51, 1500)
        return t, fit_transfer(t)

    def test_per_sign_slopes_recovered_within_covariance(self, per_sign):
        from mockzgrad.corrections.transfer import Structure, _make, fit_structure, read_suite_mocks, references

        t, tf = per_sign
        assert {"sign", "sign_inv_x"} <= set(tf.structure.extras), tf.structure.label()
        xs = np.array([1.2, 2.0, 3.5, 6.0])
        for s in (1.0, -1.0):
            g = np.full_like(xs, s * 0.1)
            z = (tf.slope(xs, g) - self.a(xs, g)) / tf.slope_std(xs, g)
            assert np.all(np.abs(z) < 4), (s, z)  # 4 sigma per point, as above
        # the 1/x coefficient of the negative gradients: alpha_1 + slope_sign_inv_x, with its covariance
        names = tf.structure.names()
        i, j = names.index("alpha_1"), names.index("slope_sign_inv_x")
        c = tf.coefficients[i] + tf.coefficients[j]
        sd = math.sqrt(tf.covariance[i, i] + tf.covariance[j, j] + 2 * tf.covariance[i, j])
        assert abs(c - (A1 + self.D_INV)) < 4 * sd, (c, sd)
        # the test can fail: a constant per-sign shift misses the negative slopes at the ends of the x range
        mocks = read_suite_mocks(t)
        refs = references(mocks)
        const = Structure(tf.structure.degree_a, tf.structure.degree_b,
                          tuple(e for e in tf.structure.extras if e != "sign_inv_x"), tf.structure.scatter,
                          tf.structure.knee)
        tc = _make(const, fit_structure(const, mocks, refs), refs, mocks, [], None)
        g = np.full_like(xs, -0.1)
        assert np.max(np.abs(tc.slope(xs, g) - self.a(xs, g)) / tc.slope_std(xs, g)) > 5

    def test_posterior_uses_the_negative_slope(self, per_sign):
        # a galaxy measured at -0.06 dex/kpc at x = 1.2 is corrected with a_neg(1.2), not a_pos(1.2): the
        # model is linear and Gaussian, so with the posterior ~5 sigma from 0 and inside the flat prior its
        # median is (m - b) / a_neg up to the coefficients' error (~2 % here, << a quarter of the width)
        _, tf = per_sign
        rows = Table({"id": ["n"], "gradient_dex_per_kpc": [-0.06], "err_minus": [0.005], "err_plus": [0.005]})
        out = correct_with_transfer(rows, tf, x=1.2)
        g_neg = (-0.06 - b_true(1.2)) / self.a(1.2, -1.0)
        g_pos = (-0.06 - b_true(1.2)) / self.a(1.2, 1.0)
        width = float(out["grad_post_err_minus"][0] + out["grad_post_err_plus"][0])
        assert abs(float(out["grad_post"][0]) - g_neg) < 0.25 * width, (float(out["grad_post"][0]), g_neg, width)
        assert abs(g_neg - g_pos) > 0.5 * width  # and the positive slope would be told apart

    def test_term_round_trips(self, per_sign, tmp_path):
        _, tf = per_sign
        tf.write(tmp_path / "s.json")
        back = TransferFunction.read(tmp_path / "s.json")
        assert back.structure == tf.structure and back.references == tf.references
        xs, g = np.array([1.2, 4.0, 1.2, 4.0]), np.array([-0.1, -0.1, 0.1, 0.1])
        np.testing.assert_array_equal(back.slope(xs, g), tf.slope(xs, g))
        np.testing.assert_array_equal(back.mean_var(xs, g), tf.mean_var(xs, g))

    @staticmethod
    def cv_gain(t):
        """Held-out score gain of adding sign_inv_x to a1b1+sign, and its standard error (paired over mocks)."""
        from mockzgrad.corrections.transfer import Structure, _folds, cross_validate, read_suite_mocks, references

        mocks = read_suite_mocks(t)
        refs, fold = references(mocks), _folds(mocks.n)
        base = cross_validate(Structure(1, 1, ("sign",)), mocks, refs, fold)
        with_term = cross_validate(Structure(1, 1, ("sign", "sign_inv_x")), mocks, refs, fold)
        d = with_term - base
        return float(np.mean(d)), float(np.std(d) / math.sqrt(d.size))

    def test_constant_sign_shift_gains_nothing_beyond_mc_error(self, per_sign):
        # signs differing by a constant 0.1 in slope: sign_inv_x improves the held-out score by no more than
        # its Monte Carlo error (3 standard errors, each of 3 seeds). The one-SE rule adds it only when it
        # gains > 1 SE, so a null suite still gets it now and then (measured: 1 of 12 seeds at 800 mocks,
        # see the note); that rate is the rule's, not this test's.
        for seed in (61, 62, 63):
            gain, se = self.cv_gain(self.suite(seed, 800, d_inv=0.0, d_sign=-0.1))
            assert gain > -3 * se, (seed, gain, se)
        # the test can fail: the per-sign suite gains more than the one standard error the rule asks for
        gain, se = self.cv_gain(per_sign[0])
        assert gain < -se, (gain, se)


@pytest.mark.slow
class TestPerSignGradTerm:
    """Only the strong positive gradients flattened (a calibration's upper validity limit clips them, the
    flagship's case): the |grad_z| term per sign (sign_abs_grad) is found and the slopes are recovered."""

    DROP = 0.25

    def test_clipping_of_positive_gradients_only(self):
        rng = np.random.default_rng(seeded(71))
        n = 1500
        x = np.exp(rng.uniform(0.0, math.log(6.4), n))
        g = rng.choice([0.05, 0.1, 0.2], n) * rng.choice([-1.0, 1.0], n)
        slope = a_true(x) - self.DROP * (g > 0.15)
        m = slope * g + b_true(x) + rng.normal(0, 1, n) * np.sqrt(s_true(x) ** 2 + ERR**2)
        t = Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": m, "x_resolution": x,
                   "grad_z_measured_lo": m - ERR, "grad_z_measured_hi": m + ERR})
        tf = fit_transfer(t)
        assert {"sign", "abs_grad", "sign_abs_grad"} <= set(tf.structure.extras), tf.structure.label()
        assert tf.assessment["transfer_ok"]
        xs = np.array([1.2, 2.0, 3.5, 6.0])
        for gv in (0.05, 0.2, -0.05, -0.2):
            gg = np.full_like(xs, gv)
            truth = a_true(xs) - self.DROP * (gv > 0.15)
            z = (tf.slope(xs, gg) - truth) / tf.slope_std(xs, gg)
            assert np.all(np.abs(z) < 4), (gv, z)
