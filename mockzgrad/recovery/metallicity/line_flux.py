"""The line-flux method: Z, A_V and the intrinsic Hbeta flux fitted jointly to the line fluxes.

The posterior is that of :class:`~.likelihood.LineFluxLikelihood`. On a grid
(default) each bin is evaluated in two stages: a coarse (Z, A_V) grid with
f_Hb profiled locates the posterior and the scale of f_Hb; a fine grid over
the region within Delta chi^2 = 25 of the best coarse node, with f_Hb
marginalised, gives the estimates. With ``sampler="emcee"`` the grid result
starts the walkers of a per-bin chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fluxes import BinFluxes, check_bins, readonly
from ._common import P_HI, P_LO, Z_STEP, check_mcmc, check_rng, check_sampler, resolve_diagnostics
from ._grid import check_grid, chunks, log_trapezoid_weights, percentiles, refine_minimum
from .likelihood import LineFluxLikelihood
from .result import MetallicityResult

__all__ = ["line_flux_method"]

_COARSE_DZ = 0.01  # dex
_COARSE_DAV = 0.1  # mag
_FINE_NZ = 81
_FINE_NAV = 41
_BOX_DCHI2 = 25.0  # the fine box holds every coarse node within this of the best
_F_SPAN = 1e3  # log-uniform f_Hb prior on [f_ref / span, f_ref * span]


@dataclass(eq=False)
class _Estimates:
    """Per-bin estimates, filled stage by stage (NaN until set)."""

    z: np.ndarray
    z_median: np.ndarray
    z_lo: np.ndarray
    z_hi: np.ndarray
    a_v: np.ndarray
    a_v_median: np.ndarray
    a_v_lo: np.ndarray
    a_v_hi: np.ndarray
    f_hb: np.ndarray
    chi2_min: np.ndarray
    z_step: np.ndarray  # Z step of the fine grid, dex

    @classmethod
    def empty(cls, n: int) -> "_Estimates":
        nan = np.full(n, np.nan)
        return cls(*(nan.copy() for _ in range(11)))


def line_flux_method(bins: BinFluxes, diagnostics, *, dust_law: str = "calzetti2000",
                     r_v: float | None = None, a_v_range=(0.0, 4.0), fit_dust: bool = True,
                     balmer=("Hb", "Ha", "Hg"), nii_ha=None, scatter: bool = True,
                     likelihood: str = "chi2", sampler: str = "grid",
                     rng: np.random.Generator | None = None, n_walkers: int = 100,
                     n_steps: int = 5000, n_burn: int = 2000, z_grid=None, av_grid=None,
                     logu=None) -> MetallicityResult:
    """Bayesian fit of Z, A_V and the intrinsic Hbeta flux to the line fluxes.

    Wang et al. (2017, ApJ 837, 89; Wang et al. 2022): every observed line
    ``i`` is predicted as ``R_i(Z) f_Hb 10^(-0.4 A_V k_i / R_V)``, with
    ``R_i(Z)`` its flux relative to Hbeta implied by the calibrations, and

    ``chi^2 = sum_i (f_i - a_i f_Hb)^2 / (sigma_i^2 + f_Hb^2 t_i^2)``,
    ``a_i = R_i 10^(-0.4 A_V k_i / R_V)``, ``t_i = a_i ln10 sigma_Ri``

    (``sigma_Ri``: intrinsic scatter of log R_i, dex, so ``t_i`` is the
    scatter in linear units).

    Parameters
    ----------
    bins : BinFluxes
        Observed (not dust-corrected unless ``fit_dust=False``) line fluxes.
        Only the variances are used (lines independent, as published); a
        blend's variance includes the covariance of its members.
    diagnostics : sequence of str or Diagnostic
        Calibrations that predict the lines. Each line's ratio to Hbeta is
        derived from the diagnostics that are a ratio of two lines or blends:
        over Hbeta directly (R3 gives [OIII]5008/Hb, O2 gives [OII]/Hb), over
        Halpha with the Case-B Ha/Hb = 2.86 (S2, N2), or chained through an
        already predicted line (Ne3O2 over [OII], O32 over [OII] or
        [OIII]); the scatters of chained ratios add in quadrature. The first
        diagnostic that predicts a line wins; redundant or composite ones
        (R23, O3N2, Rhat) are not used (``info["remarks"]``).
    dust_law : str, optional
        Attenuation law of :mod:`mockzgrad.physics.dust`.
    r_v : float, optional
        R_V; None = the law's default.
    a_v_range : (float, float), optional
        Flat prior on A_V, mag.
    fit_dust : bool, optional
        False for de-reddened fluxes: A_V fixed at 0.
    balmer : tuple of str, optional
        Balmer lines used as data, with the fixed Case-B ratios of
        :data:`mockzgrad.physics.lines.BALMER_RATIOS` (no scatter). Hbeta is always
        the flux parameter; it is a data point only if listed.
    nii_ha : None, "nuisance" or float, optional
        None: "Ha" is pure Halpha. Otherwise "Ha" is the Halpha+[NII]
        6550,6585 blend (grism data) and [NII]6585/Ha comes from an N2
        diagnostic if one is given, else is this fixed value (e.g. 0.05), or
        with ``"nuisance"`` a free parameter with a Jeffreys (log-uniform)
        prior on :data:`~mockzgrad.recovery.metallicity.NII_HA_RANGE` (the log-uniform prior needs a lower
        bound); [NII]6550 = [NII]6585 / NII_DOUBLET_RATIO.
    scatter : bool, optional
        Include the calibrations' intrinsic scatter (``sigma_ratio``;
        unknown = 0, listed in ``info``).
    likelihood : {"chi2", "gaussian"}, optional
        ``"chi2"``: posterior ~ exp(-chi^2 / 2) as published. ``"gaussian"``:
        the normalised Gaussian likelihood, which adds
        ``-1/2 sum ln(sigma_i^2 + f_Hb^2 t_i^2)``; it matters only where the
        scatter term is comparable to the measurement errors.
    sampler : {"grid", "emcee"}, optional
        ``"grid"``: f_Hb is marginalised numerically for every (Z, A_V)
        node on 13 log-spaced nodes spanning -+6 conditional sigma around the
        weighted least-squares f_Hb (iteratively reweighted when the scatter
        term is on). Without ``z_grid``/``av_grid`` the (Z, A_V) grid is
        adaptive: a coarse grid (0.01 dex x 0.1 mag, f_Hb profiled) locates
        the region within Delta chi^2 = 25 of the best node, which is then
        covered by a fine 81 x 41 grid per bin (its Z step is in
        ``info["z_step"]``). With ``z_grid`` and/or ``av_grid`` given, that
        exact grid is used for every bin (the other one defaulting to steps
        of 0.001 dex over the Z prior or 0.02 mag over ``a_v_range``). ``"emcee"``: (Z, A_V, ln f_Hb[,
        ln [NII]/Ha]) sampled per bin, the published setting being 100
        walkers, 5000 steps, 2000 burn-in, started around the grid best fit.
    rng : numpy.random.Generator, optional
        Required for ``sampler="emcee"``.
    n_walkers, n_steps, n_burn : int, optional
        emcee settings.
    z_grid, av_grid : array_like, optional
        Explicit grids, dex and mag.
    logu : float or array_like, optional
        log10 U per bin for Kewley et al. (2019) surfaces.

    Returns
    -------
    MetallicityResult
        ``method = "line_flux"`` with ``a_v``, ``a_v_median``, ``a_v_lo``,
        ``a_v_hi`` and ``f_hb`` (best fit). Priors: Z flat on the
        intersection of the used calibrations' ranges; A_V flat on
        ``a_v_range``; f_Hb log-uniform (Jeffreys) on ``[f/1000, 1000 f]``
        around the coarse best fit ``f`` of the bin (wide enough not to
        matter for a detected bin).
    """
    bins = check_bins(bins)
    diags = resolve_diagnostics(diagnostics)
    check_sampler(sampler)
    check_rng(rng, sampler)
    lk = LineFluxLikelihood.from_bins(bins, diags, dust_law=dust_law, r_v=r_v, a_v_range=a_v_range,
                                      fit_dust=fit_dust, balmer=balmer, nii_ha=nii_ha,
                                      scatter=scatter, likelihood=likelihood, logu=logu)
    reason = _bin_reasons(lk)
    live = np.array([r == "" for r in reason])
    est = _Estimates.empty(lk.n_bins)
    f_lo, f_hi, box = _coarse_stage(lk, live, reason)
    _fine_stage(lk, live, reason, est, box, f_lo, f_hi, z_grid, av_grid)
    info = {"sampler": sampler, "dust_law": dust_law, "r_v": lk.r_v, "fit_dust": bool(fit_dust),
            "a_v_range": lk.a_v_range, "scatter": bool(scatter), "scatter_unknown": lk.scatter_unknown,
            "likelihood": likelihood, "units": lk.labels,
            "nii_ha": nii_ha, "remarks": lk.remarks, "z_prior": lk.z_prior,
            "z_step": readonly(est.z_step)}
    if sampler == "emcee":
        n_walkers, n_steps, n_burn = check_mcmc(n_walkers, n_steps, n_burn, lk.n_dim)
        info.update(n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn)
        _emcee_stage(lk, live, est, f_lo, f_hi, rng, n_walkers, n_steps, n_burn)
    return _result(lk, est, live, reason, info)


def _bin_reasons(lk: LineFluxLikelihood) -> list[str]:
    """Why each bin cannot be fitted ("" if it can)."""
    metal = np.array([u.kind == "metal" for u in lk.units])
    n_ok = lk.measured.sum(axis=1)
    reason = []
    for b in range(lk.n_bins):
        if not (lk.measured[b] & metal).any():
            reason.append("no metallicity-sensitive line measured")
        elif n_ok[b] < 2:
            reason.append("fewer than two measured lines")
        else:
            reason.append("")
    return reason


def _coarse_stage(lk: LineFluxLikelihood, live, reason):
    """Coarse (Z, A_V) grid, f_Hb profiled: the f_Hb prior and the fine box of each bin.

    Returns (f_lo, f_hi, box) with box = (z_lo, z_hi, av_lo, av_hi) per bin;
    bins where no positive f_Hb fits are marked dead (``live``, ``reason``).
    """
    n = lk.n_bins
    zlo, zhi = lk.z_prior
    a0, a1 = lk.a_v_range
    zc = np.unique(np.append(np.arange(zlo, zhi, _COARSE_DZ), zhi))
    zc = zc[lk.in_z_prior(zc)]
    avc = np.unique(np.append(np.arange(a0, a1, _COARSE_DAV), a1)) if lk.fit_dust else np.zeros(1)
    flo, fhi = np.full(n, np.nan), np.full(n, np.nan)
    box = np.full((n, 4), np.nan)
    rows_all = np.flatnonzero(live)
    for sl in chunks(rows_all.size, zc.size * avc.size * len(lk.units) * 6):
        rows = rows_all[sl]
        nb = rows.size
        lp, fpos = lk.profile(np.broadcast_to(zc, (nb, zc.size)), np.broadcast_to(avc, (nb, avc.size)),
                              rows)
        flat = lp.reshape(nb, -1)
        kb = np.argmax(flat, axis=1)
        top = flat[np.arange(nb), kb]
        fref = fpos.reshape(nb, -1)[np.arange(nb), kb]
        flo[rows], fhi[rows] = fref / _F_SPAN, fref * _F_SPAN
        box[rows] = _box(lp >= (top - 0.5 * _BOX_DCHI2)[:, None, None], zc, avc)
        for b in rows[~(np.isfinite(top) & (fref > 0))]:
            reason[b] = "no positive Hbeta flux fits the data"
            live[b] = False
    return flo, fhi, box


def _box(sel, zc, avc):
    """(z_lo, z_hi, av_lo, av_hi) of the selected coarse nodes, one node wider on each side."""
    anyz, anyv = sel.any(axis=2), sel.any(axis=1)
    iz, iv = np.arange(zc.size), np.arange(avc.size)
    zmin_i = np.where(anyz, iz, zc.size).min(1) - 1
    zmax_i = np.where(anyz, iz, -1).max(1) + 1
    vmin_i = np.where(anyv, iv, avc.size).min(1) - 1
    vmax_i = np.where(anyv, iv, -1).max(1) + 1
    return np.stack([zc[np.clip(zmin_i, 0, zc.size - 1)], zc[np.clip(zmax_i, 0, zc.size - 1)],
                     avc[np.clip(vmin_i, 0, avc.size - 1)],
                     avc[np.clip(vmax_i, 0, avc.size - 1)]], axis=1)


def _fine_grids(lk: LineFluxLikelihood, z_grid, av_grid):
    """Explicit (Z, A_V) grids shared by every bin, or None for per-bin adaptive boxes."""
    if z_grid is None and av_grid is None:
        return None
    zlo, zhi = lk.z_prior
    a0, a1 = lk.a_v_range
    zg = (check_grid(z_grid, "z_grid") if z_grid is not None
          else np.linspace(zlo, zhi, int(round((zhi - zlo) / Z_STEP)) + 1))
    if not lk.fit_dust:
        ag = np.zeros(1)
    elif av_grid is not None:
        ag = check_grid(av_grid, "av_grid")
    else:
        ag = np.linspace(a0, a1, int(round((a1 - a0) / 0.02)) + 1)
    return zg, ag


def _fine_stage(lk: LineFluxLikelihood, live, reason, est: _Estimates, box, flo, fhi, z_grid, av_grid):
    """Fine (Z, A_V) grid with f_Hb marginalised: the estimates of every live bin."""
    grids = _fine_grids(lk, z_grid, av_grid)
    if grids is not None:
        nzf, nvf = grids[0].size, grids[1].size
    else:
        nzf, nvf = _FINE_NZ, (_FINE_NAV if lk.fit_dust else 1)
    rows_all = np.flatnonzero(live)
    for sl in chunks(rows_all.size, nzf * nvf * len(lk.units) * 8):
        rows = rows_all[sl]
        nb = rows.size
        ar = np.arange(nb)
        if grids is not None:
            zz = np.broadcast_to(grids[0], (nb, nzf))
            aa = np.broadcast_to(grids[1], (nb, nvf))
        else:
            zz = box[rows, 0:1] + (box[rows, 1:2] - box[rows, 0:1]) * np.linspace(0.0, 1.0, nzf)
            aa = (box[rows, 2:3] + (box[rows, 3:4] - box[rows, 2:3]) * np.linspace(0.0, 1.0, nvf)
                  if lk.fit_dust else np.zeros((nb, 1)))
        lp, chi2, fc = lk.grid_posterior(zz, aa, rows, flo[rows], fhi[rows])
        with np.errstate(invalid="ignore"):
            pz = np.logaddexp.reduce(lp + log_trapezoid_weights(aa)[:, None, :], axis=2)
            pv = np.logaddexp.reduce(lp + log_trapezoid_weights(zz)[:, :, None], axis=1)
        kb = np.argmin(chi2.reshape(nb, -1), axis=1)
        ibz, ibv = np.unravel_index(kb, (nzf, nvf))
        est.z[rows], est.chi2_min[rows] = refine_minimum(zz, chi2[ar, :, ibv], ibz)
        est.z_lo[rows], est.z_median[rows], est.z_hi[rows] = percentiles(zz, pz)
        est.z_step[rows] = zz[:, 1] - zz[:, 0]
        est.a_v[rows] = aa[ar, ibv]
        est.f_hb[rows] = fc[ar, ibz, ibv]
        if lk.fit_dust:
            est.a_v_lo[rows], est.a_v_median[rows], est.a_v_hi[rows] = percentiles(aa, pv)
        else:
            est.a_v_lo[rows] = est.a_v_median[rows] = est.a_v_hi[rows] = 0.0
        for b in rows[~np.isfinite(chi2[ar, ibz, ibv])]:
            reason[b] = "no grid node inside the prior gives finite predicted fluxes"
            live[b] = False


def _emcee_stage(lk: LineFluxLikelihood, live, est: _Estimates, flo, fhi, rng, n_walkers, n_steps,
                 n_burn):
    """Replace the grid estimates of every live bin by those of an emcee chain."""
    i_f = 1 + int(lk.fit_dust)
    for b in np.flatnonzero(live):
        f_range = (flo[b], fhi[b])
        scale = (max(0.5 * (est.z_hi[b] - est.z_lo[b]), 1e-4),
                 max(0.5 * (est.a_v_hi[b] - est.a_v_lo[b]), 1e-3))
        p0 = lk.start(b, est.z[b], est.a_v[b], est.f_hb[b], scale, rng, n_walkers, f_range)
        chain, lpc = lk.sample(b, p0, rng, n_steps, n_burn, f_range)
        est.z_lo[b], est.z_median[b], est.z_hi[b] = np.percentile(chain[:, 0], [P_LO, 50.0, P_HI])
        kbest = int(np.argmax(lpc))
        est.z[b] = chain[kbest, 0]
        if lk.fit_dust:
            est.a_v_lo[b], est.a_v_median[b], est.a_v_hi[b] = np.percentile(chain[:, 1], [P_LO, 50.0, P_HI])
            est.a_v[b] = chain[kbest, 1]
        est.f_hb[b] = math.exp(chain[kbest, i_f])
        est.chi2_min[b] = lk.evaluate(chain[kbest:kbest + 1], b, f_range)[0][0]


def _result(lk: LineFluxLikelihood, est: _Estimates, live, reason, info) -> MetallicityResult:
    n = lk.n_bins
    valid = live & np.isfinite(est.z) & np.isfinite(est.z_median) & np.isfinite(est.z_lo) & \
        np.isfinite(est.z_hi)
    for b in range(n):
        if not valid[b] and not reason[b]:
            reason[b] = "posterior could not be evaluated"

    def keep(v):
        return np.where(valid, v, np.nan)

    used_keys = lk.used_keys
    z_note = "validity ranges do not overlap; Z prior = their union" if lk.z_union else ""
    return MetallicityResult(
        method="line_flux", z=keep(est.z), z_median=keep(est.z_median), z_lo=keep(est.z_lo),
        z_hi=keep(est.z_hi), valid=valid, reason=tuple(reason),
        diagnostics_used=tuple(used_keys if valid[b] else () for b in range(n)),
        chi2_min=keep(est.chi2_min), notes=(z_note,) * n, a_v=keep(est.a_v),
        a_v_median=keep(est.a_v_median), a_v_lo=keep(est.a_v_lo), a_v_hi=keep(est.a_v_hi),
        f_hb=keep(est.f_hb), info=info,
    )
