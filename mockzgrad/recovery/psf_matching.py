"""PSF matching: degrade every channel of a cube to the PSF of one wavelength.

When the PSF varies with wavelength, line ratios of a spatial bin mix light
from regions of different size; recovery therefore matches every channel to
the PSF at the reddest line it uses before binning
(:func:`homogenise_psf`, :func:`homogenise_variance`).

The PSF as a 2-D kernel for the geometry fit and the annuli:
:func:`psf_covariance` (the Gaussian-equivalent covariance matrix),
:func:`fwhm_along` (the FWHM of the PSF's profile along the galaxy's major
axis, the width the ``annuli`` binning scheme and ``x_resolution`` use,
see :mod:`mockzgrad.config.resolution`), :func:`geometry_psf` (what
:func:`~mockzgrad.recovery.geometry.fit_geometry` is given).

Conventions (those of :mod:`mockzgrad.recovery.geometry`): cubes are indexed
``[chan, y, x]``, axes ``(n_chan, ny, nx)``; pixel columns run towards
-east and rows towards north; PSF position angles are deg east of north.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np
from scipy import fft as sfft

from ..errors import ConfigError, DataError, RecoveryWarning
from ..observation.psf import FWHM_PER_SIGMA, PSF, EllipticalGaussianPSF, GaussianPSF, MoffatPSF, psf_from_header
from ..validate import finite, positive
from . import gaussfit
from .geometry import sky_offsets

__all__ = ["BROADER_TOLERANCE", "CIRCULAR_PSFS", "homogenise_psf", "homogenise_variance", "is_circular",
           "psf_covariance", "fwhm_along", "geometry_psf"]

#: Channels whose PSF is broader than the target's are left unchanged; a
#: warning is raised only when it is broader by more than this fraction of
#: the FWHM (1 % is ~3000 km/s: the red half of the target line's own window
#: stays quiet).
BROADER_TOLERANCE = 0.01


def _as_psf(psf_model) -> PSF:
    if isinstance(psf_model, PSF):
        return psf_model
    if isinstance(psf_model, Mapping):
        return psf_from_header(psf_model)
    raise ConfigError(f"psf_model = {psf_model!r}: expected a mockzgrad.observation.psf.PSF or a PSF header mapping")


def _gaussian_axes(psf: PSF, wavelengths) -> tuple[np.ndarray, np.ndarray, float]:
    """Major / minor Gaussian sigmas (arcsec) at each wavelength, and the PA (deg)."""
    wave = np.asarray(wavelengths, dtype=np.float64)
    scale = np.asarray(psf.fwhm_at(wave), dtype=np.float64) / psf.fwhm_at(None)
    if isinstance(psf, EllipticalGaussianPSF):
        return (psf.fwhm_major / FWHM_PER_SIGMA * scale, psf.fwhm_minor / FWHM_PER_SIGMA * scale, psf.pa)
    sig = psf.fwhm_at(None) / FWHM_PER_SIGMA * scale
    if not isinstance(psf, GaussianPSF):
        warnings.warn(f"homogenise_psf: {psf.kind} PSF matched as a Gaussian of the same FWHM "
                      "(approximate for non-Gaussian profiles)", RecoveryWarning, stacklevel=3)
    return sig, sig, 0.0


def _matching_variances(wavelengths, psf_model, target_wavelength, n_chan):
    """Per-channel kernel variances (major, minor; pixel^2 after scaling), PA, and the psf."""
    psf = _as_psf(psf_model)
    wave = np.asarray(wavelengths, dtype=np.float64)
    if wave.shape != (n_chan,) or not np.all(np.isfinite(wave) & (wave > 0.0)):
        raise ConfigError(f"wavelengths: shape {wave.shape}; expected ({n_chan},), finite and > 0 Angstrom")
    tw = positive("target_wavelength", target_wavelength, "Angstrom")
    if not psf.varies:
        return None
    sa, sb, pa = _gaussian_axes(psf, wave)
    ta, tb, _ = _gaussian_axes(psf, np.array([tw]))
    da = ta[0] ** 2 - sa**2
    db = tb[0] ** 2 - sb**2
    tol = 1e-9 * ta[0] ** 2
    broader = (da < -tol) | (db < -tol)
    much = broader & (sa > ta[0] * (1.0 + BROADER_TOLERANCE))
    if much.any():
        warnings.warn(
            f"homogenise_psf: {int(much.sum())} of {n_chan} channels have a PSF more than "
            f"{100 * BROADER_TOLERANCE:g} % broader than at the target wavelength {tw:.2f} Angstrom and are "
            "left unchanged; target the reddest line used", RecoveryWarning, stacklevel=3)
    da = np.where(broader, 0.0, np.clip(da, 0.0, None))
    db = np.where(broader, 0.0, np.clip(db, 0.0, None))
    return da, db, pa


def _walk_rates(var_major, var_minor, pa):
    """Jump rates (a, b, c, d) of the discrete Gaussian with the given covariance (pixel^2).

    Pixel frame: column = -east, row = north, so the major axis at ``pa``
    points along (column, row) = (-sin pa, cos pa). The kernel is the
    distribution of a continuous-time random walk with jumps along columns
    (rate a), rows (b), the diagonal (c) and the anti-diagonal (d), whose
    covariance is ``Mxx = a + c + d``, ``Myy = b + c + d``, ``Mxy = c - d``.
    """
    t = math.radians(pa)
    ux, uy = -math.sin(t), math.cos(t)
    mxx = var_major * ux * ux + var_minor * uy * uy
    myy = var_major * uy * uy + var_minor * ux * ux
    mxy = (var_major - var_minor) * ux * uy
    c = np.clip(mxy, 0.0, None)
    d = np.clip(-mxy, 0.0, None)
    return mxx - c - d, myy - c - d, c, d


def _transfer(ly, lx, rates):
    """Transfer functions of discrete Gaussians, shape (n, ly, lx // 2 + 1).

    ``H = exp(a (cos wx - 1) + b (cos wy - 1) + c (cos(wx + wy) - 1) + d (cos(wx - wy) - 1))``:
    for ``d = c = 0`` the product of two 1-D discrete Gaussians
    ``e^-t I_n(t)`` (Lindeberg 1990, IEEE PAMI 12, 234), which are positive,
    have variance exactly ``t`` and sum exactly to 1 at any width. Being
    smooth and periodic in frequency, the transfer function causes no
    ringing (unlike a continuous Gaussian cut at the Nyquist frequency).
    """
    a, b, c, d = (np.asarray(r, dtype=np.float64)[:, None, None] for r in rates)
    wx = 2.0 * math.pi * sfft.rfftfreq(lx)[None, None, :]
    wy = 2.0 * math.pi * sfft.fftfreq(ly)[None, :, None]
    return np.exp(a * (np.cos(wx) - 1.0) + b * (np.cos(wy) - 1.0)
                  + c * (np.cos(wx + wy) - 1.0) + d * (np.cos(wx - wy) - 1.0))


def _convolve_fourier(data, var_major, var_minor, pa, *, square=False):
    """Convolve each channel with its discrete Gaussian (variances in pixel^2), FFT on a zero-padded grid.

    Channels with zero variance are returned untouched. ``square=True``
    convolves with the square of each kernel instead, which propagates the
    variance of independent pixels.
    """
    out = np.array(data, dtype=np.float64)
    todo = np.flatnonzero((var_major > 0.0) | (var_minor > 0.0))
    if todo.size == 0:
        return out
    _, ny, nx = data.shape
    vm, vn = var_major[todo], var_minor[todo]
    smax = math.sqrt(float(max(vm.max(), vn.max())))
    pad = int(math.ceil(8.0 * smax)) + 3  # kernel tails beyond 8 sigma are < 1e-14
    ly = sfft.next_fast_len(ny + pad, real=True)
    lx = sfft.next_fast_len(nx + pad, real=True)
    sub = out[todo]
    bad = ~np.isfinite(sub)
    spec = sfft.rfft2(np.where(bad, 0.0, sub), s=(ly, lx), axes=(-2, -1))
    h = _transfer(ly, lx, _walk_rates(vm, vn, pa))
    if square:
        kern = sfft.irfft2(h, s=(ly, lx), axes=(-2, -1))
        h = sfft.rfft2(kern * kern, axes=(-2, -1))
    spec *= h
    # the kernel's wrap-around lands in the zero padding, which is cropped
    res = sfft.irfft2(spec, s=(ly, lx), axes=(-2, -1))[:, :ny, :nx]
    res[bad] = np.nan
    out[todo] = res
    return out


def homogenise_psf(cube_data, wavelengths, psf_model, target_wavelength: float, *,
                   pixel_scale: float) -> np.ndarray:
    """Degrade every channel to the PSF at ``target_wavelength``.

    Each channel is convolved with a Gaussian of variance
    ``sigma_target^2 - sigma_channel^2`` (per axis, same PA, for an
    elliptical Gaussian PSF), so that a Gaussian PSF becomes the target
    one (second moments add). Moffat and image PSFs are matched as
    Gaussians of the same FWHM (a :class:`RecoveryWarning` says so).
    Channels whose PSF is broader than the target's are left unchanged,
    with a :class:`RecoveryWarning` when broader by more than
    :data:`BROADER_TOLERANCE` (the red wing of the target line itself is
    expected): target the reddest line used when the FWHM grows with
    wavelength. For a PSF that does not vary with wavelength this is a no-op
    (a float64 copy of the input is returned).

    The kernel is the discrete Gaussian (Lindeberg 1990, IEEE PAMI 12,
    234; its 2-D form with diagonal steps for a rotated ellipse), applied
    by FFT on a zero-padded grid. Its sum is exactly 1 and its second
    moments are exactly the requested variances at any width, also below a
    pixel, where a sampled Gaussian is badly wrong; for widths of a few
    pixels it equals the sampled Gaussian. It is positive unless the
    ellipse is so elongated and tilted that ``|Mxy| > min(Mxx, Myy)`` in
    pixel axes (then small negative values appear; moments and flux stay
    exact). Flux is conserved except what is scattered beyond the field
    edge. Channels needing no convolution are returned untouched.
    Non-finite values are taken as 0 in the convolution and are NaN again
    in the output.

    Parameters
    ----------
    cube_data : array_like, shape (n_chan, ny, nx)
        Flux per spaxel and channel.
    wavelengths : array_like, shape (n_chan,)
        Observed channel centres, Angstrom.
    psf_model : mockzgrad.observation.psf.PSF or mapping
        The PSF, or its header keywords (``MockCube.psf``).
    target_wavelength : float
        Observed wavelength whose PSF every channel is matched to, Angstrom.
    pixel_scale : float
        Spaxel size, arcsec; > 0.

    Returns
    -------
    numpy.ndarray, shape (n_chan, ny, nx)
    """
    data = np.array(cube_data, dtype=np.float64)
    if data.ndim != 3:
        raise DataError(f"cube_data: shape {data.shape}; expected (n_chan, ny, nx)")
    ps = positive("pixel_scale", pixel_scale, "arcsec")
    match = _matching_variances(wavelengths, psf_model, target_wavelength, data.shape[0])
    if match is None:
        return data
    da, db, pa = match
    return _convolve_fourier(data, da / ps**2, db / ps**2, pa)


def homogenise_variance(variance, wavelengths, psf_model, target_wavelength: float, *,
                        pixel_scale: float) -> np.ndarray:
    """Variance cube after :func:`homogenise_psf` (same parameters).

    Each channel's variance is convolved with the square of that channel's
    matching kernel: exact for independent pixels; the covariance between
    neighbouring pixels that the convolution introduces is not tracked
    (sums over many pixels then underestimate their error).

    Returns
    -------
    numpy.ndarray, shape (n_chan, ny, nx)
    """
    var = np.array(variance, dtype=np.float64)
    if var.ndim != 3:
        raise DataError(f"variance: shape {var.shape}; expected (n_chan, ny, nx)")
    ps = positive("pixel_scale", pixel_scale, "arcsec")
    with warnings.catch_warnings():  # homogenise_psf has already said it
        warnings.simplefilter("ignore", RecoveryWarning)
        match = _matching_variances(wavelengths, psf_model, target_wavelength, var.shape[0])
    if match is None:
        return var
    da, db, pa = match
    return np.clip(_convolve_fourier(var, da / ps**2, db / ps**2, pa, square=True), 0.0, None)


# ---------------------------------------------------------------------------
# the PSF as a 2-D kernel: covariance and FWHM along a direction
# ---------------------------------------------------------------------------

#: PSF models that are circular (one FWHM describes them in every direction).
CIRCULAR_PSFS = (GaussianPSF, MoffatPSF)


def is_circular(psf_model) -> bool:
    """True for a circular PSF model (:data:`CIRCULAR_PSFS`), whose FWHM is the same along every direction."""
    return isinstance(_as_psf(psf_model), CIRCULAR_PSFS)


def psf_covariance(psf_model, pixel_scale: float, *, wavelength: float | None = None) -> np.ndarray:
    """Covariance matrix of the PSF's Gaussian equivalent, arcsec^2, axes x east, y north.

    - circular Gaussian: ``sigma^2 I``, ``sigma = FWHM / 2.3548``;
    - elliptical Gaussian: ``R diag(sigma_major^2, sigma_minor^2) R^T``
      with the major axis at the PSF's ``pa`` (deg east of north), i.e.
      along ``(x, y) = (sin pa, cos pa)``;
    - Moffat: a circular Gaussian of the same FWHM (as :func:`homogenise_psf`);
    - image (or any other model): the covariance of an elliptical 2-D
      Gaussian fitted (pixel-averaged, equal weights) to the PSF's
      pixel-integrated kernel at ``pixel_scale`` (:meth:`PSF.kernel`): the
      same fit :func:`~mockzgrad.recovery.geometry.fit_geometry` makes to
      the line map, so the two add (exactly for Gaussians).

    Parameters
    ----------
    psf_model : mockzgrad.observation.psf.PSF or mapping
        The PSF, or its header keywords (``MockCube.psf``).
    pixel_scale : float
        Spaxel size of the map the covariance is used with, arcsec; > 0.
    wavelength : float or None
        Observed wavelength, Angstrom; None = the PSF's reference wavelength.

    Returns
    -------
    numpy.ndarray, shape (2, 2)
    """
    psf = _as_psf(psf_model).at_wavelength(wavelength)
    ps = positive("pixel_scale", pixel_scale, "arcsec")
    if isinstance(psf, CIRCULAR_PSFS):
        return np.eye(2) * (psf.fwhm_at(None) / FWHM_PER_SIGMA) ** 2
    if isinstance(psf, EllipticalGaussianPSF):
        return gaussfit.covariance_from_axes(psf.fwhm_major / FWHM_PER_SIGMA, psf.fwhm_minor / FWHM_PER_SIGMA,
                                             math.radians(psf.pa))
    kern = psf.kernel(ps)
    x1, y1 = sky_offsets(*kern.shape, ps)
    (_, _, _, sa, sb, theta), _ = gaussfit.fit_map(kern, np.ones_like(kern), x1, y1, ps,
                                                   np.ones(kern.shape, dtype=bool))
    return gaussfit.covariance_from_axes(sa, sb, theta)


def fwhm_along(psf_model, pa: float, pixel_scale: float, *, wavelength: float | None = None) -> float:
    """FWHM of the PSF's profile along position angle ``pa``, arcsec.

    The convention of ``x_resolution`` (:mod:`mockzgrad.config.resolution`)
    and of the ``annuli`` width (half of it, along the galaxy's major axis).
    A circular PSF gives its FWHM (:meth:`PSF.fwhm_at`, unchanged); an
    elliptical Gaussian ``1 / sqrt(cos^2 d / F_major^2 + sin^2 d / F_minor^2)``
    with ``d = pa_psf - pa``; an image PSF the same for its Gaussian
    equivalent (:func:`psf_covariance`).

    Parameters
    ----------
    psf_model : mockzgrad.observation.psf.PSF or mapping
    pa : float
        Direction, deg east of north (the galaxy's major-axis PA); finite.
    pixel_scale : float
        Spaxel size, arcsec; > 0.
    wavelength : float or None
        Observed wavelength, Angstrom; None = the reference wavelength.
    """
    psf = _as_psf(psf_model)
    pa = finite("pa", pa, "deg")
    if isinstance(psf, CIRCULAR_PSFS):
        return float(psf.fwhm_at(wavelength))
    cov = psf_covariance(psf, pixel_scale, wavelength=wavelength)
    return FWHM_PER_SIGMA * gaussfit.sigma_along(cov, math.radians(pa))


def geometry_psf(psf_model, pixel_scale: float, *, wavelength: float | None = None) -> dict:
    """Keyword arguments describing the PSF for :func:`~mockzgrad.recovery.geometry.fit_geometry`.

    ``{"psf_fwhm": FWHM}`` for a circular PSF (:data:`CIRCULAR_PSFS`),
    else ``{"psf_covariance": psf_covariance(...)}``; parameters as
    :func:`psf_covariance`.
    """
    psf = _as_psf(psf_model)
    if isinstance(psf, CIRCULAR_PSFS):
        return {"psf_fwhm": float(psf.fwhm_at(wavelength))}
    return {"psf_covariance": psf_covariance(psf, pixel_scale, wavelength=wavelength)}
