"""The staged recovery: the shared back end on hand-made fluxes, the registries
of binning schemes, metallicity methods and front ends, and the stage records.

Back-end expectations are independent of the recovery code: line fluxes are
built forward from the calibrations (:mod:`mockzgrad.physics.calibrations`)
at a known linear Z(r) and reddened with the attenuation curves of
:mod:`mockzgrad.physics.dust`; the back end must invert them.
"""

import types

import numpy as np
import pytest

from mockzgrad import config
from mockzgrad.config import load_recipe
from mockzgrad.errors import ConfigError, DataError, RecoveryError
from mockzgrad.physics.calibrations import get_diagnostic
from mockzgrad.physics.dust import DEFAULT_R_V, k_lambda
from mockzgrad.physics.lines import BALMER_RATIOS, LINES
from mockzgrad.recovery import binning
from mockzgrad.recovery.backend import (
    METALLICITY_METHODS,
    LeftOut,
    measure_gradient,
    metallicity_method,
    split_diagnostics,
)
from mockzgrad.recovery.fluxes import BinFluxes
from mockzgrad.recovery.frontend import FRONT_ENDS, front_end
from mockzgrad.recovery.geometry import Geometry, sky_offsets
from mockzgrad.recovery.pipeline import recover

GRAD, Z0 = -0.08, 8.5  # dex/kpc, dex: Z stays in 8.18-8.46, inside S25 R3/O32 (7.3-8.6), above the R3 turnover
RADII = np.linspace(0.5, 4.0, 8)  # kpc
SNR = 1000.0


def _fluxes(radius, *, a_v=0.0, balmer=False, snr=SNR):
    """Noise-free fluxes at Z(r) = Z0 + GRAD r from S25 R3 ([OIII]/Hb) and O32 ([OIII]/[OII]).

    With ``balmer``, Halpha at Case B; every line is attenuated by ``a_v``
    (mag, Calzetti et al. 2000). Errors: flux / ``snr``, independent.
    """
    z = Z0 + GRAD * np.asarray(radius)
    hb = 1e-17 * np.exp(-np.asarray(radius) / 2.0)
    o3 = hb * 10.0 ** get_diagnostic("S25_R3").log_ratio(z)
    o2 = o3 / 10.0 ** get_diagnostic("S25_O32").log_ratio(z)
    lines = {"OII_3727": o2 / 2.3, "OII_3730": o2 * 1.3 / 2.3, "Hb": hb, "OIII_5008": o3}
    if balmer:
        lines["Ha"] = hb * BALMER_RATIOS["Ha"] / BALMER_RATIOS["Hb"]
    names = [n for n in LINES if n in lines]  # catalogue order, as the front end gives them
    k = k_lambda(np.array([LINES[n].wavelength for n in names]), "calzetti2000")
    flux = np.column_stack([lines[n] for n in names]) * 10.0 ** (-0.4 * a_v * k / DEFAULT_R_V["calzetti2000"])
    return BinFluxes.from_errors(names, flux, flux / snr)


RECIPE = load_recipe("lee2026").replace(**{
    "metallicity.diagnostics": ["S25_R3", "S25_O32"], "metallicity.also": ["II", "flux"]})


