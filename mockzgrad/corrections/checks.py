"""Consistency checks of correction curves: do they depend on S/N or on the sign of the gradient?

Per group of one intrinsic ``|grad_z|`` (signs pooled) the mocks are split
in two halves: at the median S/N (``snr < median`` vs ``snr >= median``)
and by the sign of the intrinsic gradient. The halves are binned in ``x`` on
common edges (each bin holds at least ``min_per_bin`` mocks of each half)
and the running medians of the *residuals from the pooled fit* are compared
(residuals remove the trend of the ratio within a bin, and the inclination
mix). Reported per comparison (:class:`Comparison`):

``max_diff``
    Largest absolute difference of the medians, ratio units.
``max_diff_scatter``
    The same difference over the local scatter of single mocks
    ``s = sqrt((s_a^2 + s_b^2) / 2)``, ``s_a`` the half 16-84 width of half
    ``a``'s residuals in bins of >= 25 mocks: an effect size.
``max_diff_sigma``
    The difference over its standard error ``sqrt(pi / 2) sqrt(s_a^2 / n_a
    + s_b^2 / n_b)``: a significance in the bin where it is largest.
``global_sigma``
    That significance corrected for having looked at ``n_bins`` bins
    (:func:`global_sigma`).
``flag``
    ``global_sigma > threshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .binning import auto_edges, local_scatter, running_median

__all__ = [
    "CHECK_RULE",
    "MEDIAN_SE",
    "Comparison",
    "GroupCheck",
    "CheckReport",
    "compare_halves",
    "global_sigma",
    "group_checks",
]

#: How a check is decided (written in the curves' checks).
CHECK_RULE = ("running medians of residuals from the pooled fit, halves binned on common x edges; "
              "flag = global_sigma > threshold_sigma (global_sigma: max_diff_sigma corrected for the "
              "number of bins compared)")
#: Standard error of a median of ``n`` Gaussian values = MEDIAN_SE * sigma / sqrt(n).
MEDIAN_SE = math.sqrt(math.pi / 2.0)


@dataclass(frozen=True)
class Comparison:
    """Running medians of two halves compared bin by bin (see the module docstring).

    ``applicable`` is False, with a ``reason``, when a half has too few mocks
    or no common bin holds ``min_per_bin`` of each; the numbers are then None.
    """

    applicable: bool
    reason: str | None = None
    n_bins: int | None = None
    max_diff: float | None = None
    max_diff_scatter: float | None = None
    max_diff_sigma: float | None = None
    global_sigma: float | None = None
    x_at_max: float | None = None
    flag: bool = False

    @classmethod
    def not_applicable(cls, reason: str) -> "Comparison":
        """A comparison that could not be made, and why."""
        return cls(applicable=False, reason=reason)

    def as_dict(self) -> dict:
        """The entries written in the curves' checks (``flag`` only when applicable)."""
        if not self.applicable:
            return {"applicable": False, "reason": self.reason}
        return {"applicable": True, "n_bins": self.n_bins, "max_diff": self.max_diff,
                "max_diff_scatter": self.max_diff_scatter, "max_diff_sigma": self.max_diff_sigma,
                "global_sigma": self.global_sigma, "x_at_max": self.x_at_max, "flag": self.flag}


@dataclass(frozen=True)
class GroupCheck:
    """One check (``kind`` "snr" or "sign") of the group of intrinsic ``|grad_z| = abs_grad`` (dex/kpc).

    ``split_snr`` is the median S/N the "snr" check splits at (None for
    "sign" checks and when the table has no S/N).
    """

    kind: str
    abs_grad: float
    comparison: Comparison
    split_snr: float | None = None

    @property
    def flagged(self) -> bool:
        """The halves differ significantly."""
        return self.comparison.applicable and self.comparison.flag

    def as_dict(self) -> dict:
        """The entry written in the curves' checks."""
        entry = {"abs_grad": self.abs_grad}
        if self.split_snr is not None:
            entry["split_snr"] = self.split_snr
        return {**entry, **self.comparison.as_dict()}

    def message(self) -> str:
        """One line for the warning of a flagged check."""
        c = self.comparison
        return (f"{self.kind} check at |grad_z| = {self.abs_grad:g} dex/kpc: max difference {c.max_diff:.3g} "
                f"({c.global_sigma:.1f} sigma over {c.n_bins} bins, {c.max_diff_scatter:.2f} x scatter) "
                f"near x = {c.x_at_max:.2f}")


@dataclass(frozen=True)
class CheckReport:
    """Every check of a set of curves, at the significance ``threshold_sigma``."""

    threshold_sigma: float
    snr: tuple = ()
    sign: tuple = ()

    @property
    def flagged(self) -> tuple:
        """The flagged checks, S/N checks first."""
        return tuple(c for c in self.snr + self.sign if c.flagged)

    def as_dict(self) -> dict:
        """The ``checks`` of :class:`~mockzgrad.corrections.curveset.CorrectionCurves`."""
        return {"threshold_sigma": float(self.threshold_sigma), "rule": CHECK_RULE,
                "snr": [c.as_dict() for c in self.snr], "sign": [c.as_dict() for c in self.sign],
                "any_flagged": bool(self.flagged)}


