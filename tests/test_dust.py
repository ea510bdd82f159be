"""Tests of mockzgrad.physics.dust: published values, domain, continuity, round trips."""

import astropy.units as u
import numpy as np
import pytest

from mockzgrad.physics.dust import (
    DEFAULT_R_V,
    LAWS,
    WAVELENGTH_RANGE,
    a_v_from_balmer_decrement,
    attenuation,
    clip_a_v,
    deredden,
    k_lambda,
    redden,
)
from mockzgrad.errors import ConfigError
from mockzgrad.physics.lines import LINES

HA = LINES["Ha"].wavelength
HB = LINES["Hb"].wavelength
HG = LINES["Hg"].wavelength

# Air wavelengths, shared/reference/constants.json "wavelengths_air_A".
HA_AIR, HB_AIR = 6562.819, 4861.333


class TestCalzetti2000:
    def test_published_balmer_values(self):
        # Calzetti et al. (2000): k(Halpha) = 3.33, k(Hbeta) = 4.60 at the
        # (air) line wavelengths; vacuum wavelengths differ by < 0.002 in k.
        for wave in ([HA, HB], [HA_AIR, HB_AIR]):
            k_ha, k_hb = k_lambda(wave, "calzetti2000")
            assert k_ha == pytest.approx(3.33, abs=0.01)
            assert k_hb == pytest.approx(4.60, abs=0.01)

    def test_default_law_and_r_v(self):
        assert np.array_equal(k_lambda([HA, HB]), k_lambda([HA, HB], "calzetti2000"))
        # k = 2.659 (...) + R_V: changing R_V shifts the curve by the difference.
        shift = k_lambda(5000.0, r_v=5.05) - k_lambda(5000.0)
        assert shift == pytest.approx(1.0, abs=1e-12)

    def test_jump_at_063_micron_is_the_published_one(self):
        # The two pieces of Calzetti et al. (2000) Eq. 4 meet with a jump of
        # 0.025 in k at 0.63 micron; nothing larger may come from the code.
        blue, red = k_lambda([6300.0 * (1 - 1e-12), 6300.0], "calzetti2000")
        assert abs(red - blue) < 0.03

    def test_monotonic_decreasing_within_each_piece(self):
        for lo, hi in ((1200.0, 6299.0), (6300.0, 22000.0)):
            wave = np.linspace(lo, hi, 1000)
            assert np.all(np.diff(k_lambda(wave, "calzetti2000")) < 0)


class TestCardelli1989:
    def test_k_v_equals_r_v(self):
        # A(V)/A(V) = 1 at x = 1/0.55 = 1.818 micron^-1, so k(V) = R_V.
        for r_v in (3.1, 2.5, 5.0):
            assert k_lambda(5500.0, "cardelli1989", r_v) == pytest.approx(r_v, abs=0.01)

    @pytest.mark.parametrize("x_boundary", [1.1, 3.3, 8.0])
    def test_continuous_at_piece_boundaries(self, x_boundary):
        # The published pieces agree to ~1e-3 at their common boundaries.
        lam = 1e4 / x_boundary
        k_lo, k_hi = k_lambda([lam * (1 + 1e-9), lam * (1 - 1e-9)], "cardelli1989")
        assert abs(k_hi - k_lo) < 2e-3


class TestBattisti2022:
    def test_known_values(self):
        k = k_lambda([HA, HB, 5500.0, HA_AIR, HB_AIR], "battisti2022")
        np.testing.assert_array_equal(k, [2.46, 3.82, 3.22, 2.46, 3.82])

    def test_other_wavelengths_raise(self):
        with pytest.raises(ConfigError, match="battisti2022.*known only"):
            k_lambda(HG, "battisti2022")

    def test_foreign_r_v_rejected(self):
        with pytest.raises(ConfigError, match="r_v"):
            k_lambda(HA, "battisti2022", r_v=3.1)


@pytest.mark.parametrize("law", ["calzetti2000", "cardelli1989"])
def test_out_of_domain_names_the_range(law):
    lo, hi = WAVELENGTH_RANGE[law]
    for bad in (lo * 0.99, hi * 1.01, np.nan):
        with pytest.raises(ConfigError, match=r"allowed \["):
            k_lambda([5000.0, bad], law)
    k_lambda([lo, hi], law)  # the ends are inside


