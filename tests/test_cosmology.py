"""Tests of mockzgrad.physics.cosmology against astropy computed independently."""

import astropy.units as u
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM, Planck18

from mockzgrad.physics.cosmology import (
    arcsec_per_kpc,
    default_cosmology,
    kpc_per_arcsec,
    luminosity_distance_cm,
)
from mockzgrad.errors import ConfigError

ARCSEC_RAD = np.pi / (180.0 * 3600.0)


def _kpc_per_arcsec_reference(cosmo, redshift):
    """Independent path: angular-diameter distance times one arcsec."""
    return cosmo.angular_diameter_distance(redshift).to_value(u.kpc) * ARCSEC_RAD


def test_default_is_flat_lcdm_70_03():
    cosmo = default_cosmology()
    assert isinstance(cosmo, FlatLambdaCDM)
    assert cosmo.H0.to_value(u.km / u.s / u.Mpc) == 70.0
    assert cosmo.Om0 == 0.3
    assert cosmo.Tcmb0.to_value(u.K) == 0.0
    assert default_cosmology() is cosmo


def test_z5_scale_matches_design_and_astropy():
    # DESIGN.md: at z = 5 one arcsec is about 6.28 kpc in the default cosmology.
    scale = kpc_per_arcsec(5.0)
    assert isinstance(scale, float)
    assert scale == pytest.approx(6.28, abs=0.005)
    ref = _kpc_per_arcsec_reference(FlatLambdaCDM(H0=70, Om0=0.3, Tcmb0=0), 5.0)
    assert scale == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("redshift", [0.1, 1.0, 2.3, 5.0, 8.0])
def test_any_astropy_cosmology(redshift):
    ref = _kpc_per_arcsec_reference(Planck18, redshift)
    assert kpc_per_arcsec(redshift, Planck18) == pytest.approx(ref, rel=1e-10)
    assert arcsec_per_kpc(redshift, Planck18) == pytest.approx(1.0 / ref, rel=1e-10)


def test_luminosity_distance_is_etherington_related():
    # D_L = (1 + z)^2 D_A (Etherington reciprocity), independent of the code path.
    redshift = 5.0
    d_a_cm = default_cosmology().angular_diameter_distance(redshift).to_value(u.cm)
    assert luminosity_distance_cm(redshift) == pytest.approx((1 + redshift) ** 2 * d_a_cm, rel=1e-10)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf, "5", True, None])
def test_invalid_redshift_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="redshift"):
        kpc_per_arcsec(bad)


def test_non_cosmology_rejected():
    with pytest.raises(ConfigError, match="cosmology"):
        kpc_per_arcsec(1.0, cosmology="Planck18")
