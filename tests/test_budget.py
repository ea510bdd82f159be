"""The flattening budget (mockzgrad.budget) and the recorded z0 / R_fit / outside-range choices.

Physics that must hold: with every effect off the true Z map returns the
intrinsic gradient (a linear profile averaged with any weights at the
weighted radius is the same line); the PSF and clipping only mix and cap Z,
so they never steepen a monotonic profile; the budget's last step is the
suite path itself, to the last bit.
"""

import math
import warnings

import numpy as np
import pytest
from scipy import special

from mockzgrad.budget import STEPS, flattening_budget, write_budget
from mockzgrad.budget.command import format_budget
from mockzgrad.config import MockConfig, load_config
from mockzgrad.errors import CalibrationRangeWarning, ConfigError
from mockzgrad.source.galaxy import resolve_galaxy
from mockzgrad.suites.expand import MockSpec
from mockzgrad.suites.job import run_mock

from pathlib import Path

FLAGSHIP = Path(__file__).resolve().parents[1] / "examples" / "flagship_z5.toml"
R_EFF_ARCSEC = 0.3183  # 2 kpc at z = 5 (flagship comment)


def _small(**changes) -> MockConfig:
    """The flagship on a coarser, cheaper sampling (the budget's properties hold for any sampling)."""
    base = {"instrument.oversample": 2, "instrument.pixel_scale": 0.07}
    return load_config(FLAGSHIP).replace(**base, **changes)


def _budget(cfg, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flattening_budget(cfg, realisations=1, alternatives=False, **kw)


# ---------------------------------------------------------------------------
# z0 modes, R_fit, outside-range flux share
# ---------------------------------------------------------------------------

def _model(**changes):
    cfg = load_config(FLAGSHIP).replace(**changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationRangeWarning)
        return resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)


def test_default_z0_is_the_centred_choice_and_recorded():
    m = _model()
    lo, hi = m.z_valid_range
    r_fit = m.r_fit * m.r_eff
    # the span over 0..R_fit is centred in the common range
    assert 0.5 * (m.metallicity(0.0) + m.metallicity(r_fit)) == pytest.approx(0.5 * (lo + hi), abs=1e-12)
    assert m.z0_mode == "centred" and m.z0_auto
    assert m.truth()["z0_mode"] == "centred" and m.truth()["r_fit"] == 3.0


@pytest.mark.parametrize("grad", [-0.1, 0.1])
def test_pinned_z0_puts_both_signs_at_the_centre_of_the_range(grad):
    m = _model(**{"galaxy.metallicity.z0_mode": "pinned", "galaxy.metallicity.grad_z": grad})
    lo, hi = m.z_valid_range
    assert m.metallicity(0.0) == pytest.approx(0.5 * (lo + hi), abs=1e-12)
    assert m.z0_mode == "pinned"


def test_given_z0_mode_needs_z0_and_choosing_modes_refuse_one():
    cfg = load_config(FLAGSHIP)
    with pytest.raises(ConfigError, match="z0_mode = 'given' needs"):
        cfg.replace(**{"galaxy.metallicity.z0_mode": "given"})
    with pytest.raises(ConfigError, match="drop one of them"):
        cfg.replace(**{"galaxy.metallicity.z0_mode": "pinned", "galaxy.metallicity.z0": 8.0})
    m = _model(**{"galaxy.metallicity.z0_mode": "given", "galaxy.metallicity.z0": 8.0})
    assert m.z0 == 8.0 and not m.z0_auto


def test_flat_profile_inside_the_range_has_no_outside_flux():
    m = _model(**{"galaxy.metallicity.grad_z": 0.0})
    assert all(f == 0.0 for _, f in m.outside_flux_frac)


def test_outside_share_of_the_reference_line_is_the_light_beyond_the_crossing_radius():
    # the reference line's factor is 1 everywhere (no dust), so its share is
    # the Sersic light outside the elliptical radius where Z crosses the range:
    # 1 - gamma(2n, b (R/r_eff)^(1/n)) / Gamma(2n), independent of the quadrature
    m = _model(**{"galaxy.metallicity.grad_z": -0.1, "galaxy.metallicity.z0_mode": "pinned"})
    lo, _ = m.z_valid_range
    r_cross = (lo - m.z0) / m.grad_z
    expected = 1.0 - special.gammainc(2.0 * m.sersic_n, m.sersic_bn * (r_cross / m.r_eff) ** (1.0 / m.sersic_n))
    share = dict(m.outside_flux_frac)["OIII_5008"]
    assert share == pytest.approx(expected, rel=1e-6)
    assert m.truth()["outside_flux_frac_max"] >= share


