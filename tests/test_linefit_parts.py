"""The parts of the line fitter tested one by one (mockzgrad.recovery.linefit internals).

Each part is compared with a slow, obvious computation written here with
numpy (``linalg.solve``, ``linalg.inv``, finite differences, a brute-force
grid search) or with an independent forward model of the spectra.
"""

import math

import numpy as np
import pytest
from scipy.special import erf

from mockzgrad.errors import ConfigError
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.linefit import LineModel, default_line_model, fit_lines, fit_lines_curve_fit
from mockzgrad.recovery.linefit._design import (
    active_columns,
    evaluate,
    line_profiles,
    projected_norm2,
    solve_normal,
)
from mockzgrad.recovery.linefit._grid import grid_chi2, grid_start
from mockzgrad.recovery.linefit._lm import _bfgs, _solve2, refine
from mockzgrad.recovery.linefit._setup import data_and_weights, fit_bounds, prepare_setup
from mockzgrad.recovery.linefit.curvefit import _WindowModel

C = 299792.458  # km/s


def spectrum(lo, hi, redshift, fluxes, v, sigma, a=0.0, b=0.0):
    """Channel-integrated Gaussian lines on a straight continuum ``a + b (mid - lo[0])``."""
    out = a + b * (0.5 * (lo + hi) - lo[0])
    for name, f in fluxes.items():
        centre = LINES[name].wavelength * (1.0 + redshift) * (1.0 + v / C)
        s = math.sqrt(2.0) * centre * sigma / C
        out = out + f * 0.5 * (erf((hi - centre) / s) - erf((lo - centre) / s))
    return out


Z = 1.5
MODEL = default_line_model(["NII_6550", "Ha", "NII_6585", "SII_6718", "SII_6733"])
FLUX = {"Ha": 10.0, "NII_6585": 3.0, "NII_6550": 3.0 / 3.071, "SII_6718": 1.5, "SII_6733": 1.1}


def grid():
    """Contiguous grid around Halpha - [SII] at z = 1.5, 6 A channels (~110 km/s)."""
    lo = 16200.0 + 6.0 * np.arange(140) + 0.37
    return lo, lo + 6.0


def problem(n=5, noise=0.05, seed=4, half_window=None):
    lo, hi = grid()
    rng = np.random.default_rng(seed)
    clean = spectrum(lo, hi, Z, FLUX, 30.0, 180.0, a=0.4, b=-1e-4)
    y_full = clean[None, :] + noise * rng.standard_normal((n, lo.size))
    setup = prepare_setup(lo, hi, Z, MODEL, half_window)
    y, w = data_and_weights(y_full, np.full(y_full.shape, noise), setup)
    chan, s0, vb, sb = fit_bounds(setup, y, w, MODEL.lines, None, None, None)
    return setup, y, w, active_columns(setup, w, s0), vb, sb


# --------------------------------------------------------------------------
# Small linear algebra
# --------------------------------------------------------------------------


def test_solve2_matches_numpy_and_is_zero_where_singular():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 2, 2)) + 3.0 * np.eye(2)
    g = rng.standard_normal((50, 2))
    np.testing.assert_allclose(_solve2(a, g), np.linalg.solve(a, g[:, :, None])[:, :, 0], rtol=1e-12)
    sing = np.array([[[1.0, 2.0], [2.0, 4.0]]])
    np.testing.assert_array_equal(_solve2(sing, np.ones((1, 2))), 0.0)


