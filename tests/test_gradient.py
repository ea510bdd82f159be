"""Tests of the metallicity-gradient fit (mockzgrad.recovery.gradient).

Independent references: numpy.polyfit with weights (mean and unscaled
covariance) for the Gaussian linear posterior, the two-point line and its
error propagation written out here, and the scatter of fits over simulated
datasets for the error bars.
"""

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from _seed import seeded
from mockzgrad.errors import ConfigError, RecoveryError
from mockzgrad.recovery.gradient import GradientFit, fit_gradient, median_gradient_over_diagnostics
from mockzgrad.recovery.summary import PERCENTILES

ONE_SIGMA_LO, ONE_SIGMA_HI = 15.865525393145708, 84.13447460685429  # 100 Phi(-+1)


def test_reported_percentiles_are_one_gaussian_sigma():
    """PERCENTILES = 100 Phi(-1), 100 Phi(+1), the standard normal CDF (statistics.NormalDist)."""
    lo, hi = PERCENTILES
    assert lo == pytest.approx(100 * NormalDist().cdf(-1.0), rel=1e-12)
    assert hi == pytest.approx(100 * NormalDist().cdf(1.0), rel=1e-12)
    assert (lo, hi) == pytest.approx((ONE_SIGMA_LO, ONE_SIGMA_HI), rel=1e-12)


def dataset(rng, n=8, grad=-0.08, z0=8.45, err=0.04, r_max=4.0):
    r = np.sort(rng.uniform(0.2, r_max, n))
    e = err * rng.uniform(0.6, 1.6, n)
    z = z0 + grad * r + e * rng.standard_normal(n)
    return r, z, e


def test_analytic_equals_weighted_polyfit():
    rng = np.random.default_rng(1)
    for _ in range(20):
        r, z, e = dataset(rng, n=int(rng.integers(3, 15)))
        fit = fit_gradient(r, z, e)
        coef, cov = np.polyfit(r, z, 1, w=1.0 / e, cov="unscaled")
        assert fit.method == "analytic"
        assert fit.grad_z == pytest.approx(coef[0], rel=1e-10, abs=1e-13)
        assert fit.z0 == pytest.approx(coef[1], rel=1e-12)
        np.testing.assert_allclose(fit.covariance, cov, rtol=1e-9)
        # Gaussian posterior: the 15.87/84.13 percentiles are mean -+ 1 sigma
        assert fit.grad_z_err == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
        assert fit.grad_z_hi - fit.grad_z == pytest.approx(fit.grad_z - fit.grad_z_lo, rel=1e-10)
        assert fit.z0_hi - fit.z0_lo == pytest.approx(2.0 * math.sqrt(cov[1, 1]), rel=1e-10)
        assert fit.chi2 == pytest.approx(np.sum(((z - np.polyval(coef, r)) / e) ** 2), rel=1e-9)
        assert fit.n_bins == r.size


# Monte Carlo error of emcee's summaries of a Gaussian posterior, from N_eff = samples / tau
# independent draws (tau: emcee.autocorr.integrated_time of the chain): the sample median has
# standard error sqrt(pi / 2) sd / sqrt(N_eff); the half-width (q84 - q16) / 2 0.962 sd / sqrt(N_eff)
# (asymptotic variance of sample quantiles; see test_metallicity.py); a sample variance
# sqrt(2 / N_eff) relative; a sample correlation (1 - rho^2) / sqrt(N_eff) (Fisher). Each is
# compared within EMCEE_BAND standard errors: a false alarm of 7e-6 per comparison, any seed.
EMCEE_BAND = 4.5
SE_MEDIAN = math.sqrt(math.pi / 2.0)
_P = NormalDist().cdf(-1.0)
SE_HALF_WIDTH = math.sqrt(0.5 * _P * (1.0 - 2.0 * _P)) / NormalDist().pdf(1.0)  # 0.962


def _emcee_n_eff(samples, n_walkers):
    import emcee

    chain = samples.reshape(-1, n_walkers, samples.shape[1])  # get_chain(flat=True): steps x walkers
    return chain.shape[0] * n_walkers / emcee.autocorr.integrated_time(chain, quiet=True)


