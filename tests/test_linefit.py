"""Tests of the vectorised emission-line fitter (mockzgrad.recovery.linefit).

Synthetic spectra are built here, independently of the code under test: each
line is a Gaussian in wavelength centred at ``lambda_rest (1 + z)(1 + v/c)``
with ``sigma_lambda = centre * sigma / c``, integrated over each channel with
``scipy.special.erf``, on a per-window linear baseline.
"""

import json
import math
import time

import numpy as np
import pytest
from _seed import seeded
from scipy.special import erf

from mockzgrad.errors import ConfigError
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.linefit import (
    LineFitResult,
    LineModel,
    default_line_model,
    fit_lines,
    fit_lines_curve_fit,
)

C = 299792.458  # km/s


# --------------------------------------------------------------------------
# Independent forward model
# --------------------------------------------------------------------------


def channel_gaussian(lo, hi, centre, sigma_lambda):
    """Fraction of a unit Gaussian falling in each channel [lo, hi)."""
    s = math.sqrt(2.0) * sigma_lambda
    return 0.5 * (erf((hi - centre) / s) - erf((lo - centre) / s))


def make_spectrum(lo, hi, redshift, fluxes, v, sigma, continuum):
    """Noise-free channel-integrated spectrum; ``continuum(mid)`` gives the baseline."""
    out = continuum(0.5 * (lo + hi)).astype(float)
    for name, f in fluxes.items():
        centre = LINES[name].wavelength * (1.0 + redshift) * (1.0 + v / C)
        out = out + f * channel_gaussian(lo, hi, centre, centre * sigma / C)
    return out


def gapped_grid(redshift, chan_kms_at, ref_wave, centres_rest, half):
    """Linear-lambda grid keeping +-half channels around each rest centre (gaps between)."""
    dlam = ref_wave * (1.0 + redshift) * chan_kms_at / C
    origin = 20000.0 + 0.37 * dlam
    keep = set()
    for lam in centres_rest:
        k = int(np.floor((lam * (1.0 + redshift) - origin) / dlam))
        keep.update(range(k - half, k + half + 1))
    k = np.array(sorted(keep))
    lo = origin + k * dlam
    return lo, lo + dlam


# z = 5, JWST/NIRSpec-like: ~106 km/s channels at [OIII] 5008
Z5 = 5.0
Z5_LINES = ["OII_3727", "OII_3730", "NeIII_3870", "Hb", "OIII_4960", "OIII_5008"]
Z5_FLUX = {"OII_3727": 3.0, "OII_3730": 4.0, "NeIII_3870": 1.5, "Hb": 4.0, "OIII_5008": 12.0}
Z5_FLUX["OIII_4960"] = Z5_FLUX["OIII_5008"] / 2.98
Z5_V, Z5_SIGMA = 40.0, 160.0


def z5_setup():
    rest = [3728.5, LINES["NeIII_3870"].wavelength, LINES["Hb"].wavelength, 4984.0]
    lo, hi = gapped_grid(Z5, 106.0, LINES["OIII_5008"].wavelength, rest, half=22)

    def continuum(x):
        return 0.3 + 2e-4 * (x - 25000.0)

    spec = make_spectrum(lo, hi, Z5, Z5_FLUX, Z5_V, Z5_SIGMA, continuum)
    return lo, hi, spec, default_line_model(Z5_LINES), Z5_FLUX


# z = 1.5: Halpha + [NII] blend on a contiguous grid (~110 km/s channels)
Z15 = 1.5
Z15_LINES = ["NII_6550", "Ha", "NII_6585"]
Z15_FLUX = {"Ha": 10.0, "NII_6585": 3.0}
Z15_FLUX["NII_6550"] = Z15_FLUX["NII_6585"] / 3.071
Z15_V, Z15_SIGMA = -25.0, 230.0


