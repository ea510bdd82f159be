"""Summed spectra of bins, and their errors.

A bin's spectrum is the sum, channel by channel, of the spectra of its
spaxels; its error is the square root of the summed variance (independent
spaxels, :func:`bin_spectra`), or an RMS in a moving window with the lines
masked (:func:`rms_error_spectrum`). Cubes have axes ``(n_chan, ny, nx)``;
spectra have shape ``(n_bins, n_chan)``. A channel grid is given by its
lower and upper edges (observed Angstrom) and may have gaps
(:func:`channel_edges`, :func:`contiguous_segments`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import validate
from ..errors import ConfigError, DataError
from ..physics.lines import C_KMS

__all__ = [
    "BinnedSpectra",
    "bin_spectra",
    "sum_spectra",
    "channel_edges",
    "contiguous_segments",
    "rms_error_spectrum",
]


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
    ConfigError
        ``n_bins`` is not an integer >= 0.
    """
    data, var, lab, n_bins = _checked_inputs(cube_data, variance, labels, n_bins)
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


def _checked_inputs(cube_data, variance, labels, n_bins):
    """The arrays of :func:`bin_spectra` and ``n_bins``, checked against each other."""
    data = np.asarray(cube_data)
    var = np.asarray(variance)
    lab = np.asarray(labels)
    if data.ndim != 3 or var.shape != data.shape:
        raise DataError(f"cube_data {data.shape} and variance {var.shape}: expected the same (n_chan, ny, nx) shape")
    if lab.shape != data.shape[1:] or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"labels: shape {lab.shape}, dtype {lab.dtype}; expected integers of shape {data.shape[1:]}")
    n_bins = validate.integer("n_bins", n_bins, lo=0)
    if lab.size and (lab.max(initial=-1) >= n_bins or lab.min(initial=-1) < -1):
        raise DataError(f"labels in [{lab.min()}, {lab.max()}]; allowed -1 (unused) or 0 .. n_bins - 1 = {n_bins - 1}")
    return data, var, lab, n_bins


# --------------------------------------------------------------------------
# Channel grids
# --------------------------------------------------------------------------


