"""Tests of the per-bin metallicity methods (mockzgrad.recovery.metallicity).

Independent references: line fluxes built exactly on the calibration curves
(so the true Z is known), finite differences and Monte Carlo for the error
propagation, the scatter of fits over noisy realisations for the error bars,
emcee against the grid, a brute-force numpy twin of the line-flux posterior,
and the dust curve of mockzgrad.physics.dust for reddening.
"""

import dataclasses
import json
import math

import numpy as np
import pytest
from _seed import seeded
from _metallicity_data import (
    KEYS,
    NAMES,
    NAMES_BALMER,
    NE3O2,
    O32,
    R3,
    exact_fluxes,
    noisy,
    quantiles_on_grid,
    wavelengths,
)

from mockzgrad.physics.calibrations import DEFAULT_SIGMA_RATIO, get_diagnostic
from mockzgrad.physics.dust import k_lambda, redden
from mockzgrad.errors import ConfigError, RecoveryWarning
from mockzgrad.physics.lines import NII_DOUBLET_RATIO
from mockzgrad.recovery.dust import balmer_decrement_correction
from mockzgrad.recovery.metallicity import (
    REASON_NO_DIAGNOSTIC,
    REASON_OUTSIDE_RANGE,
    BinFluxes,
    LineFluxLikelihood,
    MetallicityResult,
    line_flux_method,
    log_ratios,
    method_one,
    method_two,
)


def r3_turnover():
    zz = np.linspace(*R3.valid_range, 200001)
    return zz[np.argmax(R3.log_ratio(zz))]


# ---------------------------------------------------------------------------
# inputs and log ratios
# ---------------------------------------------------------------------------
def test_binfluxes_checks_input():
    with pytest.raises(ConfigError, match="unknown line"):
        BinFluxes.from_errors(("OIII_5007",), [[1.0]], [[0.1]])
    with pytest.raises(ConfigError, match="shape"):
        BinFluxes(("Hb", "Ha"), np.ones((3, 2)), np.ones((3, 3, 3)))
    b = BinFluxes.from_errors(("Hb", "Ha"), [1.0, 3.0], [0.1, 0.2])
    assert b.n_bins == 1
    np.testing.assert_allclose(b.cov[0], np.diag([0.01, 0.04]))
    np.testing.assert_allclose(b.snr[0], [10.0, 15.0])


def test_binfluxes_from_linefit_maps_ties():
    class Fit:  # the attributes of LineFitResult that are used
        line_names = ("OIII_4960", "OIII_5008", "Hb")
        tie_matrix = np.array([[1 / 2.98, 0.0], [1.0, 0.0], [0.0, 1.0]])
        flux = np.array([[1 / 2.98, 1.0, 0.2]])
        covariance = np.array([[[0.01, 0.001], [0.001, 0.004]]])

    b = BinFluxes.from_linefit(Fit())
    assert b.cov[0, 0, 0] == pytest.approx(0.01 / 2.98**2)
    assert b.cov[0, 0, 1] == pytest.approx(0.01 / 2.98)
    assert b.cov[0, 0, 2] == pytest.approx(0.001 / 2.98)
    assert b.cov[0, 2, 2] == pytest.approx(0.004)


@pytest.mark.parametrize("key", ["S25_Rhat", "C20_RS32", "S25_O3N2", "S25_R23"])
def test_log_ratio_error_matches_finite_differences(key):
    """General ratios (weighted terms, sums of parts, inverse terms, blends)."""
    d = get_diagnostic(key)
    names = tuple(sorted(d.lines))
    rng = np.random.default_rng(0)
    flux = rng.uniform(0.5, 2.0, (4, len(names)))
    a = rng.normal(size=(4, len(names), len(names)))
    cov = 1e-3 * np.einsum("bij,bkj->bik", a, a)  # full, correlated
    rs = log_ratios(BinFluxes(names, flux, cov), [key], snr_min=0.0)
    for b in range(4):
        jac = np.empty(len(names))
        for i in range(len(names)):
            h = 1e-6 * flux[b, i]
            up, dn = flux[b].copy(), flux[b].copy()
            up[i] += h
            dn[i] -= h
            f = lambda x: float(d.log_ratio_from_fluxes(dict(zip(names, x))))  # noqa: E731
            jac[i] = (f(up) - f(dn)) / (2 * h)
        assert rs.log_ratio[b, 0] == pytest.approx(float(d.log_ratio_from_fluxes(dict(zip(names, flux[b])))))
        assert rs.cov[b, 0, 0] == pytest.approx(jac @ cov[b] @ jac, rel=1e-6)


