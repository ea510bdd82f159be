"""Posterior intrinsic gradients of real galaxies from a suite's transfer function.

Given a galaxy's measured gradient ``m`` (dex/kpc) with its errors
``err_minus`` / ``err_plus`` (distances to the 15.87th / 84.13th
percentiles), its resolution ``x = 2 r_eff / psf_fwhm`` (a value or a range)
and a :class:`~mockzgrad.corrections.transfer.TransferFunction`, the
intrinsic gradient ``G`` has the posterior

``p(G | m) ∝ prior(G) * < N(m; mu(x, G), v(x, G)) >_x``,

``mu = a(x, G) G + b(x)`` the transfer function's mean,
``v = s(x)^2 + var_mu(x, G) + err^2`` (the suite's scatter beyond the mocks'
own errors, the uncertainty of the mean from the coefficient covariance, and
the galaxy's error: ``err_plus`` where ``mu > m``, ``err_minus`` below), and
``<.>_x`` the average over ``x`` uniform in the range (16 points; one for a
single value). No intrinsic abs(grad_z) has to be assumed.

Prior (state it when quoting results; written in the output meta):

``"uniform"`` (default)
    Flat in ``G`` on ``[-g_max, g_max]``, ``g_max`` the largest intrinsic
    abs(grad_z) of the suite (where the transfer function was measured), or on
    ``prior_range``.
``"normal"``
    ``N(0, prior_width^2)``, truncated to the same range; ``prior_width``
    default: the suite's rms intrinsic gradient.

The posterior is evaluated on a grid of ``n_grid`` values of ``G``; reported
are its median (``grad_post``), the distances to its 15.87th / 84.13th
percentiles and its mean. Covariates of extra terms (inclination) come from
the table's ``inclination`` column; S/N (and inclination when absent) are
set to the suite's reference, so their terms vanish (written in the meta).

Flags (``grad_post_flag``): ``x_outside_suite`` (part of the x range outside
the mocks'), ``below_suite_grad`` / ``above_suite_grad`` (posterior median
abs(G) below the smallest / above the largest abs(grad_z) of the suite's
mocks of its sign: the transfer function is extrapolated there; after
``mockzgrad curves`` left out the mocks whose Z(r) runs beyond the
calibrations' range (:mod:`.calibration_range`) ``above_suite_grad`` marks a
gradient in the range where the measured gradient shows the calibrations,
not the resolution: e.g. above +0.1 dex/kpc on the flagship suite), ``prior_edge`` (more than 2.5 % of
the posterior in the outer 2 % of the prior range at either end: the prior
range truncates it), ``transfer_not_ok`` (the suite's assessment says the
transfer model does not describe it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from astropy.table import Table

from ..errors import ConfigError
from ..validate import integer
from .binning import PERCENTILES
from .columns import as_table
from .transfer import TransferFunction

__all__ = ["Prior", "posterior_grid", "correct_with_transfer", "POSTERIOR_FLAGS", "N_X"]

#: Points of the x average for a range of x.
N_X = 16
POSTERIOR_FLAGS = ("x_outside_suite", "below_suite_grad", "above_suite_grad", "prior_edge", "transfer_not_ok")


@dataclass(frozen=True)
class Prior:
    """Prior on the intrinsic gradient ``G`` (dex/kpc): ``kind`` "uniform" or "normal" on ``[lo, hi]``."""

    kind: str
    lo: float
    hi: float
    width: float = math.nan

    def __post_init__(self):
        if self.kind not in ("uniform", "normal"):
            raise ConfigError(f"prior = {self.kind!r}; allowed 'uniform', 'normal'")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
            raise ConfigError(f"prior_range = ({self.lo}, {self.hi}); allowed finite lo < hi, dex/kpc")
        if self.kind == "normal" and not (self.width > 0):
            raise ConfigError(f"prior_width = {self.width}; allowed > 0 dex/kpc")

    @classmethod
    def for_suite(cls, tf: TransferFunction, kind: str = "uniform", prior_range=None, width=None) -> "Prior":
        """The default prior of a transfer function's suite (module docstring)."""
        g_max = float(tf.grad_range[1])
        lo, hi = (-g_max, g_max) if prior_range is None else (float(prior_range[0]), float(prior_range[1]))
        w = math.nan
        if kind == "normal":
            w = float(width) if width is not None else float(tf.references.get("rms_grad", g_max / math.sqrt(3)))
        return cls(kind, lo, hi, w)

    def density(self, g) -> np.ndarray:
        g = np.asarray(g, float)
        inside = (g >= self.lo) & (g <= self.hi)
        if self.kind == "uniform":
            return inside.astype(float)
        return inside * np.exp(-0.5 * (g / self.width) ** 2)

    def describe(self) -> str:
        base = f"on [{self.lo:g}, {self.hi:g}] dex/kpc"
        return f"flat in G {base}" if self.kind == "uniform" else f"N(0, {self.width:g}^2) truncated {base}"