def z15_setup():
    centre = LINES["Ha"].wavelength * (1.0 + Z15)
    dlam = 6.0
    lo = centre - 60.3 * dlam + dlam * np.arange(120)
    hi = lo + dlam

    def continuum(x):
        return 1.0 - 1e-3 * (x - centre)

    spec = make_spectrum(lo, hi, Z15, Z15_FLUX, Z15_V, Z15_SIGMA, continuum)
    return lo, hi, spec, default_line_model(Z15_LINES), Z15_FLUX


CASES = {"z5_gapped": z5_setup, "z1.5_blend": z15_setup}
TRUE_KIN = {"z5_gapped": (Z5, Z5_V, Z5_SIGMA), "z1.5_blend": (Z15, Z15_V, Z15_SIGMA)}


def true_flux_array(model, fluxes):
    return np.array([fluxes[n] for n in model.lines])


# --------------------------------------------------------------------------
# Noise-free recovery
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_noise_free_recovery(case):
    lo, hi, spec, model, fluxes = CASES[case]()
    z, v, sigma = TRUE_KIN[case]
    err = np.full_like(spec, 0.05)
    res = fit_lines(spec[None, :], err[None, :], lo, hi, z, model)
    assert isinstance(res, LineFitResult)
    assert res.success[0]
    np.testing.assert_allclose(res.flux[0], true_flux_array(model, fluxes), rtol=1e-6)
    assert abs(res.velocity[0] - v) < 1e-3
    assert abs(res.sigma[0] - sigma) < 1e-3
    assert res.chi2[0] < 1e-8
    assert res.line_names == model.lines


def test_contiguous_grid_half_window_and_whole_segment_agree():
    lo, hi, spec, model, fluxes = z15_setup()
    err = np.full_like(spec, 0.05)
    a = fit_lines(spec, err, lo, hi, Z15, model, half_window=20)
    b = fit_lines(spec, err, lo, hi, Z15, model, half_window=None)
    assert len(a.windows) == 1 and a.windows[0][1] - a.windows[0][0] < b.windows[0][1] - b.windows[0][0]
    for res in (a, b):
        np.testing.assert_allclose(res.flux[0], true_flux_array(model, fluxes), rtol=1e-6)


def test_tie_across_windows():
    """[OIII] 4960 and 5008 in separate windows, tied: still one free flux."""
    lo, hi, spec, model, fluxes = z5_setup()
    err = np.full_like(spec, 0.05)
    res = fit_lines(spec, err, lo, hi, Z5, model, half_window=6)
    assert len(res.windows) == 5
    np.testing.assert_allclose(res.flux[0], true_flux_array(model, fluxes), rtol=1e-6)


def test_oii_tied_sum():
    lo, hi, _, _, _ = z5_setup()
    fluxes = dict(Z5_FLUX, OII_3730=1.35 * Z5_FLUX["OII_3727"])
    spec = make_spectrum(lo, hi, Z5, fluxes, Z5_V, Z5_SIGMA, lambda x: 0.0 * x)
    model = default_line_model(["OII", "NeIII_3870", "Hb", "OIII"], oii_ratio=1.35)
    assert "OII_3730" in model.ties
    res = fit_lines(spec, np.full_like(spec, 0.05), lo, hi, Z5, model)
    total, err = res.line_flux("OII")
    assert total[0] == pytest.approx(fluxes["OII_3727"] + fluxes["OII_3730"], rel=1e-6)
    # the tied doublet has one free flux: the sum's error is (1 + ratio) x that of 3727
    j = res.line_names.index("OII_3727")
    assert err[0] == pytest.approx(2.35 * res.flux_err[0, j], rel=1e-10)