def test_log_ratio_covariance_matches_monte_carlo():
    """Shared lines correlate R3, O32 and Ne3O2; first order is exact enough at S/N 100."""
    rng = np.random.default_rng(1)
    flux = exact_fluxes([7.9])
    err = flux / 100.0
    rs = log_ratios(BinFluxes.from_errors(NAMES, flux, err), KEYS)
    draws = flux + err * rng.standard_normal((20000, flux.shape[1]))
    mc = log_ratios(BinFluxes.from_errors(NAMES, draws, np.broadcast_to(err, draws.shape)), KEYS)
    emp = np.cov(mc.log_ratio.T)
    sd = np.sqrt(np.diag(emp))
    np.testing.assert_allclose(rs.cov[0] / np.outer(sd, sd), emp / np.outer(sd, sd), atol=0.05)
    corr = rs.cov[0, 0, 1] / np.sqrt(rs.cov[0, 0, 0] * rs.cov[0, 1, 1])
    assert corr > 0.3  # R3 and O32 share [OIII]5008


# ---------------------------------------------------------------------------
# exact fluxes: every method returns the input metallicity
# ---------------------------------------------------------------------------
Z_EXACT = np.concatenate([np.linspace(7.45, 7.87, 8), np.linspace(7.98, 8.27, 7)])


def test_method_one_exact_fluxes():
    flux = exact_fluxes(Z_EXACT)
    bins = BinFluxes.from_errors(NAMES, flux, 0.02 * flux)
    res = method_one(log_ratios(bins, KEYS), scatter=False)
    assert res.valid.all()
    np.testing.assert_allclose(res.z, Z_EXACT, atol=1e-3)
    assert np.all(res.z_lo < Z_EXACT) and np.all(Z_EXACT < res.z_hi)
    assert np.all(res.chi2_min < 1e-3)
    assert all(u == tuple(KEYS) for u in res.diagnostics_used)


def test_method_two_exact_fluxes_and_branches():
    flux = exact_fluxes(Z_EXACT)
    bins = BinFluxes.from_errors(NAMES, flux, 0.02 * flux)
    res = method_two(log_ratios(bins, KEYS))
    z_turn = r3_turnover()
    for key in KEYS:
        assert res[key].valid.all(), key
        np.testing.assert_allclose(res[key].z, Z_EXACT, atol=1e-6, err_msg=key)
    r3 = res["S25_R3"]
    # every input Z reaches the other branch inside 7.3-8.6, so R3 has two roots
    assert r3.branch == tuple("lower" if z < z_turn else "upper" for z in Z_EXACT)
    assert set(r3.chosen_by) == {"other diagnostics"}
    assert set(res["S25_O32"].branch) == {"single"}


def test_method_two_alone_branch_chosen_by_all():
    flux = exact_fluxes([7.6])
    bins = BinFluxes.from_errors(NAMES[:2], flux[:, :2], 0.02 * flux[:, :2])
    r3 = method_two(log_ratios(bins, ["S25_R3"]))["S25_R3"]
    assert r3.valid[0] and r3.chosen_by[0] == "all"
    assert "ambiguous" in r3.notes[0]


def test_method_two_ratio_beyond_extreme():
    z_turn = r3_turnover()
    top = float(R3.log_ratio(z_turn))
    sig = 0.02  # dex
    err_hb = sig * math.log(10.0)  # relative error of Hb giving sigma(log R3) = sig
    hb = 1.0 / 10 ** np.array([top + 0.5 * sig, top + 3 * sig])
    bins = BinFluxes.from_errors(("OIII_5008", "Hb"), np.stack([np.ones(2), hb], 1),
                                 np.stack([np.zeros(2), err_hb * hb], 1))
    r3 = method_two(log_ratios(bins, ["S25_R3"]))["S25_R3"]
    assert r3.valid[0] and r3.branch[0] == "extreme"
    assert r3.z[0] == pytest.approx(z_turn, abs=1e-4)
    assert 0 < r3.z_err[0] < 0.5  # finite at the turnover (second-order width)
    assert not r3.valid[1] and r3.reason[1] == REASON_OUTSIDE_RANGE


