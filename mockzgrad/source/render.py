"""Checked entry points to the line-rendering kernels.

:func:`render_lines` and :func:`bin_subpixels` check their inputs (shapes,
ranges; errors name the argument) and run the numba kernel or its numpy
twin from :mod:`mockzgrad.kernels.render`, where the conventions are
stated: cube axes ``(n_chan, ny, nx)``, observed-frame wavelengths in
Angstrom, velocities in km/s positive away from the observer.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..kernels.render import C_KMS, bin_subpixels_nb, bin_subpixels_ref, render_lines_nb, render_lines_ref
from ..validate import integer

__all__ = ["render_lines", "bin_subpixels"]



def _real_array(name, value, ndim):
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ConfigError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_os(os):
    return integer("os", os, 1)  # sub-pixels per pixel per axis


def render_lines(
    flux_sub,
    vlos_sub,
    sigma_sub,
    line_wave,
    edges_lo,
    edges_hi,
    os,
    n_sigma=6.0,
    out=None,
    use_numba=True,
):
    """Render emission lines of an oversampled sky model into a cube.

    Each sub-pixel emits line ``l`` as a Gaussian centred at
    ``lambda_c = line_wave[l] * (1 + vlos / c)`` with standard deviation
    ``s = lambda_c * sigma / c``; channel ``k`` receives
    ``flux * (erf((hi_k - lambda_c) / (sqrt2 s)) - erf((lo_k - lambda_c) / (sqrt2 s))) / 2``
    if it overlaps ``lambda_c +- n_sigma s``. Sub-pixels are summed into
    ``os x os`` detector pixels.

    Parameters
    ----------
    flux_sub : array_like, shape (n_lines, ny*os, nx*os)
        Flux of each line in each sub-pixel, any flux unit (e.g.
        erg/s/cm^2), line ratios and dust included; finite.
    vlos_sub : array_like, shape (ny*os, nx*os)
        Line-of-sight velocity, km/s, positive = redshift; |v| < c.
    sigma_sub : array_like, shape (ny*os, nx*os)
        Total Gaussian line-of-sight dispersion, km/s (the caller adds
        intrinsic, thermal and instrumental widths in quadrature); >= 0.
    line_wave : array_like, shape (n_lines,)
        Observed-frame wavelength of each line at zero velocity,
        ``rest * (1 + redshift)``, Angstrom; > 0.
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Lower and upper edges of each channel, observed frame, Angstrom; > 0,
        ``edges_lo[k] < edges_hi[k] <= edges_lo[k+1]`` (gaps allowed).
    os : int
        Oversampling factor, sub-pixels per detector pixel per axis; >= 1,
        dividing both sub-pixel image dimensions.
    n_sigma : float, optional
        Profile truncation, standard deviations; > 0, may be ``inf``.
        Default 6 (2.0e-9 of each line's flux is dropped).
    out : ndarray of float64, shape (n_chan, ny, nx), optional
        Cube to add to in place; a new zero cube if None.
    use_numba : bool, optional
        Use the numba kernel (default) or the numpy reference twin.

    Returns
    -------
    ndarray of float64, shape (n_chan, ny, nx)
        Flux per channel and detector pixel, in the unit of ``flux_sub``
        (``out`` itself when given).

    Raises
    ------
    mockzgrad.errors.ConfigError
        If an argument has the wrong shape or type or a value out of range.
    """
    os = _check_os(os)
    flux_sub, vlos_sub, sigma_sub, line_wave = _check_sky(flux_sub, vlos_sub, sigma_sub, line_wave, os)
    edges_lo, edges_hi = _check_channels(edges_lo, edges_hi)
    n_sigma = _check_n_sigma(n_sigma)
    shape = (edges_lo.size, flux_sub.shape[1] // os, flux_sub.shape[2] // os)
    out = np.zeros(shape) if out is None else _check_out(out, shape)
    kernel = render_lines_nb if use_numba else render_lines_ref
    kernel(flux_sub, vlos_sub, sigma_sub, line_wave, edges_lo, edges_hi, os, n_sigma, out)
    return out


def _check_sky(flux_sub, vlos_sub, sigma_sub, line_wave, os):
    """The sub-pixel sky model as float64 arrays, shapes and values checked."""
    flux_sub = _real_array("flux_sub", flux_sub, 3)
    vlos_sub = _real_array("vlos_sub", vlos_sub, 2)
    sigma_sub = _real_array("sigma_sub", sigma_sub, 2)
    line_wave = _real_array("line_wave", line_wave, 1)
    n_lines, nsy, nsx = flux_sub.shape
    if vlos_sub.shape != (nsy, nsx):
        raise ConfigError(f"vlos_sub: shape {vlos_sub.shape} differs from flux_sub's sub-pixel shape {(nsy, nsx)}")
    if sigma_sub.shape != (nsy, nsx):
        raise ConfigError(f"sigma_sub: shape {sigma_sub.shape} differs from flux_sub's sub-pixel shape {(nsy, nsx)}")
    if nsy % os or nsx % os:
        raise ConfigError(f"os={os}: does not divide the sub-pixel image shape {(nsy, nsx)}")
    if line_wave.size != n_lines:
        raise ConfigError(f"line_wave: {line_wave.size} wavelengths for {n_lines} lines in flux_sub")
    if not np.all(np.isfinite(line_wave) & (line_wave > 0.0)):
        raise ConfigError(f"line_wave={line_wave}: wavelengths must be finite and > 0 Angstrom")
    if not np.all(np.isfinite(flux_sub)):
        raise ConfigError("flux_sub: contains NaN or inf")
    if not np.all(np.abs(vlos_sub) < C_KMS):  # NaN fails too
        raise ConfigError(f"vlos_sub: values must be finite with |v| < c = {C_KMS} km/s")
    if not np.all((sigma_sub >= 0.0) & np.isfinite(sigma_sub)):
        raise ConfigError("sigma_sub: values must be finite and >= 0 km/s")
    return flux_sub, vlos_sub, sigma_sub, line_wave


def _check_channels(edges_lo, edges_hi):
    """Channel edges as float64 arrays: > 0, lo < hi, sorted, not overlapping (gaps allowed)."""
    edges_lo = _real_array("edges_lo", edges_lo, 1)
    edges_hi = _real_array("edges_hi", edges_hi, 1)
    n_chan = edges_lo.size
    if edges_hi.size != n_chan:
        raise ConfigError(f"edges_hi: {edges_hi.size} values but edges_lo has {n_chan}")
    if n_chan == 0:
        raise ConfigError("edges_lo, edges_hi: at least one channel is needed")
    if not (np.all(np.isfinite(edges_lo)) and np.all(np.isfinite(edges_hi)) and edges_lo[0] > 0.0):
        raise ConfigError("edges_lo, edges_hi: edges must be finite and > 0 Angstrom")
    if not np.all(edges_lo < edges_hi):
        k = int(np.argmin(edges_lo < edges_hi))
        raise ConfigError(
            f"edges_lo, edges_hi: channel {k} has lo={edges_lo[k]} >= hi={edges_hi[k]} Angstrom; need lo < hi"
        )
    if n_chan > 1 and not np.all(edges_hi[:-1] <= edges_lo[1:]):
        k = int(np.argmin(edges_hi[:-1] <= edges_lo[1:]))
        raise ConfigError(
            f"edges_lo, edges_hi: channel {k + 1} (lo={edges_lo[k + 1]}) starts before channel {k} "
            f"ends (hi={edges_hi[k]}) Angstrom; channels must be sorted and not overlap"
        )
    return edges_lo, edges_hi


def _check_n_sigma(n_sigma) -> float:
    # inf is allowed (no truncation), so validate.positive does not fit
    if isinstance(n_sigma, bool) or not isinstance(n_sigma, (int, float, np.integer, np.floating)):
        raise ConfigError(f"n_sigma={n_sigma!r}: expected a number > 0 (standard deviations)")
    n_sigma = float(n_sigma)
    if not n_sigma > 0.0:  # NaN fails too
        raise ConfigError(f"n_sigma={n_sigma}: allowed (0, inf] standard deviations")
    return n_sigma


def _check_out(out, shape):
    if not isinstance(out, np.ndarray) or out.dtype != np.float64:
        raise ConfigError(f"out: expected a float64 ndarray, got {type(out).__name__} {getattr(out, 'dtype', '')}")
    if out.shape != shape:
        raise ConfigError(f"out: shape {out.shape}, expected (n_chan, ny, nx) = {shape}")
    if not out.flags.writeable:
        raise ConfigError("out: array is read-only")
    return out


def bin_subpixels(img_sub, os, use_numba=True):
    """Sum ``os x os`` blocks of a sub-pixel image into detector pixels.

    Parameters
    ----------
    img_sub : array_like, shape (ny*os, nx*os)
        Additive quantity per sub-pixel (e.g. flux, flux x velocity).
    os : int
        Oversampling factor; >= 1, dividing both dimensions.
    use_numba : bool, optional
        Use the numba kernel (default) or the numpy twin.

    Returns
    -------
    ndarray of float64, shape (ny, nx)
    """
    os = _check_os(os)
    img_sub = _real_array("img_sub", img_sub, 2)
    if img_sub.shape[0] % os or img_sub.shape[1] % os:
        raise ConfigError(f"os={os}: does not divide the sub-pixel image shape {img_sub.shape}")
    return (bin_subpixels_nb if use_numba else bin_subpixels_ref)(img_sub, os)