def test_velocity_bound_is_respected():
    lo, hi, _, model, _ = z5_setup()
    chan = 106.0 * LINES["OIII_5008"].wavelength / LINES["OIII_5008"].wavelength
    spec = make_spectrum(lo, hi, Z5, Z5_FLUX, 4.0 * chan, Z5_SIGMA, lambda x: 0.0 * x)
    res = fit_lines(spec, np.full_like(spec, 0.05), lo, hi, Z5, model)
    assert res.velocity[0] == pytest.approx(res.velocity_bounds[1])
    assert res.velocity_bounds[1] == pytest.approx(2.0 * res.channel_kms)


# --------------------------------------------------------------------------
# Statistics with noise
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_pulls_have_unit_width(case):
    lo, hi, spec, model, fluxes = CASES[case]()
    z, v, sigma = TRUE_KIN[case]
    rng = np.random.default_rng(seeded(20260501))
    n = 400
    noise = 0.08
    data = spec[None, :] + noise * rng.standard_normal((n, spec.size))
    err = np.full(data.shape, noise)
    res = fit_lines(data, err, lo, hi, z, model)
    assert res.success.all()
    pulls = (res.flux - true_flux_array(model, fluxes)) / res.flux_err
    # pulls of n fits are N(0, 1) to first order: the mean has standard error 1 / sqrt(n), the
    # standard deviation 1 / sqrt(2 n); each within 4.5 of them (0.225 and 0.159 for n = 400)
    tol_mean, tol_std = 4.5 / math.sqrt(n), 4.5 / math.sqrt(2 * n)
    for j, name in enumerate(model.lines):
        assert abs(pulls[:, j].mean()) < tol_mean, name
        assert abs(pulls[:, j].std() - 1.0) < tol_std, name
    for value, error, truth in ((res.velocity, res.velocity_err, v), (res.sigma, res.sigma_err, sigma)):
        p = (value - truth) / error
        assert abs(p.mean()) < tol_mean
        assert abs(p.std() - 1.0) < tol_std
    # reduced chi^2 near one: the model is right and the errors are right
    assert np.mean(res.chi2 / res.dof) == pytest.approx(1.0, abs=0.03)


def test_ratio_error_matches_scatter():
    """log-ratio errors from the flux covariance match the scatter over realisations."""
    lo, hi, spec, model, fluxes = z5_setup()
    rng = np.random.default_rng(seeded(7))
    n = 400
    data = spec[None, :] + 0.08 * rng.standard_normal((n, spec.size))
    res = fit_lines(data, np.full(data.shape, 0.08), lo, hi, Z5, model)
    for num, den in ((["OIII_5008"], ["Hb"]), ("OII", ["Hb"]), (["OII_3730"], ["OII_3727"]), ("OIII", "OII")):
        logr, err = res.ratio(num, den)
        # the standard deviation of n Gaussian draws has relative standard error 1 / sqrt(2 n): 4.5 of them
        assert np.std(logr) == pytest.approx(np.median(err), rel=4.5 / math.sqrt(2 * n)), (num, den)
    # fixed doublet ratio: exact, and no error at all
    logr, err = res.ratio(["OIII_5008"], ["OIII_4960"])
    np.testing.assert_allclose(logr, math.log10(2.98), rtol=1e-12)
    np.testing.assert_allclose(err, 0.0, atol=1e-6)  # sqrt of round-off


def test_agrees_with_curve_fit():
    lo, hi, spec, model, _ = z5_setup()
    rng = np.random.default_rng(11)
    data = spec[None, :] + 0.08 * rng.standard_normal((3, spec.size))
    err = np.full(data.shape, 0.08)
    a = fit_lines(data, err, lo, hi, Z5, model)
    b = fit_lines_curve_fit(data, err, lo, hi, Z5, model)
    assert a.success.all() and b.success.all()
    assert np.all(np.abs(a.flux - b.flux) < 1e-3 * a.flux_err)
    np.testing.assert_allclose(a.flux_err, b.flux_err, rtol=1e-3)
    assert np.all(np.abs(a.velocity - b.velocity) < 1e-3 * a.velocity_err)
    assert np.all(np.abs(a.sigma - b.sigma) < 1e-3 * a.sigma_err)
    np.testing.assert_allclose(a.chi2, b.chi2, rtol=1e-6)


