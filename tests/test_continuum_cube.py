"""The optional stellar continuum of the cube modes (``[continuum]``).

Physics checks: the continuum added to a noise-free cube has the configured
rest-frame equivalent width of the reference line (line flux in the cube
over the continuum's f_lambda at the line, both measured on the cube); a
power law has the configured slope between two lines; the continuum follows
the line light profile (same normalised image) and is moved by its offset;
the slit-stepping mode keeps the rest 5500 +- 25 A channels; a configuration
without the table is the configuration without a continuum.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mockzgrad.config import MockConfig, config_to_dict
from mockzgrad.config.continuum import CENTRE_WINDOW_REST
from mockzgrad.errors import ConfigError, FieldOfViewWarning
from mockzgrad.observation.ifu import model_cube
from mockzgrad.physics.lines import LINES

Z = 1.0
BASE = {"galaxy.redshift": Z, "galaxy.metallicity.z0": 8.5, "galaxy.r_eff": 2.0, "galaxy.inclination": 40.0, "galaxy.pa": 30.0,
        "lines.reference_line": "Ha", "lines.lines": ["Hb", "Ha"],
        "lines.generating_set": [], "lines.reference_flux": 1e-16, "noise.snr_line": "Ha",
        "instrument.psf.fwhm": 0.2, "instrument.pixel_scale": 0.05, "instrument.fov_flux_fraction": 0.999}


def _cfg(**over) -> MockConfig:
    return MockConfig().replace(**{**BASE, **over})


def _continuum_only(cfg):
    """(continuum cube, line cube, setup): the cube with continuum minus the cube without, noise-free, PSF applied."""
    with_c, setup = model_cube(cfg)
    without, _ = model_cube(cfg.replace(**{"continuum": None}))
    return with_c - without, without, setup


def _widths(setup):
    return setup.grid.edges_hi - setup.grid.edges_lo


def test_no_table_and_kind_none_are_no_continuum():
    assert MockConfig().continuum is None
    assert _cfg(**{"continuum.kind": "none"}).continuum is None
    assert "continuum" not in config_to_dict(_cfg())
    assert config_to_dict(_cfg(**{"continuum.ew": 50.0}))["continuum"]["ew"] == 50.0


@pytest.mark.parametrize("field,value", [("continuum.ew", 0.0), ("continuum.kind", "blackbody"),
                                         ("continuum.sersic_n", 20.0)])
def test_bad_continuum_values_are_one_line_errors(field, value):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as err:
        _cfg(**{field: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("ew", [20.0, 150.0])
def test_equivalent_width_of_the_reference_line_in_the_cube(ew):
    """Line flux in the cube over the continuum f_lambda there = EW_rest (1 + z), within the field's 0.1 % loss."""
    cont, lines, setup = _continuum_only(_cfg(**{"continuum.kind": "flat", "continuum.ew": ew}))
    f_lambda = cont.sum(axis=(1, 2)) / _widths(setup)  # total continuum per Angstrom, every channel
    assert np.ptp(f_lambda) < 1e-6 * f_lambda.mean()  # flat in f_lambda
    # Halpha alone in its channels (the [NII] doublet left out of these mocks): its flux is the sum of the
    # line cube over them; the field holds >= 99.9 % of it (fov_flux_fraction) and the continuum alike
    centres = setup.grid.centres
    ha = LINES["Ha"].wavelength * (1 + Z)
    seg = np.abs(centres / ha - 1.0) < 0.01
    ew_obs = lines[seg].sum() / f_lambda[seg].mean()
    assert ew_obs / (1 + Z) == pytest.approx(ew, rel=0.002)


def test_power_law_slope_between_hbeta_and_halpha():
    beta = -1.5
    cont, _, setup = _continuum_only(_cfg(**{"continuum.kind": "power_law", "continuum.beta": beta}))
    f_lambda = cont.sum(axis=(1, 2)) / _widths(setup)
    c = setup.grid.centres
    i, j = int(np.argmin(np.abs(c - 4862.7 * (1 + Z)))), int(np.argmin(np.abs(c - 6564.6 * (1 + Z))))
    # a channel's mean of lambda^beta differs from its centre value by ~beta(beta-1)/24 (w/lambda)^2 ~ 1e-9;
    # the PSF stage is a float32 FFT (~1e-6 of a channel's sum); a slope off by 0.1 would miss by 3 %
    assert f_lambda[i] / f_lambda[j] == pytest.approx((c[i] / c[j]) ** beta, rel=1e-5)


