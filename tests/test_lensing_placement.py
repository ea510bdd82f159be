"""lensing.image_at_centre: the galaxy placed where the lens maps the field centre.

Physics: a singular isothermal sphere of Einstein radius theta_E centred at
distance d > theta_E from the field centre traces the field centre to a
source point at d - theta_E from the lens, on the field's side; the image
there has mu = d / (d - theta_E) (mu_t = mu, mu_r = 1) (Schneider, Ehlers &
Falco 1992). With theta_E = 10" and d = 15" (lens east): the source centre
lies 10" east of the field centre and mu = 3, independent of the code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mockzgrad.config import MockConfig
from mockzgrad.errors import ConfigError
from mockzgrad.observation.ifu import build_cube, plan_ifu

THETA_E, D = 10.0, 15.0

PLACED = MockConfig(seed=5).replace(**{
    "instrument.psf.fwhm": 0.2, "instrument.pixel_scale": 0.1, "noise.enabled": False,
    "lensing.kind": "sie", "lensing.theta_e": THETA_E, "lensing.q": 1.0, "lensing.z_lens": 0.5,
    "lensing.centre_x": D, "lensing.image_at_centre": True, "lensing.field": "main_image",
    "lensing.oversample_near_critical": 1})


def _quiet(f, *a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*a)


def test_source_sits_where_the_field_centre_traces_to():
    """Source centre at D - theta_E from the lens on the field's side (10" east), as the SIS solution says;
    source offsets add to it."""
    plan = _quiet(plan_ifu, PLACED)
    assert (plan.model.x_offset, plan.model.y_offset) == (pytest.approx(D - (D - THETA_E)), pytest.approx(0.0))
    moved = _quiet(plan_ifu, PLACED.replace(**{"lensing.source_offset_x": -0.3, "lensing.source_offset_y": 0.2}))
    assert (moved.model.x_offset, moved.model.y_offset) == (pytest.approx(THETA_E - 0.3), pytest.approx(0.2))


def test_image_of_the_centre_is_at_the_field_centre_with_the_sis_magnification():
    """The truth finds the image of the galaxy centre at the field centre with mu = d / (d - theta_E) = 3,
    mu_r = 1; the lensed line flux is ~3x the intrinsic (an extended source: within 3 %), and the cube's
    light-weighted centre is within one spaxel of the field centre."""
    cube = _quiet(build_cube, PLACED)
    t = cube.truth
    assert (t["lens_image_x"], t["lens_image_y"]) == (pytest.approx(0.0, abs=1e-6), pytest.approx(0.0, abs=1e-6))
    assert t["mu"] == pytest.approx(D / (D - THETA_E), rel=1e-6)
    assert t["mu_r"] == pytest.approx(1.0, rel=1e-6)
    assert t["flux_magnification"] == pytest.approx(3.0, rel=0.03)
    img = cube.noise_free.sum(axis=0)
    n = img.shape[0]
    rows, cols = np.indices(img.shape)
    c = (n - 1) / 2.0
    assert abs((rows * img).sum() / img.sum() - c) < 1.0 and abs((cols * img).sum() / img.sum() - c) < 1.0


def test_default_placement_is_the_offset_alone():
    """image_at_centre = false (default): the galaxy sits at the source offset (here 0), unchanged."""
    plan = _quiet(plan_ifu, PLACED.replace(**{"lensing.image_at_centre": False, "lensing.field": "all_images",
                                              "lensing.centre_x": 0.3, "lensing.theta_e": 0.5}))
    assert (plan.model.x_offset, plan.model.y_offset) == (0.0, 0.0)


def test_bad_image_at_centre_is_one_line():
    with pytest.raises(ConfigError) as e:
        PLACED.replace(**{"lensing.image_at_centre": "yes"})
    msg = str(e.value)
    assert "lensing.image_at_centre" in msg and "\n" not in msg
