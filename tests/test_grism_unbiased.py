"""Noise must not bias what recovery measures on line maps (issue 16: positive gradients came back ~0 with noise).

The cause, found by comparing noisy and noise-free extractions of the same NIRISS mocks bin by bin:
bins drawn on the noisy gating map ([OIII] for wang2022) select its upward fluctuations, so the
binned [OIII] was high by ~0.8 sigma (1.6 sigma in the outer half), R3 and O32 high and the outer
metallicities low. The maps front end now bins on a ring model of the gating map
(``binning.gate_model``). These tests use line maps made here (an exponential disk and line
ratios from the Bian et al. 2018 calibrations), not the grism forward model, so they test the
front end and back end alone. The extraction's line-of-sight velocities (which biased Hbeta in outer bins
when ignored) are tested in test_grism_suite.py (``grism_extract`` module notes).
"""

import numpy as np
import pytest

from mockzgrad.config import load_recipe
from mockzgrad.physics.calibrations import get_diagnostic
from mockzgrad.physics.cosmology import kpc_per_arcsec
from mockzgrad.products.linemaps import LineMaps
from mockzgrad.recovery import maps_frontend as mf
from mockzgrad.recovery.binning import gate_model
from mockzgrad.recovery.pipeline import recover

from _seed import seeded

N_PIX, SCALE, Z_RED = 41, 0.03, 3.06
PSF = {"PSF_KIND": "gaussian", "PSF_FWHM": 0.01}
NAMES = ("OII_3727", "NeIII_3870", "Hb", "OIII_5008")
KPC = kpc_per_arcsec(Z_RED)
Q, PA = 0.75, 30.0


def _radius_kpc():
    c = (np.arange(N_PIX) - N_PIX // 2) * SCALE
    x, y = np.meshgrid(-c, c)  # x grows to the east (left), as LineMaps.offsets
    t = np.radians(PA)
    maj = x * np.sin(t) + y * np.cos(t)
    mnr = x * np.cos(t) - y * np.sin(t)
    return np.hypot(maj, mnr / Q) * KPC


def _noise_free(grad_z, z0=8.1):
    """Line maps (erg/s/cm^2 per pixel, arbitrary scale) of an exponential disk with Z = z0 + grad_z r."""
    r = _radius_kpc()
    z = np.clip(z0 + grad_z * (r - 1.0), 7.82, 8.38)
    oiii = np.exp(-r / 0.9)
    log = {k: get_diagnostic(k).log_ratio(z) for k in ("B18_R3", "B18_O32_inv", "B18_Ne3O2_inv")}
    hb = oiii / 10 ** log["B18_R3"]
    oii = oiii / 10 ** log["B18_O32_inv"]
    neiii = oii * 10 ** log["B18_Ne3O2_inv"]
    return np.stack([oii, neiii, hb, oiii])


def _maps(flux, sigma):
    var = np.broadcast_to(np.asarray(sigma, float)[:, None, None] ** 2, flux.shape).copy()
    return LineMaps(names=NAMES, flux=flux, variance=var, pixel_scale=SCALE, psfs={n: PSF for n in NAMES},
                    redshift=Z_RED, blends={"OII_3727": ("OII_3727", "OII_3730")})


def _sigma(clean, snr_pixel_at_peak):
    """Per-map sigma: the same absolute noise in every map, S/N ``snr_pixel_at_peak`` at the [OIII] peak."""
    return np.full(len(NAMES), clean[-1].max() / snr_pixel_at_peak)


def _gating_pulls(seed, n_real, snr_peak):
    """(noisy - noise-free) / error of the gating line summed in each bin the front end draws on noisy maps."""
    recipe = load_recipe("wang2022")
    clean = _noise_free(0.05)
    sigma = _sigma(clean, snr_peak)
    rng = np.random.default_rng(seeded(seed))
    pulls = []
    for _ in range(n_real):
        noisy = _maps(clean + sigma[:, None, None] * rng.standard_normal(clean.shape), sigma)
        front = mf.maps_front_end(noisy, recipe)
        truth, _ = mf.sum_map_fluxes(noisy, clean, noisy.variance, front.binning, front.selection, recipe)
        j = front.fluxes.names.index("OIII_5008")
        err = np.sqrt(front.fluxes.cov[:, j, j])
        pulls.append((front.fluxes.flux[:, j] - truth.flux[:, j]) / err)
    return np.concatenate(pulls)


def test_gate_model_is_the_ring_mean():
    """Constant rings give back the map; a pixel's model moves by its noise / (pixels in its ring) only."""
    r = np.array([[0.5, 1.5, 1.6], [0.4, 2.5, np.nan]])
    f = np.array([[1.0, 2.0, 4.0], [3.0, 7.0, 9.0]])
    m = gate_model(f, r, 1.0)
    np.testing.assert_allclose(m[np.isfinite(r)], [2.0, 3.0, 3.0, 2.0, 7.0])
    assert np.isnan(m[1, 2])


def test_bins_do_not_select_noise_in_the_gating_line():
    """Mean pull of the binned [OIII] over seeded realisations is 0 within 4 Monte Carlo errors (was ~ +0.8)."""
    pulls = _gating_pulls(1601, 6, snr_peak=12.0)
    mc = pulls.std(ddof=1) / np.sqrt(pulls.size)
    assert pulls.size > 100
    assert abs(pulls.mean()) < 4.0 * mc, (pulls.mean(), mc, pulls.size)
    assert pulls.std(ddof=1) == pytest.approx(1.0, abs=0.15)  # the bin errors describe the scatter


@pytest.mark.slow
@pytest.mark.parametrize("grad", [0.05, -0.05])
def test_wang2022_gradient_is_unbiased_with_noise(grad):
    """Mean wang2022 gradient over seeded noisy realisations = the noise-free one within 4 MC errors.

    The noise-free recovery itself is checked against the input within 0.005 dex/kpc; the tolerance of
    the noisy mean is 4 times its Monte Carlo error (scatter / sqrt(N)).
    """
    recipe = load_recipe("wang2022")
    clean = _noise_free(grad)
    sigma = _sigma(clean, 30.0)
    ref = recover(_maps(clean, sigma), recipe, rng=np.random.default_rng(1)).grad_z
    assert ref == pytest.approx(grad, abs=0.005)
    rng = np.random.default_rng(seeded(1602 if grad > 0 else 1603))
    got = []
    for _ in range(16):
        noisy = _maps(clean + sigma[:, None, None] * rng.standard_normal(clean.shape), sigma)
        got.append(recover(noisy, recipe, rng=np.random.default_rng(1)).grad_z)
    got = np.array(got)
    mc = got.std(ddof=1) / np.sqrt(got.size)
    assert abs(got.mean() - ref) < 4.0 * mc, (got, ref)
