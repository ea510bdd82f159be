"""Lensing in every observation mode: slit stepping and grism see the lensed scene, record the lens truth.

Physics: a constant-convergence lens without shear maps the source onto
the image plane scaled by 1 / (1 - kappa) about its centre; surface
brightness is conserved, so the flux grows by 1 / (1 - kappa)^2. A lens
of kind "none" or kappa = gamma = 0 leaves every pixel unchanged.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mockzgrad.config import MockConfig, SlitstepConfig
from mockzgrad.observation.grism.forward import build_grism
from mockzgrad.observation.slitstep import build_slitstep_cube
from mockzgrad.physics.lensing import ConstantLens, CriticalCurveWarning
from mockzgrad.products.lens import source_radius_map
from mockzgrad.source.galaxy import resolve_galaxy

KAPPA = 0.3
LENS_KEYS = ("mu", "mu_t", "mu_r", "pa_t", "pa_r", "x_resolution_source", "x_resolution_t", "x_resolution_r",
             "flux_magnification", "n_images", "critical_pixels", "source_radius_map_kpc")


def _slitstep(**over) -> MockConfig:
    base = {"galaxy.redshift": 1.0, "galaxy.r_eff": 1.0, "galaxy.inclination": 40.0,
            "galaxy.metallicity.grad_z": -0.05, "instrument.kind": "slitstep", "instrument.psf.fwhm": 0.05,
            "lines.reference_line": "Ha", "lines.lines": ["NII_6550", "Ha", "NII_6585"],
            "lines.generating_set": ["C20_N2"], "lines.reference_flux": 1e-16,
            "noise.snr_line": "Ha", "noise.snr": 20.0, "noise.enabled": False}
    base.update(over)
    cfg = MockConfig().replace(**base)
    from dataclasses import replace
    return replace(cfg, instrument=replace(cfg.instrument, slitstep=SlitstepConfig()))


def _grism(**over) -> MockConfig:
    exposures = [{"grism": "GR150C", "filter": "F200W", "pa": 0.0, "exptime": 3000.0},
                 {"grism": "GR150R", "filter": "F200W", "pa": 0.0, "exptime": 2000.0}]
    base = {"seed": 11, "galaxy.redshift": 3.06, "galaxy.r_eff": 1.2, "galaxy.inclination": 40.0,
            "lines.reference_line": "OIII_5008", "lines.lines": ["Hb", "OIII_4960", "OIII_5008"],
            "lines.generating_set": ["B18_R3"], "instrument.kind": "grism", "instrument.pixel_scale": 0.06,
            "instrument.fov": 2.4, "instrument.oversample": 2, "instrument.psf.fwhm": 0.12,
            "instrument.grism": {"preset": "niriss_gr150", "exposures": exposures}, "noise.snr": 5.0}
    base.update(over)
    return MockConfig().replace(**base)


@pytest.fixture(scope="module")
def slit_pair():
    cfg = _slitstep()
    return cfg, build_slitstep_cube(cfg), build_slitstep_cube(cfg.replace(**{"lensing.kind": "constant",
                                                                              "lensing.kappa": KAPPA}))


@pytest.fixture(scope="module")
def grism_pair():
    cfg = _grism()
    return cfg, build_grism(cfg), build_grism(cfg.replace(**{"lensing.kind": "constant", "lensing.kappa": KAPPA}))


# ---------------------------------------------------------------- slit stepping
def test_slitstep_kind_none_and_zero_lens_are_byte_identical(slit_pair):
    cfg, plain, _ = slit_pair
    none = build_slitstep_cube(cfg.replace(**{"lensing.kind": "none"}))
    zero = build_slitstep_cube(cfg.replace(**{"lensing.kind": "constant"}))  # kappa = gamma = 0
    assert none.data.tobytes() == plain.data.tobytes() and none.truth == plain.truth
    assert zero.data.tobytes() == plain.data.tobytes()
    assert zero.variance.tobytes() == plain.variance.tobytes()
    assert zero.truth["mu"] == 1.0 and zero.truth["flux_magnification"] == pytest.approx(1.0, abs=1e-3)


def test_slitstep_constant_kappa_scales_the_rendered_flux(slit_pair):
    _, plain, lensed = slit_pair
    assert not set(LENS_KEYS) & set(plain.truth)
    assert set(LENS_KEYS) <= set(lensed.truth)
    want = 1.0 / (1.0 - KAPPA) ** 2
    assert lensed.truth["mu"] == pytest.approx(want, rel=1e-12)
    # the rendered scene holds the whole lensed flux: exact to the rendering's 0.5 %
    assert lensed.truth["flux_magnification"] == pytest.approx(want, rel=5e-3)
    # the reconstructed cube: slit losses and the median combination depend on the image size,
    # so its total follows the magnification only to the few-per-cent level
    ratio = np.nansum(lensed.noise_free) / np.nansum(plain.noise_free)
    assert ratio == pytest.approx(want, rel=0.03)
    # effective x in the source plane: x_resolution x sqrt(mu) (isotropic stretch 1 / (1 - kappa))
    assert lensed.truth["x_resolution_source"] == pytest.approx(plain.truth["x_resolution"] / (1.0 - KAPPA),
                                                                rel=1e-9)


def test_slitstep_radius_map_is_the_source_plane_radius(slit_pair):
    cfg, plain, lensed = slit_pair
    r = np.asarray(lensed.truth["source_radius_map_kpc"])
    assert r.shape == lensed.data.shape[1:]
    model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    ny, nx = r.shape
    unlensed = source_radius_map(model, ConstantLens(0.0, 0.0, 0.0), (ny, nx), lensed.pixel_scale)
    # constant kappa: beta = (1 - kappa) theta, and the disk radius is linear in the offsets
    np.testing.assert_allclose(r, (1.0 - KAPPA) * unlensed, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- grism
def test_grism_kind_none_is_byte_identical(grism_pair):
    cfg, plain, _ = grism_pair
    none = build_grism(cfg.replace(**{"lensing.kind": "none"}))
    for a, b in zip(none.exposures, plain.exposures):
        assert a.sci.tobytes() == b.sci.tobytes() and a.var.tobytes() == b.var.tobytes()
    assert none.truth == plain.truth


def test_grism_constant_kappa_scales_exposure_flux(grism_pair):
    _, plain, lensed = grism_pair
    want = 1.0 / (1.0 - KAPPA) ** 2
    assert set(LENS_KEYS) <= set(lensed.truth) and not set(LENS_KEYS) & set(plain.truth)
    for a, b in zip(lensed.exposures, plain.exposures):
        assert float(a.noise_free.sum()) / float(b.noise_free.sum()) == pytest.approx(want, rel=5e-3)
    assert lensed.truth["flux_magnification"] == pytest.approx(want, rel=5e-3)
    r = np.asarray(lensed.truth["source_radius_map_kpc"])
    assert r.shape == next(iter(lensed.direct.values())).shape


# ---------------------------------------------------------------- under-sampling near critical curves
def test_needed_oversample_resolves_the_distance_to_an_sis_critical_curve():
    from mockzgrad.physics.lensing import SIELens
    from mockzgrad.source.scene import needed_oversample

    theta_e, ps = 1.0, 0.05
    lens = SIELens(theta_e, 1.0, 0.0)
    theta = theta_e + np.array([0.002, 0.01, 0.05, 0.3])
    # SIS: det A = 1 - theta_E / theta, so |det A| / |grad det A| = theta (theta - theta_E) / theta_E
    d = theta * (theta - theta_e) / theta_e
    got = needed_oversample(lens, theta, np.zeros_like(theta), ps)
    np.testing.assert_array_equal(got, np.maximum(np.ceil(1.5 * ps / d), 1.0))


def _sie_cfg(os_crit, r_eff=2.0):
    return MockConfig().replace(**{"galaxy.redshift": 1.0, "galaxy.r_eff": r_eff, "instrument.fov": 4.0,
                                   "instrument.pixel_scale": 0.1, "noise.snr": None, "noise.sigma": 1e-20,
                                   "noise.enabled": False, "lensing.kind": "sie",
                                   "lensing.theta_e": 1.0, "lensing.q": 0.8, "lensing.source_offset_x": 0.05,
                                   "lensing.oversample_near_critical": os_crit})


def _undersampled(cfg, cube=False):
    from mockzgrad.observation.ifu import build_cube

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        mock = build_cube(cfg)
    msgs = [str(w.message) for w in rec if issubclass(w.category, CriticalCurveWarning) and "|mu| > 100" in
            str(w.message)]
    return (msgs, mock.noise_free.sum(axis=0)) if cube else msgs


def test_undersampled_critical_pixels_warn_with_the_needed_oversample():
    """A compact source (r_eff 0.1 kpc, 1/8 of a spaxel) on the caustic: one sub-pixel per spaxel leaves the
    spaxels by the critical curve wrong by several % of the peak; the warning names an oversample at which
    every spaxel is within 0.5 % of the peak of the 64 x 64 sub-pixel rendering (checked against it, not
    against the warning's own doubling), and there no warning remains."""
    from mockzgrad.source.scene import UNDERSAMPLED_TOL

    msgs, img1 = _undersampled(_sie_cfg(1, r_eff=0.1), cube=True)
    _, ref = _undersampled(_sie_cfg(64, r_eff=0.1), cube=True)
    assert np.abs(img1 - ref).max() > 2 * UNDERSAMPLED_TOL * ref.max()  # the case needs more sub-pixels
    assert len(msgs) == 1 and "set lensing.oversample_near_critical >= " in msgs[0]
    assert int(msgs[0].split()[0]) >= 1
    need = int(msgs[0].split(">= ")[1].split()[0])
    assert 2 <= need <= 64
    later, img = _undersampled(_sie_cfg(need, r_eff=0.1), cube=True)
    assert not later
    assert np.abs(img - ref).max() <= UNDERSAMPLED_TOL * ref.max()


def test_extended_source_on_a_caustic_is_converged_without_extra_sub_pixels():
    """Surface brightness is conserved, so an extended source's image (r_eff 2 kpc, 2.5 spaxels) is smooth
    across the fold: no warning at one near-critical sub-pixel per axis, and rightly so (within 0.5 % of the
    peak of the 64 x 64 rendering); no spaxel with |mu| > 100 (constant kappa): no warning either."""
    from mockzgrad.source.scene import UNDERSAMPLED_TOL

    msgs, img = _undersampled(_sie_cfg(1), cube=True)
    _, ref = _undersampled(_sie_cfg(64), cube=True)
    assert not msgs
    assert np.abs(img - ref).max() <= UNDERSAMPLED_TOL * ref.max()
    assert not _undersampled(_sie_cfg(1).replace(**{"lensing.kind": "constant", "lensing.kappa": KAPPA}))