def _check_emcee_matches_analytic(n_steps, n_burn, seed):
    rng = np.random.default_rng(seeded(seed))
    r, z, e = dataset(rng, n=10)
    exact = fit_gradient(r, z, e)
    mc = fit_gradient(r, z, e, method="emcee", rng=rng, n_steps=n_steps, n_burn=n_burn)
    assert mc.method == "emcee"
    assert mc.samples.shape == (64 * (n_steps - n_burn), 2)
    n_eff = _emcee_n_eff(mc.samples, 64)
    assert np.all(n_eff > 200), n_eff  # enough independent draws for the asymptotic errors
    for k, name in enumerate(("grad_z", "z0")):
        sd = math.sqrt(exact.covariance[k, k])
        tol_med = EMCEE_BAND * SE_MEDIAN / math.sqrt(n_eff[k])
        assert abs(getattr(mc, name) - getattr(exact, name)) < tol_med * sd, (name, tol_med)
        half = 0.5 * (getattr(mc, name + "_hi") - getattr(mc, name + "_lo"))
        assert abs(half / sd - 1.0) < EMCEE_BAND * SE_HALF_WIDTH / math.sqrt(n_eff[k]), name
        var_tol = EMCEE_BAND * math.sqrt(2.0 / n_eff[k])
        assert mc.covariance[k, k] == pytest.approx(exact.covariance[k, k], rel=var_tol), name
        # the test can fail: a posterior off by half its width is caught
        assert tol_med < 0.5
    corr_mc = mc.covariance[0, 1] / math.sqrt(mc.covariance[0, 0] * mc.covariance[1, 1])
    corr = exact.covariance[0, 1] / math.sqrt(exact.covariance[0, 0] * exact.covariance[1, 1])
    assert corr_mc == pytest.approx(corr, abs=EMCEE_BAND * (1.0 - corr**2) / math.sqrt(n_eff.min()))


def test_emcee_matches_analytic_posterior_short():
    _check_emcee_matches_analytic(n_steps=700, n_burn=200, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_emcee_matches_analytic_posterior_full_settings(seed):
    _check_emcee_matches_analytic(n_steps=2000, n_burn=500, seed=seed)


def test_pulls_have_unit_width():
    rng = np.random.default_rng(seeded(10))
    truth = -0.1
    pulls, pulls_z0 = [], []
    for _ in range(3000):
        r, z, e = dataset(rng, n=6, grad=truth, z0=8.3)
        fit = fit_gradient(r, z, e)
        pulls.append((fit.grad_z - truth) / fit.grad_z_err)
        pulls_z0.append((fit.z0 - 8.3) / fit.z0_err)
    # a linear Gaussian model with known errors: each pull is exactly N(0, 1); from N draws the
    # mean has standard error 1 / sqrt(N), the standard deviation 1 / sqrt(2 N); 4.5 of them
    n = len(pulls)
    for p in (np.array(pulls), np.array(pulls_z0)):
        assert abs(p.mean()) < 4.5 / math.sqrt(n)
        assert p.std() == pytest.approx(1.0, abs=4.5 / math.sqrt(2 * n))


def test_asymmetric_errors_use_the_mean():
    rng = np.random.default_rng(4)
    r, z, e = dataset(rng, n=7)
    lower, upper = 0.7 * e, 1.3 * e
    a = fit_gradient(r, z, np.stack([lower, upper]))
    b = fit_gradient(r, z, e)
    assert a.grad_z == pytest.approx(b.grad_z, rel=1e-12)
    assert a.grad_z_err == pytest.approx(b.grad_z_err, rel=1e-12)


def test_two_point_slope_is_exact():
    r = np.array([0.5, 2.5])
    z = np.array([8.6, 8.3])
    e = np.array([0.03, 0.05])
    fit = fit_gradient(r, z, e, method="emcee", rng=np.random.default_rng(0))
    assert fit.method == "two_point"
    assert fit.grad_z == pytest.approx((8.3 - 8.6) / 2.0, rel=1e-12)
    assert fit.grad_z_err == pytest.approx(math.hypot(0.03, 0.05) / 2.0, rel=1e-12)
    assert fit.z0 == pytest.approx(8.6 - fit.grad_z * 0.5, rel=1e-12)
    assert fit.z0_err == pytest.approx(math.hypot(0.03 * 2.5, 0.05 * 0.5) / 2.0, rel=1e-12)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-20)
    assert fit.samples is None


