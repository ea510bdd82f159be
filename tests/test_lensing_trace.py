"""The lens is evaluated once at the spaxel centres (plan), and the scene, the noise stage and the truth reuse it.

What must hold: every product is byte-identical to evaluating the lens in
each stage, as before (the plan's GridTrace disabled -> the stages' own
evaluation paths); the trace covers the padded field; the arrays are
read-only, so no stage can change what another reads.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from mockzgrad.config import MockConfig
from mockzgrad.observation import ifu
from mockzgrad.physics import lensing as pl
from mockzgrad.source.scene import spaxel_centres

BASE = MockConfig(seed=11).replace(**{"instrument.psf.fwhm": 0.15, "instrument.pixel_scale": 0.05})

CASES = {
    # galaxy-scale SIE, the source over the lens centre: an Einstein ring, near-critical cells, critical curve
    "ring": {"lensing.kind": "sie", "lensing.theta_e": 0.6, "lensing.q": 0.8, "lensing.pa": 20.0,
             "lensing.z_lens": 0.5, "lensing.source_offset_x": 0.15, "lensing.oversample_near_critical": 3},
    # cluster-scale SIE off the field, the image of the centre at the field centre (mu 3), a given field
    "cluster": {"lensing.kind": "sie", "lensing.theta_e": 10.0, "lensing.q": 0.9, "lensing.z_lens": 0.5,
                "lensing.centre_x": 14.2, "lensing.image_at_centre": True, "instrument.fov": 3.0},
    # uniform convergence and shear, with the stellar continuum (traced by its own path) and per-spaxel scatter
    "constant": {"lensing.kind": "constant", "lensing.kappa": 0.3, "lensing.gamma1": 0.1, "lensing.gamma2": -0.05,
                 "lines.ratio_scatter": "per_spaxel"},
}


def _build(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ifu.build_cube(cfg)


def _same(a, b):
    assert a.data.tobytes() == b.data.tobytes()
    assert a.variance.tobytes() == b.variance.tobytes()
    assert a.noise_free.tobytes() == b.noise_free.tobytes()
    assert a.truth.keys() == b.truth.keys()
    for k in a.truth:
        va, vb = np.asarray(a.truth[k]), np.asarray(b.truth[k])
        if va.dtype.kind == "f":
            assert va.tobytes() == vb.tobytes(), k
        else:
            assert a.truth[k] == b.truth[k], k


@pytest.mark.parametrize("name", sorted(CASES))
def test_products_are_byte_identical_to_tracing_in_every_stage(name, monkeypatch):
    cfg = BASE.replace(**CASES[name])
    once = _build(cfg)
    assert _plan(cfg).trace is not None
    orig = ifu.plan_ifu
    monkeypatch.setattr(ifu, "plan_ifu", lambda c: dataclasses.replace(orig(c), trace=None))
    each = _build(cfg)
    _same(once, each)
    assert once.truth["mu"] != 1.0  # the lens acted


def _plan(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ifu.plan_ifu(cfg)


def test_trace_covers_the_padded_field_and_is_read_only():
    plan = _plan(BASE.replace(**CASES["ring"]))
    t, s = plan.trace, plan.sampling
    x, y = spaxel_centres(s)
    assert t.beta_x.shape == (s.n_ext, s.n_ext)
    bx, by = plan.lens.ray_shoot(x, y)
    k, g1, g2 = plan.lens.convergence_shear(x, y)
    for got, want in ((t.x, x), (t.y, y), (t.beta_x, bx), (t.beta_y, by), (t.kappa, k), (t.gamma1, g1),
                      (t.gamma2, g2)):
        assert np.array_equal(got, want)
        assert not got.flags.writeable
    with pytest.raises(ValueError):
        t.beta_x[0, 0] = 0.0
    field = t.crop(s.pad, s.n)
    assert field.x.shape == (s.n, s.n) and field.x[0, 0] == x[s.pad, s.pad]
    assert np.array_equal(field.mirrored().x[0], -field.x[0])  # columns reversed: x = +column


def test_unlensed_plan_has_no_trace():
    assert _plan(BASE).trace is None


def test_critical_pixels_from_a_trace_equals_the_lens():
    lens = pl.SIELens(1.0, 0.7, 30.0)
    t = np.linspace(-2, 2, 41)
    xx, yy = np.meshgrid(t, t)
    n = pl.critical_pixels(lens, xx, yy)
    assert n > 0
    assert pl.critical_pixels(lens, None, None, pl.trace_grid(lens, xx, yy)) == n
