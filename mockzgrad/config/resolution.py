"""x = 2 r_eff / psf_fwhm, the resolution of a mock, and its inverse.

The one place that converts between ``x_resolution`` (2 r_eff / PSF FWHM,
both as angles) and ``instrument.psf.fwhm`` (arcsec), with the mock's own
cosmology. Suites that grid in ``x_resolution``, the cube truth and the
corrections all use these functions.
"""

from __future__ import annotations

import functools

from ..physics.cosmology import kpc_per_arcsec
from ..validate import positive

__all__ = ["r_eff_arcsec", "x_resolution", "psf_fwhm_for_x"]


@functools.lru_cache(maxsize=4096)
def _scale(redshift: float, cosmology) -> float:
    return kpc_per_arcsec(redshift, cosmology.to_astropy())


def r_eff_arcsec(cfg) -> float:
    """Effective radius of a mock as an angle, arcsec.

    Parameters
    ----------
    cfg : MockConfig
        ``galaxy.r_eff`` (kpc), ``galaxy.redshift`` and ``cosmology`` are used.
    """
    return cfg.galaxy.r_eff / _scale(cfg.galaxy.redshift, cfg.cosmology)


def x_resolution(cfg) -> float:
    """2 r_eff / psf_fwhm of a mock (dimensionless; the PSF's ``fwhm`` field)."""
    return 2.0 * r_eff_arcsec(cfg) / cfg.instrument.psf.fwhm


def psf_fwhm_for_x(cfg, x: float) -> float:
    """PSF FWHM (arcsec) that gives ``2 r_eff / psf_fwhm = x`` for this mock.

    Parameters
    ----------
    cfg : MockConfig
    x : float
        Target resolution, > 0.
    """
    x = positive("x_resolution", x)
    return 2.0 * r_eff_arcsec(cfg) / x
