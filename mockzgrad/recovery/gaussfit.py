"""The pixel-averaged elliptical 2-D Gaussian fit and 2x2 covariance algebra.

Used by :func:`mockzgrad.recovery.geometry.fit_geometry` (a line map) and
:func:`mockzgrad.recovery.psf_matching.psf_covariance` (a PSF kernel).
Conventions are those of :mod:`mockzgrad.recovery.geometry`: sky offsets
``x`` (east) and ``y`` (north) in arcsec; an axis at angle ``theta`` (rad,
east of north) points along ``(x, y) = (sin theta, cos theta)``;
covariance matrices are ``[[Cxx, Cxy], [Cxy, Cyy]]`` in arcsec^2 in these
axes. A Gaussian of covariance ``C`` has surface brightness proportional
to ``exp(-r^T C^-1 r / 2)``; convolving two Gaussians adds their covariance
matrices.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares

from ..errors import RecoveryError

__all__ = ["N_SUB", "fit_map", "covariance_from_axes", "axes_from_covariance", "sigma_along"]

#: Gauss-Legendre points per axis used to integrate the model over a pixel.
N_SUB = 3
_N_SUB = N_SUB


def fit_map(f, e, x1, y1, ps, good):
    """Fit ``A exp(-(x_a^2 / sigma_a^2 + y_b^2 / sigma_b^2) / 2)``, averaged over pixels, to a map.

    Parameters
    ----------
    f, e : numpy.ndarray, shape (ny, nx)
        Map and its 1-sigma error (same unit).
    x1, y1 : numpy.ndarray, shapes (nx,), (ny,)
        Pixel-centre offsets, arcsec east / north
        (:func:`mockzgrad.recovery.geometry.sky_offsets`).
    ps : float
        Pixel size, arcsec; > 0.
    good : numpy.ndarray of bool, shape (ny, nx)
        Pixels used (at least 7).

    Returns
    -------
    params : tuple
        ``(amp, x0, y0, sigma_a, sigma_b, theta)``: amplitude, centre
        (arcsec), major / minor sigmas (arcsec, ``sigma_a >= sigma_b``) and
        the major axis angle ``theta`` (rad, east of north, not reduced).
    cov : numpy.ndarray, shape (6, 6)
        Their covariance, ``(J^T J)^-1`` times the reduced chi^2 when that
        exceeds 1.
    """
    nx, ny = x1.size, y1.size
    xx, yy = np.meshgrid(x1, y1)
    xg, yg, fg, eg = xx[good], yy[good], f[good], e[good]
    span = ps * max(nx, ny)
    bounds = ([-np.inf, x1.min() - span, y1.min() - span, 1e-3 * ps, 1e-3 * ps, -np.inf],
              [np.inf, x1.max() + span, y1.max() + span, 10.0 * span, 10.0 * span, np.inf])
    return _fit_elliptical_gaussian(xg, yg, fg, eg, ps, _initial_guess(xg, yg, fg, eg, ps), bounds)


def _moments(xx, yy, w):
    """Centroid and second moments of positive weights; returns x0, y0, sig_a, sig_b, theta."""
    wsum = w.sum()
    x0 = float((w * xx).sum() / wsum)
    y0 = float((w * yy).sum() / wsum)
    dx, dy = xx - x0, yy - y0
    mxx = float((w * dx * dx).sum() / wsum)
    myy = float((w * dy * dy).sum() / wsum)
    mxy = float((w * dx * dy).sum() / wsum)
    vals, vecs = np.linalg.eigh(np.array([[mxx, mxy], [mxy, myy]]))
    ux, uy = vecs[:, 1]  # major axis (largest eigenvalue)
    theta = math.atan2(ux, uy)  # east of north
    return x0, y0, math.sqrt(max(vals[1], 0.0)), math.sqrt(max(vals[0], 0.0)), theta


def _initial_guess(xg, yg, fg, eg, ps) -> np.ndarray:
    """Start ``(amp, x0, y0, sigma_a, sigma_b, theta)`` from the moments of the bright, positive pixels."""
    w = np.where((fg > 0) & (fg >= 2.0 * eg), fg, 0.0)
    if np.count_nonzero(w) < 5:
        w = np.clip(fg, 0.0, None)
    if not w.sum() > 0:
        raise RecoveryError("fit_geometry: the line map has no positive flux")
    x0, y0, sa, sb, theta = _moments(xg, yg, w)
    sa = max(sa, 0.5 * ps)  # a point source still spans a pixel
    sb = max(sb, 0.5 * ps)
    amp = max(float(np.max(fg[w > 0])), float(w.sum()) * ps * ps / (2.0 * math.pi * sa * sb))
    return np.array([amp, x0, y0, sa, sb, theta])


def _pixel_subgrid(xg, yg, ps):
    """Gauss-Legendre points inside each pixel and their weights (summing to 1).

    The sub-grid is symmetric about each centre, so the sign of x is irrelevant.
    """
    t, wt = np.polynomial.legendre.leggauss(_N_SUB)
    sub = 0.5 * ps * t
    sx = np.repeat(xg[:, None], _N_SUB * _N_SUB, axis=1) + np.tile(sub, _N_SUB)[None, :]
    sy = np.repeat(yg[:, None], _N_SUB * _N_SUB, axis=1) + np.repeat(sub, _N_SUB)[None, :]
    sw = (0.25 * np.outer(wt, wt)).ravel()
    return sx, sy, sw


def _profile(p, sx, sy):
    """Major / minor offsets ``x_maj``, ``y_min`` (arcsec) of the sub-points and the unit Gaussian there."""
    _, xc, yc, s_a, s_b, th = p
    dx, dy = sx - xc, sy - yc
    st, ct = math.sin(th), math.cos(th)
    xm = dx * st + dy * ct
    ym = -dx * ct + dy * st
    return xm, ym, np.exp(-0.5 * ((xm / s_a) ** 2 + (ym / s_b) ** 2))


class _Memo:
    """The last :func:`_profile` evaluated, so that the Jacobian at an accepted point (where the
    residuals were just computed) reuses it instead of recomputing the exponentials."""

    def __init__(self):
        self.p, self.value = None, None

    def profile(self, p, sx, sy):
        if self.p is None or not np.array_equal(p, self.p):
            self.p, self.value = np.array(p, dtype=np.float64), _profile(p, sx, sy)
        return self.value


def _gaussian_residuals(p, sx, sy, sw, fg, eg, memo=None):
    """``(flux - model) / err`` of the pixel-averaged elliptical Gaussian ``p``."""
    g = (memo.profile(p, sx, sy) if memo is not None else _profile(p, sx, sy))[2]
    return (fg - p[0] * (g @ sw)) / eg


def _gaussian_jacobian(p, sx, sy, sw, fg, eg, memo=None):
    """Analytic Jacobian of :func:`_gaussian_residuals` with respect to ``p``, shape (n_pixels, 6).

    With ``G = exp(-Q / 2)``, ``Q = (x_maj / s_a)^2 + (y_min / s_b)^2`` and
    ``d x_maj / d theta = -y_min``, ``d y_min / d theta = x_maj``: the model
    derivatives are ``a <G dQ'> / (-2)`` pixel-averaged, divided by ``-err``.
    """
    a, _, _, s_a, s_b, th = p
    st, ct = math.sin(th), math.cos(th)
    xm, ym, g = memo.profile(p, sx, sy) if memo is not None else _profile(p, sx, sy)
    ua, ub = xm / s_a**2, ym / s_b**2
    ga, gb = g * ua, g * ub
    cols = (g,
            a * (ga * st - gb * ct),
            a * (ga * ct + gb * st),
            a * ga * (xm / s_a),
            a * gb * (ym / s_b),
            a * (ga * ym - gb * xm))
    return np.stack([c @ sw for c in cols], axis=1) / -eg[:, None]


#: Relative tolerances of the geometry fit: the parameters carry ~1e-3 relative errors or more
#: at any usable S/N, so steps of 1e-10 are far below them (results move < 1e-6 sigma).
_FIT_TOL = 1e-10


def _fit_elliptical_gaussian(xg, yg, fg, eg, ps, p0, bounds):
    """Least-squares fit (analytic Jacobian); returns the parameters (axis a the major one) and their covariance.

    The covariance is ``(J^T J)^-1`` times the reduced chi^2 when that exceeds 1.
    """
    sx, sy, sw = _pixel_subgrid(xg, yg, ps)
    try:
        sol = least_squares(_gaussian_residuals, p0, jac=_gaussian_jacobian, bounds=bounds, x_scale="jac",
                            method="trf", xtol=_FIT_TOL, ftol=_FIT_TOL, gtol=_FIT_TOL, max_nfev=2000,
                            args=(sx, sy, sw, fg, eg, _Memo()))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise RecoveryError(f"fit_geometry: 2D Gaussian fit failed ({exc})") from None
    if not sol.success or not np.all(np.isfinite(sol.x)):
        raise RecoveryError(f"fit_geometry: 2D Gaussian fit did not converge ({sol.message})")
    amp, xc, yc, sa, sb, theta = sol.x
    jac = sol.jac.copy()
    if sb > sa:  # make axis a the major one
        sa, sb = sb, sa
        theta += 0.5 * math.pi
        jac[:, [3, 4]] = jac[:, [4, 3]]
    dof = max(fg.size - 6, 1)
    red = float(2.0 * sol.cost / dof)
    norm = np.linalg.norm(jac, axis=0)
    norm[norm == 0] = 1.0
    js = jac / norm  # equilibrate the columns (amplitude and lengths differ by many decades)
    cov = np.linalg.pinv(js.T @ js) / np.outer(norm, norm) * max(red, 1.0)
    return (amp, xc, yc, sa, sb, theta), cov


def covariance_from_axes(sigma_a: float, sigma_b: float, theta: float) -> np.ndarray:
    """Covariance (arcsec^2, x east / y north) of a Gaussian with sigmas along and across angle ``theta``.

    Parameters
    ----------
    sigma_a, sigma_b : float
        Sigmas along the axis at ``theta`` and across it, arcsec; >= 0.
    theta : float
        Axis angle, rad east of north.
    """
    u = np.array([math.sin(theta), math.cos(theta)])
    v = np.array([-math.cos(theta), math.sin(theta)])
    return sigma_a**2 * np.outer(u, u) + sigma_b**2 * np.outer(v, v)


def axes_from_covariance(cov) -> tuple[float, float, float]:
    """Eigen-decomposition of a symmetric 2x2 covariance (arcsec^2, x east / y north).

    Returns
    -------
    var_major, var_minor : float
        Largest and smallest eigenvalues, arcsec^2 (the smallest may be
        <= 0 when ``cov`` is not positive definite).
    theta : float
        Angle of the eigenvector of ``var_major``, rad east of north, in
        [0, pi).
    """
    c = np.asarray(cov, dtype=np.float64)
    c = 0.5 * (c + c.T)
    vals, vecs = np.linalg.eigh(c)
    ux, uy = vecs[:, 1]
    theta = math.atan2(ux, uy) % math.pi
    return float(vals[1]), float(vals[0]), theta


def sigma_along(cov, theta: float) -> float:
    """Sigma of the profile of a Gaussian of covariance ``cov`` along the line at angle ``theta``, arcsec.

    The cut through the centre, ``exp(-t^2 (u^T C^-1 u) / 2)`` with
    ``u = (sin theta, cos theta)``: ``sigma = (u^T C^-1 u)^(-1/2)``. For an
    ellipse of sigmas ``sa``, ``sb`` whose major axis makes the angle ``d``
    with ``u``: ``1 / sqrt(cos^2 d / sa^2 + sin^2 d / sb^2)``.

    Parameters
    ----------
    cov : array_like, shape (2, 2)
        Positive definite covariance, arcsec^2.
    theta : float
        Direction, rad east of north.
    """
    u = np.array([math.sin(theta), math.cos(theta)])
    return float(1.0 / math.sqrt(u @ np.linalg.solve(np.asarray(cov, dtype=np.float64), u)))
