"""Corrections: curves of measured/intrinsic gradient against x = 2 r_eff / psf_fwhm,
and their application to measured gradients.

:func:`~.curves.derive_curves` turns a suite's results table
(:mod:`.columns`) into :class:`~.curveset.CorrectionCurves`: groups and
running medians (:mod:`.binning`), polynomial fits (:mod:`.polyfit`),
sign and S/N checks (:mod:`.checks`), an ECSV file with provenance
(:mod:`.curveset`). :func:`~.correct.correct_table` applies them to a table
of real gradients (:mod:`.roots` for the self-consistent solution).
:func:`~.transfer.fit_transfer` fits the suite's transfer function
``measured = a(x) intrinsic + b(x)`` with scatter ``s(x)`` (:mod:`.transfer`);
:func:`~.posterior.correct_with_transfer` gives real gradients' posteriors
from it; :mod:`.summary` says which model describes a suite.
"""

from .correct import correct_table, read_gradient_table, write_table
from .curves import derive_curves
from .curveset import CorrectionCurves, suite_provenance
from .posterior import correct_with_transfer
from .transfer import TransferFunction, fit_transfer

__all__ = ["derive_curves", "CorrectionCurves", "suite_provenance", "correct_table",
           "read_gradient_table", "write_table", "fit_transfer", "TransferFunction", "correct_with_transfer"]
