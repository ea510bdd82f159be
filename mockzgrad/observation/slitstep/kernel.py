"""The effective spatial kernel of a slit-stepped cube: telescope PSF x shutter boxcar x resampling.

A point source seen by the cube build of :mod:`.build`, averaged over its
place relative to the shutters and detector rows (the build is not shift
invariant), has the separable response

- along dispersion (x): the shutter's open width (boxcar, width
  ``shutter_open[0]``) and the linear interpolation between step columns
  (triangle of half-width ``step_disp``; none for one step);
- along the slit (y): the detector row (boxcar ``detector_pixel``), its
  repetition over the sub-rows (a second boxcar: together a triangle of
  half-width ``detector_pixel``) and the linear interpolation from the
  sub-rows (triangle of half-width ``detector_pixel / 4``);

convolved with the telescope PSF. :func:`effective_kernel` samples it on a
fine grid; :func:`gaussian_summary` gives the elliptical Gaussian of the same
FWHMs for the cube header (major axis along dispersion for the MSA-3D
set-up: ~0.20" x 0.08", S1 Sect. 2.1).
"""

from __future__ import annotations

import numpy as np

from ..psf import EllipticalGaussianPSF, ImagePSF
from .build import SUB_ROWS

__all__ = ["effective_kernel", "profile_fwhm", "gaussian_summary"]


def _box(width: float, h: float) -> np.ndarray:
    k = int(np.ceil(0.5 * width / h + 0.5))
    t = np.arange(-k, k + 1) * h
    w = np.clip(np.minimum(t + 0.5 * h, 0.5 * width) - np.maximum(t - 0.5 * h, -0.5 * width), 0.0, None)
    return w / w.sum()


def _tri(half: float, h: float) -> np.ndarray:
    k = int(np.ceil(half / h))
    w = np.clip(1.0 - np.abs(np.arange(-k, k + 1) * h) / half, 0.0, None)
    return w / w.sum()


def effective_kernel(psf, ss, wavelength: float | None, pixel: float) -> np.ndarray:
    """The effective kernel image, unit sum, axes (y, x) = (along the slit, along dispersion).

    Parameters
    ----------
    psf : mockzgrad.observation.psf.PSF
        Telescope PSF.
    ss : SlitstepConfig
    wavelength : float or None
        Observed wavelength of the PSF, Angstrom (None: its reference).
    pixel : float
        Pixel of the kernel image, arcsec; > 0, well below ``cube_pixel``.

    Returns
    -------
    ndarray, odd square shape, centred on its central pixel.
    """
    kx = _box(ss.shutter_open[0], pixel)
    if ss.steps_disp > 1:
        kx = np.convolve(kx, _tri(ss.step_disp, pixel))
    ky = np.convolve(_box(ss.detector_pixel, pixel), _box(ss.detector_pixel, pixel))
    ky = np.convolve(ky, _tri(ss.detector_pixel / SUB_ROWS, pixel))
    from scipy.signal import fftconvolve  # scipy.signal costs ~0.6 s to import: only when a kernel is made

    img = psf.kernel(pixel, wavelength=wavelength if psf.varies else None, sampling="integrate")
    out = fftconvolve(fftconvolve(img, ky[:, None]), kx[None, :])
    n = max(out.shape)
    sq = np.zeros((n, n))
    oy, ox = (n - out.shape[0]) // 2, (n - out.shape[1]) // 2
    sq[oy:oy + out.shape[0], ox:ox + out.shape[1]] = np.clip(out, 0.0, None)
    return sq / sq.sum()


def profile_fwhm(profile: np.ndarray, pixel: float) -> float:
    """FWHM of a single-peaked sampled profile (linear interpolation at half maximum), arcsec."""
    p = np.asarray(profile, dtype=float)
    k = int(np.argmax(p))
    half = 0.5 * p[k]
    left = k
    while left > 0 and p[left - 1] > half:
        left -= 1
    right = k
    while right < p.size - 1 and p[right + 1] > half:
        right += 1
    xl = left - 1 + (half - p[left - 1]) / (p[left] - p[left - 1]) if left > 0 else -0.5
    xr = right + (p[right] - half) / (p[right] - p[right + 1]) if right < p.size - 1 else p.size - 0.5
    return float((xr - xl) * pixel)


def gaussian_summary(kernel: np.ndarray, pixel: float) -> EllipticalGaussianPSF:
    """Elliptical Gaussian with the kernel's FWHMs along x and y (PA 90 deg: major axis east-west)."""
    c = kernel.shape[0] // 2
    fx = profile_fwhm(kernel[c, :], pixel)
    fy = profile_fwhm(kernel[:, c], pixel)
    if fx >= fy:
        return EllipticalGaussianPSF(fx, fy, 90.0)
    return EllipticalGaussianPSF(fy, fx, 0.0)


def kernel_psf(kernel: np.ndarray, pixel: float) -> ImagePSF:
    """The kernel as an image PSF (what the cube's ``PSF`` extension holds)."""
    return ImagePSF(kernel, pixel)
