"""Per-spectrum fit arrays, filled by a fitter and turned into a :class:`LineFitResult`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._setup import FitProblem
from .result import LineFitResult

__all__ = ["FitArrays", "assemble_result"]


@dataclass(eq=False)
class FitArrays:
    """Raw fits of ``n_spec`` spectra, NaN / False until a spectrum is fitted.

    ``p`` linear parameters (free fluxes, then ``(a, b)`` per window).

    Attributes
    ----------
    beta : numpy.ndarray, shape (n_spec, p)
        Linear parameters (NaN where not constrained).
    cov : numpy.ndarray, shape (n_spec, p + 2, p + 2)
        Covariance of all parameters, ``v`` and ``sigma`` last.
    v, s : numpy.ndarray, shape (n_spec,)
        Velocity offset and ``sigma``, km/s.
    chi2 : numpy.ndarray, shape (n_spec,)
    dof : numpy.ndarray of int, shape (n_spec,)
    success : numpy.ndarray of bool, shape (n_spec,)
    active : numpy.ndarray of bool, shape (n_spec, p)
        Linear parameters the spectrum constrains.
    """

    beta: np.ndarray
    cov: np.ndarray
    v: np.ndarray
    s: np.ndarray
    chi2: np.ndarray
    dof: np.ndarray
    success: np.ndarray
    active: np.ndarray

    @classmethod
    def empty(cls, n_spec: int, p: int) -> "FitArrays":
        """Arrays for ``n_spec`` spectra and ``p`` linear parameters, none fitted."""
        return cls(
            beta=np.full((n_spec, p), np.nan),
            cov=np.full((n_spec, p + 2, p + 2), np.nan),
            v=np.full(n_spec, np.nan),
            s=np.full(n_spec, np.nan),
            chi2=np.full(n_spec, np.nan),
            dof=np.zeros(n_spec, dtype=int),
            success=np.zeros(n_spec, dtype=bool),
            active=np.zeros((n_spec, p), dtype=bool),
        )


def assemble_result(problem: FitProblem, fits: FitArrays, method: str) -> LineFitResult:
    """Line fluxes, errors and kinematics of every spectrum; NaN where the fit failed."""
    setup = problem.setup
    nf = setup.n_free
    ok = fits.success
    free = np.where(ok[:, None], fits.beta[:, :nf], np.nan)
    cov = np.where(ok[:, None, None], fits.cov[:, :nf, :nf], np.nan)
    # each line is coef x one free flux (no matrix product: NaN * 0 is NaN)
    flux = free[:, setup.line_col] * setup.line_coef
    err = np.sqrt(np.einsum("sii->si", cov))[:, setup.line_col] * setup.line_coef
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = flux / err
    n_spec = flux.shape[0]
    with np.errstate(invalid="ignore"):
        v_err = np.sqrt(fits.cov[:, -2, -2])
        s_err = np.sqrt(fits.cov[:, -1, -1])
    base = fits.beta[:, nf:].reshape(n_spec, setup.n_win, 2)

    def nan_if_bad(x):
        return np.where(ok, x, np.nan)

    vb, sb = problem.v_bounds, problem.s_bounds
    return LineFitResult(
        line_names=tuple(problem.names),
        free_lines=setup.free_lines,
        tie_matrix=setup.tie_matrix.copy(),
        flux=flux,
        flux_err=err,
        snr=snr,
        velocity=nan_if_bad(fits.v),
        velocity_err=nan_if_bad(v_err),
        sigma=nan_if_bad(fits.s),
        sigma_err=nan_if_bad(s_err),
        chi2=nan_if_bad(fits.chi2),
        dof=fits.dof.copy(),
        success=ok.copy(),
        covariance=cov,
        baseline=np.where(ok[:, None, None], base, np.nan),
        windows=setup.windows,
        redshift=float(problem.redshift),
        channel_kms=float(problem.chan),
        sigma_bounds=np.asarray(sb, dtype=float).copy(),
        velocity_bounds=(float(vb[0]), float(vb[1])),
        method=method,
        linear_covariance=np.where(ok[:, None, None], fits.cov[:, :nf + 2 * setup.n_win, :nf + 2 * setup.n_win],
                                   np.nan),
    )
