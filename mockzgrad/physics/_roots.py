"""Root finding on monotonic pieces, the numerics behind calibration inversion.

A 1-D function is split into monotonic pieces at the roots of its
derivative; each piece is tabulated once (:class:`Piece`), and each value is
found by table look-up followed by a bracketed (bisection-safeguarded)
Newton iteration (:func:`safe_newton`), stopped when the Newton step falls
below 1e-12 (relative), which leaves an error well below 1e-10 dex.
Polynomials are sums ``sum_i c[i] t^i``, coefficients lowest order first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["N_TABLE", "SLACK", "polyval", "polyder", "real_roots", "safe_newton", "Piece"]

#: Nodes per monotonic piece of the look-up tables.
N_TABLE = 1025
#: A target this close (relative) outside a piece's image is clamped onto it, dex.
SLACK = 1e-11


def polyval(c, t):
    """sum_i c[i] t^i (Horner), vectorised over ``t``."""
    t = np.asarray(t, dtype=float)
    out = np.full(t.shape, float(c[-1]))
    for ci in reversed(c[:-1]):
        out = out * t + ci
    return out


def polyder(c):
    """Coefficients of the derivative of sum_i c[i] t^i, lowest order first."""
    return tuple(i * c[i] for i in range(1, len(c))) or (0.0,)


def real_roots(c, lo, hi):
    """Real roots of sum c_i t^i strictly inside (lo, hi), ascending."""
    c = np.trim_zeros(np.asarray(c, dtype=float), "b")
    if c.size < 2:
        return []
    r = np.polynomial.polynomial.polyroots(c)
    r = r[np.abs(r.imag) <= 1e-9 * (1.0 + np.abs(r.real))].real
    margin = 1e-9 * (1.0 + max(abs(lo), abs(hi)))
    return sorted(float(x) for x in r if lo + margin < x < hi - margin)


def safe_newton(f, df, target, lo, hi, x, sign=None, maxiter=100):
    """Solve f(x) = target element-wise on brackets [lo, hi] (f monotonic there).

    ``f(x, idx)`` and ``df(x, idx)`` evaluate the function and its derivative
    for the elements ``idx`` (an index array; constant-coefficient functions
    ignore it). ``sign`` is +1 where f increases on the bracket and -1 where
    it decreases (computed when not given). Newton steps that leave the
    current bracket are replaced by bisection, so the iteration always
    converges.
    """
    target = np.array(target, dtype=float)
    lo = np.array(lo, dtype=float)
    hi = np.array(hi, dtype=float)
    x = np.clip(np.array(x, dtype=float), lo, hi)
    every = np.arange(target.size)
    if sign is None:
        sign = np.where(f(hi, every) >= f(lo, every), 1.0, -1.0)
    sign = np.broadcast_to(np.asarray(sign, dtype=float), target.shape)
    active = every
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(maxiter):
            if active.size == 0:
                break
            xa, la, ha = x[active], lo[active], hi[active]
            r = sign[active] * (f(xa, active) - target[active])
            above = r > 0
            ha = np.where(above, xa, ha)
            la = np.where(above, la, xa)
            step = r / (sign[active] * df(xa, active))
            xn = xa - step
            bad = ~((xn >= la) & (xn <= ha))  # also catches NaN steps
            xn[bad] = 0.5 * (la[bad] + ha[bad])
            xn[r == 0] = xa[r == 0]
            x[active], lo[active], hi[active] = xn, la, ha
            # Newton converges quadratically: a step below 1e-12 leaves an error far
            # below it (about the step itself next to an extremum, where it is linear).
            scale = 1.0 + np.abs(xa)
            done = (r == 0) | (~bad & (np.abs(step) <= 1e-12 * scale)) | (
                (ha - la) <= 1e-15 * scale
            )
            active = active[~done]
    return x


@dataclass(frozen=True)
class Piece:
    """A monotonic piece [lo, hi] of a 1-D function, tabulated for look-up."""

    lo: float
    hi: float
    grid: np.ndarray  # abscissae, ordered so that vals ascends
    vals: np.ndarray  # function values, ascending
    sign: float  # +1 if the function increases with x on the piece, else -1

    @classmethod
    def build(cls, fun, lo, hi):
        grid = np.linspace(lo, hi, N_TABLE)
        vals = fun(grid)
        sign = 1.0
        if vals[-1] < vals[0]:
            grid, vals, sign = grid[::-1].copy(), vals[::-1].copy(), -1.0
        # guard against round-off wiggles in flat parts
        vals = np.maximum.accumulate(vals)
        return cls(float(lo), float(hi), grid, vals, sign)

    def solve(self, fun, dfun, target):
        """x on this piece with fun(x) = target; NaN where target is not in the image."""
        target = np.asarray(target, dtype=float)
        out = np.full(target.shape, np.nan)
        vmin, vmax = float(self.vals[0]), float(self.vals[-1])
        slack = SLACK * (1.0 + max(abs(vmin), abs(vmax)))
        m = (target >= vmin - slack) & (target <= vmax + slack)
        n_in = np.count_nonzero(m)
        if n_in == 0:
            return out
        t = np.clip(target[m] if n_in < m.size else target.ravel(), vmin, vmax)
        j = np.clip(np.searchsorted(self.vals, t), 1, self.vals.size - 1)
        xa, xb = self.grid[j - 1], self.grid[j]
        va, vb = self.vals[j - 1], self.vals[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(vb > va, (t - va) / (vb - va), 0.5)
        x0 = xa + np.clip(w, 0.0, 1.0) * (xb - xa)
        x = safe_newton(
            lambda x, _i: fun(x), lambda x, _i: dfun(x), t, np.minimum(xa, xb),
            np.maximum(xa, xb), x0, sign=self.sign,
        )
        if n_in == m.size:
            return x.reshape(target.shape)
        out[m] = x
        return out

