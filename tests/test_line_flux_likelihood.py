"""Tests of the line-flux likelihood (mockzgrad.recovery.metallicity.LineFluxLikelihood), part by part.

Independent references: the calibration chain written out by hand
(OIII/Hb = R3, OII/Hb = R3 / O32, NeIII/Hb = OII/Hb x Ne3O2, Case-B Balmer
ratios), the attenuation of mockzgrad.physics.dust, the published chi^2
evaluated directly, weighted least squares in closed form, and brute-force
numerical integrals over ln f_Hb and ln([NII]/Ha).
"""

import math

import numpy as np
import pytest
from _metallicity_data import KEYS, NAMES_BALMER, NE3O2, O32, R3, exact_fluxes, wavelengths

from mockzgrad.errors import ConfigError, RecoveryError
from mockzgrad.physics.calibrations import get_diagnostic
from mockzgrad.physics.dust import attenuation, redden
from mockzgrad.physics.lines import LINES, NII_DOUBLET_RATIO
from mockzgrad.recovery.fluxes import BinFluxes
from mockzgrad.recovery.metallicity import NII_HA_RANGE, LineFluxLikelihood, line_flux_method
from mockzgrad.recovery.metallicity.predicted_lines import build_units

LN10 = math.log(10.0)
OII = "OII_3727+OII_3730"


def chain_model(z):
    """log10(unit / intrinsic Hb) and its scatter (dex) by hand, for the S25 R3, O32, Ne3O2 set."""
    lr3, lo32, lne = (d.log_ratio(z) for d in (R3, O32, NE3O2))
    s_r3, s_o32 = R3.sigma_ratio, O32.sigma_ratio  # Ne3O2 scatter unpublished: 0
    return {"OIII_5008": (lr3, s_r3), OII: (lr3 - lo32, math.hypot(s_r3, s_o32)),
            "NeIII_3870": (lr3 - lo32 + lne, math.hypot(s_r3, s_o32)),
            "Hb": (0 * lr3, 0.0), "Ha": (0 * lr3 + math.log10(2.86), 0.0),
            "Hg": (0 * lr3 + math.log10(0.468), 0.0)}


def unit_wavelength(label):
    return float(np.mean([LINES[x].wavelength for x in label.split("+")]))


def observed(bins, label):
    """Flux and variance of a unit summed from the bin's lines (diagonal covariance)."""
    cols = [bins.names.index(x) for x in label.split("+")]
    return bins.flux[:, cols].sum(axis=1), np.diagonal(bins.cov, axis1=1, axis2=2)[:, cols].sum(axis=1)


def direct_loglike(bins, z, a_v, f, *, scatter=True, gaussian=False, law="calzetti2000"):
    """The published chi^2 and log-likelihood of bin 0, evaluated directly; broadcasts z, a_v, f."""
    model = chain_model(np.asarray(z, dtype=float))
    chi2 = 0.0
    logdet = 0.0
    for label, (lr, s) in model.items():
        y, v = observed(bins, label)
        a = 10**lr * 10 ** (-0.4 * attenuation(unit_wavelength(label), a_v, law))
        t = a * LN10 * (s if scatter else 0.0)
        var = v[0] + (f * t) ** 2
        chi2 = chi2 + (y[0] - a * f) ** 2 / var
        logdet = logdet + np.log(var)
    return chi2, -0.5 * chi2 - (0.5 * logdet if gaussian else 0.0)


def truth_bin(z=7.9, a_v=0.8, rel_err=0.05):
    """Noise-free bin; the [OII] doublet reddened at its mean wavelength, as the model does."""
    wave = wavelengths(NAMES_BALMER)
    wave[2:4] = unit_wavelength(OII)
    flux = redden(exact_fluxes([z], balmer=True), wave[None, :], a_v)
    return BinFluxes.from_errors(NAMES_BALMER, flux, rel_err * flux), float(exact_fluxes([z])[0, 1])