@pytest.mark.slow
def test_timing_vectorised_vs_curve_fit(record_property):
    lo, hi, spec, model, _ = z5_setup()
    rng = np.random.default_rng(5)
    n = 1000
    data = spec[None, :] + 0.08 * rng.standard_normal((n, spec.size))
    err = np.full(data.shape, 0.08)
    t0 = time.perf_counter()
    a = fit_lines(data, err, lo, hi, Z5, model)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = fit_lines_curve_fit(data, err, lo, hi, Z5, model)
    t_cf = time.perf_counter() - t0
    record_property("fit_lines_1000_s", t_vec)
    record_property("curve_fit_1000_s", t_cf)
    print(f"\n1000 spectra: fit_lines {t_vec:.3f} s, curve_fit {t_cf:.1f} s, ratio {t_cf / t_vec:.0f}")
    ok = a.success & b.success
    assert ok.mean() > 0.99
    assert np.all(np.abs(a.flux[ok] - b.flux[ok]) < 1e-2 * a.flux_err[ok])


# --------------------------------------------------------------------------
# Masks and failures
# --------------------------------------------------------------------------


def test_nan_channels_are_masked():
    lo, hi, spec, model, fluxes = z5_setup()
    err = np.full_like(spec, 0.05)
    data = spec.copy()
    bad = np.zeros(spec.size, dtype=bool)
    bad[[3, 50, 51, 100, 170]] = True
    data[bad] = np.nan
    err2 = err.copy()
    err2[[7, 8]] = np.inf          # infinite error: weight 0
    err2[[60]] = 0.0               # zero error: not usable either
    clean = fit_lines(spec, err, lo, hi, Z5, model)
    res = fit_lines(data, err2, lo, hi, Z5, model)
    assert res.success[0]
    np.testing.assert_allclose(res.flux[0], true_flux_array(model, fluxes), rtol=1e-6)
    assert clean.dof[0] - res.dof[0] == 8


def test_all_zero_weight_spectrum_fails_cleanly():
    lo, hi, spec, model, fluxes = z5_setup()
    data = np.stack([spec, spec, np.full_like(spec, np.nan)])
    err = np.full(data.shape, 0.05)
    err[1] = 0.0
    res = fit_lines(data, err, lo, hi, Z5, model)
    assert res.success.tolist() == [True, False, False]
    assert np.all(np.isnan(res.flux[1:])) and np.all(np.isnan(res.velocity[1:]))
    np.testing.assert_allclose(res.flux[0], true_flux_array(model, fluxes), rtol=1e-6)
    assert json.loads(json.dumps(res.as_dict(1), allow_nan=True))["success"] is False


def test_line_in_masked_window_is_nan_others_fine():
    lo, hi, spec, model, fluxes = z5_setup()
    data = spec.copy()
    ne = LINES["NeIII_3870"].wavelength * (1 + Z5)
    data[np.abs(0.5 * (lo + hi) - ne) < 300.0] = np.nan  # the whole [NeIII] window
    res = fit_lines(data, np.full_like(spec, 0.05), lo, hi, Z5, model)
    j = model.lines.index("NeIII_3870")
    assert res.success[0]
    assert np.isnan(res.flux[0, j])
    others = [i for i in range(len(model.lines)) if i != j]
    np.testing.assert_allclose(res.flux[0, others], true_flux_array(model, fluxes)[others], rtol=1e-6)


# --------------------------------------------------------------------------
# API details
# --------------------------------------------------------------------------