class TestBackEnd:
    def test_method_two_over_one_diagnostic_carries_its_error(self):
        # no spread over a single diagnostic: Method II's error is that diagnostic's own fit error
        recipe = RECIPE.replace(**{"metallicity.diagnostics": ["S25_O32"], "metallicity.also": ["II"]})
        res = measure_gradient(_fluxes(RADII, snr=30.0), RADII, recipe, rng=np.random.default_rng(0))
        one, median = res.gradient("II:S25_O32").to_dict(), res.gradient("II").to_dict()
        assert one["grad_z_err"] > 0
        assert median["grad_z"] == one["grad_z"]
        assert median["grad_z_err"] == pytest.approx(one["grad_z_err"], rel=1e-12)
        assert median["grad_z_hi"] - median["grad_z_lo"] == pytest.approx(2 * one["grad_z_err"], rel=1e-9)

    def test_known_linear_gradient_is_recovered_by_every_method(self):
        res = measure_gradient(_fluxes(RADII), RADII, RECIPE, rng=np.random.default_rng(0))
        assert [g.label for g in res.gradients] == ["I", "II:S25_R3", "II:S25_O32", "II", "flux"]
        assert res.primary.label == "I"
        for label in ("I", "II:S25_R3", "II:S25_O32", "II", "flux"):
            rec = res.gradient(label).to_dict()
            assert rec["grad_z"] == pytest.approx(GRAD, abs=1e-3), label
            assert rec["z0"] == pytest.approx(Z0, abs=3e-3), label
        for mets in res.metallicities:
            assert mets.valid.all(), mets.label
            np.testing.assert_allclose(mets.z, Z0 + GRAD * RADII, atol=1.5e-3, err_msg=mets.label)
        assert res.dust.a_v is None  # the recipe does not correct for dust

    def test_zero_gradient_in_zero_out(self):
        flat = _fluxes(np.zeros(6))  # every bin at Z0, placed at different radii
        res = measure_gradient(flat, np.linspace(0.5, 3.0, 6), RECIPE.replace(**{"metallicity.also": []}))
        assert res.primary.fit.grad_z == pytest.approx(0.0, abs=1e-4)

    def test_dust_step_removes_a_known_attenuation(self):
        recipe = RECIPE.replace(**{"dust.correct": True, "metallicity.also": []})
        red = _fluxes(RADII, a_v=1.2, balmer=True)
        res = measure_gradient(red, RADII, recipe, integrated=_fluxes([2.0], a_v=1.2, balmer=True))
        np.testing.assert_allclose(res.dust.a_v, 1.2, rtol=1e-9)
        assert res.dust.a_v_source == ("bin",) * RADII.size and not res.dust.excluded
        np.testing.assert_allclose(res.fluxes.flux, _fluxes(RADII, balmer=True).flux, rtol=1e-9)
        assert res.primary.fit.grad_z == pytest.approx(GRAD, abs=1e-3)

    def test_integrated_a_v_fills_bins_without_their_own(self):
        recipe = RECIPE.replace(**{"dust.correct": True, "metallicity.also": [], "dust.snr_min": 500.0})
        res = measure_gradient(_fluxes(RADII, a_v=0.7, balmer=True, snr=100.0), RADII, recipe,
                               integrated=_fluxes([2.0], a_v=0.7, balmer=True, snr=1e4))
        assert res.dust.a_v_source == ("global",) * RADII.size
        np.testing.assert_allclose(res.dust.a_v, 0.7, rtol=1e-9)

    def test_dust_without_halpha_says_so_and_goes_on(self):
        recipe = RECIPE.replace(**{"dust.correct": True, "metallicity.also": []})
        res = measure_gradient(_fluxes(RADII), RADII, recipe)
        assert [e.step for e in res.dust.excluded] == ["dust"] and "Ha not covered" in res.dust.excluded[0].reason
        assert res.dust.a_v_source == ("none",) * RADII.size and not res.dust.a_v.any()
        assert res.primary.fit.grad_z == pytest.approx(GRAD, abs=1e-3)

    def test_bin_cuts_leave_out_inner_bins_with_a_reason(self):
        recipe = RECIPE.replace(**{"metallicity.also": [], "gradient.r_min_kpc": 1.0})
        res = measure_gradient(_fluxes(RADII), RADII, recipe)
        mets = res.metallicities[0]
        assert list(mets.valid) == list(RADII >= 1.0)
        assert mets.record(0) == {"z": None, "reason": "radius 0.50 kpc < gradient.r_min_kpc = 1.0"}
        assert res.primary.fit.n_bins == int((RADII >= 1.0).sum())

    def test_too_few_bins_is_a_record_not_an_error(self):
        res = measure_gradient(_fluxes(RADII[:2]), RADII[:2], RECIPE.replace(**{"metallicity.also": ["II"]}))
        assert res.gradient("I").fit is not None  # two bins: a two-point slope
        rec = res.gradient("II").to_dict()
        assert rec["grad_z"] is None and ">= 3 bins" in rec["reason"]

    def test_inputs_are_checked(self):
        with pytest.raises(DataError, match="radius_kpc"):
            measure_gradient(_fluxes(RADII), RADII[:-1], RECIPE)
        with pytest.raises(RecoveryError, match="none of the recipe's diagnostics"):
            measure_gradient(_fluxes(RADII), RADII, RECIPE.replace(**{"metallicity.diagnostics": ["S25_N2"]}))
        with pytest.raises(DataError, match="BinFluxes"):
            measure_gradient({"Hb": 1.0}, RADII, RECIPE)

    def test_split_diagnostics_names_the_missing_lines(self):
        usable, missing = split_diagnostics(["S25_R3", "S25_N2"], ["Hb", "OIII_5008", "Ha"])
        assert [d.key for d in usable] == ["S25_R3"]
        assert [(d.key, m) for d, m in missing] == [("S25_N2", ["NII_6585"])]