def test_bfgs_meets_the_secant_condition():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((40, 2, 2))
    b = np.matmul(m, m.transpose(0, 2, 1)) + np.eye(2)
    step = rng.standard_normal((40, 2))
    dy = np.matmul(b + 0.3 * np.eye(2), step[:, :, None])[:, :, 0]   # s.y > 0
    new = _bfgs(b, step, dy)
    np.testing.assert_allclose(np.matmul(new, step[:, :, None])[:, :, 0], dy, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(new, new.transpose(0, 2, 1), rtol=1e-12, atol=1e-14)
    # negative curvature along the step: the matrix is kept
    np.testing.assert_array_equal(_bfgs(b, step, -dy), b)


def spd(rng, n, p):
    a = rng.standard_normal((n, 3 * p, p)) * np.logspace(0, 4, p)   # badly scaled columns
    return np.matmul(a.transpose(0, 2, 1), a), rng.standard_normal((n, p)) * np.logspace(0, 4, p)


def test_solve_normal_matches_numpy_and_fixes_inactive_parameters():
    rng = np.random.default_rng(3)
    m, b = spd(rng, 30, 4)
    act = np.ones((30, 4), dtype=bool)
    x, inv = solve_normal(m, b, act, want_inverse=True)
    np.testing.assert_allclose(x, np.linalg.solve(m, b[:, :, None])[:, :, 0], rtol=1e-8)
    np.testing.assert_allclose(inv, np.linalg.inv(m), rtol=1e-8, atol=1e-20)
    # an inactive parameter is 0 and the others solve the reduced system
    act[:, 2] = False
    x, inv = solve_normal(m, b, act, want_inverse=True)
    keep = [0, 1, 3]
    reduced = np.linalg.solve(m[:, keep][:, :, keep], b[:, keep][:, :, None])[:, :, 0]
    np.testing.assert_array_equal(x[:, 2], 0.0)
    np.testing.assert_array_equal(inv[:, 2], 0.0)
    np.testing.assert_allclose(x[:, keep], reduced, rtol=1e-8)


def test_projected_norm2_is_b_minv_b():
    rng = np.random.default_rng(4)
    m, b = spd(rng, 25, 5)
    elems = {(i, j): m[:, i, j] for i in range(5) for j in range(i + 1)}
    act = [np.ones(25, dtype=bool)] * 5
    want = np.einsum("si,si->s", b, np.linalg.solve(m, b[:, :, None])[:, :, 0])
    np.testing.assert_allclose(projected_norm2(elems, list(b.T), act), want, rtol=1e-8)
    # inactive column 1: the norm of the reduced system
    act = [np.ones(25, dtype=bool)] * 5
    act[1] = np.zeros(25, dtype=bool)
    keep = [0, 2, 3, 4]
    mk, bk = m[:, keep][:, :, keep], b[:, keep]
    want = np.einsum("si,si->s", bk, np.linalg.solve(mk, bk[:, :, None])[:, :, 0])
    np.testing.assert_allclose(projected_norm2(elems, list(b.T), act), want, rtol=1e-8)


# --------------------------------------------------------------------------
# Windows and parameter layout
# --------------------------------------------------------------------------


def test_prepare_setup_links_windows_through_a_tie():
    lo, hi = grid()
    setup = prepare_setup(lo, hi, Z, MODEL, 5)
    # [NII] 6550 | Halpha | [NII] 6585 overlap, [SII] 6718 | 6733 overlap: two windows
    assert setup.n_win == 2 and setup.n_free == 4 and setup.n_par == 8
    assert len(setup.blocks) == 2
    # a tie across the two windows makes them one block
    tied = LineModel(MODEL.lines, dict(MODEL.ties, SII_6733=("NII_6585", 0.4)))
    setup2 = prepare_setup(lo, hi, Z, tied, 5)
    assert len(setup2.blocks) == 1 and setup2.n_free == 3
    chans, cols, parts, n_lines = setup2.blocks[0]
    assert chans.size == setup2.idx.size and n_lines == 3 and cols.size == setup2.n_par
    # every line's guessed centre lies inside its window
    for (w_lo, w_hi, _), members in zip(setup.windows, setup.win_lines):
        assert np.all((setup.lam_obs[members] > w_lo) & (setup.lam_obs[members] < w_hi))


# --------------------------------------------------------------------------
# Model evaluation
# --------------------------------------------------------------------------


def test_line_profiles_conserve_flux_and_have_the_right_derivatives():
    lo, hi = grid()
    setup = prepare_setup(lo, hi, Z, MODEL, None)
    v = np.array([0.0, 40.0])
    s = np.array([150.0, 220.0])
    prof, dpv, dps = line_profiles(setup, v, s, deriv=True)[0]
    # the lines sit far from the ends of the 840 A window: all flux is on the grid
    np.testing.assert_allclose(prof.sum(axis=1), 1.0, rtol=1e-9)
    h = 1e-3
    for d, dv, ds in ((dpv, h, 0.0), (dps, 0.0, h)):
        up = line_profiles(setup, v + dv, s + ds, deriv=False)[0][0]
        dn = line_profiles(setup, v - dv, s - ds, deriv=False)[0][0]
        np.testing.assert_allclose(d, (up - dn) / (2 * h), rtol=1e-5, atol=1e-10)


def test_window_model_of_curve_fit_matches_the_forward_model():
    lo, hi = grid()
    setup = prepare_setup(lo, hi, Z, MODEL, None)
    model = _WindowModel(setup)
    a, b = 0.4, -1e-4
    lam_ref = setup.windows[0][2]
    params = [FLUX[n] for n in setup.free_lines] + [a + b * (lam_ref - lo[0]), b, 30.0, 180.0]
    want = spectrum(lo, hi, Z, FLUX, 30.0, 180.0, a=a, b=b)
    np.testing.assert_allclose(model(np.arange(lo.size), *params), want, rtol=1e-10, atol=1e-12)


def test_evaluate_schur_complement_and_full_matrix_agree():
    setup, y, w, act, vb, sb = problem()
    v, s = np.full(y.shape[0], 10.0), np.full(y.shape[0], 170.0)
    chi2, beta, g, h, hess = evaluate(setup, v, s, y, w, act, full=True)
    p = setup.n_par
    # the reduced curvature on (v, sigma) is the inverse of the (v, sigma) block of the
    # inverse (inverted after Jacobi scaling: the parameters differ by orders of magnitude)
    d = 1.0 / np.sqrt(np.einsum("sii->si", hess))
    inv = np.linalg.inv(hess * d[:, :, None] * d[:, None, :]) * d[:, :, None] * d[:, None, :]
    np.testing.assert_allclose(h, np.linalg.inv(inv[:, p:, p:]), rtol=1e-6)
    # chi^2 is that of the linear least-squares solution beta
    model = np.stack([_WindowModel(setup)(np.arange(setup.idx.size), *beta[i], v[i], s[i])
                      for i in range(y.shape[0])])
    np.testing.assert_allclose(chi2, np.sum(w * (y - model) ** 2, axis=1), rtol=1e-9)


def test_grid_chi2_matches_evaluate_and_grid_start_takes_its_minimum():
    setup, y, w, act, vb, sb = problem(n=4)
    v_grid = np.linspace(vb[0], vb[1], 5)
    s_grid = np.linspace(sb[:, 0].min(), sb[:, 1].max(), 6)
    chi2, vv, ss = grid_chi2(setup, y, w, act, v_grid, s_grid)
    for gpt in range(vv.size):
        c = evaluate(setup, np.full(4, vv[gpt]), np.full(4, ss[gpt]), y, w, act)[0]
        np.testing.assert_allclose(chi2[gpt], c, rtol=1e-8)
    v0, s0 = grid_start(setup, y, w, act, vb, sb, (5, 6))
    inside = (ss[:, None] >= sb[None, :, 0]) & (ss[:, None] <= sb[None, :, 1])
    best = np.argmin(np.where(inside, chi2, np.inf), axis=0)
    np.testing.assert_array_equal(v0, vv[best])
    np.testing.assert_array_equal(s0, ss[best])


def test_refine_ends_in_a_local_minimum_inside_the_bounds():
    setup, y, w, act, vb, sb = problem(n=6, noise=0.1)
    v0, s0 = grid_start(setup, y, w, act, vb, sb, (9, 13))
    theta, converged = refine(setup, y, w, act, v0, s0, vb, sb, 40)
    assert converged.all()
    assert np.all((theta[:, 0] >= vb[0]) & (theta[:, 0] <= vb[1]))
    assert np.all((theta[:, 1] >= sb[:, 0]) & (theta[:, 1] <= sb[:, 1]))
    c0 = evaluate(setup, theta[:, 0], theta[:, 1], y, w, act)[0]
    assert np.all(c0 <= evaluate(setup, v0, s0, y, w, act)[0])
    for dv, ds in ((0.5, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.0, -0.5)):
        c = evaluate(setup, theta[:, 0] + dv, theta[:, 1] + ds, y, w, act)[0]
        assert np.all(c >= c0 - 1e-9 * c0)


def test_lm_fit_and_curve_fit_agree_on_a_blend():
    """The vectorised fit and the one-at-a-time reference on a blended, tied model."""
    lo, hi = grid()
    rng = np.random.default_rng(8)
    data = spectrum(lo, hi, Z, FLUX, 30.0, 180.0, a=0.4)[None, :] + 0.08 * rng.standard_normal((3, lo.size))
    err = np.full(data.shape, 0.08)
    a = fit_lines(data, err, lo, hi, Z, MODEL, half_window=12)
    b = fit_lines_curve_fit(data, err, lo, hi, Z, MODEL, half_window=12)
    assert a.success.all() and b.success.all()
    assert np.all(np.abs(a.flux - b.flux) < 1e-3 * a.flux_err)
    np.testing.assert_allclose(a.covariance, b.covariance, rtol=1e-3, atol=1e-3 * np.max(a.covariance))
    np.testing.assert_allclose(a.chi2, b.chi2, rtol=1e-6)


# --------------------------------------------------------------------------
# Parameter checks (mockzgrad.validate): the message names the field
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"redshift": -1.0}, "redshift"),
        ({"redshift": float("nan")}, "redshift"),
        ({"half_window": 0}, "half_window"),
        ({"half_window": 2.5}, "half_window"),
        ({"n_grid": (1, 5)}, "n_grid"),
        ({"n_grid": (5,)}, "n_grid"),
        ({"max_iter": 0}, "max_iter"),
        ({"sigma_min": -3.0}, "sigma_min"),
        ({"sigma_init": 0.0}, "sigma_init"),
        ({"reference_line": "Hb"}, "reference_line"),
    ],
)
def test_fit_lines_names_the_bad_parameter(kwargs, field):
    lo, hi = grid()
    spec = spectrum(lo, hi, Z, FLUX, 0.0, 150.0)
    args = {"redshift": Z, **kwargs}
    redshift = args.pop("redshift")
    with pytest.raises(ConfigError, match=field):
        fit_lines(spec, np.ones_like(spec), lo, hi, redshift, MODEL, **args)