def noisy_bin(seed, z=7.9, a_v=0.8, snr=10.0):
    rng = np.random.default_rng(seed)
    flux = redden(exact_fluxes([z], balmer=True), wavelengths(NAMES_BALMER)[None, :], a_v)
    err = flux / snr
    return BinFluxes.from_errors(NAMES_BALMER, flux + err * rng.standard_normal(flux.shape), err)


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------
def test_units_follow_the_calibration_chain():
    bins, _ = truth_bin()
    lk = LineFluxLikelihood.from_bins(bins, KEYS)
    assert set(lk.labels) == {"OIII_5008", OII, "NeIII_3870", "Hb", "Ha", "Hg"}
    assert list(lk.labels) == sorted(lk.labels, key=unit_wavelength)  # bluest first
    z = np.linspace(7.45, 8.25, 12)[None, :]  # inside every validity range
    logp, nii = lk.model_ratios(z, np.array([0]))
    assert nii is None
    for i, label in enumerate(lk.labels):
        lr, s = chain_model(z)[label]
        np.testing.assert_allclose(logp[..., i], lr, rtol=0, atol=1e-12, err_msg=label)
        assert lk.unit_var[i] == pytest.approx(s**2, rel=1e-12), label
    assert lk.scatter_unknown == ("S25_Ne3O2",)


def test_composite_and_redundant_diagnostics_are_reported_not_used():
    units, remarks = build_units([get_diagnostic(k) for k in ("S25_R3", "S25_Rhat", "S25_O2", "S25_O32")],
                                 NAMES_BALMER, ("Hb",), None)
    assert {u.label for u in units} == {"OIII_5008", OII, "Hb"}
    text = " ".join(remarks)
    assert "S25_Rhat: not a ratio of two lines" in text
    assert "S25_O32: its lines are already predicted" in text  # O2 predicted [OII] first


@pytest.mark.parametrize("law, r_v", [("calzetti2000", None), ("cardelli1989", None), ("cardelli1989", 4.0),
                                      ("calzetti2000", 3.5)])
def test_a_v_dependence_follows_the_attenuation_law(law, r_v):
    bins, _ = truth_bin()
    lk = LineFluxLikelihood.from_bins(bins, KEYS, dust_law=law, r_v=r_v)
    z = np.array([[7.8, 8.1]])
    av = np.array([[0.0, 0.7, 2.5]])
    a_list, t_list, finite = lk.predict(z, av, np.array([0]))
    assert finite.all()
    for label, a, t in zip(lk.labels, a_list, t_list):
        expected = 10 ** (-0.4 * attenuation(unit_wavelength(label), av[0], law, r_v))
        np.testing.assert_allclose(a[0] / a[0, :, :1], np.broadcast_to(expected, (2, 3)), rtol=1e-12)
        if t is not None:  # the scatter term is a fixed fraction of the prediction
            np.testing.assert_allclose(t / a, LN10 * math.sqrt(lk.unit_var[lk.labels.index(label)]),
                                       rtol=1e-12)


# ---------------------------------------------------------------------------
# chi^2 and the conditional f_Hb
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("scatter", [False, True])
def test_chi2_vanishes_at_the_truth_and_rises_away(scatter):
    z0, av0 = 7.9, 0.8
    bins, f0 = truth_bin(z0, av0)
    lk = LineFluxLikelihood.from_bins(bins, KEYS, scatter=scatter)
    assert lk.chi2(z0, av0, f0) < 1e-20
    steps = np.linspace(-1.0, 1.0, 21)
    for axis, width in ((0, 0.05), (1, 0.2), (2, 0.05)):
        p = np.array([z0, av0, f0])[:, None] * np.ones(steps.size)
        p[axis] = p[axis] + width * steps * (f0 if axis == 2 else 1.0)
        c = lk.chi2(*p)
        assert np.argmin(c) == 10
        assert np.all(np.diff(c[:11]) < 0) and np.all(np.diff(c[10:]) > 0), (axis, c)
        assert c[0] > (1.0 if not scatter else 0.01) and c[-1] > (1.0 if not scatter else 0.01)
    # away from the truth it is the published chi^2
    zz, aa, ff = np.meshgrid([7.7, 7.95], [0.3, 1.1], [0.9 * f0, 1.2 * f0], indexing="ij")
    np.testing.assert_allclose(lk.chi2(zz, aa, ff), direct_loglike(bins, zz, aa, ff, scatter=scatter)[0],
                               rtol=1e-10)