def test_line_flux_exact_fluxes_with_dust():
    z = Z_EXACT[::2]
    a_v = np.linspace(0.1, 2.5, z.size)
    obs = redden(exact_fluxes(z, balmer=True), wavelengths(NAMES_BALMER)[None, :], a_v[:, None])
    bins = BinFluxes.from_errors(NAMES_BALMER, obs, 0.01 * obs)
    fine = line_flux_method(bins, KEYS, scatter=False, z_grid=np.arange(7.4, 8.3005, 0.001),
                            av_grid=np.arange(0.0, 3.0001, 0.01))
    assert fine.valid.all()
    np.testing.assert_allclose(fine.z, z, atol=1e-3)
    np.testing.assert_allclose(fine.a_v, a_v, atol=0.01)
    hb = exact_fluxes(z)[:, 1]
    np.testing.assert_allclose(fine.f_hb, hb, rtol=0.01)
    adaptive = line_flux_method(bins, KEYS, scatter=False)
    assert np.all(np.abs(adaptive.z - z) <= adaptive.info["z_step"])
    assert np.all((adaptive.z_lo < z) & (z < adaptive.z_hi))
    assert np.all((adaptive.a_v_lo < a_v) & (a_v < adaptive.a_v_hi))


def test_line_flux_derives_lines_over_halpha():
    """S2 and N2 are over Halpha: [SII]/Hb = S2 x 2.86, [NII]/Hb = N2 x 2.86."""
    z = np.array([8.0, 8.2, 8.45])
    s2, n2 = get_diagnostic("S25_S2"), get_diagnostic("S25_N2")
    hb = 1 / 10 ** R3.log_ratio(z)
    ha = 2.86 * hb
    names = ("OIII_5008", "Hb", "Ha", "NII_6585", "SII_6718", "SII_6733")
    sii = ha * 10 ** s2.log_ratio(z)
    flux = np.stack([np.ones(3), hb, ha, ha * 10 ** n2.log_ratio(z), 0.55 * sii, 0.45 * sii], 1)
    bins = BinFluxes.from_errors(names, flux, 0.01 * flux)
    res = line_flux_method(bins, ["S25_R3", "S25_N2", "S25_S2"], fit_dust=False, scatter=False,
                           balmer=("Hb", "Ha"), z_grid=np.arange(7.9, 8.6005, 0.001))
    assert set(res.info["units"]) == {"OIII_5008", "Hb", "Ha", "NII_6585", "SII_6718+SII_6733"}
    np.testing.assert_allclose(res.z, z, atol=1e-3)
    np.testing.assert_allclose(res.a_v, 0.0)


def test_line_flux_blended_halpha():
    z = np.array([7.7, 8.1])
    a_v = np.array([0.4, 1.2])
    f = exact_fluxes(z, balmer=True)
    f[:, 5] *= 1 + 0.05 * (1 + 1 / NII_DOUBLET_RATIO)  # "Ha" = Ha + [NII] 6550, 6585
    obs = redden(f, wavelengths(NAMES_BALMER)[None, :], a_v[:, None])
    bins = BinFluxes.from_errors(NAMES_BALMER, obs, 0.01 * obs)
    fixed = line_flux_method(bins, KEYS, scatter=False, nii_ha=0.05)
    assert np.all(np.abs(fixed.z - z) <= fixed.info["z_step"])
    np.testing.assert_allclose(fixed.a_v, a_v, atol=0.06)
    ignored = line_flux_method(bins, KEYS, scatter=False)  # blend taken as pure Ha
    assert np.all(ignored.a_v > fixed.a_v)
    nuis = line_flux_method(bins, KEYS, scatter=False, nii_ha="nuisance")
    assert nuis.valid.all()
    assert np.all((nuis.z_lo < z) & (z < nuis.z_hi))
    assert np.all(nuis.a_v_hi - nuis.a_v_lo > fixed.a_v_hi - fixed.a_v_lo)
    with pytest.raises(ConfigError, match="nii_ha"):
        line_flux_method(bins, KEYS, nii_ha="free")


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def test_method_one_errors_are_calibrated(record_property):
    """Covariance on, scatter off: (Z_best - Z_true) / sigma has unit width."""
    rng = np.random.default_rng(3)
    z = rng.uniform(7.55, 8.15, 500)  # >= 0.15 dex (~10 sigma) from the range edges
    bins = noisy(rng, exact_fluxes(z), 30.0)
    rs = log_ratios(bins, KEYS)
    res = method_one(rs, scatter=False, covariance=True)
    pull = (res.z - z) / res.z_err
    assert np.std(pull) == pytest.approx(1.0, abs=0.1)
    assert abs(np.median(pull)) < 0.15
    frac = np.mean((res.z_lo < z) & (z < res.z_hi))
    assert frac == pytest.approx(0.683, abs=0.05)
    diag = method_one(rs, scatter=False, covariance=False)
    width_diag = float(np.std((diag.z - z) / diag.z_err))
    record_property("pull_width_covariance_off", width_diag)
    assert math.isfinite(width_diag) and width_diag != pytest.approx(np.std(pull), rel=1e-3)
    assert diag.info["covariance"] is False