def test_as_dict_and_result_is_read_only():
    lo, hi, spec, model, _ = z5_setup()
    res = fit_lines(spec, np.full_like(spec, 0.05), lo, hi, Z5, model)
    d = res.as_dict(0)
    json.dumps(d)
    assert d["flux_OIII_5008"] == pytest.approx(Z5_FLUX["OIII_5008"], rel=1e-6)
    assert set(d) >= {"velocity", "velocity_err", "sigma", "sigma_err", "chi2", "dof", "success"}
    with pytest.raises(ValueError):
        res.flux[0, 0] = 1.0


def test_line_model_validation():
    with pytest.raises(ConfigError):
        LineModel(("Hb", "NOPE"))
    with pytest.raises(ConfigError):
        LineModel(("Hb",), {"OIII_4960": ("OIII_5008", 0.3)})
    with pytest.raises(ConfigError):
        LineModel(
            ("OIII_4960", "OIII_5008"),
            {"OIII_4960": ("OIII_5008", 0.3), "OIII_5008": ("OIII_4960", 3)},
        )
    m = default_line_model(["Hb", "OIII", "NII", "Ha"])
    assert m.ties["OIII_4960"] == ("OIII_5008", pytest.approx(1 / 2.98))
    assert m.ties["NII_6550"] == ("NII_6585", pytest.approx(1 / 3.071))
    assert "OII_3730" not in m.ties
    assert m == default_line_model(["Hb", "OIII_4960", "OIII_5008", "NII_6550", "NII_6585", "Ha"])
    assert hash(m) == hash(default_line_model(["Hb", "OIII", "NII", "Ha"]))


def test_line_outside_grid_is_a_config_error():
    lo, hi, spec, _, _ = z5_setup()
    with pytest.raises(ConfigError, match="Ha"):
        fit_lines(spec, np.ones_like(spec), lo, hi, Z5, default_line_model(["Hb", "Ha"]))


# --------------------------------------------------------------------------
# Robustness and internal consistency
# --------------------------------------------------------------------------


def test_noise_only_spectra_do_not_break():
    lo, hi, _, model, _ = z5_setup()
    rng = np.random.default_rng(21)
    data = 0.5 * rng.standard_normal((200, lo.size))
    res = fit_lines(data, np.full(data.shape, 0.5), lo, hi, Z5, model, sigma_init=150.0)
    ok = res.success
    assert ok.mean() > 0.9
    assert np.all(np.isfinite(res.flux_err[ok])) and np.all(res.flux_err[ok] > 0)
    assert np.all(np.isnan(res.flux[~ok]))
    lo_b, hi_b = res.velocity_bounds
    assert np.all((res.velocity[ok] >= lo_b) & (res.velocity[ok] <= hi_b))
    assert np.all((res.sigma[ok] >= res.sigma_bounds[ok, 0]) & (res.sigma[ok] <= res.sigma_bounds[ok, 1]))


def test_chunking_and_per_spectrum_sigma_init(monkeypatch):
    from mockzgrad.recovery.linefit import varpro

    lo, hi, spec, model, _ = z5_setup()
    rng = np.random.default_rng(2)
    data = spec[None, :] + 0.08 * rng.standard_normal((20, spec.size))
    err = np.full(data.shape, 0.08)
    whole = fit_lines(data, err, lo, hi, Z5, model, sigma_init=np.full(20, 150.0))
    monkeypatch.setattr(varpro, "_CHUNK", 6)
    chunked = fit_lines(data, err, lo, hi, Z5, model, sigma_init=150.0)
    np.testing.assert_allclose(chunked.flux, whole.flux, rtol=1e-9)
    np.testing.assert_allclose(chunked.covariance, whole.covariance, rtol=1e-7)
    # a per-spectrum sigma_init moves each spectrum's width bounds
    s_init = np.linspace(120.0, 220.0, 20)
    res = fit_lines(data, err, lo, hi, Z5, model, sigma_init=s_init)
    np.testing.assert_allclose(res.sigma_bounds[:, 1] - s_init, 5.0 * res.channel_kms)
    np.testing.assert_allclose(res.flux, whole.flux, rtol=1e-6)
