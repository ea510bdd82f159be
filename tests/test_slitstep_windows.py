"""Per-window depth in slit-stepping mocks (issue 19): ``noise.windows`` scales the detector noise per channel.

A slit-stepped mock adds Gaussian noise of one sigma per detector pixel to
every pointing's 2D spectra. With ``noise.windows`` each detector channel
takes the sigma of its nearest line (as the IFU mode's channels do): a
window observed 4x longer than the ``snr_line``'s, at equal sensitivity, has
half the noise (background limited, sigma ~ t^-1/2).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from mockzgrad.config import MockConfig, SlitstepConfig, config_from_dict
from mockzgrad.errors import ConfigError, FieldOfViewWarning
from mockzgrad.observation.slitstep import build_slitstep_cube, rebuild_cube
from mockzgrad.physics.lines import LINES

from _seed import seeded

Z = 1.2
#: Hbeta and [OIII] at 1.07-1.10 um, Halpha and [NII] at 1.44-1.45 um: both inside G140H/F100LP (0.97-1.82 um)
#: and away from its gap (1.31-1.35 um; tests/test_slitstep_extras.py).
LINES5 = ["Hb", "OIII_5008", "NII_6550", "Ha", "NII_6585"]
BLUE = ("Hb", "OIII_5008")
T_RED = 3600.0            # s, the snr_line (Halpha) window
T_BLUE = 4.0 * T_RED      # the blue window is observed 4x longer, at the same sensitivity


def _cfg(windows=None, **noise) -> MockConfig:
    over = {"galaxy.redshift": Z, "galaxy.r_eff": 2.0, "galaxy.inclination": 40.0,
            "galaxy.metallicity.grad_z": -0.05, "instrument.kind": "slitstep", "instrument.psf.fwhm": 0.05,
            "instrument.fov_flux_fraction": 0.9, "lines.reference_line": "Ha", "lines.reference_flux": 1e-16,
            "lines.lines": LINES5, "lines.generating_set": ["C20_N2", "C20_R3"], "noise.snr_line": "Ha",
            "seed": seeded(41)}
    noise = noise or {"snr": 20.0}
    if "sigma" in noise:
        noise = dict(noise, snr=None)
    over.update({f"noise.{k}": v for k, v in noise.items()})
    if windows is not None:
        over["noise.windows"] = windows
    cfg = MockConfig().replace(**over)
    return replace(cfg, instrument=replace(cfg.instrument, slitstep=SlitstepConfig(store_spectra=True)))


def _build(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FieldOfViewWarning)
        return build_slitstep_cube(cfg)


def _blue_channels(centres) -> np.ndarray:
    """Channels whose nearest line (in ln wavelength) is Hbeta or [OIII]."""
    waves = np.log([LINES[n].wavelength * (1.0 + Z) for n in LINES5])
    nearest = np.argmin(np.abs(np.log(centres)[:, None] - waves[None, :]), axis=1)
    return np.isin(nearest, [LINES5.index(n) for n in BLUE])


@pytest.fixture(scope="module")
def mocks():
    scale = math.sqrt(T_RED / T_BLUE)  # background limited: sigma ~ t^-1/2, so 4x the exposure = half the noise
    plain = _build(_cfg())
    win = _build(_cfg({"blue": {"lines": list(BLUE), "scale": scale}}))
    free = _build(_cfg(**{"snr": 20.0, "enabled": False}))
    return plain, win, free


def test_a_window_with_4x_the_exposure_has_half_the_noise_in_its_channels(mocks):
    plain, win, free = mocks
    blue = _blue_channels(win.grid.centres)
    assert blue.any() and (~blue).any()
    # the noise of each pointing's 2D spectra (uncorrected detector pixels): the no-window deviates, scaled
    r_plain = plain.spectra.data - free.spectra.data
    r_win = win.spectra.data - free.spectra.data
    assert np.array_equal(r_win[:, ~blue], r_plain[:, ~blue])  # other channels: unchanged
    np.testing.assert_allclose(r_win[:, blue], 0.5 * r_plain[:, blue], rtol=1e-9, atol=1e-12 * np.abs(r_plain).max())
    # and as a measurement: the blue channels' std is half the exposure sigma, within 5 Monte Carlo
    # standard errors of a sample std (1 / sqrt(2 n)); the others are at the exposure sigma
    sigma_e = win.truth["noise_sigma_exposure"]
    assert sigma_e == pytest.approx(plain.truth["noise_sigma_exposure"], rel=1e-12)
    for sel, want in ((blue, 0.5), (~blue, 1.0)):
        r = r_win[:, sel].ravel()
        assert abs(r.std() / sigma_e / want - 1.0) <= 5.0 / math.sqrt(2.0 * r.size)
    # the propagated variances: per detector channel, and through the cube build
    v_spec = win.spectra.variance[0, :, 0]
    np.testing.assert_allclose(v_spec[blue], 0.25 * sigma_e**2, rtol=1e-12)
    np.testing.assert_allclose(v_spec[~blue], sigma_e**2, rtol=1e-12)
    np.testing.assert_allclose(win.variance[blue], 0.25 * plain.variance[blue], rtol=1e-9)
    assert np.array_equal(win.variance[~blue], plain.variance[~blue], equal_nan=True)
    assert np.array_equal(win.data[~blue], plain.data[~blue], equal_nan=True)
    # the snr_line (Halpha) keeps the target S/N
    assert win.truth["snr"] == pytest.approx(plain.truth["snr"], rel=1e-12)
    assert win.truth["noise_sigma"] == pytest.approx(plain.truth["noise_sigma"], rel=1e-12)


def test_the_cube_rebuilt_from_windowed_spectra_is_the_product(mocks):
    _, win, _ = mocks
    cube, var = rebuild_cube(win)
    np.testing.assert_allclose(cube, win.data, rtol=1e-10, atol=0.0, equal_nan=True)
    np.testing.assert_allclose(var, win.variance, rtol=1e-10, atol=0.0, equal_nan=True)


def test_an_absolute_window_sigma_is_per_detector_pixel():
    """``noise.sigma`` is per detector pixel in this mode; a window's ``sigma`` too."""
    win = _build(_cfg({"blue": {"lines": list(BLUE), "sigma": 3e-20}}, sigma=1e-20))
    blue = _blue_channels(win.grid.centres)
    v = win.spectra.variance[0, :, 0]
    np.testing.assert_allclose(v[blue], 9e-40, rtol=1e-12)
    np.testing.assert_allclose(v[~blue], 1e-40, rtol=1e-12)
    assert win.truth["noise_sigma_exposure"] == 1e-20


