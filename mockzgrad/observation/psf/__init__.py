"""Point-spread functions and the spatial convolution of cubes.

Modules: :mod:`.base` (the :class:`PSF` base class: wavelength scaling,
kernels, enclosed flux, header keywords; :func:`psf_from_header` and
:func:`psf_from_config` for every registered kind), :mod:`.analytic`
(Gaussian, elliptical Gaussian, Moffat), :mod:`.image` (a PSF image from
FITS), :mod:`.convolve` (FFT convolution of cubes). Every public name is
re-exported here.

Conventions
-----------
* Arrays are indexed ``[y, x]`` and cubes ``[chan, y, x]`` (axes
  ``(n_chan, ny, nx)``); ``x`` is the column index, ``y`` the row index, and
  an image is meant to be displayed with ``origin="lower"`` (row 0 at the
  bottom).
* Sky orientation: north = +y and east = -x, as in a standard sky image with
  right ascension increasing to the left.
* Position angle ``pa`` (deg) is east of north: measured from the +y axis
  toward -x, i.e. counter-clockwise on the displayed image. A major axis at
  ``pa`` points along ``(dx, dy) = (-sin pa, cos pa)``; ``pa = 90`` puts it
  along the x axis.
* FWHM, radii and ``pixel_scale`` are in arcsec (``pixel_scale`` in arcsec
  per pixel); wavelengths are observed-frame, in Angstrom.

Every PSF may vary with wavelength as FWHM(lambda) = FWHM (lambda /
ref_wavelength) ** scaling_exponent (``scaling_exponent = 1`` for a
diffraction-limited PSF); with ``ref_wavelength = None`` it is constant.

Kernels (:meth:`PSF.kernel`) are odd-sized and centred, *pixel-integrated*
(the analytic surface brightness is integrated over each pixel: erf
differences for the circular Gaussian, Gauss-Legendre sub-sampling
otherwise), normalised to unit sum, and wide enough to hold at least
:data:`KERNEL_ENCLOSED_FRACTION` of the flux (the Moffat profile is truncated
at the radius enclosing that fraction and renormalised). A pixel-integrated
kernel applied to an image that already holds pixel-integrated flux applies
the pixel response twice (second moments grow by pixel_scale^2 / 12 more than
the PSF's); ``sampling="center"`` gives the PSF sampled at pixel centres
instead, which adds the PSF's own second moment when the PSF is well
sampled (only 0.62 of it at FWHM = 1 pixel: aliasing);
:meth:`GaussianPSF.separable_taps` gives 1-D taps that add exactly the
PSF's second moment at any width, applied by :func:`blur_separable`.

:func:`convolve_cube` convolves every channel of a cube with the PSF by FFT,
zero-padding so that nothing wraps around; flux that stays inside the field
is conserved to rounding.
"""

from .analytic import EllipticalGaussianPSF, GaussianPSF, MoffatPSF
from .base import (
    FWHM_PER_SIGMA,
    KERNEL_ENCLOSED_FRACTION,
    MAX_KERNEL_SIZE,
    PSF,
    PSF_KINDS,
    SAMPLINGS,
    psf_from_config,
    psf_from_header,
)
from .convolve import FWHM_GROUP_TOLERANCE, blur_separable, convolve_cube, convolve_with_kernel, pad_width
from .image import ImagePSF

__all__ = [
    "PSF",
    "GaussianPSF",
    "EllipticalGaussianPSF",
    "MoffatPSF",
    "ImagePSF",
    "PSF_KINDS",
    "SAMPLINGS",
    "FWHM_PER_SIGMA",
    "KERNEL_ENCLOSED_FRACTION",
    "MAX_KERNEL_SIZE",
    "FWHM_GROUP_TOLERANCE",
    "psf_from_header",
    "psf_from_config",
    "convolve_cube",
    "convolve_with_kernel",
    "blur_separable",
    "pad_width",
]