def _trapz(y, x) -> float:
    """Trapezoid integral (numpy >= 1.24 has no common name for it)."""
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def _x_points(x_lo: float, x_hi: float) -> np.ndarray:
    if x_hi <= x_lo:
        return np.array([x_lo])
    edges = np.linspace(x_lo, x_hi, N_X + 1)
    return 0.5 * (edges[:-1] + edges[1:])


def posterior_grid(tf: TransferFunction, m: float, err_minus: float, err_plus: float, x_lo: float, x_hi: float,
                   prior: Prior, *, inclination=None, snr=None, n_grid: int = 1201):
    """Posterior density of the intrinsic gradient on a grid.

    Parameters
    ----------
    tf : TransferFunction
    m, err_minus, err_plus : float
        Measured gradient and its errors, dex/kpc.
    x_lo, x_hi : float
        Range of x (equal for a single value).
    prior : Prior
    inclination, snr : float, optional
        Covariates of the transfer function's extra terms (reference if None).
    n_grid : int

    Returns
    -------
    (ndarray, ndarray)
        Grid of G (dex/kpc) and the normalised density on it (1/(dex/kpc)).
    """
    g = np.linspace(prior.lo, prior.hi, n_grid)
    xs = _x_points(x_lo, x_hi)[:, None]
    gg = np.broadcast_to(g[None, :], (xs.shape[0], g.size))
    inc = None if inclination is None else np.full(gg.shape, float(inclination))
    q = None if snr is None else np.full(gg.shape, float(snr))
    mu = tf.mean(xs, gg, inc, q)
    err = np.where(mu > m, err_plus, err_minus)
    v = tf.scatter(xs) ** 2 + tf.mean_var(xs, gg, inc, q) + err**2
    like = np.mean(np.exp(-0.5 * (m - mu) ** 2 / v) / np.sqrt(v), axis=0)
    dens = prior.density(g) * like
    norm = _trapz(dens, g)
    if not norm > 0:
        dens = prior.density(g)
        norm = _trapz(dens, g)
    return g, dens / norm


