"""Method I: the one metallicity per bin that best satisfies every usable diagnostic at once.

chi^2(Z) = d^T C^-1 d with d_i = log R_obs,i - log R_i(Z) over the diagnostics
usable in the bin; the posterior is exp(-chi^2 / 2) times a flat prior on the
intersection of their validity ranges (their union, noted per bin, when they
do not overlap), evaluated on a fine Z grid or sampled with emcee.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, RecoveryWarning
from ...physics.diagnostic import DEFAULT_SIGMA_RATIO, DEFAULT_SIGMA_RATIO_BASIS
from ._common import (
    P_HI,
    P_LO,
    REASON_NO_DIAGNOSTIC,
    TOL,
    Z_STEP,
    check_mcmc,
    check_rng,
    check_sampler,
    join,
    logu_array,
    run_emcee,
)
from ._grid import check_grid, chunks, default_grid, percentiles, refine_minimum
from .branches import choose_branches, restrict_to_branches
from .ratios import RatioSet
from .result import MetallicityResult

__all__ = ["method_one", "method_one_grid", "weight_shares", "DOMINANCE_SHARE"]

#: Share of the Method I weight (Fisher information on Z, summed over the valid bins) above
#: which one diagnostic is reported as dominating the fit (``info["dominant"]`` and a warning).
DOMINANCE_SHARE = 0.8


@dataclass(eq=False)
class _GridFit:
    """Method I on a grid for one usable mask: per-bin estimates and what emcee reuses."""

    z: np.ndarray
    z_median: np.ndarray
    z_lo: np.ndarray
    z_hi: np.ndarray
    chi2_min: np.ndarray
    valid: np.ndarray
    reason: list
    used: tuple
    notes: list
    usable: np.ndarray  # (n, m) after dropping zero-variance diagnostics
    cinv: np.ndarray  # (n, m, m) inverse covariance of the usable block
    lo_b: np.ndarray  # per-bin prior: intersection of the validity ranges
    hi_b: np.ndarray
    disjoint: np.ndarray  # ranges do not overlap: prior = their union
    grid: np.ndarray
    logu: np.ndarray | None
    unknown: tuple  # diagnostics of unknown scatter (and no default)
    defaulted: tuple = ()  # diagnostics given the default scatter
    logp: np.ndarray | None = None  # (n, G) log posterior on the grid, -inf outside the prior
    branch_lo: np.ndarray | None = None  # chosen branch's support per bin (NaN: not restricted)
    branch_hi: np.ndarray | None = None

    def estimates(self) -> dict:
        """The per-bin estimates, keyword arguments of :class:`MetallicityResult`."""
        return {"z": self.z, "z_median": self.z_median, "z_lo": self.z_lo, "z_hi": self.z_hi,
                "chi2_min": self.chi2_min}


def method_one(ratios: RatioSet, *, z_grid=None, scatter: bool = True, covariance: bool = True,
               logu=None, rng: np.random.Generator | None = None, sampler: str = "grid",
               n_walkers: int = 16, n_steps: int = 1000, n_burn: int = 300,
               default_scatter: float | None = DEFAULT_SIGMA_RATIO, radius=None) -> MetallicityResult:
    """Method I: one metallicity per bin from all usable diagnostics at once.

    chi^2(Z) = d^T C^-1 d with d_i = log R_obs,i - log R_i(Z) over the
    diagnostics usable in the bin; the posterior is exp(-chi^2 / 2) times a
    flat prior on the intersection of their validity ranges (their union,
    noted per bin, when they do not overlap).

    Parameters
    ----------
    ratios : RatioSet
        Output of :func:`~mockzgrad.recovery.metallicity.log_ratios`.
    z_grid : array_like, optional
        Metallicity grid, dex, strictly ascending. Default: step
        :data:`~mockzgrad.recovery.metallicity.Z_STEP` (0.001 dex) over the
        union of the validity ranges, plus every range edge, so that each
        bin's prior edges are grid nodes.
    scatter : bool, optional
        Add the calibrations' intrinsic scatter, ``diag(sigma_ratio^2)``
        (dex^2), to C. A diagnostic without a published ``sigma_ratio``
        gets ``default_scatter`` (listed in ``info["scatter_default"]``);
        with ``default_scatter=None`` it contributes 0 (listed in
        ``info["scatter_unknown"]``).
    covariance : bool, optional
        Use the full measurement covariance of the log ratios (shared lines)
        or only its diagonal. Published Method I (Lee et al. 2026 and most
        papers) ignores the covariance (``covariance=False``); with it the
        errors are calibrated (see the tests). A singular C (e.g. two
        calibrations of the same ratio without scatter) is pseudo-inverted.
    logu : float or array_like, optional
        log10 U per bin (shape ``(n_bins,)`` or scalar), needed by Kewley
        et al. (2019) surfaces.
    rng : numpy.random.Generator, optional
        Required for ``sampler="emcee"``.
    sampler : {"grid", "emcee"}, optional
        ``"grid"``: exact evaluation on ``z_grid``; the best fit is refined
        by a parabola through the minimum and its neighbours; percentiles
        from the trapezoid CDF. ``"emcee"``: the same posterior sampled with
        emcee (Foreman-Mackey et al. 2013) in each bin, walkers started in a
        small ball around the grid best fit; the best fit is the sample of
        highest posterior.
    n_walkers, n_steps, n_burn : int, optional
        emcee settings (16 walkers, 1000 steps, 300 discarded).
    default_scatter : float or None, optional
        Intrinsic scatter in log R (dex) of diagnostics whose calibration
        gives none; default
        :data:`~mockzgrad.physics.diagnostic.DEFAULT_SIGMA_RATIO` (its basis
        is recorded in ``info["scatter_default_basis"]``).
    radius : array_like, shape (n_bins,), optional
        Bin radii (any unit), the inward/outward order of the branch choice;
        default the bin order (annuli numbered outward).

    Returns
    -------
    MetallicityResult
        ``method = "I"``. ``branch``, ``chosen_by``, ``branch_prob`` and
        ``degenerate`` give each bin's branch, what chose it, its
        probability and whether the bin's own data fix its Z (see Notes).
        ``info["weight_share"]`` gives each diagnostic's share of the weight
        (:func:`weight_shares`); ``info["dominant"]`` is the key of a
        diagnostic holding more than :data:`DOMINANCE_SHARE` of it when two
        or more diagnostics were used (else None), and a
        :class:`~mockzgrad.errors.RecoveryWarning` says so. Bins without a
        usable diagnostic are not valid, with reason starting with
        :data:`~mockzgrad.recovery.metallicity.REASON_NO_DIAGNOSTIC`.

    Notes
    -----
    Where a bin's chi^2(Z) has several minima within
    :data:`~mockzgrad.recovery.metallicity.branches.DELTA_CHI2` of the best
    (a double-valued calibration alone, e.g. R3 once the S/N gate has
    removed [OII] and [NeIII]), the branch is taken from the Z(r) trend of
    the bins whose data break the degeneracy, inward (else outward); each
    branch gets its probability under that trend and the bin's posterior
    is the branches' mixture (:mod:`~mockzgrad.recovery.metallicity.branches`).
    Such bins, and bins with a double-valued calibration alone, are marked
    ``degenerate``: the recovery keeps them out of the gradient fit.
    """
    if not isinstance(ratios, RatioSet):
        raise ConfigError(f"ratios: expected a RatioSet from log_ratios, got {type(ratios).__name__}")
    check_sampler(sampler)
    check_rng(rng, sampler)
    if default_scatter is not None and not (np.isfinite(default_scatter) and default_scatter >= 0):
        raise ConfigError(f"default_scatter = {default_scatter!r}: expected a finite number >= 0 (dex)")
    g = method_one_grid(ratios, ratios.usable, z_grid=z_grid, scatter=scatter,
                        covariance=covariance, logu=logu, default_scatter=default_scatter)
    info = {"sampler": sampler, "scatter": bool(scatter), "covariance": bool(covariance),
            "scatter_unknown": g.unknown, "z_grid_step": float(np.median(np.diff(g.grid))),
            "gate": ratios.gate, "snr_min": ratios.snr_min}
    if g.defaulted:
        info["scatter_default"] = {k: float(default_scatter) for k in g.defaulted}
        info["scatter_default_basis"] = DEFAULT_SIGMA_RATIO_BASIS
    out = _choose_branches(g, radius, ratios.diagnostics)
    if sampler == "emcee":
        n_walkers, n_steps, n_burn = check_mcmc(n_walkers, n_steps, n_burn, 1)
        _method_one_emcee(ratios, g, out, rng, n_walkers, n_steps, n_burn, z_grid)
        info.update(n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn)
    _report_dominance(ratios, g, out["z"], info)
    branch, chosen_by, prob = out.pop("branch"), out.pop("chosen_by"), out.pop("branch_prob")
    degenerate = out.pop("degenerate")
    return MetallicityResult(
        method="I", valid=g.valid, reason=tuple(g.reason),
        diagnostics_used=g.used, notes=tuple(join(x) for x in g.notes), info=info,
        branch=branch, chosen_by=chosen_by, branch_prob=prob, degenerate=degenerate, **out,
    )


def _breaks_degeneracy(g: _GridFit, diags) -> np.ndarray:
    """Bins whose data can fix the branch: two or more diagnostics, or one monotonic over the grid."""
    n_used = g.usable.sum(axis=1)
    out = n_used >= 2
    for j, d in enumerate(diags):
        alone = (n_used == 1) & g.usable[:, j]
        if not alone.any() or d.needs_logu:
            continue
        lo, hi = d.valid_range
        zz = g.grid[(g.grid >= lo - TOL) & (g.grid <= hi + TOL)]
        with np.errstate(invalid="ignore"):
            step = np.diff(d.log_ratio(zz, policy="ignore"))
        if np.all(step > 0) or np.all(step < 0):
            out |= alone
    return out


def _choose_branches(g: _GridFit, radius, diags) -> dict:
    """The grid estimates with each bin's posterior confined to its branches (notes added)."""
    out = {k: v.copy() for k, v in g.estimates().items()}
    with np.errstate(invalid="ignore"):
        chi2 = np.where(np.isfinite(g.logp), -2.0 * g.logp, np.inf)
    err = 0.5 * (out["z_hi"] - out["z_lo"])
    choice = choose_branches(g.grid, chi2, g.valid, radius, anchor_ok=_breaks_degeneracy(g, diags), z_err=err)
    rows, z, lo, med, hi, c2 = restrict_to_branches(g.grid, chi2, g.logp, choice)
    out["z"][rows], out["z_lo"][rows], out["z_median"][rows] = z, lo, med
    out["z_hi"][rows], out["chi2_min"][rows] = hi, c2
    g.branch_lo, g.branch_hi = choice.lo, choice.hi
    for b in range(g.z.size):
        if choice.branch[b] not in ("", "single"):
            g.notes[b].append(f"several branches fit; {choice.branch[b]} chosen by {choice.chosen_by[b]}"
                              + (f" (P = {choice.prob[b]:.2f})" if np.isfinite(choice.prob[b]) else ""))
    out["branch"], out["chosen_by"], out["branch_prob"] = choice.branch, choice.chosen_by, choice.prob
    out["degenerate"] = choice.degenerate
    return out


