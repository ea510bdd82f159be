"""The reference fitter: one spectrum at a time with ``scipy.optimize.curve_fit``.

Same model, windows, bounds and parameters as
:func:`~mockzgrad.recovery.linefit.fit_lines`, fitted the way a typical
observer script does. Slow; it is the independent check of the vectorised
fitter and the benchmark it is timed against.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from ...physics.lines import C_KMS
from ._design import active_columns
from ._fits import FitArrays, assemble_result
from ._setup import prepare_fit
from .model import LineModel
from .result import LineFitResult

__all__ = ["fit_lines_curve_fit"]

_SQRT2 = math.sqrt(2.0)


def fit_lines_curve_fit(
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
) -> LineFitResult:
    """The same model fitted one spectrum at a time with ``scipy.optimize.curve_fit``.

    This is what a typical observer script does: a loop over spectra, each
    fitted by bounded non-linear least squares (``method="trf"``) from
    data-driven starting values (``v = 0``, ``sigma = sigma_init``, line
    fluxes from the baseline-subtracted flux near each line, baseline from
    the window median), with ``absolute_sigma=True``. Windows, bounds and
    ``sigma_init`` are those of :func:`fit_lines`; parameters are the same.
    It is slow and serves as a benchmark and an independent check.

    Parameters
    ----------
    spectra, errors, edges_lo, edges_hi, redshift, line_model
        As in :func:`fit_lines`.
    sigma_init, half_window, reference_line, sigma_min
        As in :func:`fit_lines`.

    Returns
    -------
    LineFitResult
        With ``method = "curve_fit"``; ``success`` is False where
        ``curve_fit`` raised or the covariance is not finite.
    """
    pb = prepare_fit(spectra, errors, edges_lo, edges_hi, redshift, line_model, sigma_init=sigma_init,
                     half_window=half_window, reference_line=reference_line, sigma_min=sigma_min)
    setup = pb.setup
    n_spec = pb.y.shape[0]
    fits = FitArrays.empty(n_spec, setup.n_par)
    act_all = active_columns(setup, pb.w, pb.s0)
    model = _WindowModel(setup)
    for i in range(n_spec):
        fit = _fit_one(model, pb.y[i], pb.w[i], act_all[i], pb.s0[i], pb.v_bounds, pb.s_bounds[i])
        if fit is None:
            continue
        full, cov, chi2, dof, success = fit
        fits.beta[i] = full[: setup.n_par]
        fits.cov[i] = cov
        fits.v[i], fits.s[i] = full[-2], full[-1]
        fits.chi2[i] = chi2
        fits.dof[i] = dof
        fits.success[i] = success
        fits.active[i] = act_all[i]
    return assemble_result(pb, fits, "curve_fit")


class _WindowModel:
    """The line model on chosen window channels, in the call form of ``curve_fit``.

    Parameters (in order): free fluxes, ``(a, b)`` per window, ``v``,
    ``sigma``. Each line is evaluated on its own window only, as in
    :func:`~mockzgrad.recovery.linefit.fit_lines`.
    """

    def __init__(self, setup):
        self.setup = setup
        self.nf = setup.n_free
        self.p = setup.n_par
        self.mid = 0.5 * (setup.lo + setup.hi)
        self.dlam = setup.hi - setup.lo
        self.win_of_chan = np.empty(setup.lo.size, dtype=int)
        for m, sl in enumerate(setup.win_slices):
            self.win_of_chan[sl] = m
        self.win_of_line = np.empty(setup.lam_obs.size, dtype=int)
        for m, members in enumerate(setup.win_lines):
            self.win_of_line[members] = m
        self.lam_ref = np.array([wd[2] for wd in setup.windows])

    def __call__(self, chan_idx, *params):
        setup, nf = self.setup, self.nf
        prm = np.asarray(params)
        chan_idx = np.asarray(chan_idx).astype(int)  # curve_fit passes xdata as float
        v, sig = prm[-2], prm[-1]
        lo_c, hi_c = setup.lo[chan_idx], setup.hi[chan_idx]
        wc = self.win_of_chan[chan_idx]
        out = prm[nf + 2 * wc] + prm[nf + 2 * wc + 1] * (self.mid[chan_idx] - self.lam_ref[wc])
        for k in range(setup.lam_obs.size):
            mu = setup.lam_obs[k] * (1.0 + v / C_KMS)
            sw = mu * sig / C_KMS
            frac = 0.5 * (erf((hi_c - mu) / (_SQRT2 * sw)) - erf((lo_c - mu) / (_SQRT2 * sw)))
            amp = setup.line_coef[k] * prm[setup.line_col[k]]
            out = out + np.where(wc == self.win_of_line[k], amp * frac, 0.0)
        return out

    def start(self, y, valid, s0):
        """Data-driven starting values: window medians, then the summed flux near each free line."""
        setup, nf = self.setup, self.nf
        p0 = np.zeros(self.p + 2)
        for m, sl in enumerate(setup.win_slices):
            vals = y[sl][valid[sl]]
            p0[nf + 2 * m] = np.median(vals) if vals.size else 0.0
        for k in range(setup.lam_obs.size):
            if setup.line_coef[k] != 1.0:
                continue
            near = valid & (np.abs(self.mid - setup.lam_obs[k]) <= 2.5 * s0 / C_KMS * setup.lam_obs[k] + self.dlam)
            near &= self.win_of_chan == self.win_of_line[k]
            p0[setup.line_col[k]] = np.sum(y[near] - p0[nf + 2 * self.win_of_chan[near]])
        p0[-2], p0[-1] = 0.0, s0
        return p0


def _fit_one(model, y_all, w_all, act, s0, vb, sb):
    """``curve_fit`` of one spectrum; None when it cannot be fitted or the fit raised.

    Returns the parameters and covariance (NaN for parameters held at 0),
    chi^2, degrees of freedom and success.
    """
    from scipy.optimize import curve_fit

    p = model.p
    valid = w_all > 0.0
    n_par = np.count_nonzero(act) + 2
    if np.count_nonzero(valid) < n_par or not np.any(act[: model.nf]):
        return None
    chans = np.nonzero(valid)[0]
    y = y_all[chans]
    e = 1.0 / np.sqrt(w_all[chans])
    p0 = model.start(y_all, valid, s0)
    lower = np.full(p + 2, -np.inf)
    upper = np.full(p + 2, np.inf)
    lower[-2:], upper[-2:] = (vb[0], sb[0]), (vb[1], sb[1])
    p0[-1] = np.clip(p0[-1], sb[0], sb[1])
    # parameters a spectrum cannot constrain are held at zero
    free_par = np.concatenate([act, [True, True]])

    def fmodel(x, *q):
        full = np.zeros(p + 2)
        full[free_par] = q
        return model(x, *full)

    try:
        popt, pcov = curve_fit(
            fmodel, chans, y, p0=p0[free_par], sigma=e, absolute_sigma=True,
            bounds=(lower[free_par], upper[free_par]), method="trf",
            x_scale="jac", ftol=1e-14, xtol=1e-14, gtol=1e-14, max_nfev=2000,
        )
    except (RuntimeError, ValueError):
        return None
    full = np.full(p + 2, np.nan)
    full[free_par] = popt
    cov = np.full((p + 2, p + 2), np.nan)
    cov[np.ix_(free_par, free_par)] = pcov
    r = (y - fmodel(chans, *popt)) / e
    success = bool(np.all(np.isfinite(np.diag(pcov)) & (np.diag(pcov) > 0.0)))
    return full, cov, float(r @ r), chans.size - np.count_nonzero(free_par), success
