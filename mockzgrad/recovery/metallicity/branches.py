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
3. An ambiguous bin takes the allowed branch whose stretch holds the most of
   N(z_pred, s_pred^2), where z_pred is the metallicity predicted at its
   radius by a line fitted (weights 1/sigma^2) to the *anchor* bins inward,
   bins with one allowed branch whose data break the degeneracy (two or more
   diagnostics, or a single-valued one), and s_pred the 1-sigma error of
   that prediction (the weighted least-squares covariance). The inner
   annuli are where the lines that break R3's degeneracy ([OII], [NeIII])
   are brightest, and the profile is continuous.
4. Ambiguous bins with no anchor inward (the innermost ones) use the anchors
   outward; if the galaxy has no anchor, the global best fit is kept and the
   bin is flagged ``"ambiguous"`` (its full, two-branch interval is its
   error).
5. Each allowed branch k gets the probability P_k, the share of
   N(z_pred, s_pred^2) over its stretch, and the bin's posterior becomes
   sum_k P_k p_k(Z), p_k its own posterior normalised on stretch k: the
   chosen branch alone when the trend leaves no doubt, both when it does.
   The best fit is the chi^2 minimum on the chosen branch; median and
   16-84 % interval are the mixture's.
6. A bin whose own data do not fix its Z while other bins' data do
   (*degenerate*: several allowed branches, or a double-valued calibration
   alone whose one minimum sits at the curve's extreme or at the calibrated
   range's edge) keeps its metallicity, branch and probability in the
   record but stays out of the gradient fit
   (:func:`~mockzgrad.recovery.backend.apply_bin_cuts`). Its value is
   borrowed from the trend of the other bins (placing it with the trend
   and then fitting the trend with it is circular) and, at the S/N where
   the gate leaves R3 alone, biased: the gate keeps the bins whose Hbeta
   fluctuated up, so R3 is low and the single-branch Z is pushed away from
   the turnover, often against the calibrated range's edge, which also
   narrows its interval. On the noisy flagship suite, keeping them
   steepened |grad_z| = 0.05 dex/kpc to 1.13 of the truth at x = 5;
   keeping only the unique-by-noise ones (a ratio beyond the extreme) would
   select on the value. Noise-free, they are on the right branch and the
   gradient of the other bins is the same (docs/guide/budget.md).

Each bin records the branch, what chose it and its probability
(:class:`~mockzgrad.recovery.metallicity.MetallicityResult` ``branch``,
``chosen_by``, ``branch_prob``, ``degenerate``).

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

__all__ = ["DELTA_CHI2", "BranchChoice", "find_branches", "choose_branches", "branch_probabilities",
           "left_out_reason"]

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
    prob : numpy.ndarray, shape (n_bins,)
        Probability of the chosen branch given the Z(r) trend (1 where only
        one branch is allowed, NaN without a metallicity or a trend).
    stretches : tuple
        Per bin, ``((lo, hi, p), ...)``: every allowed branch's stretch of the
        grid (dex) and its probability; empty where not restricted.
    degenerate : numpy.ndarray of bool, shape (n_bins,)
        The bin's own data do not fix its Z (several allowed branches, or a
        double-valued calibration alone) while other bins' data do: it stays
        out of the gradient fit (module docstring, rule 6).
    """

    branch: tuple
    chosen_by: tuple
    lo: np.ndarray
    hi: np.ndarray
    prob: np.ndarray
    stretches: tuple = ()
    degenerate: np.ndarray | None = None


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
            # a sign change - to + at a step is a local minimum there, + to - a maximum
            a, b, pos = dd[:-1], dd[1:], nz[1:]
            mins = ([0] if dd[0] > 0 else []) + pos[(a < 0) & (b > 0)].tolist()
            maxs = pos[(a > 0) & (b < 0)].tolist()
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
    """Choose one branch per bin and its probability (module docstring, rules 1-5).

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
        1-sigma errors (dex) of the bins, weighting the trend fit and setting
        the error of its prediction; default equal weights and a prediction
        without error (each branch then has probability 0 or 1).
    """
    n = chi2.shape[0]
    cands = [find_branches(grid, chi2[b], delta_chi2) if ok[b] else [] for b in range(n)]
    rad = np.arange(n, dtype=float) if radius is None else np.asarray(radius, dtype=float)
    unique = np.array([len(c) == 1 for c in cands])
    breaks = np.ones(n, dtype=bool) if anchor_ok is None else np.asarray(anchor_ok, dtype=bool)
    unique &= breaks
    w = np.ones(n) if z_err is None else 1.0 / np.square(np.asarray(z_err, dtype=float))
    unique &= np.isfinite(w) & (w > 0)
    z_u = np.array([grid[c[0][0]] if len(c) == 1 else np.nan for c in cands])
    branch, by = [""] * n, [""] * n
    lo, hi, prob = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    stretches = [()] * n
    for b in range(n):
        c = cands[b]
        if len(c) == 1:
            branch[b], by[b], prob[b] = "single", "unique", 1.0
            continue
        if not c:
            continue
        z_pred, s_pred, why = _trend(rad, z_u, w, unique, b, z_err is not None)
        if not why:
            branch[b], by[b] = "ambiguous", "best fit (no unambiguous bin)"
            continue
        edges = [(grid[k_lo], grid[k_hi]) for _, k_lo, k_hi in c]
        p = branch_probabilities(edges, [grid[k] for k, _, _ in c], z_pred, s_pred)
        i = int(np.argmax(p))
        k, k_lo, k_hi = c[i]
        branch[b] = ("lower", "upper")[i] if len(c) == 2 else f"{i + 1} of {len(c)}"
        by[b] = f"{why}: {z_pred:.3f} +- {s_pred:.3f} here"
        lo[b], hi[b], prob[b] = grid[k_lo], grid[k_hi], p[i]
        stretches[b] = tuple((a, e, float(q)) for (a, e), q in zip(edges, p))
    has = np.asarray(ok, dtype=bool) & np.array([len(c) > 0 for c in cands])
    several = np.array([len(c) > 1 for c in cands])
    degenerate = has & (several | ~breaks) & bool(unique.any())
    return BranchChoice(tuple(branch), tuple(by), lo, hi, prob, tuple(stretches), degenerate)


def branch_probabilities(edges, minima, z_pred: float, s_pred: float) -> np.ndarray:
    """Probability of each allowed branch: the share of N(z_pred, s_pred^2) over its stretch.

    Parameters
    ----------
    edges : sequence of (float, float)
        Each branch's stretch of the grid, dex, ascending.
    minima : sequence of float
        Each branch's chi^2 minimum, dex (decides when the trend gives no
        mass to any stretch, or has no error: the branch nearest to
        ``z_pred`` then has probability 1).
    z_pred, s_pred : float
        The trend's metallicity at the bin and its 1-sigma error, dex.

    Returns
    -------
    numpy.ndarray
        Probabilities summing to 1.
    """
    k = len(edges)
    if s_pred > 0 and math.isfinite(s_pred):
        mass = np.array([_norm_cdf((e - z_pred) / s_pred) - _norm_cdf((a - z_pred) / s_pred)
                         for a, e in edges])
        if mass.sum() > 1e-12:
            return mass / mass.sum()
    inside = [i for i, (a, e) in enumerate(edges) if a <= z_pred <= e]
    i = inside[0] if inside else int(np.argmin([abs(m - z_pred) for m in minima]))
    return np.eye(k)[i]


def left_out_reason(branch: str, prob: float, z: float, z_lo: float, z_hi: float) -> str:
    """The recorded reason why a :attr:`BranchChoice.degenerate` bin is not in the gradient fit."""
    where = f"Z = {z:.3f} [{z_lo:.3f}, {z_hi:.3f}]"
    if branch in ("", "single", "ambiguous"):
        return ("one double-valued diagnostic alone: its one minimum is set by the ratio's extreme or the "
                f"calibrated range, not by a measurement of Z; not in the gradient fit ({where})")
    p = f", P = {prob:.2f}" if math.isfinite(prob) else ""
    return (f"several branches fit this bin's data (Delta chi^2 <= {DELTA_CHI2:g}); not in the gradient fit "
            f"(on the {branch} branch{p} from the Z(r) trend: {where})")


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _trend(rad, z_u, w, anchor, b, with_error=True):
    """Z predicted at bin ``b`` by a weighted line through the anchor bins inward (else outward).

    Returns ``(z, sigma_z, description)``: the prediction, its 1-sigma error
    from the weighted least-squares covariance (0 when ``with_error`` is
    false) and a description ("" when there is no anchor bin).
    """
    for side, word in ((rad < rad[b], "inner"), (rad > rad[b], "outer")):
        sel = np.flatnonzero(side & anchor)
        if sel.size == 0:
            continue
        if sel.size == 1 or np.ptp(rad[sel]) == 0:
            z = float(np.average(z_u[sel], weights=w[sel]))
            var = 1.0 / float(np.sum(w[sel]))
        else:
            a = np.stack([np.ones(sel.size), rad[sel]], axis=1)
            cov = np.linalg.inv(a.T @ (w[sel, None] * a))
            coef = cov @ (a.T @ (w[sel] * z_u[sel]))
            x = np.array([1.0, rad[b]])
            z, var = float(x @ coef), float(x @ cov @ x)
        s = math.sqrt(max(var, 0.0)) if with_error else 0.0
        return z, s, f"Z(r) of the {sel.size} unique {word} bins"
    return math.nan, math.nan, ""


def restrict_to_branches(grid: np.ndarray, chi2: np.ndarray, logp: np.ndarray, choice: BranchChoice):
    """Best fit on the chosen branch; median and percentiles of the branch mixture.

    The bin's posterior becomes ``sum_k P_k p_k(Z)``, ``p_k`` its own
    posterior normalised on branch k's stretch and ``P_k`` the branch's
    probability (:attr:`BranchChoice.stretches`): the chosen branch alone
    when the trend leaves no doubt, both when it does, so that the error
    carries the branch-choice uncertainty. The best fit is the minimum of
    chi^2 on the chosen branch.

    Returns ``(rows, z, z_lo, z_median, z_hi, chi2_min)`` for the bins whose
    support was restricted (``rows``: their indices).
    """
    rows = np.flatnonzero(np.isfinite(choice.lo))
    if rows.size == 0:
        return rows, *(np.empty(0) for _ in range(5))
    inside = (grid[None, :] >= choice.lo[rows, None]) & (grid[None, :] <= choice.hi[rows, None])
    c2 = np.where(inside & np.isfinite(logp[rows]), chi2[rows], np.inf)
    k = np.argmin(c2, axis=1)
    z, c2min = refine_minimum(grid, c2, k)
    lp = np.stack([_mixture(grid, logp[b], choice.stretches[b]) for b in rows])
    q = percentiles(grid, lp)
    return rows, z, q[0], q[1], q[2], c2min


def _mixture(grid, logp, stretches):
    """log of sum_k P_k p_k(Z) on the grid (p_k: ``logp`` normalised on stretch k)."""
    out = np.full(grid.size, -np.inf)
    dx = np.gradient(grid)
    for lo, hi, p in stretches:
        if not p > 0:
            continue
        sel = (grid >= lo) & (grid <= hi) & np.isfinite(logp)
        if not sel.any():
            continue
        m = np.max(logp[sel])
        log_mass = m + math.log(float(np.sum(np.exp(logp[sel] - m) * dx[sel])))
        # a node shared by two stretches (the maximum between them) takes the larger term
        out[sel] = np.maximum(out[sel], logp[sel] - log_mass + math.log(p))
    return out