@pytest.mark.parametrize("gaussian", [False, True])
def test_loglike_is_the_published_likelihood(gaussian):
    bins = noisy_bin(1)
    lk = LineFluxLikelihood.from_bins(bins, KEYS, likelihood="gaussian" if gaussian else "chi2")
    zz, aa = np.array([[7.7, 7.9, 8.2]]), np.array([[0.2, 0.9]])
    rows = np.array([0])
    a_list, t_list, _ = lk.predict(zz, aa, rows)
    dat = lk.data(rows)
    f = np.full((1, 3, 2), 0.8 * bins.flux[0, 1])
    chi2, ll = lk.loglike(f, a_list, t_list, dat, lk.quad_form(a_list, dat))
    ref_chi2, ref_ll = direct_loglike(bins, zz[0][:, None], aa[0][None, :], f[0], gaussian=gaussian)
    np.testing.assert_allclose(chi2[0], ref_chi2, rtol=1e-10)
    # the Gaussian normalisation adds -1/2 sum ln var, the data part of which is a constant
    const = 0.0 if not gaussian else 0.5 * np.sum(np.log(
        [observed(bins, u)[1][0] for u in lk.labels if lk.unit_var[lk.labels.index(u)] == 0]))
    np.testing.assert_allclose(ll[0] - const, ref_ll, rtol=1e-10)


def test_best_f_hb_is_weighted_least_squares_without_scatter():
    bins = noisy_bin(2)
    lk = LineFluxLikelihood.from_bins(bins, KEYS, scatter=False)
    zz, aa = np.array([[7.6, 8.0]]), np.array([[0.0, 1.0, 2.0]])
    rows = np.array([0])
    a_list, t_list, _ = lk.predict(zz, aa, rows)
    dat = lk.data(rows)
    f, sf = lk.best_f_hb(a_list, t_list, dat, lk.quad_form(a_list, dat), None)
    num = den = 0.0
    for label, (lr, _) in chain_model(zz[0][:, None]).items():
        y, v = observed(bins, label)
        a = 10**lr * 10 ** (-0.4 * attenuation(unit_wavelength(label), aa[0][None, :]))
        num, den = num + a * y[0] / v[0], den + a * a / v[0]
    np.testing.assert_allclose(f[0], num / den, rtol=1e-12)
    np.testing.assert_allclose(sf[0], 1 / np.sqrt(den), rtol=1e-12)
    # and it minimises chi^2 over f_Hb
    c0 = lk.chi2(7.6, 1.0, f[0, 0, 1])
    assert c0 < lk.chi2(7.6, 1.0, f[0, 0, 1] * (1 + 1e-3)) and c0 < lk.chi2(7.6, 1.0, f[0, 0, 1] * (1 - 1e-3))