def test_suite_row_carries_the_outside_share_and_z0_mode():
    cfg = _small(**{"galaxy.metallicity.z0_mode": "pinned", "noise.enabled": False})
    row = run_mock(MockSpec(index=0, seed=cfg.seed, config=cfg.to_dict(), params={}))
    m = _model(**{"galaxy.metallicity.z0_mode": "pinned"})
    assert row["outside_flux_frac"] == pytest.approx(max(f for _, f in m.outside_flux_frac), rel=1e-12)
    assert row["z0_mode"] == "pinned"


# ---------------------------------------------------------------------------
# the budget
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    {},
    {"galaxy.metallicity.grad_z": 0.08, "galaxy.inclination": 50.0},
])
def test_every_effect_off_returns_the_intrinsic_gradient(changes):
    b = _budget(_small(**changes))
    assert abs(b.step("a0").grad_z - b.grad_z_true) < 1e-4
    assert [s.key for s in b.steps] == list(STEPS)


def test_last_step_is_the_suite_path_exactly():
    cfg = _small(**{"instrument.psf.fwhm": 2 * R_EFF_ARCSEC / 3.0})
    b = _budget(cfg)
    row = run_mock(MockSpec(index=0, seed=cfg.seed, config=cfg.to_dict(), params={}))
    assert b.step("e").grad_z_first == row["grad_z_measured"]
    # and what an observer gets from `recover` on the same mock, with the suite's sampler seed
    from mockzgrad.observation import observe
    from mockzgrad.recovery.pipeline import recover

    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = recover(observe(cfg, keep_noise_free=False), "lee2026", rng=rng)
    assert b.step("e").grad_z_first == direct.grad_z


#: Setups of the monotonicity grid: x, grad_z (dex/kpc), inclination (deg), z0 mode.
GRID = [(1.5, -0.10, 20.0, None), (3.0, 0.10, 45.0, None), (2.0, -0.05, 60.0, "pinned"), (4.0, 0.10, 20.0, "pinned")]


@pytest.mark.slow
@pytest.mark.parametrize("x, grad, inc, mode", GRID)
def test_psf_and_clipping_never_steepen(x, grad, inc, mode):
    cfg = _small(**{"instrument.psf.fwhm": 2 * R_EFF_ARCSEC / x, "galaxy.metallicity.grad_z": grad,
                    "galaxy.inclination": inc, "galaxy.metallicity.z0_mode": mode})
    b = _budget(cfg)
    # the same sign, no steeper: the PSF mixes neighbouring radii, clipping caps Z at the range edges
    for before, after in (("a2", "b"), ("c", "d")):
        assert 0.0 < b.step(after).ratio <= b.step(before).ratio + 1e-9, (before, after)


def test_budget_files_and_text(tmp_path):
    b = _budget(_small())
    paths = write_budget(b, tmp_path / "out")
    from astropy.table import Table

    t = Table.read(paths["table"], format="ascii.ecsv")
    assert list(t["key"]) == list(STEPS)
    assert t.meta["grad_z_true"] == b.grad_z_true
    assert paths["figure"].stat().st_size > 0
    text = format_budget(b)
    assert all(k in text for k in STEPS)
    assert math.isfinite(b.step("b").ratio)


def test_suite_budget_rebuilds_the_suites_mocks(tmp_path):
    from mockzgrad.budget import suite_budget, suite_budget_figure

    (tmp_path / "s.toml").write_text(
        '[suite]\nname = "b"\nseed = 5\nn_mocks = 2\n\n'
        f'[fixed]\nbase = "{FLAGSHIP.as_posix()}"\ninstrument = {{oversample = 2, pixel_scale = 0.07}}\n\n'
        '[grid]\n"galaxy.metallicity.grad_z" = [-0.1, 0.1]\n\n'
        '[sample]\nx_resolution = {dist = "uniform", low = 2.0, high = 4.0}\n')
    t = suite_budget(tmp_path / "s.toml")
    assert sorted(t["sign"]) == [-1, 1]
    assert np.allclose(t["abs_grad_z"], 0.1)
    # every effect off gives the intrinsic gradient for every mock of the suite too
    assert np.allclose(t["ratio_a0"], 1.0, atol=1e-3)
    assert suite_budget_figure(t).axes


def test_outside_range_rows_flag_only_mocks_above_the_share():
    from astropy.table import Table

    from mockzgrad.budget.flags import outside_range_rows

    t = Table({"outside_flux_frac": [0.0, 0.02, 0.5, np.nan], "grad_z_true": [-0.1] * 4})
    assert list(outside_range_rows(t, 0.05)) == [False, False, True, False]
    assert not outside_range_rows(Table({"grad_z_true": [0.1]}), 0.05).any()  # older suites: no column
    with pytest.raises(ConfigError, match="max_outside_flux"):
        outside_range_rows(t, 1.5)
