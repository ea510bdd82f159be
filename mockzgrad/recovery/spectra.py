"""Summed spectra of bins, and their errors.

A bin's spectrum is the sum, channel by channel, of the spectra of its
spaxels; its error is the square root of the summed variance (independent
spaxels), or an RMS in a moving window with the lines masked
(:func:`rms_errors`). Cubes have axes ``(n_chan, ny, nx)``; spectra have
shape ``(n_bins, n_chan)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .linefit import rms_error_spectrum

__all__ = ["BinnedSpectra", "bin_spectra", "sum_spectra", "rms_errors"]


@dataclass(frozen=True, eq=False)
class BinnedSpectra:
    """Spectra summed over the spaxels of each bin.

    Attributes
    ----------
    spectra : numpy.ndarray, shape (n_bins, n_chan)
        Summed flux per channel, in the unit of the cube (NaN where every
        spaxel of the bin is masked in that channel).
    errors : numpy.ndarray, shape (n_bins, n_chan)
        1-sigma error, sqrt of the summed variance of the values used.
    n_spaxels : numpy.ndarray of int, shape (n_bins,)
        Spaxels labelled with each bin.
    n_masked : numpy.ndarray of int, shape (n_bins, n_chan)
        Spaxel values left out of each sum because the data or the variance
        is not finite (NaN spaxels or channels).
    """

    spectra: np.ndarray
    errors: np.ndarray
    n_spaxels: np.ndarray
    n_masked: np.ndarray

    def __post_init__(self):
        for name in ("spectra", "errors", "n_spaxels", "n_masked"):
            getattr(self, name).flags.writeable = False

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.spectra.shape[0])


def sum_spectra(cube_data, variance, labels, n_bins: int):
    """Summed spectra of the bins and their errors (see :func:`bin_spectra`).

    Returns
    -------
    spectra, errors : numpy.ndarray, shape (n_bins, n_chan)
        ``BinnedSpectra.spectra`` and ``BinnedSpectra.errors`` of
        :func:`bin_spectra` (read-only); use that function for the counts
        of spaxels and masked values.
    """
    res = bin_spectra(cube_data, variance, labels, n_bins)
    return res.spectra, res.errors


def bin_spectra(cube_data, variance, labels, n_bins: int) -> BinnedSpectra:
    """Sum the spectra of the spaxels in each bin, propagating the variance.

    ``spectra[b, k] = sum of data[k, y, x] over spaxels with labels[y, x] = b``
    and ``errors[b, k] = sqrt(sum of variance[k, y, x])`` over the same
    spaxels, leaving out values whose data or variance is not finite (they
    are counted in ``n_masked``). Spaxels labelled -1 are not used.
    Vectorised: the spaxels are grouped by bin (one stable sort) and summed
    with :func:`numpy.add.reduceat` over all channels at once.

    Parameters
    ----------
    cube_data : array_like, shape (n_chan, ny, nx)
        Flux per spaxel and channel.
    variance : array_like, shape (n_chan, ny, nx)
        Variance of ``cube_data``; >= 0 where finite.
    labels : array_like of int, shape (ny, nx)
        Bin of each spaxel, 0 .. n_bins - 1, or -1 = unused (e.g.
        :attr:`Binning.labels`).
    n_bins : int
        Number of bins; >= 0 and larger than every label.

    Returns
    -------
    BinnedSpectra

    Raises
    ------
    DataError
        Shapes disagree, a label is out of range, or a variance is negative.
    """
    data = np.asarray(cube_data)
    var = np.asarray(variance)
    lab = np.asarray(labels)
    if data.ndim != 3 or var.shape != data.shape:
        raise DataError(f"cube_data {data.shape} and variance {var.shape}: expected the same (n_chan, ny, nx) shape")
    if lab.shape != data.shape[1:] or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"labels: shape {lab.shape}, dtype {lab.dtype}; expected integers of shape {data.shape[1:]}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 0:
        raise ConfigError(f"n_bins = {n_bins!r}; allowed an integer >= 0")
    n_bins = int(n_bins)
    if lab.size and (lab.max(initial=-1) >= n_bins or lab.min(initial=-1) < -1):
        raise DataError(f"labels in [{lab.min()}, {lab.max()}]; allowed -1 (unused) or 0 .. n_bins - 1 = {n_bins - 1}")
    n_chan = data.shape[0]
    flat = lab.ravel()
    sel = np.flatnonzero(flat >= 0)
    order = sel[np.argsort(flat[sel], kind="stable")]  # spaxels grouped by bin
    b = flat[order]
    n_spax = np.bincount(b, minlength=n_bins).astype(np.int64)
    present = np.flatnonzero(n_spax)
    starts = np.concatenate([[0], np.cumsum(n_spax)[:-1]])[present]
    # gather before converting (a float32 cube is converted only where binned)
    d = np.take(data.reshape(n_chan, -1), order, axis=1).astype(np.float64, copy=False)
    v = np.take(var.reshape(n_chan, -1), order, axis=1).astype(np.float64, copy=False)
    all_ok = bool(np.isfinite(d).all() and np.isfinite(v).all())
    if not all_ok:
        ok = np.isfinite(d) & np.isfinite(v)
        d[~ok] = 0.0
        v[~ok] = 0.0
    if np.any(v < 0.0):
        raise DataError("variance: negative values in the binned spaxels; allowed >= 0")

    def total(values):
        out = np.zeros((n_bins, n_chan))
        if present.size:
            out[present] = np.add.reduceat(values, starts, axis=1).T
        return out

    spec = total(d)
    vsum = total(v)
    if all_ok:
        n_used = np.broadcast_to(n_spax[:, None], (n_bins, n_chan))
    else:
        n_used = total(ok.astype(np.float64)).astype(np.int64)
    n_masked = (n_spax[:, None] - n_used).astype(np.int64)
    none = n_used == 0
    spec[none] = np.nan
    err = np.sqrt(vsum)
    err[none] = np.nan
    return BinnedSpectra(spectra=np.ascontiguousarray(spec), errors=np.ascontiguousarray(err),
                         n_spaxels=n_spax, n_masked=n_masked)


def rms_errors(spectra, edges_lo, edges_hi, line_waves_obs, *, window: int = 160,
               mask_kms: float = 500.0, min_channels: int = 10) -> np.ndarray:
    """Errors from the RMS of line-free channels in a moving window.

    A thin wrapper around
    :func:`mockzgrad.recovery.linefit.rms_error_spectrum` (see it for the
    method: a straight line is fitted to the unmasked channels of a window
    of ``window`` channels around each channel, and the error is the RMS of
    its residuals).

    Parameters
    ----------
    spectra : array_like, shape (n_bins, n_chan) or (n_chan,)
        Flux per channel.
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Channel edges, observed Angstrom.
    line_waves_obs : array_like of float
        Observed wavelengths of the lines to mask, Angstrom.
    window : int
        Width of the moving window, channels; >= 3.
    mask_kms : float
        Half-width of the region masked around each line, km/s; >= 0.
    min_channels : int
        Fewest unmasked channels for an estimate (NaN below); >= 3.

    Returns
    -------
    numpy.ndarray, same shape as ``spectra``
        1-sigma error per channel, in the unit of ``spectra``.
    """
    return rms_error_spectrum(spectra, edges_lo, edges_hi, line_waves_obs, mask_kms=mask_kms,
                              window=window, min_channels=min_channels)
