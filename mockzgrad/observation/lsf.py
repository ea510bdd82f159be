"""The line-spread function (LSF) stage: Gaussian, sigma in km/s.

Two ways to apply the LSF, which agree (tests/test_cube.py,
tests/test_observe.py):

* :func:`gaussian_line_sigma`, the stage the IFU mode uses. A Gaussian line
  of dispersion sigma_line convolved with a Gaussian LSF of dispersion
  sigma_lsf (both in velocity) is a Gaussian of dispersion
  sqrt(sigma_line^2 + sigma_lsf^2); the mode renders the scene with that
  width, which *is* the LSF convolution, exact and free of channel-width
  error (the scene's profiles are integrated over each channel). It holds
  for an LSF constant in velocity across a line (to first order in v / c).
* :func:`convolve_spectral`, the numerical convolution of any spectra or
  cube along the spectral axis, for profiles that are not Gaussian lines
  (or to check the first).

Numerical convolution. Flux emitted at wavelength lambda' is spread as a
Gaussian in wavelength of sigma_lambda = lambda' sigma / c. On an arbitrary
monotonic wavelength grid (channel edges, Angstrom) the convolution is a
matrix M of shape (n_chan, n_chan): M[i, j] is the fraction of the flux of
channel j that lands in channel i, the Gaussian being integrated exactly
over channel i (erf differences) for flux spread uniformly over channel j
(Gauss-Legendre sub-sampling of channel j). The matrix is banded (the
Gaussian is cut at 8 sigma, i.e. below 1e-15) and applied as a sparse or
dense matrix product.

Flux conservation: every column sums to 1 except for the part of the
Gaussian that falls beyond the first or last channel edge, which is lost
(as it is on a detector). Flux far from the grid ends is conserved to
rounding.

Channel width: treating the flux of a channel as uniform across it, then
integrating over the output channels, adds the variance of one channel
twice on top of sigma^2 (delta_v^2/12 each). For a cube whose line profiles
are already channel-integrated, the measured second moment of a line thus
grows by sigma^2 + delta_v^2/6 rather than sigma^2 (132 instead of 125 km/s
for 106 km/s channels). ``channel_profile="centre"`` puts each channel's
flux at its centre instead (growth sigma^2 + delta_v^2/12, and a one-channel
spectrum becomes exactly a channel-integrated Gaussian).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.special import erf

from ..errors import ConfigError, DataError
from ..physics.lines import C_KMS
from ..validate import positive

__all__ = [
    "CHANNEL_PROFILES",
    "LSF_TRUNCATION_SIGMA",
    "gaussian_line_sigma",
    "sigma_kms_from_resolution",
    "redistribution_matrix",
    "convolve_spectral",
]

#: How the flux of a source channel is distributed across it.
CHANNEL_PROFILES = ("uniform", "centre")

#: The Gaussian is cut at this many sigma (the mass beyond is < 1e-15).
LSF_TRUNCATION_SIGMA = 8.0

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_BLOCK_ELEMENTS = 4_000_000


def gaussian_line_sigma(sigma_line: float, lsf_sigma: float) -> float:
    """Dispersion of a Gaussian line after a Gaussian LSF: the LSF stage for Gaussian lines.

    Parameters
    ----------
    sigma_line : float
        Line-of-sight dispersion of the line, km/s; >= 0.
    lsf_sigma : float
        LSF dispersion, km/s; >= 0.

    Returns
    -------
    float
        sqrt(sigma_line^2 + lsf_sigma^2), km/s (``math.hypot``): the width
        to render the line with so that the rendered profile is the line
        convolved with the LSF.
    """
    sigma_line = positive("sigma_line", sigma_line, "km/s", allow_zero=True)
    lsf_sigma = positive("lsf_sigma", lsf_sigma, "km/s", allow_zero=True)
    return math.hypot(sigma_line, lsf_sigma)


def sigma_kms_from_resolution(resolution):
    """Gaussian LSF dispersion for a resolving power R = lambda / FWHM.

    Parameters
    ----------
    resolution : float or array_like
        Resolving power R; > 0.

    Returns
    -------
    float or numpy.ndarray
        sigma = c / (R 2 sqrt(2 ln 2)), km/s (c / (2.3548 R)).
    """
    r = np.asarray(resolution, dtype=np.float64) if not isinstance(resolution, bool) else None
    if r is None or not np.all(np.isfinite(r) & (r > 0.0)):
        raise ConfigError(f"resolution = {resolution!r}; allowed: finite and > 0")
    sigma = C_KMS / (r * _FWHM_PER_SIGMA)
    return float(sigma) if sigma.ndim == 0 else sigma


def _check_edges(wave_edges) -> np.ndarray:
    edges = np.asarray(wave_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ConfigError(f"wave_edges: shape {edges.shape}; expected (n_chan + 1,) with n_chan >= 1")
    if not np.all(np.isfinite(edges) & (edges > 0.0)):
        raise ConfigError("wave_edges: allowed finite and > 0 Angstrom")
    step = np.diff(edges)
    if not (np.all(step > 0.0) or np.all(step < 0.0)):
        raise ConfigError("wave_edges: must be strictly increasing or strictly decreasing (Angstrom)")
    return edges


def _check_sigma(sigma_kms, n_chan: int) -> np.ndarray:
    if isinstance(sigma_kms, bool):
        raise ConfigError(f"sigma_kms = {sigma_kms!r}: expected a number in km/s")
    sigma = np.asarray(sigma_kms, dtype=np.float64)
    if sigma.ndim == 0:
        sigma = np.full(n_chan, float(sigma))
    if sigma.shape != (n_chan,):
        raise ConfigError(
            f"sigma_kms: shape {sigma.shape}; expected a scalar or ({n_chan},), one per channel"
        )
    if not np.all(np.isfinite(sigma) & (sigma >= 0.0)):
        raise ConfigError(f"sigma_kms = {sigma_kms!r} km/s; allowed: finite and >= 0")
    return sigma


def _nodes(edges: np.ndarray, sigma_lambda: np.ndarray, channel_profile: str):
    """Source positions (n_chan, n_nodes), Angstrom, and their weights (n_nodes,)."""
    if channel_profile not in CHANNEL_PROFILES:
        raise ConfigError(f"channel_profile = {channel_profile!r}; allowed: {', '.join(CHANNEL_PROFILES)}")
    width = np.diff(edges)
    centre = 0.5 * (edges[:-1] + edges[1:])
    if channel_profile == "centre":
        return centre[:, None], np.ones(1)
    resolved = sigma_lambda > 0.0
    ratio = np.max(width[resolved] / sigma_lambda[resolved]) if np.any(resolved) else 0.0
    n_nodes = int(min(128, max(3, math.ceil(4.0 * ratio) + 3)))
    t, w = np.polynomial.legendre.leggauss(n_nodes)
    return centre[:, None] + 0.5 * width[:, None] * t[None, :], 0.5 * w


def _band(edges: np.ndarray, sigma: np.ndarray, channel_profile: str) -> tuple[np.ndarray, int]:
    """Banded redistribution matrix for increasing ``edges``.

    Returns ``(band, k)`` with ``band[j, d]`` = M[j + d - k, j] for
    d = 0 .. 2k (zero where the row falls off the grid).
    """
    n = edges.size - 1
    centre = 0.5 * (edges[:-1] + edges[1:])
    # sigma_lambda at the channel centres (for the node count) and at each node
    nodes, weights = _nodes(edges, centre * sigma / C_KMS, channel_profile)
    sig_nodes = nodes * (sigma / C_KMS)[:, None]
    reach = LSF_TRUNCATION_SIGMA * sig_nodes.max(axis=1)
    lo = np.searchsorted(edges, edges[:-1] - reach, side="right") - 1
    hi = np.searchsorted(edges, edges[1:] + reach, side="left") - 1
    idx = np.arange(n)
    k = int(max(0, np.max(idx - np.clip(lo, 0, n - 1)), np.max(np.clip(hi, 0, n - 1) - idx)))
    offsets = np.arange(-k, k + 2)  # edge offsets: row i = j + d uses edges i, i + 1
    band = np.empty((n, 2 * k + 1))
    block = max(1, _BLOCK_ELEMENTS // (nodes.shape[1] * (2 * k + 2)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        j = idx[start:stop]
        edge_idx = np.clip(j[:, None] + offsets[None, :], 0, n)  # off-grid rows collapse to 0 width
        e = edges[edge_idx][:, None, :]  # (b, 1, 2k+2)
        lam = nodes[start:stop, :, None]
        s = math.sqrt(2.0) * sig_nodes[start:stop, :, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cdf = 0.5 * erf((e - lam) / s)  # sigma = 0: +-inf -> +-1/2 (nodes are inside channels)
        frac = np.diff(cdf, axis=-1)  # (b, nodes, 2k+1)
        band[start:stop] = np.einsum("bnd,n->bd", frac, weights)
    return band, k


def _prepare(wave_edges, sigma_kms, channel_profile):
    edges = _check_edges(wave_edges)
    n = edges.size - 1
    sigma = _check_sigma(sigma_kms, n)
    flip = edges[1] < edges[0]
    if flip:
        edges, sigma = edges[::-1].copy(), sigma[::-1].copy()
    band, k = _band(edges, sigma, channel_profile)
    return band, k, n, flip


def _band_coo(band: np.ndarray, k: int, n: int):
    cols = np.repeat(np.arange(n), 2 * k + 1)
    rows = cols + np.tile(np.arange(-k, k + 1), n)
    vals = band.ravel()
    keep = (rows >= 0) & (rows < n) & (vals != 0.0)
    return rows[keep], cols[keep], vals[keep]


def redistribution_matrix(
    wave_edges, sigma_kms, *, channel_profile: str = "uniform", as_sparse: bool = False
):
    """The (n_chan, n_chan) matrix M: M[i, j] = fraction of channel j's flux landing in channel i.

    Parameters
    ----------
    wave_edges : array_like
        Channel edges, Angstrom, shape (n_chan + 1,); strictly monotonic
        (increasing or decreasing), > 0. Any spacing (linear, logarithmic...).
    sigma_kms : float or array_like
        LSF dispersion, km/s; >= 0. A scalar, or one value per channel (the
        LSF of the flux emitted in that channel).
    channel_profile : {"uniform", "centre"}
        Flux of a channel spread uniformly across it (default) or put at its
        centre (see the module notes).
    as_sparse : bool
        Return a `scipy.sparse.csr_array` instead of a dense array.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array
        M, in the channel order of ``wave_edges``. Column sums are 1 minus
        the flux lost beyond the grid ends.
    """
    band, k, n, flip = _prepare(wave_edges, sigma_kms, channel_profile)
    rows, cols, vals = _band_coo(band, k, n)
    if flip:
        rows, cols = n - 1 - rows, n - 1 - cols
    if as_sparse:
        return sparse.csr_array((vals, (rows, cols)), shape=(n, n))
    dense = np.zeros((n, n))
    dense[rows, cols] = vals
    return dense


def convolve_spectral(
    cube,
    wave_edges,
    sigma_kms,
    *,
    axis: int | None = None,
    channel_profile: str = "uniform",
) -> np.ndarray:
    """Convolve a cube or spectra with a Gaussian LSF of ``sigma_kms`` km/s.

    Parameters
    ----------
    cube : array_like
        Flux per channel (not flux density): a cube with axes
        ``(n_chan, ny, nx)``, or spectra ``(..., n_chan)``; finite.
    wave_edges : array_like
        Channel edges, Angstrom, shape (n_chan + 1,); strictly monotonic,
        any spacing.
    sigma_kms : float or array_like
        LSF dispersion, km/s; >= 0; a scalar or one value per channel.
    axis : int or None
        Spectral axis. None = axis 0 for a 3D array whose first axis has
        n_chan entries (a cube ``(n_chan, ny, nx)``), else the last axis.
    channel_profile : {"uniform", "centre"}
        See :func:`redistribution_matrix`.

    Returns
    -------
    numpy.ndarray
        Convolved array, float64, same shape. Flux scattered beyond the
        first or last channel edge is lost.
    """
    data = np.asarray(cube, dtype=np.float64)
    if data.ndim == 0:
        raise ConfigError("cube: expected an array with a spectral axis")
    n_edges = np.size(wave_edges)
    if axis is None:
        axis = 0 if data.ndim == 3 and data.shape[0] == n_edges - 1 else -1
    if not -data.ndim <= axis < data.ndim:
        raise ConfigError(f"axis = {axis}; allowed: -{data.ndim} .. {data.ndim - 1}")
    if data.shape[axis] != n_edges - 1:
        raise ConfigError(
            f"cube axis {axis} has {data.shape[axis]} channels but wave_edges gives {n_edges - 1} "
            "(wave_edges must have n_chan + 1 entries)"
        )
    if not np.all(np.isfinite(data)):
        raise DataError("cube contains NaN or inf; fill or mask them before convolving")
    band, k, n, flip = _prepare(wave_edges, sigma_kms, channel_profile)
    rows, cols, vals = _band_coo(band, k, n)
    if flip:
        rows, cols = n - 1 - rows, n - 1 - cols
    moved = np.moveaxis(data, axis, 0)
    flat = moved.reshape(n, -1)
    if 2 * k + 1 < n / 4:
        out = sparse.csr_array((vals, (rows, cols)), shape=(n, n)) @ flat
    else:
        matrix = np.zeros((n, n))
        matrix[rows, cols] = vals
        out = matrix @ flat
    return np.moveaxis(np.asarray(out).reshape(moved.shape), 0, axis)
