"""Cosmological distances and angular scales.

The default cosmology is flat Lambda-CDM with H0 = 70 km/s/Mpc, Om0 = 0.3
and no radiation (Tcmb0 = 0), built with astropy; at redshift 5 one arcsec
is then 6.28 proper kpc. Every function accepts any astropy cosmology
instance instead (e.g. ``astropy.cosmology.Planck18``).
"""

from __future__ import annotations

import astropy.units as u
from astropy.cosmology import Cosmology, FlatLambdaCDM

from ..errors import ConfigError
from ..validate import positive

__all__ = [
    "DEFAULT_H0",
    "DEFAULT_OM0",
    "default_cosmology",
    "kpc_per_arcsec",
    "arcsec_per_kpc",
    "luminosity_distance_cm",
]

#: Hubble constant of the default cosmology, km/s/Mpc.
DEFAULT_H0 = 70.0
#: Matter density of the default cosmology (flat: Ode0 = 1 - Om0).
DEFAULT_OM0 = 0.3

_DEFAULT = FlatLambdaCDM(
    H0=DEFAULT_H0 * u.km / u.s / u.Mpc,
    Om0=DEFAULT_OM0,
    Tcmb0=0.0 * u.K,
    name="mockzgrad default (flat LCDM, H0=70, Om0=0.3)",
)


def default_cosmology() -> FlatLambdaCDM:
    """The default cosmology: flat Lambda-CDM, H0 = 70 km/s/Mpc, Om0 = 0.3, Tcmb0 = 0.

    Returns
    -------
    astropy.cosmology.FlatLambdaCDM
        An immutable astropy cosmology (the same instance on every call).
    """
    return _DEFAULT


def _check(redshift, cosmology) -> tuple[float, Cosmology]:
    redshift = positive("redshift", redshift)
    if cosmology is None:
        cosmology = _DEFAULT
    elif not isinstance(cosmology, Cosmology):
        raise ConfigError(
            f"cosmology = {cosmology!r}: expected an astropy.cosmology.Cosmology instance "
            "(e.g. astropy.cosmology.Planck18) or None for the default"
        )
    return redshift, cosmology


def kpc_per_arcsec(redshift: float, cosmology: Cosmology | None = None) -> float:
    """Proper transverse size of one arcsec at ``redshift``.

    Parameters
    ----------
    redshift : float
        Redshift; > 0.
    cosmology : astropy.cosmology.Cosmology or None
        Cosmology; None = :func:`default_cosmology`.

    Returns
    -------
    float
        Proper kpc per arcsec (angular-diameter distance times one arcsec in
        radians).
    """
    redshift, cosmology = _check(redshift, cosmology)
    return float(cosmology.kpc_proper_per_arcmin(redshift).to_value(u.kpc / u.arcmin) / 60.0)


def arcsec_per_kpc(redshift: float, cosmology: Cosmology | None = None) -> float:
    """Angle subtended by one proper kpc at ``redshift``, arcsec.

    Parameters are those of :func:`kpc_per_arcsec`; the result is its inverse.
    """
    return 1.0 / kpc_per_arcsec(redshift, cosmology)


def luminosity_distance_cm(redshift: float, cosmology: Cosmology | None = None) -> float:
    """Luminosity distance to ``redshift``, cm.

    Parameters
    ----------
    redshift : float
        Redshift; > 0.
    cosmology : astropy.cosmology.Cosmology or None
        Cosmology; None = :func:`default_cosmology`.

    Returns
    -------
    float
        Luminosity distance, cm (flux = L / (4 pi D_L^2)).
    """
    redshift, cosmology = _check(redshift, cosmology)
    return float(cosmology.luminosity_distance(redshift).to_value(u.cm))
