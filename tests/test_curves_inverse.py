"""Ratio curves in 1/x: a saturating truth 1 - 0.6/x is fitted as c0 + c1/x, survives the curves file, and is
evaluated as such by ``correct``.

Known answers: the synthetic suite's true ratio (in the 1/x family, so the fit is unbiased and its own
coefficient covariance is the Monte Carlo error of the curve); the fixed-g corrected gradient
measured / (c0 + c1/x + ...) computed here from the stored coefficients.
"""

import warnings

import numpy as np
import pytest
from _seed import seeded
from astropy.table import Table

from mockzgrad.corrections.correct import correct_table, format_abs_grad
from mockzgrad.corrections.curves import CorrectionCurves, OutsideCurvesWarning, derive_curves

PROV = {"suite": "tests", "package_version": "0.1.0", "recipe": "lee2026", "calibrations": ["S25_R3"]}
GRADS = (0.05, 0.1)
X_LO, X_HI = 0.8, 6.0
NOISE = 0.04
#: |fit - truth| allowed, in units of the fit's own 1-sigma (two-sided normal tail 6e-5 per point)
N_SIGMA = 4.0


def truth(x):
    return 1.0 - 0.6 / np.asarray(x, float)


def suite_table(seed, n_per=250):
    """Suite-like results table: ratio = truth(x) + Gaussian noise, both signs, every |grad_z| alike."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("status", "grad_z_true", "grad_z_measured", "grad_z_measured_lo",
                            "grad_z_measured_hi", "x_resolution", "snr", "inclination")}
    for g in GRADS:
        for s in (1, -1):
            x = rng.uniform(X_LO, X_HI, n_per)
            gm = s * g * (truth(x) + rng.normal(0, NOISE, n_per))
            cols["status"] += ["ok"] * n_per
            cols["grad_z_true"] += [s * g] * n_per
            cols["grad_z_measured"] += list(gm)
            cols["grad_z_measured_lo"] += list(gm - 0.01)
            cols["grad_z_measured_hi"] += list(gm + 0.01)
            cols["x_resolution"] += list(x)
            cols["snr"] += list(rng.uniform(20, 100, n_per))
            cols["inclination"] += [20.0] * n_per
    return Table(cols)


def derive(table, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return derive_curves(table, provenance=PROV, **kw)


@pytest.fixture(scope="module")
def table():
    return suite_table(seeded(11))


@pytest.fixture(scope="module")
def curves(table):
    return derive(table)


def test_inverse_form_chosen_and_within_mc_error(curves, table):
    line = derive(table, degree=1)
    for c in curves.curves:
        assert c.fit.variable == "1/x" and c.fit.form.startswith("1/x deg ")
        assert any(isinstance(k, int) for k in c.fit.candidates)  # compared with the polynomials in x
        xs = np.array([1.0, 5.0])
        assert np.all(np.abs(c.fit(xs) - truth(xs)) < N_SIGMA * c.fit.std(xs))
        # the straight line in x the shape rule used to fall back to misses the truth at low x by many of its
        # sigma (at x = 5 it crosses the truth on this x range, as on the flagship suite)
        lin = next(l for l in line.curves if (l.abs_grad, l.sign) == (c.abs_grad, c.sign))
        assert lin.fit.variable == "x" and lin.fit.degree == 1
        assert abs(lin.fit(1.0) - truth(1.0)) > N_SIGMA * lin.fit.std(1.0)


def test_round_trip_through_file_and_correct(curves, tmp_path):
    path = tmp_path / "c.ecsv"
    curves.write(path)
    back = CorrectionCurves.read(path)
    xs = np.linspace(X_LO, X_HI, 7)
    for a, b in zip(curves.curves, back.curves):
        assert (b.fit.variable, b.fit.form, b.fit.candidates) == (a.fit.variable, a.fit.form, a.fit.candidates)
        np.testing.assert_array_equal(a.fit(xs), b.fit(xs))
    rows = [(f"r{i}", 0.03 * (-1) ** i * float(truth(x)), 0.01, 0.01, x) for i, x in enumerate((0.9, 1.6, 2.5, 5.3))]
    t = Table(rows=rows, names=("id", "gradient_dex_per_kpc", "err_minus", "err_plus", "x_resolution"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideCurvesWarning)  # |gradient| 0.03 is below the curves' 0.05
        out_a = correct_table(t, curves, sign="pooled", n_mc=2000, rng=3)
        out_b = correct_table(t, back, sign="pooled", n_mc=2000, rng=3)
    for name in out_a.colnames:
        np.testing.assert_array_equal(np.asarray(out_a[name]), np.asarray(out_b[name]))
    for c in back.curves:
        if c.sign != "both":
            continue
        coef = np.asarray(c.fit.coefficients)
        ratio = sum(ck * np.asarray(t["x_resolution"], float) ** (-k) for k, ck in enumerate(coef))
        col = f"grad_corr_g{format_abs_grad(c.abs_grad)}"
        np.testing.assert_allclose(np.asarray(out_b[col], float), np.asarray(t["gradient_dex_per_kpc"]) / ratio,
                                   rtol=1e-10)