def test_line_flux_errors_are_calibrated():
    rng = np.random.default_rng(4)
    z = rng.uniform(7.55, 8.15, 300)
    a_v = rng.uniform(0.3, 2.0, 300)
    obs = redden(exact_fluxes(z, balmer=True), wavelengths(NAMES_BALMER)[None, :], a_v[:, None])
    res = line_flux_method(noisy(rng, obs, 30.0), KEYS, scatter=False)
    assert np.std((res.z_median - z) / res.z_err) == pytest.approx(1.0, abs=0.12)
    sig_av = 0.5 * (res.a_v_hi - res.a_v_lo)
    assert np.std((res.a_v_median - a_v) / sig_av) == pytest.approx(1.0, abs=0.12)


def test_method_one_scatter_widens_and_is_reported():
    bins = BinFluxes.from_errors(NAMES, exact_fluxes([7.8]), 0.02 * exact_fluxes([7.8]))
    rs = log_ratios(bins, KEYS)
    off, on = method_one(rs, scatter=False), method_one(rs, scatter=True)
    assert on.z_err[0] > off.z_err[0]
    # S25_Ne3O2 publishes no sigma_ratio: Method I gives it the documented default
    assert on.info["scatter_default"] == {"S25_Ne3O2": DEFAULT_SIGMA_RATIO}
    assert on.info["scatter_unknown"] == () and on.info["scatter_default_basis"]
    bare = method_one(rs, scatter=True, default_scatter=None)
    assert bare.info["scatter_unknown"] == ("S25_Ne3O2",) and "scatter_default" not in bare.info
    assert on.z_err[0] > bare.z_err[0]
    known = log_ratios(bins, KEYS[:2])  # R3 and O32: 0.13 and 0.29 dex >> 0.01 dex errors
    assert method_one(known, scatter=True).z_err[0] > 5 * method_one(known, scatter=False).z_err[0]


def test_method_one_weight_shares_follow_fisher_information():
    # two linear calibrations (O32 of S24 and the Ne3O2 stand-in): the weight of each is
    # slope^2 / sigma^2 with the slopes read from the files' coefficients (c1)
    o32, ne = get_diagnostic("S24_O32"), get_diagnostic("S25_Ne3O2")
    z = np.array([7.8, 8.0, 8.2])
    o3 = np.ones_like(z)
    o2 = o3 / 10 ** o32.log_ratio(z)
    fl = np.stack([o3, 0.4 * o2, 0.6 * o2, o2 * 10 ** ne.log_ratio(z)], axis=1)
    names = ("OIII_5008", "OII_3727", "OII_3730", "NeIII_3870")
    bins = BinFluxes.from_errors(names, fl, 1e-6 * fl)  # negligible measurement errors
    rs = log_ratios(bins, ["S24_O32", "S25_Ne3O2"], snr_min=0.0)
    res = method_one(rs, scatter=True, default_scatter=0.2)  # neither publishes a scatter
    w = np.array([o32.coefficients[1] ** 2, ne.coefficients[1] ** 2])  # same sigma: slope^2
    share = res.info["weight_share"]
    assert share["S24_O32"] == pytest.approx(w[0] / w.sum(), rel=1e-3)
    assert share["S25_Ne3O2"] == pytest.approx(w[1] / w.sum(), rel=1e-3)
    assert res.info["dominant"] is None  # 57 % / 43 %