@pytest.mark.parametrize("ratio", [0.0, -1.0, float("inf"), "a"])
def test_tie_ratios_must_be_positive_numbers(ratio):
    with pytest.raises(ConfigError, match="OIII_4960"):
        LineModel(("OIII_4960", "OIII_5008"), {"OIII_4960": ("OIII_5008", ratio)})
    with pytest.raises(ConfigError, match="oiii_ratio"):
        default_line_model(["OIII"], oiii_ratio=ratio)


@pytest.mark.parametrize("half_window", [None, 4])
def test_stacked_evaluate_matches_the_block_by_block_one(half_window):
    from mockzgrad.recovery.linefit._stacked import evaluate_stacked

    setup, y, w, act, vb, sb = problem(n=6, half_window=half_window)
    w = w.copy()
    w[1, 3:9] = 0.0  # masked channels
    act = act.copy()
    act[2, -1] = False  # a baseline slope held at 0
    rng = np.random.default_rng(7)
    v = rng.uniform(vb[0], vb[1], y.shape[0])
    s = rng.uniform(sb[:, 0], sb[:, 1])
    ref = evaluate(setup, v, s, y, w, act, full=True)
    got = evaluate_stacked(setup, v, s, y, w, act, full=True)
    for a, b in zip(ref, got):
        scale = np.max(np.abs(a))
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12 * scale)
    assert evaluate_stacked(setup, v, s, y, w, act)[4] is None