def method_one_grid(ratios: RatioSet, usable: np.ndarray, *, z_grid, scatter, covariance,
                    logu, default_scatter: float | None = None) -> _GridFit:
    """Method I on a grid for an explicit usable mask (Method II reuses it for branches).

    ``default_scatter`` (dex) is the intrinsic scatter given to diagnostics
    without a published one when ``scatter`` is on; None gives them none.
    """
    diags = ratios.diagnostics
    n, m = ratios.log_ratio.shape
    notes: list[list[str]] = [[] for _ in range(n)]
    cov, usable = _total_covariance(ratios, usable, scatter, covariance, notes, default_scatter)
    active = np.flatnonzero(usable.any(axis=0))
    no_pub = [diags[j].key for j in active if diags[j].sigma_ratio is None]
    defaulted = tuple(no_pub) if (scatter and default_scatter is not None) else ()
    unknown = () if defaulted else tuple(no_pub)
    logu_b = logu_array(logu, n, [diags[j] for j in active])
    if z_grid is None:
        ranges = [diags[j].valid_range for j in active] or [(8.0, 8.0 + Z_STEP)]
        grid = default_grid(ranges)
    else:
        grid = check_grid(z_grid, "z_grid")
    mask, has, lo_b, hi_b, disjoint = _prior_mask(diags, usable, active, grid, notes)
    chi2, cinv = _chi2_on_grid(ratios, usable, cov, active, grid, logu_b)
    g = grid.size
    logp = np.where(mask & np.isfinite(chi2), -0.5 * chi2, -np.inf)
    ok = np.isfinite(logp).any(axis=1)
    k = np.argmax(logp, axis=1)
    chi2m = np.where(np.isfinite(logp), chi2, np.inf)
    z_best, chi2_min = refine_minimum(grid, chi2m, k)
    q = percentiles(grid, logp)
    edge = ok & ((k == 0) | (k == g - 1) | ~mask[np.arange(n), np.clip(k - 1, 0, g - 1)]
                 | ~mask[np.arange(n), np.clip(k + 1, 0, g - 1)])
    for b in np.flatnonzero(edge):
        notes[b].append("best fit at the edge of the prior range")
    reason = [_reason(ratios, b, has[b], ok[b]) for b in range(n)]
    valid = ok & np.isfinite(z_best) & np.all(np.isfinite(q), axis=0)
    nan = np.full(n, np.nan)
    return _GridFit(
        z=np.where(valid, z_best, nan), z_median=np.where(valid, q[1], nan),
        z_lo=np.where(valid, q[0], nan), z_hi=np.where(valid, q[2], nan),
        chi2_min=np.where(valid, chi2_min, nan), valid=valid, reason=reason,
        used=tuple(tuple(diags[j].key for j in np.flatnonzero(usable[b])) if valid[b] else ()
                   for b in range(n)),
        notes=notes, usable=usable, cinv=cinv, lo_b=lo_b, hi_b=hi_b, disjoint=disjoint,
        grid=grid, logu=logu_b, unknown=unknown, defaulted=defaulted, logp=logp,
    )