def test_continuum_follows_the_light_profile_and_its_offset():
    """Same normalised image as the line light (default r_eff, n, geometry); an offset moves its centroid."""
    cont, lines, setup = _continuum_only(_cfg(**{"continuum.kind": "flat"}))
    ha = LINES["Ha"].wavelength * (1 + Z)
    near = np.abs(setup.grid.centres / ha - 1.0) < 0.01  # every channel of Halpha's window
    img_c = cont.sum(axis=0) / cont.sum()
    img_l = lines[near].sum(axis=0) / lines[near].sum()
    # Halpha is the reference line: its flux per spaxel is the light profile times a dust-free factor 1;
    # the two are rendered with different sub-pixel passes (0.5 % of the peak, tests of the scene)
    assert np.max(np.abs(img_c - img_l)) < 0.005 * img_l.max()
    shifted, _, _ = _continuum_only(_cfg(**{"continuum.kind": "flat", "continuum.x_offset": 0.15,
                                            "continuum.y_offset": -0.1}))
    img = shifted.sum(axis=0)
    n, ps = img.shape[0], 0.05
    off = (np.arange(n) - 0.5 * (n - 1)) * ps
    x_east = float(np.sum(img * (-off)[None, :]) / img.sum())
    y_north = float(np.sum(img * off[:, None]) / img.sum())
    x0 = float(np.sum(img_c * (-off)[None, :]))
    y0 = float(np.sum(img_c * off[:, None]))
    assert (x_east - x0, y_north - y0) == pytest.approx((0.15, -0.1), abs=0.005)


def test_slitstep_keeps_the_centre_window_with_continuum():
    """With a continuum the slit-stepped cube covers rest 5500 +- 25 A and holds continuum there; without, it does not."""
    from mockzgrad.observation.slitstep import build_slitstep_cube

    over = {"instrument.kind": "slitstep", "instrument.psf.fwhm": 0.05, "noise.enabled": False,
            "instrument.fov_flux_fraction": 0.9, "continuum.kind": "flat", "continuum.ew": 100.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FieldOfViewWarning)
        cfg = _cfg(**over)
        cube = build_slitstep_cube(cfg)
        plain = build_slitstep_cube(cfg.replace(**{"continuum": None}))
    lo, hi = (w * (1 + Z) for w in CENTRE_WINDOW_REST)
    c = cube.grid.centres
    win = (c > lo) & (c < hi)
    assert win.sum() >= 0.9 * (hi - lo) / cfg.instrument.slitstep.dispersion
    assert not ((plain.grid.centres > lo) & (plain.grid.centres < hi)).any()
    assert cube.truth["continuum"]["ew"] == 100.0
    # the continuum per Angstrom in the window, summed over the field, near the configured level
    # F_Ha / (EW (1 + z)); the slit-stepped field loses a few % of the light (fov_flux_fraction 0.9)
    f_ha = cube.truth["line_totals"]["Ha"] if "line_totals" in cube.truth else None
    cp = cube.pixel_scale
    f_win = np.nansum(cube.noise_free[win], axis=(1, 2)) / cfg.instrument.slitstep.dispersion
    assert np.all(f_win > 0)
    if f_ha is not None:
        assert float(np.median(f_win)) == pytest.approx(f_ha / (100.0 * (1 + Z)), rel=0.1)
    assert cp > 0


def _fov_percent(cfg) -> float:
    """The line-flux percentage the IFU FoV warning names for ``cfg`` (NaN: no warning)."""
    import re

    from mockzgrad.observation.ifu import build_cube

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FieldOfViewWarning)
        build_cube(cfg.replace(**{"noise.enabled": False}), keep_noise_free=False)
    msgs = [str(w.message) for w in caught if issubclass(w.category, FieldOfViewWarning)]
    return float(re.search(r"holds ([0-9.]+) % of the line flux", msgs[0]).group(1)) if msgs else math.nan


def test_ifu_fov_check_counts_line_flux_only():
    """A field that loses line flux warns with the same line percentage with a (bright) continuum as without."""
    small = _cfg(**{"instrument.fov": 0.8, "instrument.fov_flux_fraction": 0.995})
    without = _fov_percent(small)
    assert 50.0 < without < 99.0  # the field loses line flux: the warning is there
    # EW 5 A: the continuum carries far more flux than the lines; counted as line flux it would hide the loss
    assert _fov_percent(small.replace(**{"continuum.kind": "flat", "continuum.ew": 5.0})) == \
        pytest.approx(without, abs=0.02)  # the message rounds to 0.01 %
    # a field holding the lines does not warn because of the continuum either
    assert math.isnan(_fov_percent(_cfg(**{"continuum.kind": "flat", "continuum.ew": 5.0})))


def test_ifu_truth_records_the_continuum():
    from mockzgrad.observation.ifu import build_cube

    cfg = _cfg(**{"continuum.kind": "power_law", "continuum.ew": 80.0, "continuum.beta": -1.5})
    truth = build_cube(cfg, keep_noise_free=False).truth
    assert truth["continuum"] == config_to_dict(cfg.continuum)
    assert truth["continuum"]["kind"] == "power_law" and truth["continuum"]["ew"] == 80.0
    assert "continuum" not in build_cube(_cfg(), keep_noise_free=False).truth
