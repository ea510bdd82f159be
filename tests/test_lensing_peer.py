"""Peer test (optional ``[peers]`` extra): SIE + external shear deflections equal lenstronomy's.

lenstronomy (Birrer & Amara 2018) is an independent implementation: its
``SIE`` has kappa = theta_E / (2 sqrt(q x'^2 + y'^2 / q)) (the intermediate-
axis convention of :class:`mockzgrad.physics.lensing.SIELens`) with the
major axis at angle ``phi`` from +x and ellipticity ``e1, e2 = (1 - q) /
(1 + q) (cos 2 phi, sin 2 phi)``; its ``SHEAR`` has potential
(gamma1 (x^2 - y^2) + 2 gamma2 x y) / 2, the convention of
:mod:`mockzgrad.physics.lensing`. Our angles are deg east of north with x
east, y north, so lenstronomy's phi = 90 deg - pa. Skipped when lenstronomy
is not importable.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mockzgrad.physics.lensing import CompositeLens, ExternalShear, SIELens

lenstronomy = pytest.importorskip("lenstronomy")
from lenstronomy.LensModel.lens_model import LensModel  # noqa: E402


def _peer_kwargs(theta_e, q, pa, cx, cy, gamma_ext, phi_ext):
    phi = math.radians(90.0 - pa)
    e = (1.0 - q) / (1.0 + q)
    sie = {"theta_E": theta_e, "e1": e * math.cos(2 * phi), "e2": e * math.sin(2 * phi),
           "center_x": cx, "center_y": cy}
    a = 2.0 * math.radians(90.0 - phi_ext)
    shear = {"gamma1": gamma_ext * math.cos(a), "gamma2": gamma_ext * math.sin(a), "ra_0": cx, "dec_0": cy}
    return [sie, shear]


@pytest.mark.parametrize("theta_e, q, pa, cx, cy, gamma_ext, phi_ext", [
    (1.2, 0.8, 20.0, 0.0, 0.0, 0.05, 70.0),
    (0.7, 0.45, 133.0, 0.3, -0.2, 0.12, 10.0),
    (2.5, 0.95, 0.0, -1.0, 0.5, 0.0, 0.0),
])
def test_sie_shear_deflection_equals_lenstronomy(theta_e, q, pa, cx, cy, gamma_ext, phi_ext):
    ours = CompositeLens((SIELens(theta_e, q, pa, cx, cy), ExternalShear(gamma_ext, phi_ext, cx, cy)))
    peer = LensModel(["SIE", "SHEAR"])
    kw = _peer_kwargs(theta_e, q, pa, cx, cy, gamma_ext, phi_ext)
    rng = np.random.default_rng(17)
    x = cx + rng.uniform(-3.0, 3.0, 400)
    y = cy + rng.uniform(-3.0, 3.0, 400)
    keep = np.hypot(x - cx, y - cy) > 1e-3  # away from the singular centre
    x, y = x[keep], y[keep]
    ax, ay = ours.alpha(x, y)
    px, py = peer.alpha(x, y, kw)
    scale = np.hypot(px, py)
    np.testing.assert_array_less(np.hypot(ax - px, ay - py), 1e-6 * scale)
    # the convergence and shear too: central differences of lenstronomy's deflection (its own hessian is a
    # one-sided difference, good to ~1e-5 only); step 1e-4 arcsec, truncation error ~ (h / r)^2 ~ 1e-8
    h = 1e-4
    axp, ayp = peer.alpha(x + h, y, kw)
    axm, aym = peer.alpha(x - h, y, kw)
    bxp, byp = peer.alpha(x, y + h, kw)
    bxm, bym = peer.alpha(x, y - h, kw)
    fxx, fyx, fxy, fyy = (axp - axm) / (2 * h), (ayp - aym) / (2 * h), (bxp - bxm) / (2 * h), (byp - bym) / (2 * h)
    k, g1, g2 = ours.convergence_shear(x, y)
    tol = 1e-6 * np.abs(k) + 1e-7
    np.testing.assert_array_less(np.abs(k - 0.5 * (fxx + fyy)), tol)
    np.testing.assert_array_less(np.abs(g1 - 0.5 * (fxx - fyy)), tol)
    np.testing.assert_array_less(np.abs(g2 - 0.5 * (fxy + fyx)), tol)