def _total_covariance(ratios: RatioSet, usable, scatter, covariance, notes, default_scatter=None):
    """Measurement (+ scatter) covariance of the log ratios; drops zero-variance diagnostics."""
    diags = ratios.diagnostics
    m = len(diags)
    usable = usable.copy()
    cov = np.array(ratios.cov, dtype=float)
    if not covariance:
        cov = cov * np.eye(m)
    s2 = np.array([(d.sigma_ratio_or_default(default_scatter)[0] or 0.0) ** 2 if scatter else 0.0
                   for d in diags])
    cov = cov + np.diag(s2)
    var = np.diagonal(cov, axis1=1, axis2=2)
    zero = usable & ~(var > 0)
    for b, j in zip(*np.nonzero(zero)):
        notes[b].append(f"{diags[j].key} dropped: zero variance (no error and no scatter)")
    usable &= var > 0
    return cov, usable


def _prior_mask(diags, usable, active, grid, notes):
    """Per-bin flat prior on the grid: intersection of the validity ranges, else their union."""
    g = grid.size
    los = np.array([d.valid_range[0] for d in diags])
    his = np.array([d.valid_range[1] for d in diags])
    has = usable.any(axis=1)
    lo_b = np.max(np.where(usable, los, -np.inf), axis=1)
    hi_b = np.min(np.where(usable, his, np.inf), axis=1)
    disjoint = has & (lo_b > hi_b + TOL)
    mask = (grid[None, :] >= lo_b[:, None] - TOL) & (grid[None, :] <= hi_b[:, None] + TOL)
    if disjoint.any():
        union = np.zeros((int(disjoint.sum()), g), dtype=bool)
        sub = usable[disjoint]
        for j in active:
            inside = (grid >= los[j] - TOL) & (grid <= his[j] + TOL)
            union |= sub[:, j:j + 1] & inside[None, :]
        mask[disjoint] = union
        for b in np.flatnonzero(disjoint):
            keys = ", ".join(diags[j].key for j in np.flatnonzero(usable[b]))
            notes[b].append(f"validity ranges of {keys} do not overlap; prior = their union")
    mask &= has[:, None]
    return mask, has, lo_b, hi_b, disjoint


