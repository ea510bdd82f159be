"""Linear fit of metallicity against radius: ``Z(r) = z0 + grad_z * r``.

``Z`` is 12 + log(O/H) (dex), ``r`` the deprojected galactocentric radius
(physical kpc), ``grad_z`` in dex/kpc. Each bin ``i`` has a Gaussian error
``e_i`` on ``Z``; the likelihood is ``exp(-chi^2 / 2)`` with
``chi^2 = sum_i (Z_i - z0 - grad_z r_i)^2 / e_i^2`` and the priors on
``(grad_z, z0)`` are flat (improper).

Methods
-------
``"analytic"``
    With flat priors the posterior of this Gaussian linear model is exactly
    a bivariate Gaussian: mean = weighted least squares, covariance
    ``(X^T W X)^-1`` with ``X = [r, 1]`` and ``W = diag(1 / e^2)``.
``"emcee"``
    The same posterior sampled with :class:`emcee.EnsembleSampler` (Foreman-
    Mackey et al. 2013, PASP 125, 306), as the Lee et al. (2026) recipe
    does: 64 walkers, 2000 steps of which the first 500 are discarded,
    walkers started in a small Gaussian ball (1e-3 of the posterior
    standard deviations) around the least-squares solution.
``"two_point"``
    Two bins: the line through both points with first-order error
    propagation (the exact posterior for two points). Chosen automatically
    whenever exactly two bins are usable, whatever ``method`` says.

Summaries are the median and the percentiles at ``Phi(-1)`` and ``Phi(+1)``
(15.87 and 84.13, the "16th/84th percentiles" of the literature), which are
exactly ``mean -+ 1 sigma`` for a Gaussian
(:data:`mockzgrad.recovery.summary.PERCENTILES`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ConfigError, RecoveryError, RecoveryWarning
from .summary import PERCENTILES

__all__ = [
    "GradientFit",
    "fit_gradient",
    "median_gradient_over_diagnostics",
]

_METHODS = ("analytic", "emcee")


@dataclass(frozen=True, eq=False)
class GradientFit:
    """Result of a linear metallicity-gradient fit.

    Attributes
    ----------
    grad_z, grad_z_lo, grad_z_hi : float
        Median and the 15.87th / 84.13th percentiles of the gradient, dex/kpc.
    z0, z0_lo, z0_hi : float
        The same for the intercept ``Z(r = 0)``, dex (12 + log(O/H)).
    covariance : ndarray, shape (2, 2)
        Posterior covariance of ``(grad_z, z0)``, in that order.
    method : str
        ``"analytic"``, ``"emcee"`` or ``"two_point"``.
    n_bins : int
        Bins used in the fit.
    chi2 : float
        chi^2 of the reported (median) line.
    samples : ndarray of shape (n_samples, 2) or None
        Posterior samples ``(grad_z, z0)`` after burn-in (emcee only).
    n_bootstrap : int
        Bootstrap resamples that gave a fit (0 if not asked).
    bootstrap_grad_z, bootstrap_z0 : tuple of 3 floats or None
        15.87th, 50th and 84.13th percentiles over the bootstrap resamples of
        bins (weighted least squares on each).
    """

    grad_z: float
    grad_z_lo: float
    grad_z_hi: float
    z0: float
    z0_lo: float
    z0_hi: float
    covariance: np.ndarray
    method: str
    n_bins: int
    chi2: float
    samples: np.ndarray | None = None
    n_bootstrap: int = 0
    bootstrap_grad_z: tuple[float, float, float] | None = None
    bootstrap_z0: tuple[float, float, float] | None = None

    def __post_init__(self):
        self.covariance.flags.writeable = False
        if self.samples is not None:
            self.samples.flags.writeable = False

    @property
    def grad_z_err(self) -> float:
        """Symmetrised 1-sigma error of ``grad_z``, ``(grad_z_hi - grad_z_lo) / 2``, dex/kpc."""
        return 0.5 * (self.grad_z_hi - self.grad_z_lo)

    @property
    def z0_err(self) -> float:
        """Symmetrised 1-sigma error of ``z0``, ``(z0_hi - z0_lo) / 2``, dex."""
        return 0.5 * (self.z0_hi - self.z0_lo)

    def to_dict(self) -> dict:
        """JSON-serialisable summary (without the samples)."""
        return {
            "grad_z": float(self.grad_z),
            "grad_z_lo": float(self.grad_z_lo),
            "grad_z_hi": float(self.grad_z_hi),
            "grad_z_err": float(self.grad_z_err),
            "z0": float(self.z0),
            "z0_lo": float(self.z0_lo),
            "z0_hi": float(self.z0_hi),
            "covariance": [[float(x) for x in row] for row in self.covariance],
            "method": self.method,
            "n_bins": int(self.n_bins),
            "chi2": float(self.chi2),
            "n_samples": 0 if self.samples is None else int(self.samples.shape[0]),
            "n_bootstrap": int(self.n_bootstrap),
            "bootstrap_grad_z": _list_or_none(self.bootstrap_grad_z),
            "bootstrap_z0": _list_or_none(self.bootstrap_z0),
        }


def _list_or_none(values):
    return None if values is None else [float(x) for x in values]


def _wls(r, z, e):
    """Weighted least squares ``(grad_z, z0)`` and its covariance."""
    w = 1.0 / e**2
    s, sx, sxx = w.sum(), (w * r).sum(), (w * r * r).sum()
    sy, sxy = (w * z).sum(), (w * r * z).sum()
    det = s * sxx - sx * sx
    if not det > 0.0:
        raise RecoveryError("gradient fit: all bins are at the same radius; the slope is undefined")
    grad = (s * sxy - sx * sy) / det
    z0 = (sxx * sy - sx * sxy) / det
    cov = np.array([[s, -sx], [-sx, sxx]]) / det
    return np.array([grad, z0]), cov


def _chi2(r, z, e, grad, z0):
    return float(np.sum(((z - z0 - grad * r) / e) ** 2))


def fit_gradient(
    r_kpc,
    z,
    z_err,
    *,
    method: str = "analytic",
    rng: np.random.Generator | None = None,
    n_walkers: int = 64,
    n_steps: int = 2000,
    n_burn: int = 500,
    bootstrap: int = 0,
) -> GradientFit:
    """Fit ``Z(r) = z0 + grad_z * r`` to binned metallicities.

    Parameters
    ----------
    r_kpc : array_like, shape (n,)
        Bin radii, kpc (deprojected, physical).
    z : array_like, shape (n,)
        Metallicities 12 + log(O/H), dex.
    z_err : array_like, shape (n,) or (2, n)
        1-sigma errors of ``z``, dex, > 0; or ``(lower, upper)`` errors, in
        which case their mean is the Gaussian sigma of the likelihood.
    method : {"analytic", "emcee"}, optional
        Exact Gaussian posterior, or emcee sampling of the same posterior.
        Exactly two usable bins always give ``"two_point"``.
    rng : numpy.random.Generator, optional
        Source of randomness; required for ``"emcee"`` and ``bootstrap > 0``.
    n_walkers, n_steps, n_burn : int, optional
        emcee walkers (>= 4, even), steps per walker in total, and the first
        steps discarded as burn-in (0 <= n_burn < n_steps).
    bootstrap : int, optional
        Number of bootstrap resamples of the bins (>= 0); needs >= 3 bins.

    Returns
    -------
    GradientFit

    Raises
    ------
    RecoveryError
        Fewer than 2 usable bins, or all at one radius. Bins whose radius,
        metallicity or error is not finite are dropped first (failed bins are
        NaN).
    ConfigError
        Bad arguments: shapes, non-positive errors, unknown method, missing
        ``rng``.
    """
    r, zz, e, bootstrap = _check_inputs(r_kpc, z, z_err, method, rng, bootstrap)
    n = r.size
    used, centre, lo, hi, cov, samples = _posterior(r, zz, e, method, rng, n_walkers, n_steps, n_burn)
    pct = None
    n_boot = 0
    if bootstrap > 0:
        if n < 3:
            warnings.warn(
                f"gradient fit: bootstrap needs >= 3 bins, got {n}; not done", RecoveryWarning, stacklevel=2
            )
        else:
            boot = _bootstrap(r, zz, e, rng, bootstrap)
            n_boot = boot.shape[0]
            if n_boot > 0:
                pct = np.percentile(boot, [PERCENTILES[0], 50.0, PERCENTILES[1]], axis=0)

    return GradientFit(
        grad_z=float(centre[0]),
        grad_z_lo=float(lo[0]),
        grad_z_hi=float(hi[0]),
        z0=float(centre[1]),
        z0_lo=float(lo[1]),
        z0_hi=float(hi[1]),
        covariance=np.array(cov, dtype=float),
        method=used,
        n_bins=int(n),
        chi2=_chi2(r, zz, e, centre[0], centre[1]),
        samples=samples,
        n_bootstrap=int(n_boot),
        bootstrap_grad_z=None if pct is None else tuple(float(x) for x in pct[:, 0]),
        bootstrap_z0=None if pct is None else tuple(float(x) for x in pct[:, 1]),
    )


def _check_inputs(r_kpc, z, z_err, method, rng, bootstrap):
    """Arrays of the usable bins (finite radius, Z and error) and the bootstrap count."""
    if method not in _METHODS:
        raise ConfigError(f"method = {method!r}; allowed: {', '.join(_METHODS)}")
    r = np.asarray(r_kpc, dtype=float)
    zz = np.asarray(z, dtype=float)
    e = np.asarray(z_err, dtype=float)
    if r.ndim != 1 or zz.shape != r.shape:
        raise ConfigError(f"r_kpc, z: shapes {r.shape}, {zz.shape}; expected two equal 1-D arrays")
    if e.shape == (2,) + r.shape and e.ndim == 2:
        e = 0.5 * (e[0] + e[1])
    elif e.shape != r.shape:
        raise ConfigError(f"z_err: shape {e.shape}; expected {r.shape} or {(2,) + r.shape}")
    use = np.isfinite(r) & np.isfinite(zz) & np.isfinite(e)
    if np.any(e[use] <= 0.0):
        raise ConfigError(f"z_err = {e[use][e[use] <= 0.0][0]}; allowed: > 0 dex")
    r, zz, e = r[use], zz[use], e[use]
    if r.size < 2:
        raise RecoveryError(f"gradient fit: at least 2 bins needed, got {r.size}")
    bootstrap = int(bootstrap)
    if bootstrap < 0:
        raise ConfigError(f"bootstrap = {bootstrap}; allowed: >= 0")
    if (method == "emcee" or bootstrap > 0) and not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"rng = {rng!r}: a numpy.random.Generator is required for method='emcee' or bootstrap > 0"
        )
    return r, zz, e, bootstrap


def _posterior(r, z, e, method, rng, n_walkers, n_steps, n_burn):
    """(method used, centre, lo, hi, covariance, samples) of ``(grad_z, z0)``."""
    mean, cov = _wls(r, z, e)
    if r.size == 2:
        return "two_point", mean, mean - np.sqrt(np.diag(cov)), mean + np.sqrt(np.diag(cov)), cov, None
    if method == "analytic":
        sd = np.sqrt(np.diag(cov))
        return "analytic", mean, mean - sd, mean + sd, cov, None
    samples = _sample_emcee(r, z, e, mean, cov, rng, n_walkers, n_steps, n_burn)
    lo, centre, hi = np.percentile(samples, [PERCENTILES[0], 50.0, PERCENTILES[1]], axis=0)
    return "emcee", centre, lo, hi, np.cov(samples, rowvar=False), samples


def _sample_emcee(r, z, e, mean, cov, rng, n_walkers, n_steps, n_burn):
    """Posterior samples ``(grad_z, z0)`` from emcee, seeded from ``rng``."""
    import emcee

    n_walkers, n_steps, n_burn = int(n_walkers), int(n_steps), int(n_burn)
    if n_walkers < 4 or n_walkers % 2:
        raise ConfigError(f"n_walkers = {n_walkers}; allowed: even and >= 4")
    if not 0 <= n_burn < n_steps:
        raise ConfigError(f"n_burn = {n_burn}, n_steps = {n_steps}; allowed: 0 <= n_burn < n_steps")
    w = 1.0 / e**2

    def log_prob(theta):
        # vectorised over walkers: theta has shape (n, 2); flat priors
        resid = z[None, :] - theta[:, 1:2] - theta[:, 0:1] * r[None, :]
        return -0.5 * np.sum(w[None, :] * resid * resid, axis=1)

    sd = np.sqrt(np.diag(cov))
    p0 = mean[None, :] + 1e-3 * sd[None, :] * rng.standard_normal((n_walkers, 2))
    # emcee draws from its own numpy RandomState; seed it from rng so that the
    # same generator state gives the same chain (and never touch global state)
    seed = int(rng.integers(0, 2**32 - 1))
    state = emcee.State(p0, random_state=np.random.RandomState(seed).get_state())
    sampler = emcee.EnsembleSampler(n_walkers, 2, log_prob, vectorize=True)
    sampler.run_mcmc(state, n_steps, progress=False)
    return sampler.get_chain(discard=n_burn, flat=True)


def _bootstrap(r, z, e, rng, n_resamples):
    """Weighted least-squares ``(grad_z, z0)`` on bins resampled with replacement."""
    n = r.size
    idx = rng.integers(0, n, size=(n_resamples, n))
    rr, zz, ww = r[idx], z[idx], 1.0 / e[idx] ** 2
    s, sx, sxx = ww.sum(1), (ww * rr).sum(1), (ww * rr * rr).sum(1)
    sy, sxy = (ww * zz).sum(1), (ww * rr * zz).sum(1)
    det = s * sxx - sx * sx
    ok = det > 1e-12 * s * sxx  # resamples with a single radius have no slope
    grad = (s * sxy - sx * sy)[ok] / det[ok]
    z0 = (sxx * sy - sx * sxy)[ok] / det[ok]
    return np.stack([grad, z0], axis=1)


def median_gradient_over_diagnostics(
    fits: Mapping[str, GradientFit], *, ddof: int = 1
) -> tuple[float, float]:
    """Method II: the median of the gradients fitted with each diagnostic alone.

    Parameters
    ----------
    fits : mapping of str to GradientFit
        One gradient fit per diagnostic (e.g. ``{"R3": ..., "O32": ...}``).
    ddof : int, optional
        Delta degrees of freedom of the standard deviation (1: sample
        standard deviation).

    Returns
    -------
    grad_z : float
        Median of the per-diagnostic ``grad_z``, dex/kpc.
    scatter : float
        Standard deviation of the per-diagnostic ``grad_z``, dex/kpc; NaN if
        there are not more than ``ddof`` diagnostics.
    """
    if not fits:
        raise RecoveryError("Method II gradient: no diagnostic gave a gradient fit")
    grads = np.array([f.grad_z for f in fits.values()], dtype=float)
    scatter = float(np.std(grads, ddof=ddof)) if grads.size > ddof else float("nan")
    return float(np.median(grads)), scatter
