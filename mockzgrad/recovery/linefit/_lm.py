"""Vectorised Levenberg-Marquardt refinement of ``(v, sigma)`` for many spectra.

Each spectrum's profile chi^2 (linear parameters solved exactly, see
:mod:`._design`) is minimised over ``(v, sigma)`` within its bounds. The
curvature matrix is the reduced Gauss-Newton matrix with a BFGS secant
correction, and each step is followed by a one-point parabolic line search:
at low S/N the Gauss-Newton matrix alone misjudges the curvature and
converges slowly. Bounds are handled by an active set (a parameter on a
bound whose descent direction points outwards is held). Spectra that have
converged drop out of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._stacked import evaluate_stacked as evaluate

__all__ = ["refine"]

#: Convergence: the Newton step on (v, sigma) would lower chi^2 by less than
#: this (times the reduced chi^2 when above one), i.e. (v, sigma) are within
#: ~1e-5 of their errors of the minimum.
_CHI2_TOL = 1e-9


@dataclass(eq=False)
class _State:
    """Per-spectrum iterate, updated in place (arrays over the spectra)."""

    theta: np.ndarray      # (S, 2) current (v, sigma), km/s
    chi2: np.ndarray       # (S,) profile chi^2 at theta
    g: np.ndarray          # (S, 2) J_n^T W r at theta
    h: np.ndarray          # (S, 2, 2) curvature matrix
    lam: np.ndarray        # (S,) Levenberg-Marquardt damping
    todo: np.ndarray       # (S,) bool, still iterating
    converged: np.ndarray  # (S,) bool
    lo: np.ndarray         # (S, 2) lower bounds of (v, sigma)
    hi: np.ndarray         # (S, 2) upper bounds


def refine(setup, y, w, active, v, s, vb, sb, max_iter):
    """Levenberg-Marquardt on ``(v, sigma)`` from the start point ``(v, s)``.

    Parameters
    ----------
    setup : FitSetup
    y, w : numpy.ndarray, shape (S, C)
        Data and weights on the window channels.
    active : numpy.ndarray of bool, shape (S, p)
        Linear parameters each spectrum constrains.
    v, s : numpy.ndarray, shape (S,)
        Start point, km/s, inside the bounds.
    vb : (float, float)
        Velocity bounds, km/s.
    sb : numpy.ndarray, shape (S, 2)
        ``sigma`` bounds, km/s.
    max_iter : int
        Most iterations.

    Returns
    -------
    theta : numpy.ndarray, shape (S, 2)
        Final ``(v, sigma)``, km/s.
    converged : numpy.ndarray of bool, shape (S,)
    """
    lo = np.stack([np.full(v.size, vb[0]), sb[:, 0]], axis=1)
    hi = np.stack([np.full(v.size, vb[1]), sb[:, 1]], axis=1)
    theta = np.stack([v, s], axis=1)
    chi2, _, g, h, _ = evaluate(setup, theta[:, 0], theta[:, 1], y, w, active)
    st = _State(theta=theta, chi2=chi2, g=g, h=h, lam=np.full(v.size, 1e-3),
                todo=np.ones(v.size, dtype=bool), converged=np.zeros(v.size, dtype=bool), lo=lo, hi=hi)
    for _ in range(max_iter):
        i, gi, hk = _newton_system(st, w)
        if i.size == 0:
            break
        trial, c_t, g_t, h_t = _trial(setup, st, i, gi, hk, y, w, active)
        _accept(st, i, trial, c_t, g_t, h_t)
    return st.theta, st.converged


def _newton_system(st, w):
    """Spectra still to iterate and their bound-constrained Newton system.

    Marks as converged the spectra whose Gauss-Newton step would lower
    chi^2 by a negligible amount (a parameter change << its error).
    """
    i = np.nonzero(st.todo)[0]
    # active set: a parameter on a bound whose descent direction points
    # outwards is held there; the Newton system is solved for the others
    pinned = ((st.theta[i] <= st.lo[i]) & (st.g[i] < 0.0)) | ((st.theta[i] >= st.hi[i]) & (st.g[i] > 0.0))
    keep = ~pinned
    gi = np.where(keep, st.g[i], 0.0)
    hk = st.h[i] * (keep[:, :, None] & keep[:, None, :]) + np.eye(2) * pinned[:, :, None]
    dec = np.sum(gi * _solve2(hk, gi), axis=1)
    # relative to the reduced chi^2: where the model cannot match the
    # data exactly (a rotating disk's line is not one Gaussian at S/N 1e4)
    # chi^2 is large and rounding alone exceeds an absolute tolerance
    n_dof = np.maximum(np.count_nonzero(w[i] > 0.0, axis=1) - 2, 1)
    tol = _CHI2_TOL * np.maximum(1.0, st.chi2[i] / n_dof)
    done = ~(np.abs(dec) > tol) | (st.lam[i] > 1e12)
    st.converged[i[done]] = True
    st.todo[i[done]] = False
    return i[~done], gi[~done], hk[~done]


def _trial(setup, st, i, gi, hk, y, w, active):
    """Damped Newton step from ``theta[i]``, then a one-point line search along it."""
    hd = hk + st.lam[i, None, None] * (hk * np.eye(2))
    trial = np.clip(st.theta[i] + _solve2(hd, gi), st.lo[i], st.hi[i])
    c_t, _, g_t, h_t, _ = evaluate(setup, trial[:, 0], trial[:, 1], y[i], w[i], active[i])
    # At low S/N the Gauss-Newton matrix misjudges the curvature of the
    # profile chi^2, so steps fall short or overshoot. A parabola through
    # chi^2(0), its slope -2 g.delta and chi^2(1) along the step gives
    # the step length alpha to try next (a one-point line search).
    delta = trial - st.theta[i]
    slope = -2.0 * np.sum(st.g[i] * delta, axis=1)
    curv = c_t - st.chi2[i] - slope
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(curv > 0.0, -slope / (2.0 * curv), 4.0)
    alpha = np.clip(np.where(np.isfinite(alpha), alpha, 1.0), 0.1, 10.0)
    ext = (slope < 0.0) & (np.abs(alpha - 1.0) > 0.3)
    if np.any(ext):
        j = np.nonzero(ext)[0]
        t2 = np.clip(st.theta[i[j]] + alpha[j, None] * delta[j], st.lo[i[j]], st.hi[i[j]])
        c2, _, g2, h2, _ = evaluate(setup, t2[:, 0], t2[:, 1], y[i[j]], w[i[j]], active[i[j]])
        take = c2 < c_t[j]
        k = j[take]
        trial[k], c_t[k], g_t[k], h_t[k] = t2[take], c2[take], g2[take], h2[take]
    return trial, c_t, g_t, h_t


def _accept(st, i, trial, c_t, g_t, h_t):
    """Take the trial where chi^2 did not rise (less damping), else damp more."""
    better = c_t <= st.chi2[i]
    acc = i[better]
    # secant (BFGS) correction: the curvature matrix is made to reproduce
    # the change of the gradient over the step just taken
    h_t = _bfgs(h_t, trial - st.theta[i], st.g[i] - g_t)
    st.theta[acc], st.chi2[acc], st.g[acc], st.h[acc] = trial[better], c_t[better], g_t[better], h_t[better]
    st.lam[acc] = np.maximum(st.lam[acc] * 0.1, 1e-12)
    rej = i[~better]
    st.lam[rej] = st.lam[rej] * 10.0


def _bfgs(b, step, dy):
    """BFGS update of batched 2x2 curvature matrices ``b`` (kept if ``step.dy <= 0``)."""
    sy = np.sum(step * dy, axis=1)
    bs = np.matmul(b, step[:, :, None])[:, :, 0]
    sbs = np.sum(step * bs, axis=1)
    ok = (sy > 1e-12 * np.sqrt(np.sum(step**2, 1) * np.sum(dy**2, 1))) & (sbs > 0.0)
    sy = np.where(ok, sy, 1.0)
    sbs = np.where(ok, sbs, 1.0)
    new = (
        b
        - bs[:, :, None] * bs[:, None, :] / sbs[:, None, None]
        + dy[:, :, None] * dy[:, None, :] / sy[:, None, None]
    )
    return np.where(ok[:, None, None], new, b)


def _solve2(h, g):
    """Solve batched 2x2 systems ``h x = g``; 0 where singular."""
    det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
    ok = np.isfinite(det) & (np.abs(det) > 1e-300)
    det = np.where(ok, det, 1.0)
    x = np.stack(
        [h[:, 1, 1] * g[:, 0] - h[:, 0, 1] * g[:, 1], h[:, 0, 0] * g[:, 1] - h[:, 1, 0] * g[:, 0]], axis=1
    ) / det[:, None]
    return np.where(ok[:, None] & np.isfinite(x), x, 0.0)