def _chi2_on_grid(ratios: RatioSet, usable, cov, active, grid, logu_b):
    """chi^2 of every bin at every grid node, and the inverse covariance of the usable block."""
    diags = ratios.diagnostics
    n, m = ratios.log_ratio.shape
    g = grid.size
    cal = np.zeros((g, m))
    per_bin = {}  # surfaces that depend on the bin's log U
    for j in active:
        d = diags[j]
        if d.needs_logu:
            per_bin[j] = d.log_ratio(grid[None, :], policy="ignore", logu=logu_b[:, None])
        else:
            cal[:, j] = d.log_ratio(grid, policy="ignore")
    both = usable[:, :, None] & usable[:, None, :]
    cu = np.where(both, np.nan_to_num(cov), 0.0) + np.where(usable, 0.0, 1.0)[:, :, None] * np.eye(m)
    cinv = np.linalg.pinv(cu, rcond=1e-12, hermitian=True) * both
    obs = np.where(usable, ratios.log_ratio, 0.0)
    chi2 = np.empty((n, g))
    with np.errstate(invalid="ignore"):
        for sl in chunks(n, g * m):
            d = obs[sl, None, :] - cal[None, :, :]
            for j, c in per_bin.items():
                d[:, :, j] = obs[sl, None, j] - c[sl]
            d = np.where(usable[sl, None, :], d, 0.0)
            chi2[sl] = np.einsum("bgi,bij,bgj->bg", d, cinv[sl], d)
    return chi2, cinv


