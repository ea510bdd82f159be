"""Gas-phase metallicity of each bin from its emission-line fluxes.

Input is a :class:`BinFluxes` table: line fluxes of ``n_bins`` bins (annuli,
spaxels, Voronoi bins) with their full covariance, dust-corrected or not as
the caller decides (:func:`mockzgrad.recovery.dust.balmer_decrement_correction`
does the usual Balmer-decrement correction). Every function is vectorised
over bins.

Conventions
-----------
- ``z`` is 12 + log(O/H), dex; log ratios are log10 of line-flux ratios, dex,
  defined by each :class:`~mockzgrad.physics.calibrations.Diagnostic`
  (``log R = sum_j w_j log10(sum_k N_jk / D_jk)``).
- Fluxes are in any one unit (erg/s/cm^2 for line fits); only ratios matter,
  except the intrinsic Hbeta flux ``f_hb`` of the line-flux method, returned
  in the input unit.
- A_V is the V-band attenuation, mag; ``A_lambda = A_V k(lambda) / R_V``
  (:mod:`mockzgrad.physics.dust`).
- Errors are the percentiles at 100 Phi(-1) and 100 Phi(+1) (15.87 and
  84.13, "16th/84th") of the posterior, which are exactly mean -+ 1 sigma
  for a Gaussian (:data:`mockzgrad.recovery.summary.PERCENTILES`).

Methods
-------
:func:`log_ratios`
    Observed log ratio of each diagnostic in each bin, its error from the
    flux covariance (analytic Jacobian of log R with respect to the fluxes),
    the covariance between diagnostics of one bin (R3, O2 and O32 share
    Hbeta, [OIII] and [OII]) and an S/N gate.
:func:`method_one`
    Method I: the one metallicity that best satisfies every usable
    diagnostic, chi^2(Z) = d^T C^-1 d with d_i = log R_obs,i - log R_i(Z),
    posterior ~ exp(-chi^2 / 2) with a flat prior on the intersection of the
    diagnostics' validity ranges, evaluated on a fine Z grid (or sampled with
    emcee).
:func:`method_two`
    Method II: each diagnostic inverted alone; double-valued calibrations
    (R3, R23, ...) pick the branch closest to the Method I solution of the
    other diagnostics. The gradient is then fitted per diagnostic and the
    median taken (:func:`mockzgrad.recovery.gradient.median_gradient_over_diagnostics`).
:func:`line_flux_method`
    The forward-modelling Bayesian method of Wang et al. (2017, ApJ 837, 89;
    also Wang et al. 2022): Z, A_V and the intrinsic Hbeta flux fitted
    jointly to the line fluxes with
    chi^2 = sum_i (f_i - R_i f_Hb)^2 / (sigma_i^2 + f_Hb^2 sigma_Ri^2);
    its posterior is :class:`LineFluxLikelihood`.

Modules
-------
``ratios`` (:class:`RatioSet`, :func:`log_ratios`), ``method_i``,
``method_ii``, ``predicted_lines`` (which line each diagnostic predicts),
``likelihood`` (the line-flux posterior), ``line_flux`` (the method on
grids or with emcee), ``result`` (:class:`MetallicityResult`);
``_common`` and ``_grid`` hold constants, input checks and grid helpers.
:class:`BinFluxes`, the input, lives in :mod:`mockzgrad.recovery.fluxes`.

Results are :class:`MetallicityResult` objects; a bin that cannot be measured
has ``valid = False`` and a reason, and NaN is never reported as a valid
metallicity.
"""

from ..fluxes import BinFluxes
from ._common import NII_HA_RANGE, REASON_NO_DIAGNOSTIC, REASON_OUTSIDE_RANGE, Z_STEP
from .likelihood import LineFluxLikelihood
from .line_flux import line_flux_method
from .method_i import method_one
from .method_ii import method_two
from .ratios import RatioSet, log_ratios
from .result import MetallicityResult

__all__ = [
    "BinFluxes",
    "RatioSet",
    "MetallicityResult",
    "LineFluxLikelihood",
    "log_ratios",
    "method_one",
    "method_two",
    "line_flux_method",
    "REASON_NO_DIAGNOSTIC",
    "REASON_OUTSIDE_RANGE",
    "Z_STEP",
    "NII_HA_RANGE",
]