def test_method_one_reports_a_dominant_diagnostic():
    # R3 measured at S/N ~ 3 per line, Ne3O2 and O32 at S/N 1000 and no scatter: O32/Ne3O2 carry it
    z = np.array([7.9, 8.1])
    fl = exact_fluxes(z)
    err = 1e-3 * fl
    err[:, 1] = 0.3 * fl[:, 1]  # Hb
    rs = log_ratios(BinFluxes.from_errors(NAMES, fl, err), ["S25_R3", "S25_Ne3O2"], snr_min=0.0)
    with pytest.warns(RecoveryWarning, match="S25_Ne3O2 carries"):
        res = method_one(rs, scatter=False)
    assert res.info["dominant"] == "S25_Ne3O2"
    assert res.info["weight_share"]["S25_Ne3O2"] > 0.8
    assert sum(res.info["weight_share"].values()) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------
# grid vs emcee
# ---------------------------------------------------------------------------
def test_method_one_grid_matches_emcee(monkeypatch):
    import emcee

    from mockzgrad.recovery.metallicity import method_i

    chains, real = [], method_i.run_emcee

    def recording(log_prob, p0, rng, n_steps, n_burn):  # keep each bin's chain for its N_eff
        chain, lp = real(log_prob, p0, rng, n_steps, n_burn)
        chains.append(chain.reshape(n_steps - n_burn, p0.shape[0], -1))
        return chain, lp

    monkeypatch.setattr(method_i, "run_emcee", recording)
    rng = np.random.default_rng(seeded(5))
    z = np.array([7.6, 8.15])
    rs = log_ratios(noisy(rng, exact_fluxes(z), 15.0), KEYS)
    grid = method_one(rs)
    mc = method_one(rs, sampler="emcee", rng=np.random.default_rng(seeded(1)), n_walkers=32,
                    n_steps=1000, n_burn=200)
    assert len(chains) == z.size
    n_eff = np.array([c.shape[0] * c.shape[1] / emcee.autocorr.integrated_time(c, quiet=True)[0]
                      for c in chains])
    assert np.all(n_eff > 200), n_eff  # enough draws for the error model of _compare_mc
    assert np.all(_compare_mc(grid, mc, "z", n_eff) < 0.5)  # a shift by half a width would be caught
    np.testing.assert_allclose(mc.z, grid.z, atol=0.2 * grid.z_err.max())
    with pytest.raises(ConfigError, match="rng"):
        method_one(rs, sampler="emcee")


def _line_flux_bins(seed, snr=15.0):
    rng = np.random.default_rng(seeded(seed))
    z, a_v = np.array([7.7, 8.1]), np.array([0.6, 1.4])
    obs = redden(exact_fluxes(z, balmer=True), wavelengths(NAMES_BALMER)[None, :], a_v[:, None])
    return noisy(rng, obs, snr)


# Monte Carlo error of emcee's summaries. From N_eff independent draws of a Gaussian posterior
# of width sd, the sample median has standard error sqrt(pi / 2) sd / sqrt(N_eff), and the
# half-width (q84 - q16) / 2 of the 15.87/84.13 percentiles sqrt(p (1 - 2p) / 2) / phi(1) sd /
# sqrt(N_eff) with p = Phi(-1) (asymptotic variance and covariance of sample quantiles,
# p1 (1 - p2) / (N f1 f2)). N_eff = samples / tau, tau the integrated autocorrelation time.
SE_MEDIAN = math.sqrt(math.pi / 2.0)  # 1.2533
_P = 0.5 * math.erfc(1.0 / math.sqrt(2.0))
_PHI_1 = math.exp(-0.5) / math.sqrt(2.0 * math.pi)  # Gaussian density at 1 sigma
SE_HALF_WIDTH = math.sqrt(0.5 * _P * (1.0 - 2.0 * _P)) / _PHI_1  # 0.962
MC_BAND = 4.5  # sigma
GRID_ACCURACY = 0.03  # sd; the grid against the brute-force twin (test_line_flux_grid_matches_brute_force_twin)


def _emcee_n_eff(bins, grid, *, n_walkers, n_steps, n_burn, seed):
    """N_eff of Z and A_V in each bin: an independent chain with the method's settings and start."""
    import emcee

    lk = LineFluxLikelihood.from_bins(bins, KEYS)
    rng = np.random.default_rng(seed)
    n_eff = np.empty((bins.n_bins, lk.n_dim))
    for b in range(bins.n_bins):
        f_range = (grid.f_hb[b] / 1e3, grid.f_hb[b] * 1e3)
        scale = (grid.z_err[b], 0.5 * (grid.a_v_hi[b] - grid.a_v_lo[b]))
        p0 = lk.start(b, grid.z[b], grid.a_v[b], grid.f_hb[b], scale, rng, n_walkers, f_range)
        chain, _ = lk.sample(b, p0, rng, n_steps, n_burn, f_range)
        tau = emcee.autocorr.integrated_time(chain.reshape(n_steps - n_burn, n_walkers, -1), quiet=True)
        n_eff[b] = chain.shape[0] / tau
    return n_eff


