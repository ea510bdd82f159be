"""Line fluxes from Z(r): generating systems, dust, ratio scatter, analytic totals.

Every expectation is computed independently of :mod:`mockzgrad.source.lineflux`:
the calibrations' log ratios from :func:`mockzgrad.physics.calibrations.get_diagnostic`,
attenuation from :func:`mockzgrad.physics.dust.k_lambda`, and line totals by a
brute-force sum over a fine sky grid with the line fluxes built here from
the calibrations by hand.
"""

import math

import numpy as np
import pytest
from _seed import seeded

from mockzgrad.physics import calibrations
from mockzgrad.config import DustConfig, LinesConfig, MockConfig
from mockzgrad.physics.dust import k_lambda
from mockzgrad.errors import ConfigError
from mockzgrad.source.galaxy import resolve_galaxy
from mockzgrad.source.lineflux import (
    analytic_line_totals,
    draw_ratio_offsets,
    generating_system,
    line_factors,
)
from mockzgrad.physics.lines import LINES

FLAGSHIP = LinesConfig()  # [OIII] 5008 reference, S25 R3 + O32 + Ne3O2
#: Inside the common validity range of S25 R3, O32, Ne3O2 ([7.4, 8.6], their calibration files)
Z_FLAGSHIP = np.linspace(7.45, 8.25, 33)

#: Case-B Halpha/Hbeta and Hgamma/Hbeta at 1e4 K, 100 cm^-3
#: (Osterbrock & Ferland 2006, Tables 4.2/4.4; DESIGN.md).
HA_HB, HG_HB = 2.86, 0.468
#: R_V of Calzetti et al. (2000), eq. 4.
R_V_CALZETTI = 4.05

HALPHA_LINES = ("Ha", "Hb", "Hg", "NII_6550", "NII_6585", "SII_6718", "SII_6733")


def _logr(key, z):
    return calibrations.get_diagnostic(key).log_ratio(z, policy="raise")


def _log(a):
    return np.log10(np.asarray(a, dtype=float))


# ---------------------------------------------------------- generating system
class TestFlagshipSystem:
    def test_generated_ratios_equal_calibrations(self):
        f = line_factors(FLAGSHIP, Z_FLAGSHIP)
        oii = f["OII_3727"] + f["OII_3730"]
        np.testing.assert_allclose(_log(f["OIII_5008"] / f["Hb"]), _logr("S25_R3", Z_FLAGSHIP), rtol=0, atol=1e-10)
        np.testing.assert_allclose(_log(f["OIII_5008"] / oii), _logr("S25_O32", Z_FLAGSHIP), rtol=0, atol=1e-10)
        np.testing.assert_allclose(_log(f["NeIII_3870"] / oii), _logr("S25_Ne3O2", Z_FLAGSHIP), rtol=0, atol=1e-10)

    def test_reference_line_factor_is_one(self):
        f = line_factors(FLAGSHIP, Z_FLAGSHIP)
        np.testing.assert_allclose(f["OIII_5008"], 1.0, rtol=1e-12)

    @pytest.mark.parametrize("oiii,oii", [(2.98, 1.35), (3.1, 0.81)])
    def test_doublet_ratios_follow_config(self, oiii, oii):
        cfg = LinesConfig(oiii_doublet_ratio=oiii, oii_doublet_ratio=oii)
        f = line_factors(cfg, Z_FLAGSHIP)
        np.testing.assert_allclose(f["OIII_5008"] / f["OIII_4960"], oiii, rtol=1e-12)
        np.testing.assert_allclose(f["OII_3730"] / f["OII_3727"], oii, rtol=1e-12)
        # the doublet split leaves the calibrated ratios of the sums unchanged
        oii_sum = f["OII_3727"] + f["OII_3730"]
        np.testing.assert_allclose(_log(f["OIII_5008"] / oii_sum), _logr("S25_O32", Z_FLAGSHIP), atol=1e-10)

    def test_shape_follows_z(self):
        z = np.full((3, 4), 8.0)
        f = line_factors(FLAGSHIP, z)
        assert all(v.shape == (3, 4) for v in f.values())