def weight_shares(ratios: RatioSet, usable: np.ndarray, cinv: np.ndarray, z: np.ndarray,
                  logu=None) -> dict:
    """Each diagnostic's share of the Method I weight, summed over the bins with a metallicity.

    The weight of diagnostic j in bin b is its Fisher information on Z,
    ``(d log R_j / dZ)^2 * (C^-1)_jj`` at the bin's best fit; shares are
    normalised to sum to 1 over the diagnostics (empty dict when no bin has
    a finite weight).

    Parameters
    ----------
    ratios : RatioSet
    usable : numpy.ndarray of bool, shape (n_bins, n_diagnostics)
    cinv : numpy.ndarray, shape (n_bins, n_diagnostics, n_diagnostics)
        Inverse total covariance (dex^-2) of the usable block.
    z : numpy.ndarray, shape (n_bins,)
        Best-fit metallicities (NaN where none), dex.
    logu : numpy.ndarray or None
        log U per bin, for surfaces that need it.
    """
    diags = ratios.diagnostics
    ok = np.isfinite(z)
    w = np.zeros(len(diags))
    for j, d in enumerate(diags):
        sel = ok & usable[:, j]
        if not sel.any():
            continue
        lu = None if (logu is None or not d.needs_logu) else np.asarray(logu)[sel]
        with np.errstate(invalid="ignore"):
            slope = d.dlog_ratio_dz(z[sel], logu=lu)
        info = slope ** 2 * cinv[sel, j, j]
        w[j] = float(np.sum(info[np.isfinite(info)]))
    total = w.sum()
    if not total > 0:
        return {}
    return {d.key: float(w[j] / total) for j, d in enumerate(diags) if usable[:, j].any()}


