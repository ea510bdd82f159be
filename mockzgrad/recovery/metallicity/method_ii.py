"""Method II: each diagnostic inverted alone.

Double-valued calibrations (R3, R23, ...) pick the branch closest to the
Method I solution of the other diagnostics. The gradient is then fitted per
diagnostic and the median taken
(:func:`mockzgrad.recovery.gradient.median_gradient_over_diagnostics`).
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...physics.calibrations import Diagnostic
from ._common import REASON_OUTSIDE_RANGE, join, logu_array
from ._grid import refine_minimum
from .method_i import method_one_grid
from .ratios import RatioSet
from .result import MetallicityResult

__all__ = ["method_two"]


def method_two(ratios: RatioSet, *, logu=None, scatter: bool = True, z_grid=None
               ) -> dict[str, MetallicityResult]:
    """Method II: invert each diagnostic alone.

    Parameters
    ----------
    ratios : RatioSet
        Output of :func:`~mockzgrad.recovery.metallicity.log_ratios`.
    logu : float or array_like, optional
        log10 U per bin for Kewley et al. (2019) surfaces.
    scatter : bool, optional
        Add the calibration scatter to the error in quadrature: ``sigma_z``
        when known, else ``sigma_ratio`` propagated like the measurement
        error, else nothing (listed in ``info["scatter_unknown"]``).
    z_grid : array_like, optional
        Grid of the Method I reference solutions (default as in
        :func:`~mockzgrad.recovery.metallicity.method_one`).

    Returns
    -------
    dict of str to MetallicityResult
        One result per diagnostic of ``ratios``, ``method = "II:<key>"``.

    Notes
    -----
    - All roots inside the validity range are found with
      :meth:`~mockzgrad.physics.calibrations.Diagnostic.z_roots`. With several roots
      (double-valued R3, R23, ...) the one closest to the Method I solution
      (best fit; scatter and covariance on) of the *other* usable
      diagnostics of the bin is taken (``chosen_by = "other diagnostics"``);
      if they give none, the one closest to the Method I solution of all
      (``"all"``; when the diagnostic is alone in its bin this choice is
      arbitrary and a note says so). ``branch`` is ``"lower"``/``"upper"``
      (lower/higher metallicity root).
    - A ratio beyond the curve's extreme (no root): Z is the metallicity of
      the nearest extreme (a turnover or a range edge) if the ratio is
      within 1 measurement sigma of it (``branch = "extreme"``), otherwise
      the bin is unusable with reason
      :data:`~mockzgrad.recovery.metallicity.REASON_OUTSIDE_RANGE`.
    - Error: ``sigma(log R) / |d log R / dZ|`` at the solution, but never
      more than ``sqrt(2 sigma(log R) / |d^2 log R / dZ^2|)`` (the
      second-order width, finite at a turnover where the slope vanishes).
    """
    if not isinstance(ratios, RatioSet):
        raise ConfigError(f"ratios: expected a RatioSet from log_ratios, got {type(ratios).__name__}")
    diags = ratios.diagnostics
    usable_all = ratios.usable
    logu_b = logu_array(logu, ratios.n_bins, [d for j, d in enumerate(diags) if usable_all[:, j].any()])
    refs = _References(ratios, z_grid, logu)
    return {d.key: _invert(ratios, j, logu_b, scatter, refs) for j, d in enumerate(diags)}


class _References:
    """Method I solutions that decide the branch of a double-valued calibration.

    The solution of all diagnostics is computed once, and only if needed.
    """

    def __init__(self, ratios: RatioSet, z_grid, logu):
        self.ratios, self.z_grid, self.logu = ratios, z_grid, logu
        self._all = None

    def others(self, j: int):
        """Method I without diagnostic ``j``."""
        others = self.ratios.usable.copy()
        others[:, j] = False
        return self._fit(others)

    def all(self, needed: bool = True):
        """Method I of every usable diagnostic (cached); if not ``needed``, only a cached one or None."""
        if needed and self._all is None:
            self._all = self._fit(self.ratios.usable)
        return self._all

    def _fit(self, usable):
        return method_one_grid(self.ratios, usable, z_grid=self.z_grid, scatter=True,
                               covariance=True, logu=self.logu)


def _invert(ratios: RatioSet, j: int, logu_b, scatter: bool, refs: _References) -> MetallicityResult:
    """Method II result of diagnostic ``j``."""
    d = ratios.diagnostics[j]
    n = ratios.n_bins
    u = ratios.usable[:, j].copy()
    obs = ratios.log_ratio[:, j]
    sig = ratios.err[:, j]
    z = np.full(n, np.nan)
    chi2 = np.full(n, np.nan)
    branch, chosen = [""] * n, [""] * n
    notes: list[list[str]] = [[] for _ in range(n)]
    reason = list(ratios.reasons[j])
    info = {"scatter": bool(scatter), "scatter_unknown": ()}
    if u.any():
        lu = None if logu_b is None or not d.needs_logu else logu_b
        roots = d.z_roots(np.where(u, obs, np.nan), logu=lu)
        nr = np.sum(np.isfinite(roots), axis=1)
        one = u & (nr == 1)
        z[one] = np.nanmax(roots[one], axis=1)
        for b in np.flatnonzero(one):
            branch[b] = "single"
        multi = u & (nr >= 2)
        if multi.any():
            _pick_branch(ratios, j, roots, nr, multi, refs, z, branch, chosen, notes)
        none = u & (nr == 0)
        if none.any():
            _beyond_extremes(d, obs, sig, lu, none, z, u, branch, notes, reason)
        z, err, chi2, u = _errors(d, obs, sig, z, u, lu, scatter, info, reason)
    else:
        err = np.full(n, np.nan)
    for b in range(n):
        if u[b]:
            reason[b] = ""
        else:
            branch[b] = ""
            chosen[b] = ""
            if not reason[b]:
                reason[b] = "not usable"
    return MetallicityResult(
        method=f"II:{d.key}", z=z, z_median=z, z_lo=z - err, z_hi=z + err, valid=u,
        reason=tuple(reason), diagnostics_used=tuple((d.key,) if u[b] else () for b in range(n)),
        chi2_min=np.where(u, chi2, np.nan), notes=tuple(join(x) for x in notes),
        branch=tuple(branch), chosen_by=tuple(chosen), info=info,
    )


def _pick_branch(ratios, j, roots, nr, multi, refs: _References, z, branch, chosen, notes) -> None:
    """Several roots: the one closest to the Method I solution of the others (else of all)."""
    usable_all = ratios.usable
    ref_o = refs.others(j)
    need_all = multi & ~ref_o.valid
    ref_all = refs.all(needed=bool(need_all.any()))
    ref = np.where(ref_o.valid, ref_o.z, ref_all.z if ref_all is not None else np.nan)
    dist = np.abs(np.where(np.isfinite(roots), roots, np.inf) - ref[:, None])
    pick = np.argmin(dist, axis=1)
    z[multi] = roots[multi, pick[multi]]
    for b in np.flatnonzero(multi):
        k = int(nr[b])
        branch[b] = ("lower" if pick[b] == 0 else "upper") if k == 2 else \
            f"root {pick[b] + 1} of {k}"
        if ref_o.valid[b]:
            chosen[b] = "other diagnostics"
        else:
            chosen[b] = "all"
            if usable_all[b].sum() == 1:
                notes[b].append("branch ambiguous: no other diagnostic in this bin")


def _beyond_extremes(d: Diagnostic, obs, sig, lu, none, z, u, branch, notes, reason) -> None:
    """No root: Z at the nearest extreme if within 1 sigma of it, else the bin is unusable."""
    rows = np.flatnonzero(none)
    vmin, zmin, vmax, zmax = _curve_extremes(d, None if lu is None else lu[rows], rows.size)
    above = obs[rows] > vmax
    dist = np.where(above, obs[rows] - vmax, vmin - obs[rows])
    zext = np.where(above, zmax, zmin)
    close = dist <= sig[rows]
    for r, b in enumerate(rows):
        if close[r]:
            z[b] = zext[r]
            branch[b] = "extreme"
            word = "maximum" if above[r] else "minimum"
            notes[b].append(f"ratio beyond the calibration {word} by "
                            f"{dist[r] / sig[b]:.2f} sigma; Z at the extreme")
        else:
            u[b] = False
            reason[b] = REASON_OUTSIDE_RANGE


def _errors(d: Diagnostic, obs, sig, z, u, lu, scatter, info, reason):
    """Propagated error (plus scatter) and chi^2 at the solution; bins with no finite error drop.

    Returns (z, err, chi2, usable), z and err NaN where not usable.
    """
    n = z.shape[0]
    has = u & np.isfinite(z)
    zz = np.where(has, z, np.mean(d.valid_range))
    slope = np.abs(d.dlog_ratio_dz(zz, logu=lu))
    h = 1e-4
    curv = np.abs(d.dlog_ratio_dz(zz + h, logu=lu) - d.dlog_ratio_dz(zz - h, logu=lu)) / (2 * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        def prop(s):
            # first order, capped by the second-order width (finite at a turnover)
            return np.fmin(s / slope, np.sqrt(2.0 * s / curv))
        err = prop(sig)
        if scatter:
            if d.sigma_z is not None:
                err = np.hypot(err, d.sigma_z)
                info["scatter_source"] = "sigma_z"
            elif d.sigma_ratio is not None:
                err = np.hypot(err, prop(np.full(n, d.sigma_ratio)))
                info["scatter_source"] = "sigma_ratio"
            else:
                info["scatter_unknown"] = (d.key,)
        cal = d.log_ratio(zz, policy="ignore", logu=lu)
        chi2 = np.where(has, ((obs - cal) / sig) ** 2, np.nan)
    good = has & np.isfinite(err)
    for b in np.flatnonzero(has & ~good):
        reason[b] = "error not finite (flat calibration)"
    u = good
    return np.where(u, z, np.nan), np.where(u, err, np.nan), chi2, u


def _curve_extremes(d: Diagnostic, logu_rows, n_rows: int, n_tab: int = 2001):
    """(vmin, z_at_min, vmax, z_at_max) of log R(Z) over the validity range, per row."""
    zt = np.linspace(d.valid_range[0], d.valid_range[1], n_tab)
    if logu_rows is None:
        v = np.broadcast_to(d.log_ratio(zt, policy="ignore"), (n_rows, n_tab))
    else:
        v = d.log_ratio(zt[None, :], policy="ignore", logu=logu_rows[:, None])
    v = np.where(np.isfinite(v), v, np.nan)
    kmin = np.nanargmin(v, axis=1)
    kmax = np.nanargmax(v, axis=1)
    vinf = np.where(np.isfinite(v), v, np.inf)
    zmin, vmin = refine_minimum(zt, vinf, kmin)
    zmax, nvmax = refine_minimum(zt, np.where(np.isfinite(v), -v, np.inf), kmax)
    return vmin, zmin, -nvmax, zmax
