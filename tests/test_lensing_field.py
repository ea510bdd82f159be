"""lensing.field: the automatic field of a cluster-scale lens with all images or the main one only.

Physics: a singular isothermal sphere of Einstein radius theta_E images a
source point at distance b < theta_E from its centre twice, at b + theta_E
(mu = |theta| / (|theta| - theta_E) > 0) and b - theta_E (mu < 0) along
the line through the centre (Schneider, Ehlers & Falco 1992). With
theta_E = 10", the lens 15" west of the field centre and the source 10"
west, the main image (mu = 3) lies at the field centre and the counter-image
(mu = 5 / (5 - 10) = -1) at 20" west: the field holding every image is
tens of arcsec wide, the main image's a few.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from mockzgrad.config import MockConfig
from mockzgrad.errors import ConfigError, FieldOfViewWarning
from mockzgrad.observation.ifu import build_cube, plan_ifu
from mockzgrad.physics import lensing as pl

THETA_E, CENTRE, SOURCE = 10.0, -15.0, -10.0  # arcsec: lens centre and source 15" and 10" west (x east)

#: a small, fast mock behind a cluster-scale SIS: coarse pixels, no noise
CLUSTER = MockConfig(seed=5).replace(**{
    "instrument.psf.fwhm": 0.2, "instrument.pixel_scale": 0.1, "noise.enabled": False,
    "lensing.kind": "sie", "lensing.theta_e": THETA_E, "lensing.q": 1.0, "lensing.z_lens": 0.5,
    "lensing.centre_x": CENTRE, "lensing.source_offset_x": SOURCE, "lensing.oversample_near_critical": 1})


def _plan(cfg):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        plan = plan_ifu(cfg)
    return plan, [str(w.message) for w in rec if issubclass(w.category, FieldOfViewWarning)]


def test_main_image_field_is_small_and_names_the_counter_image():
    """"main_image": the field spans the mu = 3 image only (< 1/3 of the all-images side) and one warning
    gives the counter-image's position (20" west) and mu (-1), as the SIS solution says."""
    main, msgs = _plan(CLUSTER.replace(**{"lensing.field": "main_image"}))
    assert float(main.lens.magnification(np.array(0.0), np.array(0.0))) == pytest.approx(3.0)
    assert len(msgs) == 1 and "lensing.field = 'main_image'" in msgs[0]
    (x, y, mu), = [tuple(map(float, m)) for m in re.findall(r"\(([-+][\d.]+), ([-+][\d.]+)\) arcsec, mu ([-+][\d.]+)",
                                                             msgs[0])]
    assert (x, y, mu) == (pytest.approx(CENTRE - (THETA_E - (SOURCE - CENTRE)), abs=0.01), pytest.approx(0.0, abs=0.01),
                          pytest.approx(-1.0, abs=0.01))
    every, hints = _plan(CLUSTER)  # default: every image, with a one-line hint naming the choice
    assert len(hints) == 1 and "lensing.field = 'main_image'" in hints[0]
    half = 0.5 * every.sampling.n * every.sampling.pixel_scale
    assert half > abs(CENTRE - 0.5 * THETA_E)  # reaches the counter-image
    assert 3 * main.sampling.n < every.sampling.n
    assert main.sampling.n * main.sampling.pixel_scale < abs(CENTRE - 0.5 * THETA_E)  # leaves it out


def test_main_image_field_holds_the_flux_fraction_of_that_image():
    """The main-image field holds fov_flux_fraction of the line flux of a field twice as wide (which still
    leaves the counter-image out), and the lensed flux there is mu ~ 3 times the intrinsic one at most."""
    cfg = CLUSTER.replace(**{"lensing.field": "main_image"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube = build_cube(cfg)
        fov = cube.truth["fov"]
        assert fov < abs(CENTRE - 0.5 * THETA_E)  # twice as wide is still short of the counter-image
        wide = build_cube(cfg.replace(**{"instrument.fov": 2.0 * fov}))
    assert cube.truth["n_images"] == 1 and wide.truth["n_images"] == 1
    assert float(cube.noise_free.sum()) / float(wide.noise_free.sum()) >= cfg.instrument.fov_flux_fraction


def test_one_image_gives_the_same_field_either_way():
    """A galaxy-scale SIE whose source covers its centre (an Einstein ring: one region of light): both rules
    give the same field and no warning about the field."""
    ring = MockConfig(seed=11).replace(**{
        "instrument.psf.fwhm": 0.01, "noise.enabled": False, "galaxy.r_eff": 1.0, "lensing.kind": "sie",
        "lensing.theta_e": 0.6, "lensing.q": 0.8, "lensing.source_offset_x": 0.3, "lensing.z_lens": 0.5})
    a, ma = _plan(ring)
    b, mb = _plan(ring.replace(**{"lensing.field": "main_image"}))
    assert a.sampling.n == b.sampling.n and not ma and not mb


def test_main_image_mask_keeps_the_region_nearest_the_centre():
    """Two lit blobs, 8-connected regions: the one holding the lit point nearest (0, 0) is kept, even when the
    other is larger; nothing lit gives an empty mask."""
    t = np.arange(-10, 11, dtype=float)
    xx, yy = np.meshgrid(t, t)
    near = np.hypot(xx - 2, yy) <= 2
    far = np.hypot(xx + 7, yy - 5) <= 3.5
    far |= (xx == -3) & (yy == -3)  # touches nothing: its own region, farther from (0, 0) than (0, 0) itself
    lit = near | far
    np.testing.assert_array_equal(pl.main_image_mask(lit, xx, yy), near)
    assert not pl.main_image_mask(np.zeros_like(lit), xx, yy).any()


def test_bad_field_is_one_line():
    with pytest.raises(ConfigError, match=r"lensing\.field.*largest") as exc:
        CLUSTER.replace(**{"lensing.field": "largest"})
    assert "\n" not in str(exc.value)


def test_lens_check_prints_the_field_rule_and_the_images_left_out(tmp_path, capsys):
    from mockzgrad.cli import main
    from mockzgrad.config import save_config

    save_config(CLUSTER.replace(**{"lensing.field": "main_image"}), tmp_path / "cluster.toml")
    assert main(["lens-check", str(tmp_path / "cluster.toml")]) == 0
    out = capsys.readouterr().out
    assert "lensing.field = 'main_image')" in out
    assert "1 image of the source centre left out of the field: (-20.00, +0.00) arcsec, mu -1.00" in out
    assert "1 image of the source centre in the field" in out