def _compare_mc(grid, mc, name, n_eff):
    """emcee's median and half-width agree with the grid's within MC_BAND Monte Carlo sigma."""
    lo, med, hi = (getattr(grid, f"{name}{s}") for s in ("_lo", "_median", "_hi"))
    mlo, mmed, mhi = (getattr(mc, f"{name}{s}") for s in ("_lo", "_median", "_hi"))
    sd = 0.5 * (hi - lo)
    tol_med = GRID_ACCURACY + MC_BAND * SE_MEDIAN / np.sqrt(n_eff)
    tol_width = GRID_ACCURACY + MC_BAND * SE_HALF_WIDTH / np.sqrt(n_eff)
    assert np.all(np.abs(mmed - med) < tol_med * sd), ((mmed - med) / sd, tol_med)
    assert np.all(np.abs(0.5 * (mhi - mlo) / sd - 1.0) < tol_width), (0.5 * (mhi - mlo) / sd, tol_width)
    return tol_med


def _check_line_flux_grid_matches_emcee(seed, rng_seed, expected, **settings):
    bins = _line_flux_bins(seed)
    grid = line_flux_method(bins, KEYS)
    mc = line_flux_method(bins, KEYS, sampler="emcee", rng=np.random.default_rng(seeded(rng_seed)), **settings)
    assert (mc.info["n_walkers"], mc.info["n_steps"], mc.info["n_burn"]) == expected
    n_eff = _emcee_n_eff(bins, grid, seed=seeded(rng_seed + 100), n_walkers=mc.info["n_walkers"],
                         n_steps=mc.info["n_steps"], n_burn=mc.info["n_burn"])
    assert np.all(n_eff > 200), n_eff  # enough draws for the error model to hold
    tol = _compare_mc(grid, mc, "z", n_eff[:, 0])
    _compare_mc(grid, mc, "a_v", n_eff[:, 1])
    # the comparison can fail: a grid posterior shifted by half its width is caught
    assert np.all(tol < 0.5)
    shifted = dataclasses.replace(grid, z_median=grid.z_median + 0.5 * grid.z_err)
    with pytest.raises(AssertionError):
        _compare_mc(shifted, mc, "z", n_eff[:, 0])


def test_line_flux_grid_matches_emcee():
    _check_line_flux_grid_matches_emcee(6, 2, (32, 1500, 500), n_walkers=32, n_steps=1500, n_burn=500)


@pytest.mark.slow
def test_line_flux_grid_matches_emcee_published_setting():
    _check_line_flux_grid_matches_emcee(7, 3, (100, 5000, 2000))  # the defaults