@pytest.mark.parametrize("seed", range(4))
def test_fit_with_stacked_evaluate_agrees_with_block_by_block_within_a_tenth_of_sigma(seed, monkeypatch):
    from _seed import seeded

    from mockzgrad.recovery.linefit import _design, _lm, varpro

    lo, hi = grid()
    rng = np.random.default_rng(seeded(5100 + seed))
    noise = rng.uniform(0.02, 0.3)
    y = spectrum(lo, hi, Z, FLUX, 30.0, 180.0, a=0.4, b=-1e-4)[None, :] + noise * rng.standard_normal((8, lo.size))
    e = np.full(y.shape, noise)
    got = fit_lines(y, e, lo, hi, Z, MODEL, half_window=6)
    monkeypatch.setattr(_lm, "evaluate", _design.evaluate)
    monkeypatch.setattr(varpro, "evaluate_stacked", _design.evaluate)
    ref = fit_lines(y, e, lo, hi, Z, MODEL, half_window=6)
    assert np.array_equal(got.success, ref.success)
    for val, err in (("flux", "flux_err"), ("velocity", "velocity_err"), ("sigma", "sigma_err")):
        a, b, sig = getattr(got, val), getattr(ref, val), getattr(ref, err)
        ok = np.isfinite(b)
        assert np.all(np.abs(a[ok] - b[ok]) <= 0.1 * sig[ok]), val
