"""Line fits of many spectra at once by variable projection (:func:`fit_lines`).

Given ``(v, sigma)`` the model is linear in the line fluxes and baseline
terms, which are solved exactly. Each spectrum starts from the best point of
a coarse ``(v, sigma)`` grid shared by all spectra (:mod:`._grid`) and is
refined by vectorised Levenberg-Marquardt steps (:mod:`._lm`); the
covariance of all parameters is ``(J^T W J)^-1`` at the optimum. Spectra are
fitted in chunks of ``_CHUNK`` to bound the memory of the batched design
matrices.
"""

from __future__ import annotations

import numpy as np

from ... import validate
from ...errors import ConfigError
from ._design import active_columns, solve_normal
from ._fits import FitArrays, assemble_result
from ._grid import grid_start
from ._lm import refine
from ._setup import prepare_fit
from ._stacked import evaluate_stacked
from .model import LineModel
from .result import LineFitResult

__all__ = ["fit_lines"]

#: Spectra fitted together; bounds the memory of the batched design matrices.
_CHUNK = 1024


def fit_lines(
    spectra,
    errors,
    edges_lo,
    edges_hi,
    redshift: float,
    line_model: LineModel,
    *,
    sigma_init=None,
    half_window: int | None = None,
    reference_line: str | None = None,
    sigma_min: float | None = None,
    n_grid: tuple[int, int] = (9, 13),
    max_iter: int = 40,
) -> LineFitResult:
    """Fit the line model to many spectra at once (variable projection).

    Parameters
    ----------
    spectra : array_like, shape (n_spec, n_chan) or (n_chan,)
        Flux in each channel (channel-integrated, e.g. erg/s/cm^2 per
        channel). Non-finite values are masked.
    errors : array_like, same shape as ``spectra``
        1-sigma error of each channel, same unit; non-finite or <= 0 masks
        the channel.
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Lower and upper channel edges, observed vacuum Angstrom, increasing;
        gaps between channels are allowed (see the module notes on windows).
    redshift : float
        Redshift guess, > -1; ``velocity`` is measured from it.
    line_model : LineModel
        Lines and ties (see :func:`default_line_model`).
    sigma_init : float or array_like of shape (n_spec,), optional
        Initial observed width, km/s, > 0; ``sigma`` is bounded to
        ``sigma_init +- 5`` channels. Default: the second moment of the
        reference line in the stack of all spectra.
    half_window : int or None, optional
        ``None``: each contiguous segment of the grid holding a line is a
        fitting window. An integer ``W >= 1``: ``+-W`` channels around each
        line (merged when they overlap).
    reference_line : str or None, optional
        Line whose local channel width (km/s) defines "one channel" for the
        bounds. Default: the brightest line of the stack.
    sigma_min : float or None, optional
        Lower bound of ``sigma``, km/s; > 0 (e.g. the LSF sigma). Default:
        half a channel. Spectrographs sample the LSF with >= 2 channels per
        FWHM, so a narrower observed line is unphysical; it is where fits to
        noise collapse into a spike inside one channel, a degenerate model
        (the velocity and width are then unconstrained).
    n_grid : (int, int), optional
        Points of the coarse grid in ``v`` and ``sigma``; each >= 2.
    max_iter : int, optional
        Maximum Levenberg-Marquardt iterations; >= 1.

    Returns
    -------
    LineFitResult

    Raises
    ------
    ConfigError
        Bad channel edges, a line outside the grid, shapes that disagree or
        a parameter out of range.
    """
    pb = prepare_fit(spectra, errors, edges_lo, edges_hi, redshift, line_model, sigma_init=sigma_init,
                     half_window=half_window, reference_line=reference_line, sigma_min=sigma_min)
    n_grid = _grid_shape(n_grid)
    max_iter = validate.integer("max_iter", max_iter, lo=1)
    setup = pb.setup
    n_spec = pb.y.shape[0]
    fits = FitArrays.empty(n_spec, setup.n_par)
    act_all = active_columns(setup, pb.w, pb.s0)
    for c0 in range(0, n_spec, _CHUNK):
        sel = slice(c0, min(n_spec, c0 + _CHUNK))
        _fit_chunk(setup, pb.y[sel], pb.w[sel], act_all[sel], pb.v_bounds, pb.s_bounds[sel], n_grid, max_iter,
                   fits, sel)
    return assemble_result(pb, fits, "varpro")


def _grid_shape(n_grid) -> tuple[int, int]:
    try:
        nv, ns = n_grid
    except (TypeError, ValueError):
        raise ConfigError(f"n_grid = {n_grid!r}: expected two integers >= 2") from None
    return validate.integer("n_grid[0]", nv, lo=2), validate.integer("n_grid[1]", ns, lo=2)


def _fit_chunk(setup, y, w, active, vb, sb, n_grid, max_iter, fits, sel):
    """Fit the spectra ``sel`` (one chunk) and store the results in ``fits``."""
    n_valid = np.count_nonzero(w > 0.0, axis=1)
    n_par = np.count_nonzero(active, axis=1) + 2
    ok = (n_valid >= n_par) & np.any(active[:, : setup.n_free], axis=1)
    if not np.any(ok):
        return
    y, w, active, sb = y[ok], w[ok], active[ok], sb[ok]
    v, s = grid_start(setup, y, w, active, vb, sb, n_grid)
    theta, converged = refine(setup, y, w, active, v, s, vb, sb, max_iter)

    # covariance of all parameters from the full Jacobian at the optimum
    chi2, beta, _, _, hess = evaluate_stacked(setup, theta[:, 0], theta[:, 1], y, w, active, full=True)
    act_full = np.concatenate([active, np.ones((active.shape[0], 2), dtype=bool)], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # degenerate fits give inf: flagged below
        _, cov = solve_normal(hess, np.zeros(hess.shape[:2]), act_full, want_inverse=True)
    cov = np.where(act_full[:, :, None] & act_full[:, None, :], cov, np.nan)

    rows = np.arange(sel.start, sel.stop)[ok]
    var = np.einsum("sii->si", cov)
    var_ok = np.where(act_full, np.isfinite(var) & (var > 0.0), True)
    good = converged & np.isfinite(chi2) & np.all(var_ok, axis=1)
    fits.beta[rows] = np.where(active, beta, np.nan)
    fits.cov[rows] = cov
    fits.v[rows] = theta[:, 0]
    fits.s[rows] = theta[:, 1]
    fits.chi2[rows] = chi2
    fits.dof[rows] = np.count_nonzero(w > 0.0, axis=1) - np.count_nonzero(act_full, axis=1)
    fits.success[rows] = good
    fits.active[rows] = active
