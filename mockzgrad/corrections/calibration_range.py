"""Mocks whose lines come partly from where the intrinsic Z(r) leaves the calibrations' range: left out of curves.

A mock's ``outside_flux_frac`` (results column; :func:`mockzgrad.source.galaxy.outside_flux_share`) is the
largest share, over its emission lines, of line flux emitted where the intrinsic Z(r) lies outside the range
of the calibrations that generate the lines (there Z was clipped to the range's edge, or the relations were
extrapolated; ``lines.outside_range``). A recovery can only return metallicities inside the range, so a
gradient whose Z(r) runs far beyond it is measured flatter whatever the resolution: its measured gradient
levels off at the range's span (a ceiling), not at a fraction of the intrinsic gradient. Such mocks measure
the calibrations' range, not the beam smearing the correction curves are for, and a transfer function or ratio
curve fitted through them describes neither.

:func:`split_outside_range` splits off the mocks above ``max_frac`` (default :data:`MAX_OUTSIDE_FLUX`) and
says how many, of which intrinsic gradients. :func:`choose_mocks` is what ``mockzgrad curves`` does
(``--outside-range``): ``auto`` (default) leaves them out, unless the mocks within the share cannot be
corrected alone (neither model describes them) while all mocks together can (an admissible transfer model
with no cell of (x tercile, abs(grad_z), sign) off by more than MISFIT_MAX, or the ratio model): then the
clipping is not measurable at the suite's precision and every mock is kept, saying why. The share is a proxy
(whether clipped flux changes the measured gradient depends on where it sits: beyond the fitted annuli it
hardly matters), so it alone does not condemn a mock that the transfer model describes. ``leave-out`` leaves
them out without the fallback, ``keep`` keeps them; ``--max-outside-flux FRAC`` changes the share. Both
output files record the decision in their provenance (``calibration_range``). Where mocks were left out the
correction holds only inside the abs(grad_z) of the mocks kept, per sign (``correct`` flags rows beyond it:
``above_suite_grad``).

Measured (2026-12-06): flagship, left out the 250 +0.2 dex/kpc mocks (share 0.30), the 1250 others are
described (a1b0+sign+sign_inv_x). KURVS-like suite (800 mocks, C20_N2 lines, KMOS): 161 mocks above 5 % (up
to 0.35 at +0.1 dex/kpc, varying with r_eff); without them the suite cannot be corrected (a typical
gradient 0.34 sigma from 0), with them a1b1+inclination describes it (misfit 0), and within each level the
residual does not trend with the share (+0.1: +0.027 +- 0.017 dex/kpc per unit share, not flatter): kept.
Quickstart (80 mocks, the flagship's galaxy): the 10 +0.2 mocks (0.30) left out.

Why 5 %: on the flagship suite (1500 mocks, lee2026 recipe, measured 2026-12-06) the share is a property of
the galaxy model (the same for every PSF and S/N): 0 at -0.05 dex/kpc, 0.001 at +0.05, 0.007 at -0.1, 0.045
at -0.2, 0.048 at +0.1 and 0.30 at +0.2 (the quickstart suite's +-0.01: 0). The mocks up to 0.048 follow
one slope a(x) per sign within their errors (the transfer model a1b0+sign+sign_inv_x describes them: no
cell off by more than MISFIT_MAX,
x-bin slopes within 2.3 sigma of the model); the +0.2 mocks (0.30) saturate at
x < 0.8 (measured 0.065 dex/kpc against 0.055 at +0.1) and no admissible transfer structure describes the suite
with them. Every threshold in [0.048, 0.30) leaves out the same mocks there; 0.05 keeps every level shown to
be harmless and nothing more, so a suite with a new level between 5 % and 30 % is left out rather than trusted
unmeasured, unless the fallback above keeps it (``--max-outside-flux`` to include it after checking the curves).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..validate import choice, number

__all__ = ["MAX_OUTSIDE_FLUX", "OUTSIDE_COLUMN", "OUTSIDE_MODES", "LeftOut", "split_outside_range", "choose_mocks",
           "outside_fraction", "outside_range_rows"]

#: What ``mockzgrad curves`` does with mocks above the share: leave them out unless the others alone cannot be
#: corrected and all together can ("auto", the default), leave them out, or keep them.
OUTSIDE_MODES = ("auto", "leave-out", "keep")

#: Results column: the largest share, over the mock's lines, of flux emitted where Z was clipped or extrapolated
#: (``mockzgrad.budget.flags`` takes it from here).
OUTSIDE_COLUMN = "outside_flux_frac"

#: Default largest share of a mock's line flux from where Z(r) leaves the calibrations' range (see module
#: docstring for the measurement behind it).
MAX_OUTSIDE_FLUX = 0.05


@dataclass(frozen=True)
class LeftOut:
    """Which mocks :func:`split_outside_range` left out, and why.

    Attributes
    ----------
    max_frac : float or None
        The threshold on ``outside_flux_frac`` (None: every mock kept, ``--outside-range keep``).
    n_total, n_left_out, n_above : int
        Mocks in the table, left out, and above the share (``n_above > n_left_out`` when ``auto`` kept
        them).
    column_present : bool
        The table has ``outside_flux_frac`` (suites run before it was recorded do not: nothing left out).
    mode : str
        One of :data:`OUTSIDE_MODES`.
    fallback : str or None
        ``auto`` only, when it kept the mocks above the share: why the mocks within it could not be corrected
        alone (the assessment's reasons); None otherwise.
    by_grad : tuple of (float, float, int, int, float)
        Per intrinsic gradient level (dex/kpc, signed) with at least one mock left out, or per sign for a
        suite of continuous gradients: the lowest and highest gradient left out (equal for a level), mocks
        left out, mocks in that interval, median ``outside_flux_frac`` of those left out (fraction).
    """

    max_frac: float | None
    n_total: int
    n_left_out: int
    column_present: bool
    by_grad: tuple = ()
    mode: str = "leave-out"
    n_above: int = 0
    fallback: str | None = None

    def describe(self) -> str:
        """One line for the command's output."""
        if self.max_frac is None:
            return (f"kept all {self.n_total} mocks, also those with line flux from where Z(r) leaves the "
                    "calibrations' range (--outside-range keep)")
        if not self.column_present:
            return (f"results have no {OUTSIDE_COLUMN!r} column (suite run before it was recorded): no mock left "
                    "out for the calibrations' range; check the curves at the largest |grad_z|")
        if self.n_above and self.n_left_out == 0:
            return (f"kept {self.n_above} of {self.n_total} mocks that take more than {100 * self.max_frac:g} % of "
                    f"their line flux from where the intrinsic Z(r) leaves the calibrations' range ({self._groups()}): "
                    f"without them the suite cannot be corrected ({self.fallback}); with them the transfer model "
                    f"describes every cell of (x, |grad_z|, sign), so their clipping is not measurable here")
        if self.n_left_out == 0:
            return (f"no mock takes more than {100 * self.max_frac:g} % of its line flux from where Z(r) leaves the "
                    "calibrations' range: all kept")
        groups = self._groups()
        return (f"left out {self.n_left_out} of {self.n_total} mocks that take more than {100 * self.max_frac:g} % of "
                f"their line flux from where the intrinsic Z(r) leaves the calibrations' range ({OUTSIDE_COLUMN} > "
                f"{self.max_frac:g}; {groups}): their measured gradient shows the calibrations' range, not the "
                "resolution; the correction holds only inside the |grad_z| of the mocks kept "
                "(--outside-range keep keeps them)")

    def _groups(self) -> str:
        return ", ".join((f"grad_z = {lo:+g}" if lo == hi else f"grad_z {lo:+g} to {hi:+g}")
                         + f": {n} of {n_g} (median share {f:.2f})" for lo, hi, n, n_g, f in self.by_grad)

    def as_dict(self) -> dict:
        """Plain JSON types (written in the provenance of the curves and the transfer function)."""
        return {"column": OUTSIDE_COLUMN, "max_frac": self.max_frac, "mode": self.mode, "n_total": self.n_total,
                "n_above": self.n_above, "n_left_out": self.n_left_out, "fallback": self.fallback,
                "column_present": self.column_present,
                "by_grad": [{"grad_z_true_min": lo, "grad_z_true_max": hi, "n_left_out": n, "n_mocks": n_g,
                             "median_share": f} for lo, hi, n, n_g, f in self.by_grad]}


def split_outside_range(table, max_frac: float | None = MAX_OUTSIDE_FLUX):
    """The rows of a suite's results kept for curves, and what was left out (module docstring).

    Parameters
    ----------
    table : astropy.table.Table
        Suite results (:func:`mockzgrad.suites.store.load_results_table`).
    max_frac : float or None
        Largest accepted ``outside_flux_frac`` (fraction of line flux, [0, 1]); None keeps every row.

    Returns
    -------
    kept : astropy.table.Table
        The rows with ``outside_flux_frac <= max_frac`` or missing (NaN, or no such column).
    left_out : LeftOut
    """
    n = len(table)
    present = OUTSIDE_COLUMN in table.colnames
    if max_frac is None:
        return table, LeftOut(None, n, 0, present)
    max_frac = number("max_outside_flux", max_frac, 0.0, 1.0)
    frac = outside_fraction(table)
    with np.errstate(invalid="ignore"):
        out = frac > max_frac  # NaN (not recorded) is kept
    by_grad = ()
    if out.any() and "grad_z_true" in table.colnames:
        g = np.array([float(v) for v in table["grad_z_true"]], float)
        by_grad = _groups(g, frac, out)
    left = LeftOut(float(max_frac), n, int(out.sum()), present, by_grad, n_above=int(out.sum()))
    return table[~out], left


def outside_fraction(table) -> np.ndarray:
    """A suite's ``outside_flux_frac`` per row (fraction of line flux); NaN where missing or without the column."""
    if OUTSIDE_COLUMN not in table.colnames:
        return np.full(len(table), np.nan)
    return np.array([np.nan if v is None or v is np.ma.masked else float(v) for v in table[OUTSIDE_COLUMN]],
                    dtype=float)


def outside_range_rows(table, max_frac: float) -> np.ndarray:
    """Rows of a suite's results whose ``outside_flux_frac`` exceeds ``max_frac`` (False where it is missing).

    Parameters
    ----------
    table : astropy.table.Table
        Suite results (:func:`mockzgrad.suites.store.load_results_table`).
    max_frac : float
        Largest accepted share, [0, 1].

    Returns
    -------
    numpy.ndarray of bool
        True for the rows to leave out or flag; all False when the table has no such column (older suites).
    """
    max_frac = number("max_outside_flux", max_frac, 0.0, 1.0)
    with np.errstate(invalid="ignore"):
        return outside_fraction(table) > max_frac


def choose_mocks(table, max_frac: float | None = MAX_OUTSIDE_FLUX, mode: str = "auto", *, columns=None,
                 provenance=None):
    """The mocks a suite's curves are made from (module docstring), what was left out, and the transfer function.

    Parameters
    ----------
    table : astropy.table.Table
        Suite results.
    max_frac : float or None
        Share of line flux (fraction) above which a mock is left out (``auto``, ``leave-out``); None:
        :data:`MAX_OUTSIDE_FLUX`.
    mode : str
        One of :data:`OUTSIDE_MODES`.
    columns, provenance : mapping, optional
        As for :func:`~.transfer.fit_transfer`.

    Returns
    -------
    kept : astropy.table.Table
    left_out : LeftOut
    tf : TransferFunction or None
        ``auto`` with mocks above the share: the transfer function of the mocks returned (fitted to decide;
        its provenance is ``provenance`` with ``calibration_range``), else None.
    """
    from ..errors import DataError
    from .transfer import fit_transfer

    choice("outside_range", mode, OUTSIDE_MODES)
    max_frac = MAX_OUTSIDE_FLUX if max_frac is None else max_frac
    kept, left = split_outside_range(table, max_frac)
    left = replace(left, mode=mode)
    if mode == "keep":
        return table, replace(left, max_frac=None, n_left_out=0), None
    if mode == "leave-out" or left.n_left_out == 0:
        return kept, left, None

    def fit(t):
        try:
            tf = fit_transfer(t, provenance=provenance, columns=columns)
        except DataError as exc:
            return None, str(exc)
        a = tf.assessment
        ok = bool(a.get("transfer_ok") or a.get("ratio_ok"))
        return tf, None if ok else "; ".join(a.get("reasons", []))

    def chosen(t, left_out, tf):
        if tf is not None:
            tf = replace(tf, provenance={**(provenance or {}), "calibration_range": left_out.as_dict()})
        return t, left_out, tf

    tf_kept, why_kept = fit(kept)
    if why_kept is None:
        return chosen(kept, left, tf_kept)
    tf_all, why_all = fit(table)
    if why_all is None:  # the clean mocks cannot be corrected alone; with the others the model fits every cell
        return chosen(table, replace(left, n_left_out=0, fallback=why_kept), tf_all)
    return chosen(kept, left, tf_kept)


def _groups(g: np.ndarray, frac: np.ndarray, out: np.ndarray) -> tuple:
    """(lo, hi, left out, mocks in [lo, hi], median share of those left out) per intrinsic gradient level
    left out, or per sign (lo..hi the range of those left out) when more than 8 levels are (continuous)."""
    levels = np.unique(np.round(g[out], 6))
    if levels.size <= 8:
        spans = [(lv, lv) for lv in levels]
    else:
        spans = [(float(g[out & (np.sign(g) == s)].min()), float(g[out & (np.sign(g) == s)].max()))
                 for s in (-1.0, 1.0) if np.any(out & (np.sign(g) == s))]
    rows = []
    for lo, hi in spans:
        inside = (g >= lo - 5e-7) & (g <= hi + 5e-7)
        sel = out & inside
        rows.append((float(lo), float(hi), int(sel.sum()), int(inside.sum()), float(np.median(frac[sel]))))
    return tuple(rows)