def _summary(g, dens) -> tuple:
    """Median, 15.87th and 84.13th percentiles, mean of a gridded density."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(g))])
    cdf /= cdf[-1]
    p16, p50, p84 = np.interp([PERCENTILES[0] / 100, 0.5, PERCENTILES[1] / 100], cdf, g)
    return float(p50), float(p16), float(p84), float(_trapz(g * dens, g)), cdf


def correct_with_transfer(table, tf: TransferFunction, *, x=None, columns: Mapping | None = None,
                          prior: str = "uniform", prior_range=None, prior_width=None, n_grid: int = 1201) -> Table:
    """Posterior intrinsic gradients of every row of a gradient table (module docstring).

    Parameters
    ----------
    table : `~astropy.table.Table` or convertible
        Measured gradients, as for :func:`~mockzgrad.corrections.correct.correct_table`
        (same column roles and x sources).
    tf : TransferFunction
    x : float, (float, float), str or None
        Sample-wide x or range (takes precedence over columns).
    columns : mapping, optional
        Role -> column name (see :data:`~mockzgrad.corrections.correct.DEFAULT_COLUMNS`).
    prior : {"uniform", "normal"}
    prior_range : (float, float), optional
        dex/kpc; default ``±`` the suite's largest abs(grad_z).
    prior_width : float, optional
        Width of the normal prior, dex/kpc.
    n_grid : int >= 101

    Returns
    -------
    `~astropy.table.Table`
        A copy with ``grad_post``, ``grad_post_err_minus``,
        ``grad_post_err_plus``, ``grad_post_mean``, ``grad_post_flag`` and
        meta ``mockzgrad_transfer`` (prior, model, provenance).
    """
    from .correct import _read_observations, _resolve_columns, parse_x

    if not isinstance(tf, TransferFunction):
        raise ConfigError(f"tf of type {type(tf).__name__}; expected TransferFunction")
    n_grid = integer("n_grid", n_grid, 101)
    pr = Prior.for_suite(tf, prior, prior_range, prior_width)
    cmap = _resolve_columns(columns)
    t = Table(as_table(table), copy=True)
    obs = _read_observations(t, cmap, parse_x(x))
    use_inc = obs.inclination is not None and "inclination" in tf.structure.extras
    out = np.full((obs.n, 4), np.nan)
    flags = []
    for i in range(obs.n):
        inc = obs.inclination[i] if use_inc else None
        g, dens = posterior_grid(tf, obs.gradient[i], obs.err_minus[i], obs.err_plus[i], obs.x_lo[i], obs.x_hi[i],
                                 pr, inclination=inc, n_grid=n_grid)
        p50, p16, p84, mean, cdf = _summary(g, dens)
        out[i] = (p50, p50 - p16, p84 - p50, mean)
        flags.append(_row_flags(tf, obs.x_lo[i], obs.x_hi[i], p50, g, cdf))
    for j, (name, desc) in enumerate((
            ("grad_post", "posterior median of the intrinsic gradient (transfer function), dex/kpc"),
            ("grad_post_err_minus", "distance to the posterior's 15.87th percentile, dex/kpc"),
            ("grad_post_err_plus", "distance to the posterior's 84.13th percentile, dex/kpc"),
            ("grad_post_mean", "posterior mean, dex/kpc"))):
        if name in t.colnames:
            t.remove_column(name)
        t[name] = out[:, j]
        t[name].description = desc
    if "grad_post_flag" in t.colnames:
        t.remove_column("grad_post_flag")
    t["grad_post_flag"] = np.array(flags, dtype=str) if flags else np.zeros(0, "U2")
    t.meta["mockzgrad_transfer"] = {
        "prior": pr.describe(), "model": tf.structure.label(), "x_source": obs.x_source,
        "x_range_suite": list(tf.x_range), "grad_range_suite": list(tf.grad_range),
        "grad_range_suite_by_sign": {k: list(tf.sign_grad_range(s)) for k, s in (("positive", 1.0),
                                                                                 ("negative", -1.0))},
        "left_out_for_calibration_range": (tf.provenance.get("calibration_range") or {}).get("n_left_out"),
        "covariates": ("inclination from the table" if use_inc else "suite reference values") +
                      " (S/N: suite reference)",
        "assessment": tf.assessment, "suite": tf.provenance.get("suite", ""), "flags": list(POSTERIOR_FLAGS),
        "likelihood": "N(m; a G + b, s^2 + var_mean + err^2), err = err_plus above m, err_minus below; "
                      "x averaged uniformly over its range",
    }
    return t


def _row_flags(tf: TransferFunction, x_lo, x_hi, p50, g, cdf) -> str:
    f = []
    tol = 1e-9 * tf.x_range[1]
    if x_lo < tf.x_range[0] - tol or x_hi > tf.x_range[1] + tol:
        f.append("x_outside_suite")
    lo, hi = tf.sign_grad_range(p50)  # the range of the mocks of the posterior median's sign
    if abs(p50) < lo:
        f.append("below_suite_grad")
    if abs(p50) > hi:
        f.append("above_suite_grad")
    span = g[-1] - g[0]
    lo_mass = np.interp(g[0] + 0.02 * span, g, cdf)
    hi_mass = 1.0 - np.interp(g[-1] - 0.02 * span, g, cdf)
    if max(lo_mass, hi_mass) > 0.025:
        f.append("prior_edge")
    if not tf.assessment.get("transfer_ok", True):
        f.append("transfer_not_ok")
    return ";".join(f) or "ok"