class TestHalphaSystems:
    @pytest.mark.parametrize("n2,s2", [("C20_N2", "C20_S2"), ("S25_N2", "S25_S2")])
    def test_balmer_n2_s2(self, n2, s2):
        cfg = LinesConfig(reference_line="Ha", lines=HALPHA_LINES, generating_set=(n2, s2))
        lo = max(calibrations.get_diagnostic(k).valid_range[0] for k in (n2, s2))
        hi = min(calibrations.get_diagnostic(k).valid_range[1] for k in (n2, s2))
        z = np.linspace(lo, hi, 21)
        f = line_factors(cfg, z)
        np.testing.assert_allclose(f["Ha"], 1.0, rtol=1e-12)
        np.testing.assert_allclose(f["Ha"] / f["Hb"], HA_HB, rtol=1e-12)
        np.testing.assert_allclose(f["Hg"] / f["Hb"], HG_HB, rtol=1e-12)
        np.testing.assert_allclose(_log(f["NII_6585"] / f["Ha"]), _logr(n2, z), atol=1e-10)
        np.testing.assert_allclose(_log((f["SII_6718"] + f["SII_6733"]) / f["Ha"]), _logr(s2, z), atol=1e-10)
        np.testing.assert_allclose(f["NII_6585"] / f["NII_6550"], cfg.nii_doublet_ratio, rtol=1e-12)
        np.testing.assert_allclose(f["SII_6718"] / f["SII_6733"], cfg.sii_doublet_ratio, rtol=1e-12)

    @pytest.mark.parametrize("gen", [("C20_O3N2", "C20_N2"), ("C20_O3N2", "C20_R3"),
                                     ("PP04_O3N2", "PP04_N2_cubic")])
    def test_o3n2_through_the_linear_system(self, gen):
        """O3N2 relates four lines in two groups' ratios; with N2 or R3 (and
        the case-B Ha/Hb) the system is square and must reproduce both."""
        cfg = LinesConfig(reference_line="Ha", lines=("Ha", "Hb", "NII_6585", "OIII_5008"),
                          generating_set=gen)
        lo = max(calibrations.get_diagnostic(k).valid_range[0] for k in gen)
        hi = min(calibrations.get_diagnostic(k).valid_range[1] for k in gen)
        z = np.linspace(lo, hi, 21)
        f = line_factors(cfg, z)
        r3 = _log(f["OIII_5008"] / f["Hb"])
        n2 = _log(f["NII_6585"] / f["Ha"])
        measured = {"O3N2": r3 - n2, "N2": n2, "R3": r3}
        for key in gen:
            name = key.split("_", 1)[1].split("_")[0]
            np.testing.assert_allclose(measured[name], _logr(key, z), atol=1e-10, err_msg=key)
        np.testing.assert_allclose(f["Ha"] / f["Hb"], HA_HB, rtol=1e-12)

    def test_system_records_groups_and_diagnostics(self):
        s = generating_system(FLAGSHIP)
        assert s.groups[0] == "OIII"
        assert {d.key for d in s.diagnostics} == {"S25_R3", "S25_O32", "S25_Ne3O2"}
        assert s.matrix.shape == (len(s.groups), 3)