def test_line_flux_grid_matches_brute_force_twin():
    """Independent numpy evaluation of the published posterior on a dense 3-D grid."""
    bins = _line_flux_bins(8, snr=8.0).select([0])
    zg = np.arange(7.4, 8.3001, 0.004)
    ag = np.arange(0.0, 4.0001, 0.025)
    res = line_flux_method(bins, KEYS, z_grid=zg, av_grid=ag, a_v_range=(0.0, 4.0))
    # the documented model: OIII/Hb = R3; OII/Hb = R3 / O32 (scatter of both);
    # NeIII/Hb = OII/Hb x Ne3O2 (Ne3O2 scatter unknown = 0); Balmer lines Case B
    s_r3, s_o32 = R3.sigma_ratio, O32.sigma_ratio
    lr3, lo32, lne = (d.log_ratio(zg) for d in (R3, O32, NE3O2))
    logr = {"OIII_5008": (lr3, s_r3), "OII": (lr3 - lo32, math.hypot(s_r3, s_o32)),
            "NeIII_3870": (lr3 - lo32 + lne, math.hypot(s_r3, s_o32)),
            "Hb": (0 * zg, 0.0), "Ha": (0 * zg + math.log10(2.86), 0.0),
            "Hg": (0 * zg + math.log10(0.468), 0.0)}
    f, e = bins.flux[0], bins.err[0]
    obs = {"OIII_5008": (f[0], e[0]), "OII": (f[2] + f[3], math.hypot(e[2], e[3])),
           "NeIII_3870": (f[4], e[4]), "Hb": (f[1], e[1]), "Ha": (f[5], e[5]), "Hg": (f[6], e[6])}
    wave = {"OIII_5008": 5008.240, "OII": 0.5 * (3727.092 + 3729.875), "NeIII_3870": 3869.857,
            "Hb": 4862.683, "Ha": 6564.61, "Hg": 4341.684}
    k_hb = float(k_lambda(wave["Hb"], "calzetti2000")) / 4.05
    # ln f_Hb around the de-reddened observed Hb at each A_V (a shift: the flat measure is kept)
    lnf = (np.log(f[1]) + 0.4 * math.log(10) * k_hb * ag)[None, :, None] + \
        np.linspace(-1.0, 1.0, 201)[None, None, :]
    fh = np.exp(lnf)
    du = 2.0 / 200
    chi2 = 0.0
    for key, (lr, s) in logr.items():
        k = float(k_lambda(wave[key], "calzetti2000")) / 4.05
        a = (10**lr)[:, None, None] * 10 ** (-0.4 * ag[None, :, None] * k)
        t = a * math.log(10) * s
        y, sy = obs[key]
        chi2 = chi2 + (y - a * fh) ** 2 / (sy**2 + (fh * t) ** 2)
    post = np.exp(-0.5 * (chi2 - chi2.min()))  # flat in ln f_Hb (Jeffreys), flat Z, A_V
    assert post[:, :, [0, -1]].max() < 1e-8  # the ln f_Hb window holds the posterior
    marg = post.sum(axis=2) * du
    pz = np.trapezoid(marg, ag, axis=1)
    pa = np.trapezoid(marg, zg, axis=0)
    qz, qa = quantiles_on_grid(zg, pz), quantiles_on_grid(ag, pa)
    sz, sa = 0.5 * (qz[2] - qz[0]), 0.5 * (qa[2] - qa[0])
    np.testing.assert_allclose([res.z_lo[0], res.z_median[0], res.z_hi[0]], qz, atol=0.03 * sz)
    np.testing.assert_allclose([res.a_v_lo[0], res.a_v_median[0], res.a_v_hi[0]], qa, atol=0.03 * sa)


# ---------------------------------------------------------------------------
# S/N gate, invalid bins, records
# ---------------------------------------------------------------------------
def test_snr_gate_removes_diagnostics_with_reasons():
    flux = exact_fluxes([7.7, 7.7, 7.7, 7.7])
    err = flux / 50.0
    err[0, 1] = flux[0, 1] / 2.0  # Hb at S/N 2: R3 out
    err[1, 4] = flux[1, 4] / 2.0  # [NeIII] at S/N 2: Ne3O2 out
    err[2, 2:4] = flux[2, 2:4] / 1.5  # [OII] blend at S/N ~2.1: O32 and Ne3O2 out
    err[3, :] = flux[3, :] / 1.0  # nothing passes
    rs = log_ratios(BinFluxes.from_errors(NAMES, flux, err), KEYS)
    np.testing.assert_array_equal(rs.usable, [[False, True, True], [True, True, False],
                                              [True, False, False], [False, False, False]])
    assert rs.reason("S25_R3")[0] == "line Hb S/N = 2.00 < 2.5"
    assert rs.reason("S25_Ne3O2")[1] == "line NeIII_3870 S/N = 2.00 < 2.5"
    assert "line OII_3727+OII_3730 S/N" in rs.reason("S25_O32")[2]
    assert rs.reason("S25_O32")[0] == ""
    res = method_one(rs)
    assert res.diagnostics_used[:3] == (("S25_O32", "S25_Ne3O2"), ("S25_R3", "S25_O32"),
                                        ("S25_R3",))
    assert res.valid.tolist() == [True, True, True, False]
    assert res.reason[3].startswith(REASON_NO_DIAGNOSTIC)
    assert np.isnan(res.z[3])
    recs = res.to_records()
    json.dumps(recs, allow_nan=False)
    for rec in recs[:3]:
        assert all(rec[k] is not None for k in ("z", "z_median", "z_lo", "z_hi", "chi2_min"))
    assert recs[3]["z"] is None and recs[3]["valid"] is False
    m2 = method_two(rs)
    assert not m2["S25_R3"].valid[0] and m2["S25_R3"].reason[0] == "line Hb S/N = 2.00 < 2.5"


