"""Self-consistent intrinsic gradients: every ``G`` with ``ratio(|G|) G = measured``.

The correction curves give ``ratio_g(x)`` only at the intrinsic ``|grad_z| =
g`` of a suite. Between those nodes ``ratio`` is interpolated linearly in
``a = |G|`` and held flat outside them, so ``a ratio(a) = |measured|`` is a
quadratic (or linear) equation on each interval and is solved in closed form
(equivalent to an infinitely fine grid of ``G``). Curves of different ``g``
may cross, so there may be several roots; all are returned.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["solve_self_consistent", "ROOT_SEARCH_FACTOR"]

#: Roots are sought for ``|G| <= ROOT_SEARCH_FACTOR * max(g)``.
ROOT_SEARCH_FACTOR = 2.0
_TOL = 1e-9


def solve_self_consistent(measured, abs_grads, ratios, *, max_factor: float = ROOT_SEARCH_FACTOR):
    """All sign-consistent ``G`` with ``ratio(|G|) G = measured``.

    Parameters
    ----------
    measured : float or array_like, shape (n,)
        Measured gradients, dex/kpc.
    abs_grads : array_like, shape (k,)
        The curves' intrinsic ``|grad_z|`` values, dex/kpc, > 0, ascending.
    ratios : array_like, shape (k,) or (n, k)
        ``ratio_g(x)`` of each curve for each measurement.
    max_factor : float
        Roots are sought for ``|G| <= max_factor * max(abs_grads)``.

    Returns
    -------
    roots : ndarray, shape (n, m)
        Roots in dex/kpc, ascending along each row, NaN-padded.
    n_roots : ndarray of int, shape (n,)
    extrapolated : ndarray of bool, shape (n,)
        Some root lies outside ``[min(abs_grads), max(abs_grads)]``, where
        the ratio is held flat.

    Notes
    -----
    ``ratio(a)`` is linear in ``a = |G|`` between consecutive ``abs_grads``
    and constant outside, so ``a ratio(a) = |measured|`` is a quadratic (or
    linear) equation on each interval, solved in closed form with the
    numerically stable root formula.
    """
    m = np.atleast_1d(np.asarray(measured, dtype=float))
    g = np.asarray(abs_grads, dtype=float)
    r = np.asarray(ratios, dtype=float)
    r = np.broadcast_to(r, (m.size, g.size)) if r.ndim == 1 else r
    if g.ndim != 1 or g.size < 1 or np.any(g <= 0) or np.any(np.diff(g) <= 0):
        raise ConfigError(f"abs_grads = {abs_grads!r}; allowed: >= 1 ascending values > 0 (dex/kpc)")
    if r.shape != (m.size, g.size):
        raise ConfigError(f"ratios shape {r.shape}; expected {(m.size, g.size)}")
    c = np.abs(m)
    top = max_factor * g[-1]
    tol = _TOL * g[-1]
    cands = []
    with np.errstate(divide="ignore", invalid="ignore"):
        # below the first node: ratio held at r[:, 0]
        a = np.where(c == 0, 0.0, np.where(r[:, 0] > 0, c / r[:, 0], np.nan))
        cands.append(np.where((a >= -tol) & (a <= g[0] + tol), np.clip(a, 0.0, g[0]), np.nan))
        for k in range(g.size - 1):
            g0, g1 = g[k], g[k + 1]
            s = (r[:, k + 1] - r[:, k]) / (g1 - g0)
            b = r[:, k] - s * g0
            linear = np.abs(s) * g1 <= 1e-14 * np.maximum(np.abs(b), 1e-300)
            a_lin = np.where(b != 0, c / b, np.nan)
            disc = b * b + 4.0 * s * c
            sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
            q = -0.5 * (b + np.copysign(sq, b))
            a1 = np.where(linear, a_lin, q / s)
            a2 = np.where(linear, np.nan, np.where(q != 0, -c / q, np.nan))
            for a in (a1, a2):
                inside = (a >= g0 - tol) & (a <= g1 + tol)
                cands.append(np.where(inside, np.clip(a, g0, g1), np.nan))
        # above the last node: ratio held at r[:, -1]
        a = c / r[:, -1]
        cands.append(np.where((r[:, -1] > 0) & (a >= g[-1] - tol) & (a <= top + tol), a, np.nan))
    roots = np.sort(np.stack(cands, axis=1), axis=1)  # NaN last
    dup = np.zeros(roots.shape, bool)
    dup[:, 1:] = np.abs(np.diff(roots, axis=1)) <= max(tol, 1e-15)
    roots = np.sort(np.where(dup, np.nan, roots), axis=1)
    n_roots = np.sum(np.isfinite(roots), axis=1)
    keep = max(int(n_roots.max()) if n_roots.size else 0, 1)
    roots = roots[:, :keep]
    extrap = np.any((roots < g[0] * (1 - _TOL)) | (roots > g[-1] * (1 + _TOL)), axis=1)
    sign = np.where(m < 0, -1.0, 1.0)[:, None]
    signed = np.sort(roots * sign, axis=1)
    return signed, n_roots, extrap