def test_the_planner_passes_windows_to_slitstep_setups():
    """A slit-stepping setup whose sensitivity has a blue window: the mock's channels carry the ratio.

    Windows: blue (Hbeta, [OIII]) 2e-20 at 14400 s, the rest 1e-20 at 3600 s: at
    a common exposure the blue sigma is (2e-20 sqrt(14400)) / (1e-20 sqrt(3600)) = 4
    times the Halpha sigma.
    """
    from mockzgrad.corrections import plan as PL

    setup = PL.setup_from_dict({
        "name": "msa", "preset": "nirspec_msa_g140h", "snr": [20.0], "n_mocks": 1, "recipe": "ju_msa3d",
        "sensitivity": {"quantity": "pixel_sigma", "value": 1e-20, "exposure": 3600.0, "citation": "test",
                        "windows": [{"lines": list(BLUE), "value": 2e-20, "exposure": 14400.0,
                                     "citation": "test blue"}]}}, "setup")
    target = PL.target_from_dict({"redshift": Z, "r_eff": 2.0, "sersic_n": 1.0, "inclination": 40.0,
                                  "reference_line": "Ha", "reference_flux": 1e-16, "grad_z": [0.05],
                                  "lines": LINES5, "generating_set": ["C20_N2", "C20_R3"]})
    table = PL._fixed(target, setup)
    table["noise"]["snr"] = 20.0
    table["instrument"]["fov_flux_fraction"] = 0.9
    table["instrument"]["psf"] = {"fwhm": 0.05}
    table["instrument"]["slitstep"]["store_spectra"] = True
    cube = _build(config_from_dict(dict(table, seed=seeded(42))))
    blue = _blue_channels(cube.grid.centres)
    v = cube.spectra.variance[0, :, 0]
    sigma_e = cube.truth["noise_sigma_exposure"]
    np.testing.assert_allclose(v[blue], (4.0 * sigma_e) ** 2, rtol=1e-12)
    np.testing.assert_allclose(v[~blue], sigma_e**2, rtol=1e-12)


def test_windows_in_a_setup_sensitivity_need_pixel_sigma():
    from mockzgrad.corrections import plan as PL

    with pytest.raises(ConfigError) as exc:
        PL.setup_from_dict({"name": "x", "preset": "kmos_seeing", "snr": [10.0], "sensitivity": {
            "quantity": "snr", "value": 10.0, "exposure": 3600.0, "citation": "t",
            "windows": [{"lines": ["Hb"], "value": 1.0, "citation": "t"}]}}, "setup")
    msg = str(exc.value)
    assert "\n" not in msg and "setup.sensitivity.windows" in msg and "pixel_sigma" in msg
