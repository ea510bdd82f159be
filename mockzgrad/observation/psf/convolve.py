"""Spatial convolution of cubes with a PSF (FFT), channels grouped by kernel.

:func:`convolve_cube` convolves every channel of a cube with the PSF by FFT,
zero-padding so that nothing wraps around; flux that stays inside the field
is conserved to rounding. :func:`convolve_with_kernel` applies one given
kernel; :func:`blur_separable` applies a separable kernel (the outer
product of 1-D taps with themselves) directly and crops; :func:`pad_width` is the margin a renderer needs around the field.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from ...errors import ConfigError, DataError
from ...kernels.blur import blur_separable_nb, blur_separable_ref
from .base import PSF

__all__ = ["FWHM_GROUP_TOLERANCE", "blur_separable", "convolve_cube", "convolve_with_kernel", "pad_width"]

#: Channels whose FWHM agree to this relative tolerance share one kernel.
FWHM_GROUP_TOLERANCE = 1e-3



def _check_wavelengths(wavelengths, n_chan: int) -> np.ndarray:
    wave = np.asarray(wavelengths, dtype=np.float64)
    if wave.shape != (n_chan,):
        raise ConfigError(f"wavelengths: shape {wave.shape}; expected ({n_chan},), one per channel")
    if not np.all(np.isfinite(wave) & (wave > 0.0)):
        raise ConfigError("wavelengths: allowed finite and > 0 Angstrom")
    return wave


def _channel_groups(psf: PSF, wavelengths, n_chan: int) -> list[tuple[float | None, np.ndarray]]:
    """Channels sharing one kernel: FWHM equal within :data:`FWHM_GROUP_TOLERANCE`.

    Returns ``(wavelength, channel_indices)`` pairs; the wavelength is that of
    the channel whose FWHM is closest to the middle of the group's range (None
    for a constant PSF).
    """
    if wavelengths is not None:
        wavelengths = _check_wavelengths(wavelengths, n_chan)
    if not psf.varies:
        return [(None, np.arange(n_chan))]
    if wavelengths is None:
        raise ConfigError(
            f"wavelengths = None but the PSF varies with wavelength ({psf!r}); "
            "pass the observed wavelength of each channel, Angstrom"
        )
    fwhm = psf.fwhm_at(wavelengths)
    order = np.argsort(fwhm, kind="stable")
    sorted_fwhm = fwhm[order]
    groups = []
    start = 0
    while start < n_chan:
        stop = int(np.searchsorted(sorted_fwhm, sorted_fwhm[start] * (1.0 + FWHM_GROUP_TOLERANCE),
                                   side="right"))
        members = order[start:stop]
        mid = 0.5 * (sorted_fwhm[start] + sorted_fwhm[stop - 1])
        rep = members[np.argmin(np.abs(fwhm[members] - mid))]
        groups.append((float(wavelengths[rep]), np.sort(members)))
        start = stop
    return groups


def _wrap_kernel(kernel: np.ndarray, ly: int, lx: int) -> np.ndarray:
    """Place a centred kernel on an (ly, lx) periodic grid with its centre at [0, 0]."""
    h = kernel.shape[0] // 2
    offs = np.arange(-h, h + 1)
    out = np.zeros((ly, lx))
    np.add.at(out, ((offs % ly)[:, None], (offs % lx)[None, :]), kernel)
    return out


def pad_width(psf: PSF, pixel_scale: float, wavelengths=None) -> int:
    """Largest kernel half-width over ``wavelengths``, pixels.

    This is the zero-padding :func:`convolve_cube` adds on each axis, and the
    margin a renderer needs around the field to catch flux scattered in from
    outside.

    Parameters
    ----------
    psf : PSF
    pixel_scale : float
        Pixel size, arcsec; > 0.
    wavelengths : array_like or None
        Observed channel wavelengths, Angstrom; None = the reference
        wavelength only.
    """
    if wavelengths is None or not psf.varies:
        return psf.half_width(pixel_scale)
    wave = np.asarray(wavelengths, dtype=np.float64).ravel()
    if wave.size == 0 or not np.all(np.isfinite(wave) & (wave > 0.0)):
        raise ConfigError("wavelengths: allowed a non-empty array, finite and > 0 Angstrom")
    # FWHM is a power of lambda, hence largest at one end of the range.
    return max(psf.half_width(pixel_scale, wavelength=float(w)) for w in (wave.min(), wave.max()))


def _as_cube(cube) -> tuple[np.ndarray, bool]:
    data = np.asarray(cube, dtype=np.float64)
    squeeze = data.ndim == 2
    if squeeze:
        data = data[None]
    if data.ndim != 3 or min(data.shape) < 1:
        raise ConfigError(f"cube: shape {np.shape(cube)}; expected (n_chan, ny, nx)")
    if not np.all(np.isfinite(data)):
        raise DataError("cube contains NaN or inf; fill or mask them before convolving")
    return data, squeeze


def _fft_convolve(data: np.ndarray, kernels: list[np.ndarray], members: list[np.ndarray],
                  pad: bool, workers: int | None, single: bool = False) -> np.ndarray:
    """Convolve channels ``members[g]`` of ``data`` with ``kernels[g]``: one FFT of the cube."""
    _, ny, nx = data.shape
    h = max(k.shape[0] // 2 for k in kernels)
    if pad:  # zero margin >= h after the field: the circular wrap only ever meets zeros
        ly = sfft.next_fast_len(ny + h, real=True)
        lx = sfft.next_fast_len(nx + h, real=True)
    else:
        ly, lx = ny, nx
    dtype = np.float32 if single else np.float64
    spec = sfft.rfft2(data.astype(dtype, copy=False), s=(ly, lx), axes=(-2, -1), workers=workers)
    for kernel, chans in zip(kernels, members):
        kf = sfft.rfft2(_wrap_kernel(kernel, ly, lx).astype(dtype), workers=workers)
        if len(kernels) == 1:
            spec *= kf
        else:
            spec[chans] *= kf
    out = sfft.irfft2(spec, s=(ly, lx), axes=(-2, -1), workers=workers, overwrite_x=True)
    return np.ascontiguousarray(out[:, :ny, :nx], dtype=np.float64)


def _check_kernel(kernel) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 != 1:
        raise ConfigError(f"kernel: shape {k.shape}; expected a square, odd-sized 2D array")
    if not np.all(np.isfinite(k)):
        raise ConfigError("kernel contains NaN or inf")
    return k


def convolve_with_kernel(cube, kernel, *, pad: bool = True, workers: int | None = None,
                         single: bool = False) -> np.ndarray:
    """Convolve every channel of a cube with one given kernel (FFT, float64).

    Parameters
    ----------
    cube : array_like
        Cube with axes ``(n_chan, ny, nx)`` (a 2D image is one channel); finite.
    kernel : array_like
        Square, odd-sized kernel centred on its central pixel (e.g. from
        :meth:`PSF.kernel`); used as given (not renormalised).
    pad, workers
        As in :func:`convolve_cube`.
    single : bool
        Transform in float32 (about twice as fast; relative error ~1e-7 of
        the peak, far below any flux tolerance). The result is float64.

    Returns
    -------
    numpy.ndarray
        Convolved cube, same shape as ``cube``.
    """
    data, squeeze = _as_cube(cube)
    out = _fft_convolve(data, [_check_kernel(kernel)], [np.arange(data.shape[0])], pad, workers,
                        single=single)
    return out[0] if squeeze else out


def convolve_cube(
    cube,
    psf: PSF,
    pixel_scale: float,
    *,
    wavelengths=None,
    pad: bool = True,
    workers: int | None = None,
    sampling: str = "integrate",
) -> np.ndarray:
    """Convolve every channel of a cube with the PSF (FFT, float64).

    One real FFT of the whole (zero-padded) cube, one FFT per distinct kernel,
    one inverse FFT. Channels whose FWHM agree within
    :data:`FWHM_GROUP_TOLERANCE` share one kernel, computed at the wavelength
    of the group's middle FWHM.

    Parameters
    ----------
    cube : array_like
        Cube with axes ``(n_chan, ny, nx)`` (a 2D image is taken as one
        channel), flux per pixel; finite.
    psf : PSF
        The PSF model.
    pixel_scale : float
        Spatial pixel size of ``cube``, arcsec; > 0.
    wavelengths : array_like or None
        Observed wavelength of each channel, Angstrom, shape ``(n_chan,)``.
        Required when the PSF varies with wavelength; ignored otherwise.
    pad : bool
        True (default): zero-pad by the kernel half-width, so flux scattered
        beyond the field edge is lost instead of wrapping around; flux that
        stays inside the field is conserved to rounding. False: periodic
        boundaries (the field is treated as a torus).
    workers : int or None
        Threads for :mod:`scipy.fft` (None = 1; -1 = all cores).
    sampling : {"integrate", "center"}
        Kernel sampling, see :meth:`PSF.kernel`; use ``"center"`` for a cube
        whose pixels already hold pixel-integrated flux.

    Returns
    -------
    numpy.ndarray
        Convolved cube, float64, same shape as ``cube``.
    """
    if not isinstance(psf, PSF):
        raise ConfigError(f"psf = {psf!r}: expected a mockzgrad.observation.psf.PSF instance")
    data, squeeze = _as_cube(cube)
    groups = _channel_groups(psf, wavelengths, data.shape[0])
    kernels = [psf.kernel(pixel_scale, wavelength=w, sampling=sampling) for w, _ in groups]
    out = _fft_convolve(data, kernels, [chans for _, chans in groups], pad, workers)
    return out[0] if squeeze else out


def blur_separable(cube, taps, pad: int, n: int, *, out=None, use_numba: bool = True) -> np.ndarray:
    """Convolve every channel of a padded cube with ``np.outer(taps, taps)`` and crop the kept field.

    Two 1-D passes (x, then y), computed only where the kept field needs
    them: faster than an FFT for kernels up to a few tens of pixels, exact
    (no wrap, float64 throughout).

    Parameters
    ----------
    cube : ndarray of float64, shape (n_chan, n_ext, n_ext)
        Padded cube; finite.
    taps : array_like, shape (2h + 1,)
        Symmetric 1-D kernel (e.g. :meth:`GaussianPSF.separable_taps`).
    pad : int
        First kept pixel on each spatial axis; >= h.
    n : int
        Side of the kept field, pixels; ``pad + n + h <= n_ext``.
    out : ndarray of float64, shape (n_chan, n, n), optional
        Written in place when given.
    use_numba : bool
        Use the compiled kernel (False: its numpy twin).

    Returns
    -------
    ndarray of float64, shape (n_chan, n, n)
    """
    cube = np.ascontiguousarray(cube, dtype=np.float64)
    taps = np.ascontiguousarray(taps, dtype=np.float64)
    if cube.ndim != 3 or cube.shape[1] != cube.shape[2]:
        raise ConfigError(f"cube: shape {cube.shape}; expected (n_chan, n_ext, n_ext)")
    if taps.ndim != 1 or taps.size % 2 != 1 or not np.allclose(taps, taps[::-1], rtol=0, atol=1e-15):
        raise ConfigError(f"taps: shape {taps.shape}; expected a symmetric 1-D array of odd length")
    h, n_ext = taps.size // 2, cube.shape[1]
    if not (h <= pad and n >= 1 and pad + n + h <= n_ext):
        raise ConfigError(f"pad = {pad}, n = {n}: need half-width {h} <= pad and pad + n + {h} <= {n_ext}")
    if out is None:
        out = np.empty((cube.shape[0], n, n))
    elif out.shape != (cube.shape[0], n, n) or out.dtype != np.float64:
        raise ConfigError(f"out: {out.dtype} {out.shape}; expected float64 {(cube.shape[0], n, n)}")
    return (blur_separable_nb if use_numba else blur_separable_ref)(cube, taps, int(pad), int(n), out)
