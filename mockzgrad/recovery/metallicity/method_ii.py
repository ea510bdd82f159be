"""Method II: each diagnostic inverted alone.

Double-valued calibrations (R3, R23, ...) pick the branch closest to the
Method I solution of the other diagnostics. The gradient is then fitted per
diagnostic and the median taken
(:func:`mockzgrad.recovery.gradient.median_gradient_over_diagnostics`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...errors import ConfigError
from ...physics.calibrations import Diagnostic
from ._common import REASON_OUTSIDE_RANGE, Z_STEP, join, logu_array
from ._grid import check_grid, default_grid, refine_minimum
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
    roots = [_roots(ratios, j, logu_b) for j in range(len(diags))]
    multi = {j: ratios.usable[:, j] & (r[1] >= 2) for j, r in enumerate(roots) if r is not None}
    multi = {j: m for j, m in multi.items() if m.any()}
    refs = _References(ratios, z_grid, logu_b, multi) if multi else None
    return {d.key: _invert(ratios, j, roots[j], logu_b, scatter, refs) for j, d in enumerate(diags)}


def _logu_of(d: Diagnostic, logu_b):
    """log U per bin for diagnostic ``d``, or None when it does not need it."""
    return None if logu_b is None or not d.needs_logu else logu_b


def _roots(ratios: RatioSet, j: int, logu_b):
    """(roots, number of finite roots) per bin of diagnostic ``j``, or None when it is usable nowhere."""
    u = ratios.usable[:, j]
    if not u.any():
        return None
    d = ratios.diagnostics[j]
    roots = d.z_roots(np.where(u, ratios.log_ratio[:, j], np.nan), logu=_logu_of(d, logu_b))
    return roots, np.sum(np.isfinite(roots), axis=1)


class _References:
    """Method I solutions that decide the branch of a double-valued calibration.

    All of them come from one batched Method I call (per distinct grid) over
    only the bins that need one: for each diagnostic ``j`` with several
    roots, its multi-root bins without ``j`` (``others``), and the union of
    those bins with every usable diagnostic (``all``). Each bin's solution
    is the one a Method I call over all bins would give (the grid is the one
    that call would build; rows are independent).
    """

    def __init__(self, ratios: RatioSet, z_grid, logu_b, multi: dict):
        self._others, self._all = _batched_references(ratios, z_grid, logu_b, multi)

    def others(self, j: int):
        """(z, valid) of Method I without diagnostic ``j``, shape (n_bins,); NaN/False outside its bins."""
        return self._others[j]

    def all(self):
        """(z, valid) of Method I of every usable diagnostic; NaN/False outside the multi-root bins."""
        return self._all


def _batched_references(ratios: RatioSet, z_grid, logu_b, multi: dict):
    """Method I best fits for :class:`_References`: ``({j: (z, valid)}, (z, valid))``."""
    n = ratios.n_bins
    usable = ratios.usable
    blocks = []  # (key, its bins, its usable mask over all bins: decides the grid)
    for j, rows_mask in multi.items():
        others = usable.copy()
        others[:, j] = False
        blocks.append((j, np.flatnonzero(rows_mask), others))
    union = np.zeros(n, dtype=bool)
    for rows_mask in multi.values():
        union |= rows_mask
    blocks.append(("all", np.flatnonzero(union), usable))
    by_grid: dict[bytes, list] = {}
    grids = {}
    for block in blocks:
        grid = _reference_grid(ratios, block[2], z_grid)
        key = grid.tobytes()
        grids[key] = grid
        by_grid.setdefault(key, []).append(block)
    out = {}
    for key, group in by_grid.items():
        rows = np.concatenate([b[1] for b in group])
        mask = np.concatenate([b[2][b[1]] for b in group])
        fit = method_one_grid(_rows_of(ratios, rows), mask, z_grid=grids[key], scatter=True,
                              covariance=True, logu=None if logu_b is None else logu_b[rows])
        start = 0
        for name, r, _ in group:
            z, valid = np.full(n, np.nan), np.zeros(n, dtype=bool)
            z[r], valid[r] = fit.z[start:start + r.size], fit.valid[start:start + r.size]
            out[name] = (z, valid)
            start += r.size
    return {j: out[j] for j in multi}, out["all"]


def _reference_grid(ratios: RatioSet, usable, z_grid) -> np.ndarray:
    """The metallicity grid of Method I over all bins with this usable mask (as method_one_grid builds it)."""
    if z_grid is not None:
        return check_grid(z_grid, "z_grid")
    diags = ratios.diagnostics
    # method_one_grid drops zero-variance diagnostics (scatter on, no default scatter) before it builds the grid
    s2 = np.array([(d.sigma_ratio_or_default(None)[0] or 0.0) ** 2 for d in diags])
    with np.errstate(invalid="ignore"):
        var = np.diagonal(ratios.cov, axis1=1, axis2=2) + s2
        usable = usable & (var > 0)
    active = np.flatnonzero(usable.any(axis=0))
    return default_grid([diags[j].valid_range for j in active] or [(8.0, 8.0 + Z_STEP)])


def _rows_of(ratios: RatioSet, rows) -> RatioSet:
    """The bins ``rows`` of ``ratios`` (repeats allowed)."""
    return dataclasses.replace(
        ratios, log_ratio=ratios.log_ratio[rows], cov=ratios.cov[rows], usable=ratios.usable[rows],
        reasons=tuple(tuple(r[i] for i in rows) for r in ratios.reasons))


def _invert(ratios: RatioSet, j: int, roots, logu_b, scatter: bool, refs: _References | None
            ) -> MetallicityResult:
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
    if roots is not None:
        lu = _logu_of(d, logu_b)
        roots, nr = roots
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
    z_others, valid_others = refs.others(j)
    ref = np.where(valid_others, z_others, refs.all()[0])
    dist = np.abs(np.where(np.isfinite(roots), roots, np.inf) - ref[:, None])
    pick = np.argmin(dist, axis=1)
    z[multi] = roots[multi, pick[multi]]
    for b in np.flatnonzero(multi):
        k = int(nr[b])
        branch[b] = ("lower" if pick[b] == 0 else "upper") if k == 2 else \
            f"root {pick[b] + 1} of {k}"
        if valid_others[b]:
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