def channel_edges(edges_lo, edges_hi) -> tuple[np.ndarray, np.ndarray]:
    """Check a channel grid and return its edges as float arrays.

    Parameters
    ----------
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Lower and upper channel edges, observed Angstrom; finite, each
        channel with ``edges_hi > edges_lo``, increasing in wavelength and
        not overlapping (gaps allowed); ``n_chan >= 2``.

    Returns
    -------
    lo, hi : numpy.ndarray of float, shape (n_chan,)

    Raises
    ------
    ConfigError
        The edges break one of the rules above.
    """
    lo = np.asarray(edges_lo, dtype=float)
    hi = np.asarray(edges_hi, dtype=float)
    if lo.ndim != 1 or lo.shape != hi.shape or lo.size < 2:
        raise ConfigError(
            f"edges_lo, edges_hi: shapes {lo.shape}, {hi.shape}; expected two equal 1-D arrays "
            "of >= 2 channels"
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise ConfigError("edges_lo, edges_hi: edges must be finite with edges_hi > edges_lo, Angstrom")
    width = hi - lo
    # a rounding-level overlap (1e-6 of a channel) is a touching edge
    if np.any(lo[1:] < hi[:-1] - 1e-6 * width[:-1]):
        raise ConfigError("edges_lo, edges_hi: channels must increase in wavelength without overlapping")
    return lo, hi


def contiguous_segments(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop indices of the runs of touching channels.

    Channel ``i + 1`` continues the run of channel ``i`` when
    ``lo[i + 1] - hi[i]`` is at most 1e-6 of the width of channel ``i``.

    Parameters
    ----------
    lo, hi : numpy.ndarray, shape (n_chan,)
        Channel edges, Angstrom, as returned by :func:`channel_edges`.

    Returns
    -------
    starts, stops : numpy.ndarray of int
        Segment ``j`` is the channels ``starts[j] .. stops[j] - 1``; the
        segments cover the grid in order.
    """
    gap = lo[1:] - hi[:-1] > 1e-6 * (hi - lo)[:-1]
    starts = np.concatenate([[0], np.nonzero(gap)[0] + 1])
    stops = np.concatenate([starts[1:], [lo.size]])
    return starts, stops


# --------------------------------------------------------------------------
# Error spectrum from the RMS in a moving window
# --------------------------------------------------------------------------


def rms_error_spectrum(
    spectra,
    edges_lo,
    edges_hi,
    line_waves_obs,
    *,
    mask_kms: float = 500.0,
    window: int = 160,
    min_channels: int = 10,
) -> np.ndarray:
    """Error spectrum from the scatter of line-free channels in a moving window.

    For every channel, the channels of a window of ``window`` channels
    centred on it (shifted to stay inside the contiguous segment of the grid
    it belongs to; a segment shorter than ``window`` is used whole) are
    taken; channels within ``+-mask_kms`` of any line, and non-finite ones,
    are dropped; a straight line is fitted to the rest and the error is the
    RMS of the residuals with ``n - 2`` degrees of freedom, so a sloping
    continuum does not inflate it.

    Parameters
    ----------
    spectra : array_like, shape (n_spec, n_chan) or (n_chan,)
        Flux per channel.
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Channel edges, observed Angstrom (gaps allowed; see
        :func:`channel_edges`).
    line_waves_obs : array_like of float
        Observed wavelengths of the lines to mask, Angstrom.
    mask_kms : float, optional
        Half-width of the masked region around each line, km/s; >= 0.
    window : int, optional
        Width of the moving window, channels; >= 3.
    min_channels : int, optional
        Fewest unmasked channels for an estimate; >= 3. Below it: NaN.

    Returns
    -------
    numpy.ndarray, same shape as ``spectra``
        1-sigma error per channel, in the unit of ``spectra``.

    Raises
    ------
    ConfigError
        Bad edges, a shape that does not match them, or a parameter out of range.
    """
    lo, hi = channel_edges(edges_lo, edges_hi)
    y = np.asarray(spectra, dtype=float)
    one = y.ndim == 1
    y = np.atleast_2d(y)
    if y.ndim != 2 or y.shape[1] != lo.size:
        raise ConfigError(f"spectra: shape {np.shape(spectra)}; expected (n_spec, {lo.size}) or ({lo.size},)")
    window = validate.integer("window", window, lo=3)
    min_channels = validate.integer("min_channels", min_channels, lo=3)
    mask_kms = validate.positive("mask_kms", mask_kms, "km/s", allow_zero=True)
    lines = np.atleast_1d(np.asarray(line_waves_obs, dtype=float))
    mid = 0.5 * (lo + hi)
    near_line = np.zeros(lo.size, dtype=bool)
    for lam in lines:
        near_line |= np.abs(mid - lam) <= lam * mask_kms / C_KMS
    valid = np.isfinite(y) & ~near_line[None, :]

    out = np.full(y.shape, np.nan)
    starts, stops = contiguous_segments(lo, hi)
    for a, b in zip(starts, stops):
        out[:, a:b] = _moving_line_rms(y[:, a:b], valid[:, a:b], window, min_channels)
    return out[0] if one else out


def _moving_line_rms(seg, valid, window, min_channels):
    """RMS about a straight line of the valid channels in a moving window.

    ``seg``, ``valid``: flux and usable channels of one contiguous segment,
    shape ``(n_spec, n)``. Window sums come from cumulative sums, so the
    cost does not grow with ``window``.
    """
    n = seg.shape[1]
    ok = valid.astype(float)
    ys = np.where(ok > 0, seg, 0.0)
    # subtract the segment mean to reduce cancellation in the sums
    cnt = ok.sum(axis=1, keepdims=True)
    ys = np.where(ok > 0, ys - ys.sum(axis=1, keepdims=True) / np.maximum(cnt, 1.0), 0.0)
    x = np.arange(n, dtype=float) - 0.5 * (n - 1)

    def csum(q):
        return np.concatenate([np.zeros((q.shape[0], 1)), np.cumsum(q, axis=1)], axis=1)

    c1, cx, cxx = csum(ok), csum(ok * x), csum(ok * x * x)
    cy, cxy, cyy = csum(ys), csum(ys * x), csum(ys * ys)
    wlen = min(window, n)
    j = np.arange(n)
    start = np.clip(j - wlen // 2, 0, n - wlen)
    stop = start + wlen

    def win(c):
        return c[:, stop] - c[:, start]

    s1, sx, sxx, sy, sxy, syy = (win(c) for c in (c1, cx, cxx, cy, cxy, cyy))
    with np.errstate(divide="ignore", invalid="ignore"):
        vxx = sxx - sx * sx / s1
        vxy = sxy - sx * sy / s1
        vyy = syy - sy * sy / s1
        rss = vyy - np.where(vxx > 0, vxy * vxy / vxx, 0.0)
        var = np.maximum(rss, 0.0) / (s1 - 2.0)
        rms = np.sqrt(var)  # windows with < 3 channels are NaN or negative: dropped below
    return np.where(s1 >= min_channels, rms, np.nan)
