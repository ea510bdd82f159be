"""Posteriors tabulated on grids: quantiles, refined minima, grid construction, chunking."""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ._common import QUANTILES, Z_STEP

__all__ = ["percentiles", "refine_minimum", "default_grid", "check_grid", "chunks",
           "log_trapezoid_weights"]

_MAX_CHUNK = 4_000_000  # elements of the largest temporary array per chunk of bins


def percentiles(x: np.ndarray, logp: np.ndarray, qs=QUANTILES) -> np.ndarray:
    """Quantiles of densities tabulated on grids; shape (len(qs), n).

    ``x``: (G,) or (n, G) ascending; ``logp``: (n, G), -inf outside the
    support. The CDF is the trapezoid integral of the density, inverted by
    linear interpolation. Rows without support give NaN.
    """
    x = np.broadcast_to(x, logp.shape)
    mx = np.max(logp, axis=1, keepdims=True)
    ok = np.isfinite(mx[:, 0])
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.where(np.isfinite(logp), np.exp(logp - np.where(ok[:, None], mx, 0.0)), 0.0)
    seg = 0.5 * (p[:, :-1] + p[:, 1:]) * np.diff(x, axis=1)
    cdf = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    tot = cdf[:, -1:]
    single = ok & (tot[:, 0] <= 0)  # all mass on one node
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = cdf / tot
    out = np.full((len(qs), p.shape[0]), np.nan)
    rows = np.arange(p.shape[0])
    for i, q in enumerate(qs):
        k = np.clip(np.argmax(cdf >= q, axis=1), 1, p.shape[1] - 1)
        c0, c1 = cdf[rows, k - 1], cdf[rows, k]
        x0, x1 = x[rows, k - 1], x[rows, k]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(c1 > c0, (q - c0) / (c1 - c0), 0.5)
        out[i] = np.where(ok, x0 + np.clip(w, 0.0, 1.0) * (x1 - x0), np.nan)
    if single.any():
        out[:, single] = x[single, np.argmax(logp[single], axis=1)]
    return out


def refine_minimum(x: np.ndarray, chi2: np.ndarray, k: np.ndarray):
    """Parabola through the minimum node ``k`` and its neighbours: (x_min, chi2_min)."""
    n, g = chi2.shape
    x = np.broadcast_to(x, chi2.shape)
    rows = np.arange(n)
    xb, cb = x[rows, k].copy(), chi2[rows, k].copy()
    if g < 3:
        return xb, cb
    km, kp = np.clip(k - 1, 0, g - 1), np.clip(k + 1, 0, g - 1)
    c0, c2 = chi2[rows, km], chi2[rows, kp]
    inner = (k > 0) & (k < g - 1) & np.isfinite(c0) & np.isfinite(c2) & np.isfinite(cb)
    t0, t2 = x[rows, km] - xb, x[rows, kp] - xb
    with np.errstate(invalid="ignore", divide="ignore"):
        s0, s2 = (c0 - cb) / t0, (c2 - cb) / t2
        a = (s0 - s2) / (t0 - t2)
        bco = s0 - a * t0
        tv = np.clip(-bco / (2.0 * a), t0, t2)
        cv = cb + bco * tv + a * tv * tv
    good = inner & (a > 0) & np.isfinite(tv)
    return np.where(good, xb + tv, xb), np.where(good, np.minimum(cv, cb), cb)


def default_grid(ranges, step=Z_STEP) -> np.ndarray:
    """Grid of step ``step`` over the union of ``ranges``, plus every range edge."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    grid = np.arange(lo, hi + 0.5 * step, step)
    edges = [v for r in ranges for v in r]
    return np.unique(np.concatenate([grid[grid < hi], edges]))


def check_grid(grid, name) -> np.ndarray:
    """A user grid as a 1-D strictly ascending float array."""
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)) or np.any(np.diff(g) <= 0):
        raise ConfigError(f"{name}: expected a 1-D strictly ascending finite array of >= 2 values")
    return g


def chunks(n: int, per_bin: int):
    """Slices of ``n`` bins so that no temporary array exceeds a few million elements."""
    size = max(1, _MAX_CHUNK // max(1, per_bin))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def log_trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """log of the trapezoid weights of grids ``x`` (n, K); 0 for a single node."""
    if x.shape[1] == 1:
        return np.zeros(x.shape)
    dx = np.diff(x, axis=1)
    w = np.zeros(x.shape)
    w[:, :-1] += 0.5 * dx
    w[:, 1:] += 0.5 * dx
    with np.errstate(divide="ignore"):
        return np.log(w)
