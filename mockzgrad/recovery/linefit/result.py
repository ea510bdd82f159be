"""The result of a line fit of many spectra: fluxes, kinematics, covariances.

:class:`LineFitResult` is what :func:`~mockzgrad.recovery.linefit.fit_lines`
and :func:`~mockzgrad.recovery.linefit.fit_lines_curve_fit` return; it sums
lines (blends, tied doublets) and forms log flux ratios with their
covariances propagated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from ...physics.lines import BLENDS, C_KMS

__all__ = ["LineFitResult"]

_LN10 = math.log(10.0)


@dataclass(frozen=True, eq=False)
class LineFitResult:
    """Line fits of ``n_spec`` spectra.

    Attributes
    ----------
    line_names : tuple of str
        All lines of the model, the column order of ``flux``.
    free_lines : tuple of str
        Lines with a free flux, the order of ``covariance``.
    tie_matrix : ndarray, shape (n_lines, n_free)
        ``flux = free_flux @ tie_matrix.T``.
    flux, flux_err, snr : ndarray, shape (n_spec, n_lines)
        Line fluxes (the unit of the spectra times one channel, i.e.
        erg/s/cm^2 for channel-integrated spectra), their 1-sigma errors and
        ``flux / flux_err``. Tied lines are ``ratio * parent``. NaN where the
        line is unconstrained or the fit failed.
    velocity, velocity_err : ndarray, shape (n_spec,)
        Velocity offset from ``redshift``, km/s.
    sigma, sigma_err : ndarray, shape (n_spec,)
        Observed line-of-sight velocity dispersion (instrumental width
        included), km/s.
    chi2 : ndarray, shape (n_spec,)
        Minimum chi^2.
    dof : ndarray of int, shape (n_spec,)
        Valid channels minus constrained parameters (``v`` and ``sigma`` included).
    success : ndarray of bool, shape (n_spec,)
        Fit converged with enough valid channels.
    covariance : ndarray, shape (n_spec, n_free, n_free)
        Covariance of the free line fluxes (marginalised over the baseline,
        ``v`` and ``sigma``).
    baseline : ndarray, shape (n_spec, n_windows, 2)
        ``(a, b)`` per window: flux per channel at ``lambda_ref`` and its
        slope per Angstrom.
    windows : tuple of (float, float, float)
        ``(lambda_lo, lambda_hi, lambda_ref)`` of each fitting window,
        observed Angstrom.
    redshift : float
        Redshift guess that ``velocity`` is measured from.
    channel_kms : float
        Channel width at the reference line, km/s (unit of the bounds).
    sigma_bounds : ndarray, shape (n_spec, 2)
        Allowed ``sigma`` range, km/s.
    velocity_bounds : tuple of float
        Allowed ``velocity`` range, km/s.
    method : str
        ``"varpro"`` (:func:`fit_lines`) or ``"curve_fit"``.
    linear_covariance : ndarray, shape (n_spec, n_free + 2 n_windows, n_free + 2 n_windows), or None
        Covariance of the free fluxes and the baseline terms ``(a, b)`` of
        every window, in that order (marginalised over ``v`` and ``sigma``);
        None when the fitter does not provide it.
    """

    line_names: tuple[str, ...]
    free_lines: tuple[str, ...]
    tie_matrix: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    snr: np.ndarray
    velocity: np.ndarray
    velocity_err: np.ndarray
    sigma: np.ndarray
    sigma_err: np.ndarray
    chi2: np.ndarray
    dof: np.ndarray
    success: np.ndarray
    covariance: np.ndarray
    baseline: np.ndarray
    windows: tuple[tuple[float, float, float], ...]
    redshift: float
    channel_kms: float
    sigma_bounds: np.ndarray
    velocity_bounds: tuple[float, float]
    method: str
    linear_covariance: np.ndarray | None = None

    def __post_init__(self):
        for name in (
            "tie_matrix", "flux", "flux_err", "snr", "velocity", "velocity_err", "sigma",
            "sigma_err", "chi2", "dof", "success", "covariance", "baseline", "sigma_bounds",
        ):
            getattr(self, name).flags.writeable = False

    @property
    def n_spec(self) -> int:
        """Number of spectra."""
        return self.flux.shape[0]

    @property
    def redshift_fit(self) -> np.ndarray:
        """Fitted redshift ``(1 + redshift) (1 + v / c) - 1`` of each spectrum."""
        return (1.0 + self.redshift) * (1.0 + self.velocity / C_KMS) - 1.0

    def _coefficients(self, lines) -> np.ndarray:
        """Coefficients on the free fluxes of the sum of ``lines``."""
        if isinstance(lines, str):
            lines = BLENDS.get(lines, (lines,))
        c = np.zeros(len(self.free_lines))
        for name in lines:
            if name not in self.line_names:
                raise ConfigError(f"line {name!r} was not fitted; fitted: {', '.join(self.line_names)}")
            c += self.tie_matrix[self.line_names.index(name)]
        return c

    def line_flux(self, lines) -> tuple[np.ndarray, np.ndarray]:
        """Summed flux of several lines and its error (covariances included).

        Parameters
        ----------
        lines : str or sequence of str
            A line, a blend name (``"OII"``, ``"OIII"``, ``"NII"``, ``"SII"``)
            or several lines to add.

        Returns
        -------
        flux, err : ndarray, shape (n_spec,)
        """
        c = self._coefficients(lines)
        free = self.flux[:, [self.line_names.index(n) for n in self.free_lines]]
        used = c != 0
        total = np.sum(free[:, used] * c[used], axis=1)
        var = np.einsum("i,sij,j->s", c[used], self.covariance[:, used][:, :, used], c[used])
        return total, np.sqrt(var)

    def ratio(self, num_lines, den_lines) -> tuple[np.ndarray, np.ndarray]:
        """``log10`` of a flux ratio and its 1-sigma error.

        The numerator and denominator are sums of lines; their covariance
        (shared lines, ties, blends) is propagated to first order:
        ``sigma_log = sqrt(V_N/N^2 + V_D/D^2 - 2 C_ND/(N D)) / ln 10``.

        Parameters
        ----------
        num_lines, den_lines : str or sequence of str
            Lines (or blend names) summed in the numerator and denominator.

        Returns
        -------
        log_ratio, err : ndarray, shape (n_spec,)
            NaN where either sum is not positive or not finite.
        """
        cn = self._coefficients(num_lines)
        cd = self._coefficients(den_lines)
        free = self.flux[:, [self.line_names.index(n) for n in self.free_lines]]
        free0 = np.where(np.isfinite(free), free, 0.0)
        cov0 = np.where(np.isfinite(self.covariance), self.covariance, 0.0)
        num = free0 @ cn
        den = free0 @ cd
        vn = np.einsum("i,sij,j->s", cn, cov0, cn)
        vd = np.einsum("i,sij,j->s", cd, cov0, cd)
        cnd = np.einsum("i,sij,j->s", cn, cov0, cd)
        bad = ~(np.all(np.isfinite(free[:, (cn != 0) | (cd != 0)]), axis=1) & (num > 0) & (den > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log10(num / den)
            var = vn / num**2 + vd / den**2 - 2.0 * cnd / (num * den)
            err = np.sqrt(np.maximum(var, 0.0)) / _LN10
        log_ratio[bad] = np.nan
        err[bad] = np.nan
        return log_ratio, err

    def as_dict(self, i: int) -> dict:
        """Results of spectrum ``i`` as a flat, JSON-serialisable dict.

        Keys: ``flux_<line>``, ``flux_err_<line>``, ``snr_<line>`` for every
        line, and ``velocity``, ``velocity_err``, ``sigma``, ``sigma_err``
        (km/s), ``chi2``, ``dof``, ``success``.
        """
        i = int(i)
        out: dict = {}
        for j, name in enumerate(self.line_names):
            out[f"flux_{name}"] = float(self.flux[i, j])
            out[f"flux_err_{name}"] = float(self.flux_err[i, j])
            out[f"snr_{name}"] = float(self.snr[i, j])
        for name in ("velocity", "velocity_err", "sigma", "sigma_err", "chi2"):
            out[name] = float(getattr(self, name)[i])
        out["dof"] = int(self.dof[i])
        out["success"] = bool(self.success[i])
        return out