class TestGeneratingErrors:
    def test_undetermined_line(self):
        cfg = LinesConfig(lines=FLAGSHIP.lines + ("NII_6585",))
        with pytest.raises(ConfigError, match=r"NII_6585 cannot be generated: no ratio in lines\.generating_set"):
            generating_system(cfg)

    def test_over_determined(self):
        cfg = LinesConfig(generating_set=("S25_R3", "S25_O32", "S25_Ne3O2", "S25_O2"))
        with pytest.raises(ConfigError, match=r"with 4 ratios; exactly 3 independent ratios are needed"):
            generating_system(cfg)

    def test_dependent_set_with_the_right_count(self):
        # R3, O2, O32 close a loop over ([OIII], H I, [OII]); K19 N2S2 links
        # [NII] and [SII] only to each other: 4 ratios for 5 groups, singular
        cfg = LinesConfig(lines=("OIII_5008", "Hb", "OII_3727", "NII_6585", "SII_6718"),
                          generating_set=("S25_R3", "S25_O2", "S25_O32", "K19_N2S2"))
        with pytest.raises(ConfigError, match="two ratios say the same thing"):
            generating_system(cfg)

    def test_sum_of_ratios_cannot_generate(self):
        cfg = LinesConfig(reference_line="Ha", lines=("Ha", "Hb", "OIII_5008", "SII_6718"),
                          generating_set=("C20_RS32", "C20_S2"))
        with pytest.raises(ConfigError, match="C20_RS32 is a sum of ratios and cannot generate lines"):
            generating_system(cfg)

    def test_unknown_line(self):
        with pytest.raises(ConfigError, match=r"'OIII_5007' is not a known line \(did you mean OIII_5008"):
            LinesConfig(lines=("OIII_5007", "Hb"))
        with pytest.raises(ConfigError, match=r"lines\.reference_line = 'Halpha' is not a known line"):
            LinesConfig(reference_line="Halpha")

    def test_unknown_calibration(self):
        with pytest.raises(ConfigError, match=r"unknown calibration 'S25_R33'"):
            LinesConfig(generating_set=("S25_R33", "S25_O32", "S25_Ne3O2"))


# ------------------------------------------------------------------------ dust
class TestDust:
    def test_uniform_calzetti(self):
        cfg = MockConfig().replace(**{"lines.dust.a_v": 1.0}).lines
        clean = line_factors(FLAGSHIP, Z_FLAGSHIP)
        got = line_factors(cfg, Z_FLAGSHIP)
        for name in FLAGSHIP.lines:
            k = float(k_lambda(LINES[name].wavelength, "calzetti2000"))
            expect = clean[name] * 10.0 ** (-0.4 * 1.0 * k / R_V_CALZETTI)
            np.testing.assert_allclose(got[name], expect, rtol=1e-12, err_msg=name)

    def test_balmer_decrement_reddened(self):
        cfg = LinesConfig(reference_line="Ha", lines=HALPHA_LINES, generating_set=("C20_N2", "C20_S2"),
                          dust=DustConfig(a_v=0.7))
        f = line_factors(cfg, np.array([8.3]))
        k_ha, k_hb = k_lambda([LINES["Ha"].wavelength, LINES["Hb"].wavelength], "calzetti2000")
        # E(Hb - Ha) = A_V (k_Hb - k_Ha) / R_V
        expect = HA_HB * 10.0 ** (0.4 * 0.7 * (k_hb - k_ha) / R_V_CALZETTI)
        np.testing.assert_allclose(f["Ha"] / f["Hb"], expect, rtol=1e-12)

    def test_radial_profile_clipped_at_zero(self):
        cfg = MockConfig().replace(**{"lines.dust.a_v": 1.0, "lines.dust.a_v_grad": -0.4}).lines
        r = np.linspace(0.0, 5.0, 51)
        z = np.full_like(r, 8.0)
        clean = line_factors(FLAGSHIP, z)
        got = line_factors(cfg, z, r_kpc=r)
        a_v = np.maximum(1.0 - 0.4 * r, 0.0)
        for name in FLAGSHIP.lines:
            k = float(k_lambda(LINES[name].wavelength, "calzetti2000"))
            np.testing.assert_allclose(got[name], clean[name] * 10.0 ** (-0.4 * a_v * k / R_V_CALZETTI),
                                       rtol=1e-12, err_msg=name)
        assert np.array_equal(got["Hb"][r >= 2.5], clean["Hb"][r >= 2.5])

    def test_radial_profile_needs_radii(self):
        cfg = MockConfig().replace(**{"lines.dust.a_v_grad": 0.1}).lines
        with pytest.raises(ConfigError, match="a_v_grad needs radii"):
            line_factors(cfg, Z_FLAGSHIP)