def _report_dominance(ratios: RatioSet, g: _GridFit, z: np.ndarray, info: dict) -> None:
    """``info["weight_share"]`` and ``info["dominant"]``; warns when one diagnostic dominates."""
    shares = weight_shares(ratios, g.usable, g.cinv, np.asarray(z, dtype=float), g.logu)
    info["weight_share"] = shares
    info["dominant"] = None
    if len(shares) < 2:
        return
    key, share = max(shares.items(), key=lambda kv: kv[1])
    if share > DOMINANCE_SHARE:
        info["dominant"] = key
        others = ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if k != key)
        warnings.warn(f"Method I: {key} carries {share:.0%} of the weight of the metallicity fit "
                      f"(others: {others}); the result is in effect {key} alone",
                      RecoveryWarning, stacklevel=3)


def _reason(ratios: RatioSet, b: int, has: bool, ok: bool) -> str:
    if not has:
        why = [f"{d.key}: {ratios.reasons[j][b] or 'dropped'}" for j, d in enumerate(ratios.diagnostics)]
        return f"{REASON_NO_DIAGNOSTIC} ({join(why)})"
    if not ok:
        return "no grid metallicity inside the prior range gives finite calibrated ratios"
    return ""


def _method_one_emcee(ratios, g: _GridFit, out, rng, n_walkers, n_steps, n_burn, z_grid):
    """Replace the grid estimates of every valid bin by those of an emcee chain (in place)."""
    for b in np.flatnonzero(g.valid):
        log_prob, intervals = _bin_log_prob(ratios, g, b, z_grid)
        z0 = out["z"][b]
        sd = max(0.5 * (out["z_hi"][b] - out["z_lo"][b]), 1e-4)
        lo, hi = next(((lo, hi) for lo, hi in intervals if lo - TOL <= z0 <= hi + TOL),
                      intervals[0])
        p0 = np.clip(z0 + 0.1 * sd * rng.standard_normal((n_walkers, 1)), lo, hi)
        chain, lp = run_emcee(log_prob, p0, rng, n_steps, n_burn)
        lo_q, med, hi_q = np.percentile(chain[:, 0], [P_LO, 50.0, P_HI])
        out["z_lo"][b], out["z_median"][b], out["z_hi"][b] = lo_q, med, hi_q
        out["z"][b] = chain[np.argmax(lp), 0]
        out["chi2_min"][b] = -2.0 * np.max(lp)


def _bin_log_prob(ratios: RatioSet, g: _GridFit, b: int, z_grid):
    """The Method I log-posterior of bin ``b`` for emcee, and its prior intervals."""
    diags = ratios.diagnostics
    idx = np.flatnonzero(g.usable[b])
    obs = ratios.log_ratio[b, idx]
    ci = g.cinv[b][np.ix_(idx, idx)]
    lu = None if g.logu is None else g.logu[b]
    if g.disjoint[b]:
        intervals = [diags[j].valid_range for j in idx]
    else:
        intervals = [(g.lo_b[b], g.hi_b[b])]
    if z_grid is not None:
        glo, ghi = g.grid[0], g.grid[-1]
        intervals = [(max(lo, glo), min(hi, ghi)) for lo, hi in intervals]
    if g.branch_lo is not None and np.isfinite(g.branch_lo[b]):  # the chosen branch only
        blo, bhi = g.branch_lo[b], g.branch_hi[b]
        intervals = [(max(lo, blo), min(hi, bhi)) for lo, hi in intervals
                     if max(lo, blo) <= min(hi, bhi)] or [(blo, bhi)]

    def log_prob(theta):
        z = theta[:, 0]
        inside = np.zeros(z.shape, dtype=bool)
        for lo, hi in intervals:
            inside |= (z >= lo - TOL) & (z <= hi + TOL)
        cal = np.stack([diags[j].log_ratio(z, policy="ignore", logu=lu) for j in idx], axis=-1)
        d = obs[None, :] - cal
        with np.errstate(invalid="ignore"):
            chi2 = np.einsum("wi,ij,wj->w", d, ci, d)
        return np.where(inside & np.isfinite(chi2), -0.5 * chi2, -np.inf)

    return log_prob, intervals
