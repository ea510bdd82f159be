"""The stellar continuum of an observer's cube: its detection, its peak (the centre) and per-spaxel EWs.

Ju et al. (MSA-3D; S1 in ``reference/instruments.md``) take the galaxy's
centre as the continuum peak in a rest-frame 5500 +- 25 A window (S1 Sect.
3.2) and keep spaxels whose EW(Halpha) has S/N > 5 (S1 Sect. 3.1). Both
need a continuum in the cube. This module measures, from the data only:

* the continuum image: the mean flux per Angstrom of the channels inside the
  observed window ``window_rest x (1 + z)``, with its error from the variance;
* whether there is a continuum at all: the image's total S/N is at least
  :data:`DETECTION_SNR` (a cube without continuum has a total of 0 +- its
  error, so a noise fluctuation passes with probability 3e-7); a window
  with no channels is "no continuum";
* the peak: the centre of a 2D Gaussian fitted to the image (the peak of a
  continuum symmetric about its centre; see :func:`continuum_peak`);
* per-spaxel equivalent widths from the line fit
  (:func:`mockzgrad.recovery.linefit.fit_lines`): the line flux ``F`` over
  the fitted baseline at the line, ``c = (a + b (lambda - lambda_ref)) / w``
  (flux per Angstrom, ``w`` the channel width there), rest frame
  ``EW = F / c / (1 + z)``; its error by linear propagation with the fit's
  covariance of ``F``, ``a`` and ``b`` (their correlation included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..physics.lines import LINES
from . import linefit
from .binning import Binning, keep_bins

__all__ = ["DETECTION_SNR", "ContinuumImage", "EquivalentWidths", "continuum_image", "continuum_peak", "spaxel_ew",
           "ew_cut"]

#: Total S/N of the continuum image above which a cube "has a continuum".
DETECTION_SNR = 5.0


@dataclass(frozen=True, eq=False)
class ContinuumImage:
    """Mean continuum flux per Angstrom in a window, per spaxel.

    Attributes
    ----------
    flux, err : ndarray, shape (ny, nx)
        Mean flux density over the window's channels and its 1-sigma error,
        cube unit per Angstrom (NaN where no channel is finite).
    window : tuple of float
        Observed window, Angstrom.
    n_chan : int
        Channels used.
    """

    flux: np.ndarray
    err: np.ndarray
    window: tuple[float, float]
    n_chan: int

    @property
    def snr(self) -> float:
        """S/N of the image's total (0 when there is nothing to add)."""
        ok = np.isfinite(self.flux) & np.isfinite(self.err)
        e = math.sqrt(float(np.sum(self.err[ok] ** 2)))
        return float(np.sum(self.flux[ok])) / e if e > 0 else 0.0

    @property
    def detected(self) -> bool:
        """The total is at least :data:`DETECTION_SNR` sigma above zero."""
        return self.n_chan > 0 and self.snr >= DETECTION_SNR


def continuum_image(cube, redshift: float, window_rest: tuple[float, float]) -> ContinuumImage:
    """The continuum image of ``cube`` in the rest window ``window_rest`` (Angstrom) at ``redshift``.

    A channel is used when its centre lies inside the observed window. The
    image has no channels (``n_chan = 0``, all NaN) when the cube does not
    cover the window.
    """
    lo, hi = (w * (1.0 + redshift) for w in window_rest)
    e_lo, e_hi = np.asarray(cube.edges_lo, float), np.asarray(cube.edges_hi, float)
    sel = (0.5 * (e_lo + e_hi) > lo) & (0.5 * (e_lo + e_hi) < hi)
    ny, nx = np.shape(cube.data)[1:]
    if not sel.any():
        nan = np.full((ny, nx), np.nan)
        return ContinuumImage(nan, nan.copy(), (lo, hi), 0)
    data = np.asarray(cube.data, float)[sel]
    var = np.asarray(cube.variance, float)[sel]
    ok = np.isfinite(data) & np.isfinite(var)
    width = (e_hi - e_lo)[sel][:, None, None] * ok
    total_w = width.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.where(total_w > 0, np.where(ok, data, 0.0).sum(axis=0) / total_w, np.nan)
        err = np.where(total_w > 0, np.sqrt(np.where(ok, var, 0.0).sum(axis=0)) / total_w, np.nan)
    return ContinuumImage(flux, err, (lo, hi), int(sel.sum()))


def continuum_peak(image: ContinuumImage, pixel_scale: float) -> tuple[float, float, float, float]:
    """``(x_offset, y_offset, x_err, y_err)`` of the continuum peak, arcsec east / north of the field centre.

    The centre of a 2D elliptical Gaussian fitted to the continuum image
    (:func:`mockzgrad.recovery.geometry.fit_geometry`, no PSF correction:
    the centre does not need it). For a continuum symmetric about its
    centre (any Sersic profile smeared by a symmetric kernel) that is its
    peak; unlike the brightest spaxel it is not tied to the cube's grid,
    which along the MSA dispersion direction is an interpolation of 0.2"
    steps.
    """
    from .geometry import fit_geometry

    with np.errstate(invalid="ignore", divide="ignore"):
        detected = image.flux > 2.0 * image.err
    g = fit_geometry(image.flux, image.err, pixel_scale, mask=detected if detected.sum() >= 12 else None)
    return g.x_offset, g.y_offset, g.x_offset_err, g.y_offset_err