# -------------------------------------------------------------- ratio scatter
class TestRatioOffsets:
    def test_draws_have_the_calibration_scatter(self):
        rng = np.random.default_rng(seeded(12345))
        n = 100_000
        offsets = draw_ratio_offsets(FLAGSHIP, rng, shape=(n,))
        assert set(offsets) == set(FLAGSHIP.generating_set)
        for key, draws in offsets.items():
            sigma = calibrations.get_diagnostic(key).sigma_ratio
            assert draws.shape == (n,)
            if sigma is None:  # S25 Ne3O2 has no published scatter in log R
                assert np.all(draws == 0.0)
            else:
                # std of the sample std is sigma / sqrt(2n) = 0.2 %; allow 2 %
                assert draws.std() == pytest.approx(sigma, rel=0.02), key
                assert abs(draws.mean()) < 5.0 * sigma / math.sqrt(n), key

    def test_seeded_draws_repeat(self):
        a = draw_ratio_offsets(FLAGSHIP, np.random.default_rng(3))
        b = draw_ratio_offsets(FLAGSHIP, np.random.default_rng(3))
        assert a == b

    def test_per_mock_offsets_shift_log_ratios_exactly(self):
        offsets = {"S25_R3": 0.13, "S25_O32": -0.2, "S25_Ne3O2": 0.05}
        f0 = line_factors(FLAGSHIP, Z_FLAGSHIP)
        f1 = line_factors(FLAGSHIP, Z_FLAGSHIP, ratio_offsets=offsets)

        def ratios(f):
            oii = f["OII_3727"] + f["OII_3730"]
            return {"S25_R3": _log(f["OIII_5008"] / f["Hb"]), "S25_O32": _log(f["OIII_5008"] / oii),
                    "S25_Ne3O2": _log(f["NeIII_3870"] / oii)}

        r0, r1 = ratios(f0), ratios(f1)
        for key, off in offsets.items():
            np.testing.assert_allclose(r1[key] - r0[key], off, rtol=0, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(f1["OIII_5008"], 1.0, rtol=1e-12)


# ------------------------------------------------------------- analytic totals
def _brute_force_totals(model, cfg, half_arcsec, k):
    """Pixel sum of reference_flux x I(x, y) x factor over a k x k sky grid.

    Fluxes of the flagship generating set are built here by hand from the
    calibrations (Z clipped to each one's validity range): Hb = [OIII]/R3,
    [OII] = [OIII]/O32 split 1 : 1.35, [NeIII] = [OII] x Ne3O2,
    [OIII] 4960 = [OIII] 5008 / 2.98.
    """
    step = 2.0 * half_arcsec / k
    s = (np.arange(k) + 0.5) * step - half_arcsec
    xx, yy = np.meshgrid(s, s)
    r, _ = model.disk_coords(xx, yy)
    oiii = cfg.reference_flux * model.surface_brightness(r) * step**2
    z = model.metallicity(r)

    def ratio(key):
        d = calibrations.get_diagnostic(key)
        return 10.0 ** d.log_ratio(np.clip(z, *d.valid_range), policy="raise")

    oii = oiii / ratio("S25_O32")
    fluxes = {"OIII_5008": oiii, "OIII_4960": oiii / cfg.oiii_doublet_ratio, "Hb": oiii / ratio("S25_R3"),
              "OII_3730": oii * cfg.oii_doublet_ratio / (1.0 + cfg.oii_doublet_ratio),
              "OII_3727": oii / (1.0 + cfg.oii_doublet_ratio), "NeIII_3870": oii * ratio("S25_Ne3O2")}
    if cfg.dust.a_v > 0 or cfg.dust.a_v_grad != 0:
        a_v = np.maximum(cfg.dust.a_v + cfg.dust.a_v_grad * r, 0.0)
        for name in fluxes:
            k_l = float(k_lambda(LINES[name].wavelength, cfg.dust.law))
            fluxes[name] = fluxes[name] * 10.0 ** (-0.4 * a_v * k_l / R_V_CALZETTI)
    return {name: float(v.sum()) for name, v in fluxes.items()}


class TestAnalyticTotals:
    @staticmethod
    def _setup(**changes):
        cfg = MockConfig().replace(**changes)
        return resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology), cfg.lines

    def test_reference_total_is_reference_flux(self):
        for changes in ({}, {"galaxy.sersic_n": 4.0, "galaxy.inclination": 70.0},
                        {"galaxy.metallicity.grad_z": 0.15}):
            model, cfg = self._setup(**changes)
            totals = analytic_line_totals(model, cfg)
            assert totals["OIII_5008"] == pytest.approx(cfg.reference_flux, rel=1e-8), changes

    def test_reference_total_with_uniform_dust(self):
        model, cfg = self._setup(**{"lines.dust.a_v": 1.0})
        k = float(k_lambda(LINES["OIII_5008"].wavelength, "calzetti2000"))
        expect = cfg.reference_flux * 10.0 ** (-0.4 * k / R_V_CALZETTI)
        assert analytic_line_totals(model, cfg)["OIII_5008"] == pytest.approx(expect, rel=1e-8)

    @pytest.mark.parametrize("changes", [
        {"galaxy.metallicity.grad_z": -0.1},  # Z clipped to the common range beyond ~7.5 kpc
        {"galaxy.metallicity.grad_z": 0.15, "galaxy.inclination": 60.0, "galaxy.pa": 30.0,
         "lines.dust.a_v": 1.0, "lines.dust.a_v_grad": -0.3},
    ])
    def test_other_lines_match_brute_force_pixel_sum(self, changes):
        model, cfg = self._setup(**changes)
        totals = analytic_line_totals(model, cfg)
        # +-12 r_eff along the minor axis too (q >= 0.5): light outside < 1e-7
        brute = _brute_force_totals(model, cfg, half_arcsec=12.0 * model.r_eff_arcsec / model.axis_ratio,
                                    k=1800)
        for name in cfg.lines:
            # required: 0.2 %; the two integrations agree to ~1e-5
            assert totals[name] == pytest.approx(brute[name], rel=2e-4), name

    def test_per_mock_offsets_scale_totals(self):
        model, cfg = self._setup()
        base = analytic_line_totals(model, cfg)
        shifted = analytic_line_totals(model, cfg, ratio_offsets={"S25_R3": 0.1})
        # Hb = [OIII] / R3: a +0.1 dex R3 offset lowers Hb everywhere by 0.1 dex
        assert shifted["Hb"] / base["Hb"] == pytest.approx(10.0**-0.1, rel=1e-10)
        assert shifted["OIII_5008"] == pytest.approx(base["OIII_5008"], rel=1e-12)


