"""Polynomial and surface fits recover known functions; weights, covariance and BIC behave as documented.

Independent references: numpy.polyfit (weighted, with its chi2/dof-scaled
covariance) for curves; exact data from known coefficients for surfaces.
"""

import math

import numpy as np
import pytest
from _seed import seeded

from mockzgrad.corrections.polyfit import (
    DEGREE_CANDIDATES,
    INCLINATION_SCALE,
    INVERSE_DEGREES,
    PolynomialFit,
    SurfaceFit,
    fit_polynomial,
    fit_surface,
    residual_scatter,
)
from mockzgrad.errors import ConfigError

CUBIC = np.array([0.1, 0.5, -0.12, 0.01])  # ratio(x) = sum c_k x^k, lowest order first


def cubic_data(seed=0, n=600, noise=0.02):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 6.5, n)
    sigma = noise * (1 + 0.5 * (x > 3))  # heteroscedastic, as the local scatter of real suites
    return x, np.polynomial.polynomial.polyval(x, CUBIC) + rng.normal(0, 1, n) * sigma, sigma


class TestFitPolynomial:
    def test_noise_free_cubic_is_exact(self):
        x = np.linspace(0.5, 6.5, 40)
        fit = fit_polynomial(x, np.polynomial.polynomial.polyval(x, CUBIC), np.ones(x.size), 3)
        np.testing.assert_allclose(fit.coefficients, CUBIC, atol=1e-10)
        assert fit.chi2 < 1e-20 and fit.dof == 36 and fit.n_points == 40 and fit.candidates == (3,)

    def test_matches_numpy_polyfit(self):
        x, r, sigma = cubic_data()
        fit = fit_polynomial(x, r, sigma, 3, n_clipped=7)
        coef, cov = np.polyfit(x, r, 3, w=1.0 / sigma, cov=True)
        np.testing.assert_allclose(fit.coefficients, coef[::-1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fit.covariance, cov[::-1, ::-1], rtol=1e-8, atol=1e-16)
        assert fit.n_clipped == 7

    def test_bic_picks_the_true_degree(self):
        x, r, sigma = cubic_data(seed=seeded(1), n=2000)
        fit = fit_polynomial(x, r, sigma, "auto")
        # polynomials in x, then in 1/x (the saturating forms c0 + c1/x (+ c2/x^2))
        assert fit.candidates == DEGREE_CANDIDATES + tuple(f"1/x deg {d}" for d in INVERSE_DEGREES)
        assert fit.variable == "x" and fit.degree == 3 == fit.candidates[int(np.argmin(fit.bic))]
        for d, b in zip(DEGREE_CANDIDATES, fit.bic):  # BIC = chi2 + (d + 1) ln n of the fit of that degree
            ref = fit_polynomial(x, r, sigma, d)
            assert b == pytest.approx(ref.chi2 + (d + 1) * math.log(x.size), rel=1e-12)
        for d, b in zip(INVERSE_DEGREES, fit.bic[len(DEGREE_CANDIDATES):]):  # independent: numpy.polyfit in 1/x
            coef = np.polyfit(1.0 / x, r, d, w=1.0 / sigma)
            chi2 = float(np.sum(((r - np.polyval(coef, 1.0 / x)) / sigma) ** 2))
            assert b == pytest.approx(chi2 + (d + 1) * math.log(x.size), rel=1e-9)
        # the weights are the true errors: chi2 / dof is 1 with standard error sqrt(2 / dof); 4.5 of them
        assert abs(fit.chi2 / fit.dof - 1.0) < 4.5 * math.sqrt(2.0 / fit.dof)
        assert np.all(np.abs(fit.coefficients - CUBIC) < 5 * np.sqrt(np.diag(fit.covariance)))

    def test_candidates_need_distinct_x_and_dof(self):
        x = np.repeat([1.0, 2.0, 3.0], 10)
        fit = fit_polynomial(x, x**2, np.ones(x.size), "auto")
        assert fit.candidates == (1, 2, "1/x deg 1", "1/x deg 2")  # 3 distinct x: at most 3 coefficients
        assert fit_polynomial(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.ones(2), 1) is None

    def test_std_agrees_with_coefficient_draws(self):
        x, r, sigma = cubic_data(seed=seeded(2))
        fit = fit_polynomial(x, r, sigma, 3)
        draws = fit.sample(np.random.default_rng(seeded(5)), 20000)
        at = np.array([0.7, 3.0, 6.3])
        values = np.polynomial.polynomial.polyval(at, draws.T)
        np.testing.assert_allclose(values.std(axis=0), fit.std(at), rtol=0.03)

    def test_coefficient_shape_checked(self):
        with pytest.raises(ConfigError, match="covariance shape"):
            PolynomialFit(coefficients=[1.0, 2.0], covariance=np.eye(3))


class TestResidualScatter:
    def test_scatter_about_highest_degree_fit(self):
        x, r, sigma = cubic_data(seed=seeded(3), n=3000)
        keep = np.ones(x.size, bool)
        keep[:50] = False  # left-out mocks still get a scatter and a residual
        s, res = residual_scatter(x, r, keep, 5, "auto")
        unweighted = np.polyfit(x[keep], r[keep], max(DEGREE_CANDIDATES))
        np.testing.assert_allclose(res, r - np.polyval(unweighted, x), atol=1e-10)
        np.testing.assert_allclose(s[x < 2.0], 0.02, rtol=0.2)
        np.testing.assert_allclose(s[x > 4.5], 0.03, rtol=0.2)

    def test_none_when_no_degree_fits(self):
        x = np.array([1.0, 1.0, 2.0])
        assert residual_scatter(x, x, np.ones(3, bool), 5, 3) is None


def surface_truth(x, inc):
    c = np.array([[0.2, -0.1], [0.25, 0.05], [-0.02, 0.0]])  # c_jk, j: power of x, k: of inc / 90
    t = inc / INCLINATION_SCALE
    return sum(c[j, k] * x**j * t**k for j in range(3) for k in range(2)), c


class TestFitSurface:
    def test_known_surface_fixed_degree(self):
        rng = np.random.default_rng(6)
        x = rng.uniform(0.5, 6.0, 500)
        inc = rng.choice([10.0, 30.0, 50.0, 70.0], 500)
        r, c = surface_truth(x, inc)
        s = fit_surface(x, inc, r + rng.normal(0, 1e-4, 500), 5, "auto", (2, 1))
        np.testing.assert_allclose(s.coefficients, c, atol=2e-4)
        assert s.inclination_range == (10.0, 70.0) and s.candidates == ((2, 1),)
        np.testing.assert_allclose(s(x[:20], inc[:20]), r[:20], atol=5e-4)

    def test_auto_finds_the_inclination_term(self):
        rng = np.random.default_rng(7)
        x = rng.uniform(0.5, 6.0, 1500)
        inc = rng.choice([10.0, 30.0, 50.0, 70.0], 1500)
        r, _ = surface_truth(x, inc)
        s = fit_surface(x, inc, r + rng.normal(0, 0.01, 1500), 5, "auto", "auto")
        assert s.degree_inclination >= 1 and s.degree_x >= 2
        assert (s.degree_x, s.degree_inclination) == s.candidates[int(np.argmin(s.bic))]
        assert all(di <= 2 for _, di in s.candidates)

    def test_too_few_inclinations(self):
        x = np.linspace(1, 5, 50)
        assert fit_surface(x, np.full(50, 30.0), x, 5, "auto", (1, 1)) is None

    def test_design_layout(self):
        s = SurfaceFit(coefficients=np.arange(6.0).reshape(3, 2), covariance=np.zeros((6, 6)),
                       inclination_range=(0, 90))
        a = s.design(2.0, 45.0)
        np.testing.assert_allclose(a, [1, 0.5, 2, 1.0, 4, 2.0])  # x^j t^k, j major
        assert s(2.0, 45.0) == pytest.approx(a @ np.arange(6.0))