def global_sigma(z_max: float, n_bins: int) -> float:
    """Gaussian-equivalent significance of the largest of ``n_bins`` independent |z| values.

    Two-sided ``p = erfc(z_max / sqrt 2)`` per bin; the chance that any of
    ``n_bins`` bins reaches it is ``1 - (1 - p)^n_bins``, converted back to
    sigma with ``sqrt(2) erfcinv``.

    Parameters
    ----------
    z_max : float
        Largest significance, sigma; >= 0 (inf gives inf).
    n_bins : int
        Bins looked at, >= 1.
    """
    if not math.isfinite(z_max):
        return math.inf
    p = math.erfc(z_max / math.sqrt(2.0))
    p_global = -math.expm1(n_bins * math.log1p(-p)) if p < 1 else 1.0
    if p_global <= 0:
        return math.inf
    return float(math.sqrt(2.0) * special.erfcinv(min(p_global, 1.0)))


def compare_halves(xa, ra, xb, rb, min_per_bin: int, threshold: float) -> Comparison:
    """Compare the running medians of two halves ``(xa, ra)`` and ``(xb, rb)`` on common x bins.

    Parameters
    ----------
    xa, ra, xb, rb : ndarray
        Resolution and residual of the mocks of each half.
    min_per_bin : int
        Mocks of each half per common bin, at least.
    threshold : float
        ``global_sigma`` above which the comparison is flagged, sigma.

    Returns
    -------
    Comparison
    """
    if min(xa.size, xb.size) < min_per_bin:
        return Comparison.not_applicable(f"fewer than min_per_bin = {min_per_bin} mocks in a half "
                                         f"({xa.size}, {xb.size})")
    edges, ok = auto_edges([xa, xb], min_per_bin)
    if not ok:
        return Comparison.not_applicable("no x bin holds min_per_bin mocks of both halves")
    a = running_median(xa, ra, edges, min_per_bin)
    b = running_median(xb, rb, edges, min_per_bin)
    d = np.abs(a.median - b.median)
    # scatter of single mocks in each half, in that half's bins of >= 25 mocks (stable; a shift between the
    # halves does not change a percentile width), at each common bin's centre
    xc = 0.5 * (a.x_center + b.x_center)
    sa = local_scatter(xa, ra, xc, min_per_bin)
    sb = local_scatter(xb, rb, xc, min_per_bin)
    scat = np.sqrt(0.5 * (sa**2 + sb**2))
    se = MEDIAN_SE * np.sqrt(sa**2 / a.n + sb**2 / b.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, d / se, np.where(d > 0, np.inf, 0.0))
        e = np.where(scat > 0, d / scat, np.where(d > 0, np.inf, 0.0))
    i = int(np.argmax(z))
    zg = global_sigma(float(z.max()), int(d.size))
    return Comparison(applicable=True, n_bins=int(d.size), max_diff=float(d.max()),
                      max_diff_scatter=float(e.max()), max_diff_sigma=float(z.max()), global_sigma=zg,
                      x_at_max=float(0.5 * (a.x_center[i] + b.x_center[i])), flag=bool(zg > threshold))


def group_checks(abs_grad: float, x, residual, sign, snr, min_per_bin: int, threshold: float):
    """The S/N and sign checks of one group of mocks.

    Parameters
    ----------
    abs_grad : float
        The group's intrinsic ``|grad_z|``, dex/kpc.
    x, residual, sign : ndarray
        Resolution, residual from the pooled fit and sign of the intrinsic
        gradient (-1, 0, +1) of each mock of the group.
    snr : ndarray or None
        S/N of each mock; None when the table has none.
    min_per_bin : int
    threshold : float
        Flag threshold, sigma.

    Returns
    -------
    (GroupCheck, GroupCheck)
        The S/N check and the sign check.
    """
    if snr is None:
        snr_check = GroupCheck("snr", abs_grad, Comparison.not_applicable("no 'snr' column"))
    else:
        fin = np.isfinite(snr)
        med = float(np.median(snr[fin])) if fin.any() else math.nan
        lo, hi = fin & (snr < med), fin & (snr >= med)
        c = compare_halves(x[lo], residual[lo], x[hi], residual[hi], min_per_bin, threshold) \
            if lo.any() and hi.any() else Comparison.not_applicable("one S/N value only")
        snr_check = GroupCheck("snr", abs_grad, c, split_snr=med)
    pos, neg = sign > 0, sign < 0
    if pos.any() and neg.any():
        c = compare_halves(x[pos], residual[pos], x[neg], residual[neg], min_per_bin, threshold)
    else:
        c = Comparison.not_applicable("one sign only")
    return snr_check, GroupCheck("sign", abs_grad, c)
