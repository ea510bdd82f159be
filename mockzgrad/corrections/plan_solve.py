"""Exposure solver of the planner: sigma(grad) against exposure time.

The noise per pixel is background limited, sigma_pix(t) = sigma_ref sqrt(t_ref / t)
(:func:`mockzgrad.observation.presets.sensitivity_at`), so the part of the
gradient error that comes from the noise scales as t^-1/2. A part that does not
(the calibration scatter a recipe folds into the posterior: Ju et al. Sect. 3.2,
the 0.18 dex N2 scatter) is a floor that no exposure removes. The law used is

    sigma_grad(t)^2 = a / t + floor^2,          a >= 0, floor >= 0,

fitted by non-negative least squares in (1/t, 1) to the sigma(grad) measured by
suites at a few exposures. The shortest exposure reaching a target sigma is

    t* = a / (target^2 - floor^2)               (target > floor),

and a target at or below the floor gets the verdict "calibration floor" with the
floor's value instead of an exposure. :func:`solve_exposure` is pure; the planner
(:mod:`mockzgrad.corrections.plan`) runs a suite at t*, adds the point and refits
until the suite at t* reproduces the target within :data:`SOLVE_RTOL`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["SOLVE_RTOL", "SigmaLaw", "fit_sigma_law", "solve_exposure", "is_decreasing", "Solution"]

#: A suite at the solved exposure must reproduce the target sigma within this fraction.
SOLVE_RTOL = 0.10


@dataclass(frozen=True)
class SigmaLaw:
    """sigma_grad(t) = sqrt(a / t + floor^2).

    Parameters
    ----------
    a : float
        Noise term, (dex/kpc)^2 s.
    floor : float
        Exposure-independent floor, dex/kpc.
    n_points : int
        Exposures the law was fitted to.
    """

    a: float
    floor: float
    n_points: int

    def sigma(self, t) -> np.ndarray:
        """sigma(grad) at exposure ``t`` (s), dex/kpc."""
        t = np.asarray(t, float)
        return np.sqrt(self.a / t + self.floor ** 2)


@dataclass(frozen=True)
class Solution:
    """Outcome of :func:`solve_exposure`.

    ``exposure`` (s) is finite only for ``status = "ok"``; ``"calibration floor"``
    carries the floor (dex/kpc) in ``reason``, ``"too faint"`` the cap.
    """

    status: str
    exposure: float
    reason: str


def fit_sigma_law(exposures, sigmas, *, fit_floor: bool = True) -> SigmaLaw:
    """Fit :class:`SigmaLaw` to sigma(grad) (dex/kpc) measured at exposures (s).

    Non-negative least squares of sigma^2 on (1/t, 1), each point weighted by
    1 / sigma^2 (equal relative errors). One exposure, or ``fit_floor=False``,
    gives the pure t^-1/2 law (floor 0) through the points.

    Raises
    ------
    ConfigError
        No finite positive pair, or an exposure <= 0.
    """
    from scipy.optimize import nnls

    t = np.asarray(exposures, float)
    s = np.asarray(sigmas, float)
    ok = np.isfinite(t) & np.isfinite(s) & (s > 0)
    if np.any(t[ok] <= 0):
        raise ConfigError(f"exposure = {t[ok].min():g} s; expected > 0")
    t, s = t[ok], s[ok]
    if t.size == 0:
        raise ConfigError("sigma law: no exposure with a finite sigma(grad) to fit")
    w = 1.0 / s ** 2
    if t.size == 1 or not fit_floor or np.unique(t).size == 1:
        a = float(np.sum(w * s ** 2 / t) / np.sum(w / t ** 2))  # weighted LSQ of s^2 = a / t
        return SigmaLaw(a=a, floor=0.0, n_points=int(t.size))
    design = np.column_stack([1.0 / t, np.ones_like(t)]) * w[:, None]
    (a, f2), _ = nnls(design, s ** 2 * w)
    return SigmaLaw(a=float(a), floor=float(math.sqrt(f2)), n_points=int(t.size))


def solve_exposure(law: SigmaLaw, target: float, cap: float) -> Solution:
    """Shortest exposure (s) with ``law.sigma(t) <= target`` (dex/kpc), up to ``cap`` (s).

    Raises
    ------
    ConfigError
        ``target`` or ``cap`` <= 0.
    """
    if not target > 0:
        raise ConfigError(f"sigma_target = {target!r} dex/kpc; expected > 0")
    if not cap > 0:
        raise ConfigError(f"exposure_cap = {cap!r} s; expected > 0")
    if target <= law.floor:
        return Solution("calibration floor", math.inf,
                        f"sigma(grad) floor {law.floor:.4f} dex/kpc (exposure-independent) >= target {target:g}")
    if law.a == 0.0:
        return Solution("ok", 0.0, "sigma(grad) does not depend on exposure in the fitted range")
    t = law.a / (target ** 2 - law.floor ** 2)
    if t > cap:
        return Solution("too faint", math.inf,
                        f"sigma(grad) = {target:g} dex/kpc needs {t:.3g} s > cap {cap:.3g} s")
    return Solution("ok", float(t), "")


def is_decreasing(exposures, sigmas, rel_slack: float = 0.0) -> bool:
    """True when sigma does not rise with exposure (beyond ``rel_slack`` of itself)."""
    order = np.argsort(np.asarray(exposures, float))
    s = np.asarray(sigmas, float)[order]
    s = s[np.isfinite(s)]
    return bool(np.all(s[1:] <= s[:-1] * (1.0 + rel_slack)))


def next_effort(points, target: float) -> float | None:
    """Secant / bisection step toward ``sigma = target`` from measured (effort, sigma) points.

    When the target is bracketed, by the longest effort still above it (lo)
    and the shortest already at or below it (hi), the step interpolates
    log sigma linearly in log effort between them (the t^-1/2 law is a
    straight line there); when Monte Carlo noise puts them out of order
    (hi before lo), it bisects in log effort. Not bracketed: None (use
    :func:`solve_exposure` on the fitted law).
    """
    pts = sorted((float(e), float(s)) for e, s in points if math.isfinite(s) and s > 0)
    above = [p for p in pts if p[1] > target]
    below = [p for p in pts if p[1] <= target]
    if not above or not below:
        return None
    lo = max(above, key=lambda p: p[0])
    hi = min(below, key=lambda p: p[0])
    if hi[0] <= lo[0] or lo[1] == hi[1]:
        return math.sqrt(lo[0] * hi[0])
    slope = math.log(hi[1] / lo[1]) / math.log(hi[0] / lo[0])
    return lo[0] * (target / lo[1]) ** (1.0 / slope)
