"""Method I branch choice where a bin's diagnostics leave its chi^2(Z) with several minima.

A double-valued calibration used alone (R3 in the outer annuli, after the
per-line S/N gate has removed [OII] and [NeIII]) fits both of its branches
equally well: chi^2(Z) has two minima of (nearly) the same depth and the
global best fit on the Z grid flips between them from bin to bin. An
observer does not pick the branch from that bin's own spectrum, which cannot
tell; the branch is taken from information the observer has: the
neighbouring bins where more diagnostics survive. Here:

1. A bin's *branches* are the stretches of the grid between the local maxima
   of its chi^2 inside the prior; a branch is *allowed* when its minimum is
   within :data:`DELTA_CHI2` of the bin's best fit (not excluded at 2 sigma).
2. A bin with one allowed branch is ``"unique"``.
3. An ambiguous bin takes the allowed branch whose minimum is closest to the
   metallicity predicted at its radius by a line fitted (weights 1/sigma^2)
   to the *anchor* bins inward: bins with one allowed branch whose data
   break the degeneracy (two or more diagnostics, or a single-valued one).
   The inner annuli are where the lines that break R3's degeneracy
   ([OII], [NeIII]) are brightest, and the profile is continuous.
4. Ambiguous bins with no anchor inward (the innermost ones) use the anchors
   outward; if the galaxy has no anchor, the global best fit is kept and the
   bin is flagged ``"ambiguous"`` (the gradient fit then sees its full,
   two-branch interval as its error).

The chosen branch's stretch becomes the bin's posterior support: best fit,
median and 16-84 % interval are those of that branch. Each bin records the
branch and what chose it (:class:`~mockzgrad.recovery.metallicity.MetallicityResult`
``branch`` and ``chosen_by``).

The same rule (the branch of the double-valued calibration decided by
information outside the ratio itself) is how Method II picks its roots
(:mod:`~mockzgrad.recovery.metallicity.method_ii`, the Method I solution of
the other diagnostics). The shared reference (/work/shared/reference) gives
R3's coefficients and range but not how Lee et al. (2026) or Sanders et al.
(2025) choose the branch of R3 alone in a spatial bin; the rule above is
this project's, stated here and recorded per bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._grid import percentiles, refine_minimum

__all__ = ["DELTA_CHI2", "BranchChoice", "find_branches", "choose_branches"]

#: A chi^2(Z) minimum within this of the bin's best fit is an allowed branch
#: (a one-parameter Delta chi^2 = 4: not excluded at 2 sigma).
DELTA_CHI2 = 4.0


@dataclass(frozen=True, eq=False)
class BranchChoice:
    """Per-bin branch choice of Method I.

    Attributes
    ----------
    branch : tuple of str
        ``"single"`` (one allowed branch), ``"lower"``/``"upper"`` (the
        chosen one of two allowed branches, by metallicity), ``"k of n"``
        (more than two), ``"ambiguous"`` (no anchor: global best fit kept),
        "" for bins without a metallicity.
    chosen_by : tuple of str
        ``"unique"``, ``"inner bin i (Z = ...)"``, ``"outer bin i (Z = ...)"``,
        ``"best fit (no unambiguous bin)"`` or "".
    lo, hi : numpy.ndarray, shape (n_bins,)
        The chosen branch's stretch of the grid, dex (NaN where not restricted).
    """

    branch: tuple
    chosen_by: tuple
    lo: np.ndarray
    hi: np.ndarray


def find_branches(grid: np.ndarray, chi2: np.ndarray, delta_chi2: float = DELTA_CHI2) -> list:
    """The allowed branches of one bin: ``[(k_min, k_lo, k_hi), ...]`` ascending in Z.

    Parameters
    ----------
    grid : numpy.ndarray, shape (G,)
        Metallicity grid, dex.
    chi2 : numpy.ndarray, shape (G,)
        chi^2 on the grid, +inf (or NaN) outside the prior.
    delta_chi2 : float
        A local minimum within this of the global one is allowed.

    Returns
    -------
    list of tuple of int
        Grid index of each allowed minimum and the index range (inclusive)
        of its stretch, bounded by the neighbouring local maxima of chi^2 or
        by the edges of the prior's support.
    """
    c = np.where(np.isfinite(chi2), chi2, np.inf)
    fin = np.isfinite(c)
    if not fin.any():
        return []
    out = []
    best = np.min(c)
    # contiguous stretches of finite chi^2 (a disjoint prior has several)
    idx = np.flatnonzero(fin)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    for run in runs:
        v = c[run]
        d = np.sign(np.diff(v))
        # drop flat steps so that plateaus take the sign of the next change
        nz = np.flatnonzero(d != 0)
        if nz.size == 0:
            mins, maxs = [0], []
        else:
            dd = d[nz]
            mins = [0] if dd[0] > 0 else []
            maxs = []
            for a, b, pos in zip(dd[:-1], dd[1:], nz[1:]):
                if a < 0 < b:
                    mins.append(int(pos))
                elif a > 0 > b:
                    maxs.append(int(pos))
            if dd[-1] < 0:
                mins.append(v.size - 1)
        cuts = [0] + maxs + [v.size - 1]
        for m in mins:
            seg = int(np.searchsorted(cuts, m, side="right")) - 1
            seg = min(max(seg, 0), len(cuts) - 2)
            k_lo, k_hi = cuts[seg], cuts[seg + 1]
            k = k_lo + int(np.argmin(v[k_lo:k_hi + 1]))
            if v[k] - best <= delta_chi2:
                out.append((int(run[k]), int(run[k_lo]), int(run[k_hi])))
    uniq = sorted(set(out))
    return uniq


def choose_branches(grid: np.ndarray, chi2: np.ndarray, ok: np.ndarray, radius=None,
                    delta_chi2: float = DELTA_CHI2, anchor_ok=None, z_err=None) -> BranchChoice:
    """Choose one branch per bin (module docstring, rules 1-4).

    Parameters
    ----------
    grid : numpy.ndarray, shape (G,)
        Metallicity grid, dex.
    chi2 : numpy.ndarray, shape (n_bins, G)
        chi^2 on the grid, +inf outside each bin's prior.
    ok : numpy.ndarray of bool, shape (n_bins,)
        Bins with a metallicity.
    radius : array_like, shape (n_bins,), optional
        Bin radii (any unit) setting the inward/outward order; default the
        bin order (annuli are numbered outward).
    delta_chi2 : float
        :data:`DELTA_CHI2` by default.
    anchor_ok : array_like of bool, shape (n_bins,), optional
        Bins whose data break the degeneracy (two or more diagnostics, or a
        single-valued one); only these, when unique, set the Z(r) trend.
        Default: every unique bin. A bin with a double-valued calibration
        alone can be unique only because the validity range cuts its other
        root off (a noisy ratio); it is not an anchor.
    z_err : array_like, shape (n_bins,), optional
        1-sigma errors (dex) weighting the trend fit; default equal weights.
    """
    n = chi2.shape[0]
    order = np.argsort(np.arange(n) if radius is None else np.asarray(radius, float), kind="stable")
    cands = [find_branches(grid, chi2[b], delta_chi2) if ok[b] else [] for b in range(n)]
    rad = np.arange(n, dtype=float) if radius is None else np.asarray(radius, dtype=float)
    unique = np.array([len(c) == 1 for c in cands])
    if anchor_ok is not None:
        unique &= np.asarray(anchor_ok, dtype=bool)
    w = np.ones(n) if z_err is None else 1.0 / np.square(np.asarray(z_err, dtype=float))
    unique &= np.isfinite(w) & (w > 0)
    z_u = np.array([grid[c[0][0]] if len(c) == 1 else np.nan for c in cands])
    pick = [0 if len(cands[b]) == 1 else None for b in range(n)]
    by = ["unique" if len(cands[b]) == 1 else "" for b in range(n)]
    for b in range(n):
        if len(cands[b]) < 2:
            continue
        z_pred, why = _trend(rad, z_u, w, unique, b)
        if why:
            pick[b] = int(np.argmin([abs(grid[k] - z_pred) for k, _, _ in cands[b]]))
            by[b] = why
    branch = [""] * n
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    for b in range(n):
        c = cands[b]
        if not c:
            continue
        if pick[b] is None:
            branch[b], by[b] = "ambiguous", "best fit (no unambiguous bin)"
            continue
        k, k_lo, k_hi = c[pick[b]]
        branch[b] = "single" if len(c) == 1 else (("lower", "upper")[pick[b]] if len(c) == 2
                                                   else f"{pick[b] + 1} of {len(c)}")
        if len(c) > 1:
            lo[b], hi[b] = grid[k_lo], grid[k_hi]
    return BranchChoice(tuple(branch), tuple(by), lo, hi)


def _trend(rad, z_u, w, anchor, b):
    """Z predicted at bin ``b`` by a weighted line through the anchor bins inward (else outward).

    Returns ``(z, description)``; description "" when there is no anchor bin.
    """
    for side, word in ((rad < rad[b], "inner"), (rad > rad[b], "outer")):
        sel = np.flatnonzero(side & anchor)
        if sel.size == 0:
            continue
        if sel.size == 1 or np.ptp(rad[sel]) == 0:
            z = float(np.average(z_u[sel], weights=w[sel]))
        else:
            slope, icpt = np.polyfit(rad[sel], z_u[sel], 1, w=np.sqrt(w[sel]))
            z = float(icpt + slope * rad[b])
        return z, f"Z(r) of the {sel.size} unique {word} bins: {z:.3f} here"
    return math.nan, ""


def restrict_to_branches(grid: np.ndarray, chi2: np.ndarray, logp: np.ndarray, choice: BranchChoice):
    """Best fit, percentiles and chi^2_min of each bin on its chosen branch only.

    Returns ``(rows, z, z_lo, z_median, z_hi, chi2_min)`` for the bins whose
    support was restricted (``rows``: their indices).
    """
    rows = np.flatnonzero(np.isfinite(choice.lo))
    if rows.size == 0:
        return rows, *(np.empty(0) for _ in range(5))
    inside = (grid[None, :] >= choice.lo[rows, None]) & (grid[None, :] <= choice.hi[rows, None])
    lp = np.where(inside, logp[rows], -np.inf)
    c2 = np.where(np.isfinite(lp), chi2[rows], np.inf)
    k = np.argmin(c2, axis=1)
    z, c2min = refine_minimum(grid, c2, k)
    q = percentiles(grid, lp)
    return rows, z, q[0], q[1], q[2], c2min