# ---------------------------------------------------------------------------
# calibrations that need log U (Kewley et al. 2019 surfaces): lines.logu
# ---------------------------------------------------------------------------
K19_LINES = ("OIII_5008", "Hb", "OII_3727", "OII_3730", "NII_6585")


def _k19_z(coeffs, x, y):
    """The published K19 surface 12+log(O/H) = A + Bx + Cy + Dxy + Ex^2 + Fy^2 + Gxy^2 + Hyx^2 + Ix^3 + Jy^3."""
    a, b, c, d, e, f, g, h, i, j = coeffs
    return (a + b * x + c * y + d * x * y + e * x ** 2 + f * y ** 2 + g * x * y ** 2 + h * y * x ** 2
            + i * x ** 3 + j * y ** 3)


@pytest.mark.parametrize("logu", [-3.5, -2.5, -2.0])
def test_k19_generating_set_uses_lines_logu(logu):
    cfg = LinesConfig(lines=K19_LINES, generating_set=("S25_R3", "S25_O32", "K19_N2O2"), logu=logu)
    z = np.linspace(7.9, 8.5, 7)
    f = line_factors(cfg, z)
    x = np.log10(f["NII_6585"] / (f["OII_3727"] + f["OII_3730"]))
    coeffs = calibrations.get_diagnostic("K19_N2O2").coefficients
    np.testing.assert_allclose(_k19_z(coeffs, x, logu), z, atol=1e-9)


def test_lines_logu_is_checked():
    assert LinesConfig().logu == -2.5
    with pytest.raises(ConfigError, match="lines.logu"):
        LinesConfig(logu=-0.5)
    with pytest.raises(ConfigError, match="outside the log U range"):  # K19: -3.98 < log U < -1.98
        LinesConfig(lines=K19_LINES, generating_set=("S25_R3", "S25_O32", "K19_N2O2"), logu=-1.5)
