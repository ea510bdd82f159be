"""The geometry fit's analytic Jacobian and tolerances (issue 23): same results as the slow fit.

Independent reference: scipy's least_squares on the same residuals with
finite-difference Jacobians and 1e-12 tolerances (the fit before issue 23).
Over several noisy maps every parameter must agree within 0.1 of its error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import least_squares

from mockzgrad.recovery import gaussfit
from mockzgrad.recovery.geometry import sky_offsets

from _seed import seeded


def _map(rng, ps=0.05, n=41, snr=20.0):
    x1, y1 = sky_offsets(n, n, ps)
    xx, yy = np.meshgrid(x1, y1)
    th = rng.uniform(0, math.pi)
    sa, sb = rng.uniform(0.15, 0.3), rng.uniform(0.06, 0.14)
    xc, yc = rng.normal(0, 0.05, 2)
    dx, dy = xx - xc, yy - yc
    xm = dx * math.sin(th) + dy * math.cos(th)
    ym = -dx * math.cos(th) + dy * math.sin(th)
    f = np.exp(-0.5 * ((xm / sa) ** 2 + (ym / sb) ** 2))
    e = np.full_like(f, 1.0 / snr)
    return f + rng.normal(size=f.shape) * e, e, x1, y1, ps


def test_analytic_jacobian_matches_finite_differences():
    rng = np.random.default_rng(seeded(2323))
    f, e, x1, y1, ps = _map(rng)
    xx, yy = np.meshgrid(x1, y1)
    sx, sy, sw = gaussfit._pixel_subgrid(xx.ravel(), yy.ravel(), ps)
    p = np.array([1.2, 0.02, -0.03, 0.25, 0.1, 0.6])
    args = (sx, sy, sw, f.ravel(), e.ravel())
    jac = gaussfit._gaussian_jacobian(p, *args)
    step = 1e-6 * np.maximum(np.abs(p), 0.1)
    num = np.stack([(gaussfit._gaussian_residuals(p + h, *args) - gaussfit._gaussian_residuals(p - h, *args))
                    / (2 * h[i]) for i, h in enumerate(np.diag(step))], axis=1)
    # central differences: truncation error ~ step^2 x third derivative, ~1e-8 of the column scale here
    np.testing.assert_allclose(jac, num, rtol=0, atol=1e-7 * np.abs(num).max())


@pytest.mark.parametrize("k", range(6))
def test_fit_agrees_with_the_finite_difference_fit_within_a_tenth_of_sigma(k):
    rng = np.random.default_rng(seeded(4600 + k))
    f, e, x1, y1, ps = _map(rng, snr=rng.uniform(5.0, 50.0))
    good = np.ones(f.shape, bool)
    params, cov = gaussfit.fit_map(f, e, x1, y1, ps, good)
    # the reference: the same residuals, finite differences, 1e-12 tolerances
    xx, yy = np.meshgrid(x1, y1)
    sx, sy, sw = gaussfit._pixel_subgrid(xx.ravel(), yy.ravel(), ps)
    p0 = gaussfit._initial_guess(xx.ravel(), yy.ravel(), f.ravel(), e.ravel(), ps)
    span = ps * 41
    bounds = ([-np.inf, x1.min() - span, y1.min() - span, 1e-3 * ps, 1e-3 * ps, -np.inf],
              [np.inf, x1.max() + span, y1.max() + span, 10.0 * span, 10.0 * span, np.inf])
    ref = least_squares(gaussfit._gaussian_residuals, p0, bounds=bounds, x_scale="jac", method="trf",
                        xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000,
                        args=(sx, sy, sw, f.ravel(), e.ravel())).x
    amp, xc, yc, sa, sb, th = ref
    if sb > sa:
        sa, sb, th = sb, sa, th + 0.5 * math.pi
    ref = np.array([amp, xc, yc, sa, sb, th])
    got = np.array(params)
    d_th = (got[5] - ref[5] + 0.5 * math.pi) % math.pi - 0.5 * math.pi  # theta is defined modulo pi
    diff = np.append(got[:5] - ref[:5], d_th)
    sig = np.sqrt(np.diag(cov))
    assert np.all(np.abs(diff) <= 0.1 * sig), (diff / sig).tolist()