class TestRegistries:
    def test_registries_hold_exactly_the_recipe_names(self):
        assert set(binning.BINNING_SCHEMES) == set(config.BINNING_SCHEMES) == set(binning.BINNING_KINDS)
        assert set(METALLICITY_METHODS) == set(config.METHODS)
        assert "ifu" in FRONT_ENDS

    @pytest.mark.parametrize("lookup, field, name, registry", [
        (binning.binning_scheme, "binning.scheme", "rings", binning.BINNING_SCHEMES),
        (metallicity_method, "metallicity.method", "III", METALLICITY_METHODS),
        (front_end, "product.kind", "grism", FRONT_ENDS),
    ])
    def test_unknown_name_is_a_one_line_error_listing_the_names(self, lookup, field, name, registry):
        with pytest.raises(ConfigError) as err:
            lookup(name)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{field} = {name!r}")
        assert all(repr(k) in msg for k in registry)

    def test_recover_refuses_a_product_kind_without_front_end(self):
        with pytest.raises(ConfigError, match="product.kind = 'grism'"):
            recover(types.SimpleNamespace(kind="grism"), RECIPE)

    @pytest.mark.parametrize("scheme", sorted(binning.BINNING_SCHEMES))
    def test_each_scheme_gives_bins_of_its_kind(self, scheme):
        n, pix, scale = 25, 0.05, 6.0
        x, y = sky_offsets(n, n, pix)
        xx, yy = np.meshgrid(x, y)
        gate = 10.0 * np.exp(-0.5 * (xx**2 + yy**2) / 0.2**2)
        recipe = config.BinningRecipe(scheme=scheme, target_snr=20.0, snr_min=3.0, r_min_kpc=0.0)
        bins = binning.binning_scheme(scheme)(xx, yy, Geometry.given(pa=0.0, axis_ratio=1.0), scale, recipe,
                                              psf_fwhm=0.2, gate_map=gate, gate_err=np.ones_like(gate))
        assert bins.kind == scheme and bins.n_bins > 0
        if scheme == "annuli":  # width = PSF HWHM along the semi-major axis
            np.testing.assert_allclose(np.diff(bins.inner), 0.5 * 0.2 * scale)


def test_left_out_records_keep_their_json_shape():
    assert LeftOut("r", bin=3).to_dict() == {"bin": 3, "reason": "r"}
    assert list(LeftOut("r", diagnostic="S25_N2").to_dict()) == ["bin", "diagnostic", "reason"]
    assert list(LeftOut("r", step="dust").to_dict()) == ["bin", "step", "reason"]