def test_ratio_gate_and_missing_lines():
    flux = exact_fluxes([7.7, 7.7])
    err = flux / 50.0
    err[1, 1] = flux[1, 1] / 3.0  # Hb S/N 3: passes the line gate
    bins = BinFluxes.from_errors(NAMES, flux, err)
    rs = log_ratios(bins, KEYS + ["S25_N2"], gate="ratio", snr_min=3.2)
    assert rs.usable[0, :3].all() and not rs.usable[1, 0]
    assert rs.reason("S25_R3")[1].startswith("ratio S/N = ")
    assert rs.reason("S25_N2") == ("lines Ha, NII_6585 not measured",) * 2
    assert np.all(rs.err[:, 0] > 0)
    lines_gate = log_ratios(bins, ["S25_R3"], snr_min=3.2)
    assert not lines_gate.usable[1, 0]  # Hb at S/N 3 fails the line gate too
    res = method_one(rs)
    assert all("S25_N2" not in u for u in res.diagnostics_used)


def test_no_nan_reported_as_valid():
    rng = np.random.default_rng(9)
    flux = exact_fluxes(rng.uniform(7.5, 8.2, 40))
    err = flux * rng.uniform(0.05, 1.0, flux.shape)
    flux = flux + err * rng.standard_normal(flux.shape)  # some negative fluxes
    flux[0, 1] = np.nan
    bins = BinFluxes.from_errors(NAMES, flux, err)
    rs = log_ratios(bins, KEYS)
    results = [method_one(rs), *method_two(rs).values(), line_flux_method(bins, KEYS, balmer=("Hb",),
                                                                          fit_dust=False)]
    for res in results:
        assert isinstance(res, MetallicityResult)
        for name in ("z", "z_median", "z_lo", "z_hi"):
            assert np.all(np.isfinite(getattr(res, name)[res.valid])), (res.method, name)
            assert np.all(np.isnan(getattr(res, name)[~res.valid])), (res.method, name)
        assert all(bool(r) != bool(v) for r, v in zip(res.reason, res.valid))
        json.dumps(res.to_records(), allow_nan=False)


# ---------------------------------------------------------------------------
# dust correction, then Method I
# ---------------------------------------------------------------------------
def test_dust_corrected_method_one_matches_line_flux_method():
    """Correct by the Balmer decrement, then Method I, vs the joint line-flux fit."""
    rng = np.random.default_rng(11)
    z = rng.uniform(7.6, 8.1, 6)
    a_v = rng.uniform(0.3, 1.5, 6)
    obs = redden(exact_fluxes(z, balmer=True), wavelengths(NAMES_BALMER)[None, :], a_v[:, None])
    bins = BinFluxes.from_errors(NAMES_BALMER, obs, obs / 200.0)
    cor, _, _ = balmer_decrement_correction(bins)
    m1 = method_one(log_ratios(cor, KEYS), scatter=False)
    lf = line_flux_method(bins, KEYS, scatter=False)
    np.testing.assert_allclose(m1.z, z, atol=1e-3)
    np.testing.assert_allclose(lf.z_median, z, atol=3 * lf.z_err.max())


def test_bins_pinned_at_the_prior_edge_are_flagged_in_the_record():
    from types import SimpleNamespace

    from mockzgrad.recovery.backend import apply_bin_cuts

    # Z = 7.0 lies below every range (R3, O32 from 7.3; Ne3O2 from 7.4): the fit sits on the edge
    z = np.array([8.0, 7.0])
    o2 = 1.0 / 10 ** O32.log_ratio(z, policy="ignore")
    ne = o2 * 10 ** NE3O2.log_ratio(z, policy="ignore")
    fl = np.stack([np.ones(2), np.ones(2), 0.4 * o2, 0.6 * o2, ne], axis=1)  # NAMES; Hb unused
    rs = log_ratios(BinFluxes.from_errors(NAMES, fl, 0.01 * fl), ["S25_O32", "S25_Ne3O2"], snr_min=0.0)
    res = method_one(rs, scatter=True)
    recipe = SimpleNamespace(metallicity=SimpleNamespace(max_z_err=None),
                             gradient=SimpleNamespace(r_min_kpc=0.0))
    mets = apply_bin_cuts(res, np.array([1.0, 2.0]), recipe, "I")
    assert res.z[1] == pytest.approx(7.4, abs=2e-3)
    assert mets.record(1).get("at_range_edge") is True
    assert "at_range_edge" not in mets.record(0)