# ---------------------------------------------------------------------------
# marginalisation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("scatter, likelihood", [(False, "chi2"), (True, "chi2"), (True, "gaussian")])
def test_marginal_over_f_hb_equals_brute_force_integral(scatter, likelihood):
    """log of the integral of the likelihood over ln f_Hb (Jeffreys prior), node by node."""
    bins = noisy_bin(3, snr=10.0)
    lk = LineFluxLikelihood.from_bins(bins, KEYS, scatter=scatter, likelihood=likelihood)
    zz = np.linspace(7.75, 8.05, 7)[None, :]
    aa = np.linspace(0.3, 1.3, 5)[None, :]
    f_ref = bins.flux[0, 1] * 10 ** (0.4 * float(attenuation(LINES["Hb"].wavelength, 0.8)))
    flo, fhi = np.array([f_ref / 1e3]), np.array([f_ref * 1e3])
    lp, _, _ = lk.marginal(zz, aa, np.array([0]), flo, fhi)
    lnf = np.log(f_ref) + np.linspace(-3.0, 3.0, 12001)
    _, ll = direct_loglike(bins, zz[0][:, None, None], aa[0][None, :, None], np.exp(lnf)[None, None, :],
                           scatter=scatter, gaussian=likelihood == "gaussian")
    top = ll.max(axis=2, keepdims=True)
    assert np.all(ll[:, :, [0, -1]] < top[:, :, 0, None] - 50)  # the window holds the integrand
    brute = np.log(np.trapezoid(np.exp(ll - top), lnf, axis=2)) + top[:, :, 0]
    if likelihood == "gaussian":  # direct_loglike has the full -1/2 sum ln var; lk drops the data constant
        brute = brute + 0.5 * np.sum(np.log([observed(bins, u)[1][0] for u in lk.labels
                                             if lk.unit_var[lk.labels.index(u)] == 0]))
    near = lp[0] > lp.max() - 20
    assert near.sum() >= 10
    np.testing.assert_allclose(lp[0][near], brute[near], rtol=0, atol=1e-6)


def test_nuisance_nii_marginal_equals_brute_force_integral():
    """[NII]/Ha integrated over its log-uniform prior (normalised) by the 12-node rule."""
    z, a_v = 7.9, 0.6
    f = exact_fluxes([z], balmer=True)
    f[:, 5] *= 1 + 0.05 * (1 + 1 / NII_DOUBLET_RATIO)
    obs = redden(f, wavelengths(NAMES_BALMER)[None, :], a_v)
    bins = BinFluxes.from_errors(NAMES_BALMER, obs, obs / 8.0)
    lk = LineFluxLikelihood.from_bins(bins, KEYS, nii_ha="nuisance", scatter=False)
    assert lk.nuisance and "Ha+[NII]" in lk.labels
    rows = np.array([0])
    zz, aa = np.array([[7.8, 7.9, 8.0]]), np.array([[0.4, 0.6, 0.8]])
    a_list, t_list, _ = lk.predict(zz, aa, rows)
    dat = lk.data(rows)
    fhb = np.full((1, 3, 3), float(exact_fluxes([z])[0, 1]))
    got = lk.loglike_marg_nii(fhb, a_list, t_list, dat, lk.quad_form(a_list, dat))
    lr = np.linspace(math.log(NII_HA_RANGE[0]), math.log(NII_HA_RANGE[1]), 20001)
    chi2 = lk.chi2(np.broadcast_to(zz[0][:, None, None], (3, 3, lr.size)),
                   np.broadcast_to(aa[0][None, :, None], (3, 3, lr.size)), fhb[0, 0, 0],
                   log_nii_ha=np.broadcast_to(lr, (3, 3, lr.size)))
    low = chi2.min(axis=2, keepdims=True)
    brute = np.log(np.trapezoid(np.exp(-0.5 * (chi2 - low)), lr, axis=2) / (lr[-1] - lr[0])) - 0.5 * low[..., 0]
    # 12 nodes over a factor 100 in [NII]/Ha: a coarse rule, accurate where the blend is weakly
    # measured (here S/N 8: ~1e-3; it degrades at high S/N, ~0.8 at S/N 50)
    np.testing.assert_allclose(got[0], brute, rtol=0, atol=5e-3)


