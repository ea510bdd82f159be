"""Corrections: curves of measured/intrinsic gradient against x = 2 r_eff / psf_fwhm,
and their application to measured gradients.

:func:`~.curves.derive_curves` turns a suite's results table
(:mod:`.columns`) into :class:`~.curveset.CorrectionCurves`: groups and
running medians (:mod:`.binning`), polynomial fits (:mod:`.polyfit`),
sign and S/N checks (:mod:`.checks`), an ECSV file with provenance
(:mod:`.curveset`). :func:`~.correct.correct_table` applies them to a table
of real gradients (:mod:`.roots` for the self-consistent solution).
"""

from .correct import correct_table, read_gradient_table, write_table
from .curves import derive_curves
from .curveset import CorrectionCurves, suite_provenance

__all__ = ["derive_curves", "CorrectionCurves", "suite_provenance", "correct_table",
           "read_gradient_table", "write_table"]