def test_fewer_than_two_bins_raise():
    with pytest.raises(RecoveryError, match="at least 2 bins needed, got 1"):
        fit_gradient([1.0], [8.4], [0.1])
    # failed bins (NaN) are dropped before counting
    with pytest.raises(RecoveryError, match="at least 2 bins needed, got 1"):
        fit_gradient([1.0, 2.0, 3.0], [8.4, np.nan, 8.2], [0.1, 0.1, np.nan])
    with pytest.raises(RecoveryError, match="got 0"):
        fit_gradient([], [], [])


def test_same_seed_same_emcee_result():
    rng = np.random.default_rng(8)
    r, z, e = dataset(rng, n=9)
    kw = dict(method="emcee", n_steps=300, n_burn=100)
    a = fit_gradient(r, z, e, rng=np.random.default_rng(42), **kw)
    b = fit_gradient(r, z, e, rng=np.random.default_rng(42), **kw)
    c = fit_gradient(r, z, e, rng=np.random.default_rng(43), **kw)
    assert np.array_equal(a.samples, b.samples)
    assert a.to_dict() == b.to_dict()
    assert not np.array_equal(a.samples, c.samples)


def test_global_numpy_state_untouched():
    rng = np.random.default_rng(8)
    r, z, e = dataset(rng, n=9)
    before = np.random.get_state()[1].copy()
    fit_gradient(r, z, e, method="emcee", rng=rng, n_steps=100, n_burn=50, bootstrap=20)
    assert np.array_equal(np.random.get_state()[1], before)


def test_bootstrap_percentiles():
    rng = np.random.default_rng(12)
    r, z, e = dataset(rng, n=40, err=0.05)
    e = np.full_like(e, 0.05)
    z = 8.5 - 0.05 * r + e * rng.standard_normal(r.size)
    a = fit_gradient(r, z, e, bootstrap=2000, rng=np.random.default_rng(1))
    b = fit_gradient(r, z, e, bootstrap=2000, rng=np.random.default_rng(1))
    assert a.bootstrap_grad_z == b.bootstrap_grad_z
    lo, med, hi = a.bootstrap_grad_z
    assert lo < med < hi
    assert a.n_bootstrap == 2000
    # with correct, equal errors the bootstrap width approaches the posterior width
    assert 0.5 * (hi - lo) == pytest.approx(a.grad_z_err, rel=0.25)
    assert abs(med - a.grad_z) < 0.2 * a.grad_z_err


def test_to_dict_is_json_serialisable():
    rng = np.random.default_rng(6)
    r, z, e = dataset(rng)
    fit = fit_gradient(r, z, e, method="emcee", rng=rng, n_steps=200, n_burn=100, bootstrap=50)
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["method"] == "emcee" and d["n_samples"] == 64 * 100
    assert d["grad_z"] == fit.grad_z
    assert len(d["bootstrap_grad_z"]) == 3


def test_argument_errors():
    r, z, e = np.arange(4.0), np.full(4, 8.4), np.full(4, 0.1)
    with pytest.raises(ConfigError):
        fit_gradient(r, z, e, method="mcmc")
    with pytest.raises(ConfigError, match="rng"):
        fit_gradient(r, z, e, method="emcee")
    with pytest.raises(ConfigError):
        fit_gradient(r, z, np.zeros(4))
    with pytest.raises(ConfigError):
        fit_gradient(r, z, np.ones(3))
    with pytest.raises(RecoveryError, match="same radius"):
        fit_gradient(np.ones(4), z, e)


def test_median_gradient_over_diagnostics():
    def fit(g):
        return GradientFit(g, g - 0.01, g + 0.01, 8.4, 8.3, 8.5, np.eye(2), "analytic", 5, 1.0)

    fits = {"R3": fit(-0.10), "O32": fit(-0.04), "Ne3O2": fit(-0.07)}
    med, scatter = median_gradient_over_diagnostics(fits)
    assert med == pytest.approx(-0.07)
    assert scatter == pytest.approx(np.std([-0.10, -0.04, -0.07], ddof=1))
    med1, scatter1 = median_gradient_over_diagnostics({"R3": fit(-0.1)})
    assert med1 == -0.1 and math.isnan(scatter1)
    with pytest.raises(RecoveryError):
        median_gradient_over_diagnostics({})
