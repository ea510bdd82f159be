"""Vectorised emission-line fitting of many spectra at once.

Modules: :mod:`.model` (lines and tied fluxes), :mod:`.result` (the typed
result), :mod:`.varpro` (:func:`fit_lines`: grid start in :mod:`._grid`,
Levenberg-Marquardt in :mod:`._lm`, model and normal equations in
:mod:`._design` and, all blocks as one padded batch for the iterations, in
:mod:`._stacked`; windows and bounds in :mod:`._setup`) and :mod:`.curvefit`
(the one-spectrum-at-a-time ``scipy.optimize.curve_fit`` reference).

Every spectrum (one per bin: annulus, spaxel or Voronoi bin) is fitted with
the same model:

* each line is a Gaussian integrated over each spectral channel (an erf
  difference, as the cube renderer does). Line ``k`` with rest vacuum
  wavelength ``lambda_k`` is centred at
  ``mu_k = lambda_k (1 + redshift) (1 + v / c)`` and has the width
  ``s_k = mu_k sigma / c`` (Angstrom); ``v`` and ``sigma`` (km/s) are shared
  by all lines. ``sigma`` is the observed width, i.e. it includes the
  instrumental broadening;
* a first-order polynomial baseline ``a_m + b_m (lambda - lambda_ref,m)`` in
  every fitting window ``m`` (``lambda_ref,m`` is the mean guessed observed
  wavelength of the lines in the window);
* tied lines (fixed doublet ratios) share the flux parameter of their parent.

Fitting windows
---------------
The channel grid may have gaps (a cube that stores only windows near the
lines). Contiguous *segments* are runs of channels with
``edges_lo[i + 1] == edges_hi[i]`` (to 1e-6 of a channel). With
``half_window=None`` (default) every segment that contains the guessed
centre of at least one line is one fitting window. With an integer
``half_window = W`` every line gets the channels within ``+-W`` channels of
the channel holding its guessed centre, cut at the ends of its segment, and
overlapping or touching per-line windows are merged; use this on a
contiguous grid. Channels outside every window are ignored. A line's profile
is evaluated only inside its own window: flux that would fall into a gap or
another window is not modelled (it is ~0 for windows a few sigma wide).

Bounds
------
"One channel" is the local channel width, in km/s, at the *reference line*
(by default the line with the largest baseline-subtracted flux in the stack
of all spectra). The velocity offset is free within ``+-2`` channels of the
redshift guess; ``sigma`` within ``+-5`` channels of ``sigma_init``, and
never below ``sigma_min`` (default half a channel).

Method (variable projection)
----------------------------
Given ``(v, sigma)`` the model is linear in the line fluxes and baseline
coefficients, which are solved exactly (batched weighted normal equations).
The profile chi^2 is evaluated for all spectra at once on a coarse
``(v, sigma)`` grid (one shared design matrix per grid point, so the normal
matrices of all spectra are one matrix product); each spectrum then starts
from its best grid point and is refined with vectorised Levenberg-Marquardt
steps on ``(v, sigma)``. The curvature matrix is the reduced
(Schur-complement) Gauss-Newton matrix of variable projection (Kaufman 1975,
BIT 15, 49; Golub & Pereyra 2003, Inverse Problems 19, R1) with a BFGS
secant correction, and each step is followed by a one-point parabolic line
search: at low S/N the Gauss-Newton matrix alone misjudges the curvature and
converges slowly. Bounds are handled by an active set (a parameter on a
bound whose descent direction points outwards is held). Iteration stops when
the Newton step would lower chi^2 by less than 1e-9 (times the reduced
chi^2 where it exceeds one); a spectrum not converged after ``max_iter``
iterations is flagged ``success = False``.
The covariance of all parameters is ``(J^T W J)^-1`` with the Jacobian ``J``
at the optimum with respect to every parameter (fluxes, baselines, ``v``,
``sigma``); errors are not rescaled by the reduced chi^2.

Channels whose flux or error is not finite, or whose error is not positive,
get weight zero. A spectrum without enough valid channels to constrain its
parameters is flagged ``success = False`` and reports NaN.
"""

from .curvefit import fit_lines_curve_fit
from .model import LineModel, default_line_model
from .result import LineFitResult
from .varpro import fit_lines

__all__ = [
    "LineModel",
    "LineFitResult",
    "default_line_model",
    "fit_lines",
    "fit_lines_curve_fit",
]
