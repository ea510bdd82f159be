"""Mocks whose lines come partly from where Z(r) left the calibrations' range: flag or leave them out of curves."""

from __future__ import annotations

import numpy as np

from ..validate import number

__all__ = ["OUTSIDE_COLUMN", "outside_range_rows"]

#: Results column: the largest share, over the mock's lines, of flux emitted where Z was clipped or extrapolated.
OUTSIDE_COLUMN = "outside_flux_frac"


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
    if OUTSIDE_COLUMN not in table.colnames:
        return np.zeros(len(table), dtype=bool)
    column = table[OUTSIDE_COLUMN]
    frac = np.array([np.nan if v is None or v is np.ma.masked else float(v) for v in column], dtype=float)
    with np.errstate(invalid="ignore"):
        return frac > max_frac