def test_quantity_input():
    np.testing.assert_allclose(k_lambda(0.65646 * u.micron), k_lambda(6564.6), rtol=1e-12)
    with pytest.raises(ConfigError):
        k_lambda(1.0 * u.s)


def test_unknown_law():
    with pytest.raises(ConfigError, match="calzetti2000"):
        k_lambda(5000.0, "smc")


@pytest.mark.parametrize("law", LAWS)
def test_attenuation_at_v_is_a_v(law):
    a_v = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(attenuation(5500.0, a_v, law), a_v * k_lambda(5500.0, law) / DEFAULT_R_V[law])
    if law != "cardelli1989":  # CCM89's V point is x = 1.82, not 5500 A exactly
        np.testing.assert_allclose(attenuation(5500.0, a_v, law), a_v, rtol=0.01)


@pytest.mark.parametrize("law", LAWS)
def test_redden_deredden_round_trip(law):
    rng = np.random.default_rng(1)
    flux = rng.uniform(0.1, 10.0, size=(2, 3))
    wave = np.array([HA, HB])[:, None]
    a_v = np.array([0.0, 0.7, 3.0])
    reddened = redden(flux, wave, a_v, law)
    assert np.all(reddened[:, 1:] < flux[:, 1:])
    np.testing.assert_array_equal(reddened[:, 0], flux[:, 0])
    np.testing.assert_allclose(deredden(reddened, wave, a_v, law), flux, rtol=1e-13)


@pytest.mark.parametrize("law", LAWS)
def test_balmer_decrement_round_trips_injected_a_v(law):
    a_v_true = np.array([-0.3, 0.0, 0.25, 1.0, 2.5])
    f_ha = redden(2.86, HA, a_v_true, law)
    f_hb = redden(1.0, HB, a_v_true, law)
    a_v = a_v_from_balmer_decrement(f_ha / f_hb, law=law)
    np.testing.assert_allclose(a_v, a_v_true, atol=1e-12)
    # negative values are returned as computed; the helper clips them
    assert a_v[0] < 0
    np.testing.assert_allclose(clip_a_v(a_v), np.maximum(a_v_true, 0.0), atol=1e-12)


@pytest.mark.parametrize("law", ["calzetti2000", "cardelli1989"])
def test_balmer_decrement_general_pair(law):
    a_v_true = 1.3
    f_hg = redden(0.468, HG, a_v_true, law)
    f_hb = redden(1.0, HB, a_v_true, law)
    # Hg/Hb with the Case-B default intrinsic ratio; and the reversed pair.
    assert a_v_from_balmer_decrement(f_hg / f_hb, lines=("Hg", "Hb"), law=law) == pytest.approx(a_v_true)
    assert a_v_from_balmer_decrement(
        f_hb / f_hg, lines=("Hb", "Hg"), intrinsic=1 / 0.468, law=law
    ) == pytest.approx(a_v_true)


def test_balmer_decrement_textbook_form():
    # A_V = 2.5 R_V / (k(Hb) - k(Ha)) log10(obs / 2.86)
    k_ha, k_hb = k_lambda([HA, HB])
    expected = 2.5 * 4.05 / (k_hb - k_ha) * np.log10(4.0 / 2.86)
    assert a_v_from_balmer_decrement(4.0) == pytest.approx(expected, rel=1e-12)


def test_balmer_decrement_bad_data_gives_nan():
    a_v = a_v_from_balmer_decrement([3.5, 0.0, -1.0, np.nan])
    assert np.isfinite(a_v[0]) and np.all(np.isnan(a_v[1:]))


def test_balmer_decrement_config_errors():
    with pytest.raises(ConfigError, match="intrinsic"):
        a_v_from_balmer_decrement(3.0, lines=("OIII_5008", "Hb"))
    with pytest.raises(ConfigError, match="catalogue"):
        a_v_from_balmer_decrement(3.0, lines=("Hz", "Hb"))
    with pytest.raises(ConfigError, match="differ"):
        a_v_from_balmer_decrement(3.0, lines=("Hb", "Hb"))
    with pytest.raises(ConfigError, match="battisti2022"):
        a_v_from_balmer_decrement(0.5, lines=("Hg", "Hb"), law="battisti2022")
    with pytest.raises(ConfigError, match="intrinsic"):
        a_v_from_balmer_decrement(3.0, intrinsic=-2.0)