# ---------------------------------------------------------------------------
# priors and parameter vectors
# ---------------------------------------------------------------------------
def test_evaluate_is_chi2_inside_the_prior_and_minus_inf_outside():
    bins = noisy_bin(4)
    lk = LineFluxLikelihood.from_bins(bins, KEYS, a_v_range=(0.0, 3.0))
    f0 = bins.flux[0, 1]
    f_range = (f0 / 100, f0 * 100)
    theta = np.array([[7.9, 0.8, math.log(f0)], [8.1, 0.2, math.log(2 * f0)],
                      [9.0, 0.8, math.log(f0)],  # Z outside S25's 7.3-8.6 (Ne3O2 7.4-8.6)
                      [7.9, 3.5, math.log(f0)],  # A_V outside the prior
                      [7.9, 0.8, math.log(f0 * 1e3)]])  # f_Hb outside its range
    chi2, lp = lk.evaluate(theta, 0, f_range)
    np.testing.assert_allclose(chi2[:2], lk.chi2(theta[:2, 0], theta[:2, 1], np.exp(theta[:2, 2])), rtol=1e-12)
    np.testing.assert_allclose(lp[:2], -0.5 * chi2[:2], rtol=1e-12)
    assert np.all(np.isinf(chi2[2:])) and np.all(lp[2:] == -np.inf)
    assert lk.z_prior == (7.4, 8.6) and not lk.z_union  # R3, O32 7.3-8.6; Ne3O2 7.4-8.6


def test_disjoint_validity_ranges_give_a_union_prior():
    names = ("OIII_5008", "Hb", "OII_3727", "OII_3730", "NII_6585")
    flux = np.array([[1.0, 0.2, 0.12, 0.18, 0.05]])
    bins = BinFluxes.from_errors(names, flux, 0.05 * flux)
    diags = ["S24_R3", "S24_O32", "KD02_N2O2"]  # 7.4-8.3, 7.4-8.3 and 8.6-9.4
    lk = LineFluxLikelihood.from_bins(bins, diags)
    assert lk.z_union and lk.z_prior == (7.4, 9.4)
    assert lk.in_z_prior(np.array([7.5, 8.2, 8.45, 8.9])).tolist() == [True, True, False, True]
    res = line_flux_method(bins, diags)
    assert res.notes[0] == "validity ranges do not overlap; Z prior = their union"


@pytest.mark.parametrize("kwargs, match", [
    ({"dust_law": "smc"}, "dust_law = 'smc'"),
    ({"likelihood": "poisson"}, "likelihood = 'poisson'"),
    ({"balmer": ("Hb", "OIII_5008")}, "balmer"),
    ({"a_v_range": (2.0, 1.0)}, "a_v_range"),
    ({"nii_ha": "free"}, "nii_ha = 'free'"),
    ({"nii_ha": 12.0}, "nii_ha = 12.0"),
])
def test_from_bins_checks_its_arguments(kwargs, match):
    bins, _ = truth_bin()
    with pytest.raises(ConfigError, match=match):
        LineFluxLikelihood.from_bins(bins, KEYS, **kwargs)


def test_no_metallicity_line_is_an_error():
    bins = BinFluxes.from_errors(("Hb", "Ha"), [[1.0, 3.0]], [[0.1, 0.1]])
    with pytest.raises(RecoveryError, match="no measured line is predicted"):
        LineFluxLikelihood.from_bins(bins, KEYS)
    with pytest.raises(ConfigError, match="BinFluxes"):
        LineFluxLikelihood.from_bins({"Hb": 1.0}, KEYS)


def test_grid_fits_a_blend_with_nii_from_n2_with_scatter():
    r3, n2, r2 = (get_diagnostic(k) for k in ("C20_R3", "C20_N2", "C20_R2"))
    z = np.array([8.0, 8.3])
    hb = 1.0 / 10 ** r3.log_ratio(z)
    blend = 2.86 * hb * (1 + 10 ** n2.log_ratio(z) * (1 + 1 / NII_DOUBLET_RATIO))
    oii = hb * 10 ** r2.log_ratio(z)
    flux = np.stack([np.ones(2), hb, blend, 0.4 * oii, 0.6 * oii], 1)
    bins = BinFluxes.from_errors(("OIII_5008", "Hb", "Ha", "OII_3727", "OII_3730"), flux, 0.01 * flux)
    res = line_flux_method(bins, ["C20_R3", "C20_N2", "C20_R2"], nii_ha=0.05, balmer=("Hb", "Ha"),
                           fit_dust=False)
    assert np.all(res.chi2_min < 1e-3)
    assert np.all(np.abs(res.z - z) <= res.info["z_step"])