def _window_of(fit, wave: float) -> int:
    for m, (lo, hi, _) in enumerate(fit.windows):
        if lo <= wave <= hi:
            return m
    raise ValueError(f"no fitting window holds {wave:.1f} A")


@dataclass(frozen=True, eq=False)
class EquivalentWidths:
    """Rest-frame EWs of one line in every fitted spectrum, and the continuum they rest on.

    Attributes
    ----------
    ew, ew_err : ndarray, shape (n_spec,)
        Rest-frame equivalent width and its 1-sigma error, Angstrom.
    cont, cont_err : ndarray, shape (n_spec,)
        Fitted continuum at the line, cube unit per Angstrom, and its error.
    """

    ew: np.ndarray
    ew_err: np.ndarray
    cont: np.ndarray
    cont_err: np.ndarray


def spaxel_ew(fit, line: str, edges_lo, edges_hi) -> EquivalentWidths:
    """Rest-frame EW of ``line`` and its error, from a line fit (one value per spectrum).

    Parameters
    ----------
    fit : mockzgrad.recovery.linefit.LineFitResult
        With ``linear_covariance``.
    line : str
        A fitted line.
    edges_lo, edges_hi : array_like
        Channel edges of the fitted spectra, observed Angstrom.
    """
    wave = LINES[line].wavelength * (1.0 + fit.redshift)
    m = _window_of(fit, wave)
    nf = len(fit.free_lines)
    d = wave - fit.windows[m][2]
    lo, hi = np.asarray(edges_lo, float), np.asarray(edges_hi, float)
    k = int(np.clip(np.searchsorted(hi, wave), 0, lo.size - 1))
    width = hi[k] - lo[k]
    g_f = np.zeros(fit.linear_covariance.shape[-1])
    g_f[:nf] = fit.tie_matrix[fit.line_names.index(line)]
    g_c = np.zeros_like(g_f)
    g_c[nf + 2 * m], g_c[nf + 2 * m + 1] = 1.0 / width, d / width
    cov = fit.linear_covariance
    flux = fit.flux[:, fit.line_names.index(line)]
    cont = (fit.baseline[:, m, 0] + fit.baseline[:, m, 1] * d) / width
    var_f = np.einsum("i,sij,j->s", g_f, cov, g_f)
    var_c = np.einsum("i,sij,j->s", g_c, cov, g_c)
    cov_fc = np.einsum("i,sij,j->s", g_f, cov, g_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        ew = flux / cont / (1.0 + fit.redshift)
        rel = var_f / flux**2 + var_c / cont**2 - 2.0 * cov_fc / (flux * cont)
        err = np.abs(ew) * np.sqrt(np.maximum(rel, 0.0))
    return EquivalentWidths(ew, err, cont, np.sqrt(np.maximum(var_c, 0.0)))


def ew_cut(cube, bins: Binning, lines, line: str, snr_min: float, min_spaxels: int, *, fit_names=None):
    """Keep the bins whose EW(``line``) has S/N > ``snr_min`` (S1 Sect. 3.1).

    Each bin's summed spectrum is fitted with ``fit_names`` (None:
    ``lines.lines``; the front end adds the tied doublet partners the cube
    holds, :func:`mockzgrad.recovery.frontend.with_tied_partners`: a line
    left out of the model goes into the baseline and lowers the EW). Call it only
    for a cube with a continuum (:attr:`ContinuumImage.detected`): the
    fitted baseline alone cannot tell, since it also takes up a little of
    the lines' wings (~1 % of the line flux spread over the window), which
    a cube without continuum then "detects". Fewer than ``min_spaxels``
    kept bins leave none, as :func:`mockzgrad.recovery.binning.spaxels` does.

    Returns
    -------
    kept : Binning
    dropped : list of (int or str, str)
        Bin index (in ``bins``) or region, and why.
    widths : EquivalentWidths
    """
    from .spectra import sum_spectra

    spec, errors = sum_spectra(np.asarray(cube.data, float), np.asarray(cube.variance, float), bins.labels,
                               bins.n_bins)
    model = linefit.default_line_model(list(lines.lines if fit_names is None else fit_names))
    fit = linefit.fit_lines(spec, errors, cube.edges_lo, cube.edges_hi, lines.redshift, model,
                            reference_line=lines.reference_line)
    w = spaxel_ew(fit, line, cube.edges_lo, cube.edges_hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = w.ew / w.ew_err
    keep = snr > snr_min
    dropped = [(int(i), f"EW({line}) S/N {snr[i]:.2f} <= {snr_min:g} (EW {w.ew[i]:.1f} +- {w.ew_err[i]:.1f} A)")
               for i in np.flatnonzero(~keep)]
    if int(keep.sum()) < min_spaxels:
        dropped.append((f"all {int(keep.sum())} remaining spaxels",
                        f"fewer than min_spaxels = {int(min_spaxels)} pass the EW({line}) cut: no gradient"))
        keep[:] = False
    return keep_bins(bins, keep), dropped, w
