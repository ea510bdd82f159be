"""x = 2 r_eff / psf_fwhm, the resolution of a mock, and its inverse.

The one place that converts between ``x_resolution`` (2 r_eff / PSF FWHM,
both as angles) and ``instrument.psf.fwhm`` (arcsec), with the mock's own
cosmology. Suites that grid in ``x_resolution``, the cube truth and the
corrections all use these functions.

Convention for a non-circular PSF
---------------------------------
``x_resolution = 2 r_eff / F_along``, with ``F_along`` the FWHM of the PSF's
profile along the galaxy's major axis (a cut through the PSF centre). For
an elliptical Gaussian of FWHMs ``F_major >= F_minor`` whose major axis is
at ``instrument.psf.pa``:

    F_along = 1 / sqrt(cos^2 d / F_major^2 + sin^2 d / F_minor^2),
    d = instrument.psf.pa - galaxy.pa,

so ``F_along = F_major`` when the PSF is elongated along the galaxy and
``F_minor`` when across it. This is also the width (its half) of the
``annuli`` binning scheme (:func:`mockzgrad.recovery.psf_matching.fwhm_along`).
A second, orientation-free number is ``x_resolution_geomean = 2 r_eff /
sqrt(F_major F_minor)`` (:func:`x_resolution_geomean`). For a circular PSF
(``gaussian``, ``moffat``) both are ``2 r_eff / fwhm``, computed exactly as
before; for an ``image`` PSF the configuration's ``fwhm`` is used.

A suite's ``x_resolution`` sets the PSF size with its shape kept: for an
elliptical Gaussian both FWHMs are scaled by one factor, so the axis ratio
``fwhm_minor / fwhm`` and the PA stay those of the suite
(:func:`elliptical_fwhms_for_x`).
"""

from __future__ import annotations

import functools
import math

from ..errors import ConfigError
from ..physics.cosmology import kpc_per_arcsec
from ..validate import finite, positive

__all__ = ["r_eff_arcsec", "x_resolution", "x_resolution_geomean", "psf_fwhm_for_x", "fwhm_along",
           "elliptical_fwhms_for_x", "is_elliptical", "resolution_truth"]


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


def is_elliptical(psf_cfg) -> bool:
    """True when ``psf_cfg`` (a ``PSFConfig``) is an elliptical Gaussian with ``fwhm_minor < fwhm``."""
    return psf_cfg.kind == "elliptical_gaussian" and psf_cfg.fwhm_minor != psf_cfg.fwhm


def fwhm_along(fwhm_major: float, fwhm_minor: float, delta_pa: float) -> float:
    """FWHM of an elliptical Gaussian's profile along a direction ``delta_pa`` from its major axis, arcsec.

    ``1 / sqrt(cos^2 d / F_major^2 + sin^2 d / F_minor^2)``.

    Parameters
    ----------
    fwhm_major, fwhm_minor : float
        FWHMs along the major and minor axes, arcsec; > 0.
    delta_pa : float
        Angle between the direction and the major axis, deg; finite.
    """
    fa = positive("fwhm_major", fwhm_major, "arcsec")
    fb = positive("fwhm_minor", fwhm_minor, "arcsec")
    d = math.radians(finite("delta_pa", delta_pa, "deg"))
    return 1.0 / math.sqrt((math.cos(d) / fa) ** 2 + (math.sin(d) / fb) ** 2)


def x_resolution(cfg) -> float:
    """2 r_eff / psf_fwhm of a mock (dimensionless; see the module notes).

    Circular PSF: the PSF's ``fwhm`` field. Elliptical Gaussian: the FWHM
    along the galaxy's major axis (:func:`fwhm_along` with
    ``d = instrument.psf.pa - galaxy.pa``).
    """
    psf = cfg.instrument.psf
    if is_elliptical(psf):
        return 2.0 * r_eff_arcsec(cfg) / fwhm_along(psf.fwhm, psf.fwhm_minor, psf.pa - cfg.galaxy.pa)
    return 2.0 * r_eff_arcsec(cfg) / cfg.instrument.psf.fwhm


def x_resolution_geomean(cfg) -> float:
    """2 r_eff / sqrt(F_major F_minor) of a mock; equal to :func:`x_resolution` for a circular PSF."""
    psf = cfg.instrument.psf
    if is_elliptical(psf):
        return 2.0 * r_eff_arcsec(cfg) / math.sqrt(psf.fwhm * psf.fwhm_minor)
    return x_resolution(cfg)


def psf_fwhm_for_x(cfg, x: float) -> float:
    """PSF FWHM (arcsec) that gives ``x_resolution = x`` for this mock.

    For an elliptical Gaussian the major-axis FWHM (``instrument.psf.fwhm``)
    with the PSF's axis ratio and PA kept (:func:`elliptical_fwhms_for_x`);
    else ``2 r_eff / x``.

    Parameters
    ----------
    cfg : MockConfig
    x : float
        Target resolution, > 0.
    """
    x = positive("x_resolution", x)
    psf = cfg.instrument.psf
    if is_elliptical(psf):
        return elliptical_fwhms_for_x(r_eff_arcsec(cfg), x, psf.fwhm_minor / psf.fwhm, psf.pa - cfg.galaxy.pa)[0]
    return 2.0 * r_eff_arcsec(cfg) / x


def elliptical_fwhms_for_x(r_eff_arcsec: float, x: float, axis_ratio: float, delta_pa: float) -> tuple[float, float]:
    """Major and minor FWHMs (arcsec) of an elliptical Gaussian PSF of fixed shape that give ``x_resolution = x``.

    ``F_major = (2 r_eff / x) sqrt(cos^2 d + sin^2 d / axis_ratio^2)`` and
    ``F_minor = axis_ratio F_major``, so that :func:`fwhm_along` is
    ``2 r_eff / x``.

    Parameters
    ----------
    r_eff_arcsec : float
        Effective radius, arcsec; > 0.
    x : float
        Target resolution; > 0.
    axis_ratio : float
        ``fwhm_minor / fwhm`` of the PSF; (0, 1].
    delta_pa : float
        PSF PA minus galaxy PA, deg; finite.
    """
    x = positive("x_resolution", x)
    q = positive("instrument.psf.fwhm_minor / instrument.psf.fwhm", axis_ratio)
    if q > 1.0:
        raise ConfigError(f"instrument.psf.fwhm_minor / instrument.psf.fwhm = {q}; allowed (0, 1]")
    d = math.radians(finite("delta_pa", delta_pa, "deg"))
    major = 2.0 * positive("r_eff_arcsec", r_eff_arcsec, "arcsec") / x * math.sqrt(
        math.cos(d) ** 2 + (math.sin(d) / q) ** 2)
    return major, q * major


def resolution_truth(cfg) -> dict:
    """Truth keys of the resolution beyond ``psf_fwhm`` and ``x_resolution``.

    Empty for a circular PSF (``x_resolution`` says it all). For an
    elliptical Gaussian: ``x_resolution_geomean`` (:func:`x_resolution_geomean`),
    ``psf_fwhm_minor`` and ``psf_pa`` (arcsec, deg east of north) and
    ``psf_fwhm_along`` (arcsec, the FWHM along the galaxy's major axis that
    ``x_resolution`` uses).
    """
    psf = cfg.instrument.psf
    if not is_elliptical(psf):
        return {}
    return {"x_resolution_geomean": x_resolution_geomean(cfg), "psf_fwhm_minor": psf.fwhm_minor, "psf_pa": psf.pa,
            "psf_fwhm_along": fwhm_along(psf.fwhm, psf.fwhm_minor, psf.pa - cfg.galaxy.pa)}
