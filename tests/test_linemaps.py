"""LineMaps: FITS round trip, the reader dispatch, bad files."""

import numpy as np
import pytest
from astropy.io import fits

from mockzgrad.errors import DataError
from mockzgrad.products.io import product_kind, read_product
from mockzgrad.products.linemaps import LineMaps, read_linemaps

PSF = {"PSF_KIND": "gaussian", "PSF_FWHM": 0.1}


def _maps():
    rng = np.random.default_rng(1)
    names = ("OII_3727", "Hb", "OIII_5008", "Ha")
    flux = rng.normal(1.0, 0.3, (4, 9, 11))
    return LineMaps(names=names, flux=flux, variance=np.full(flux.shape, 0.04), pixel_scale=0.03,
                    psfs={n: dict(PSF, PSF_FWHM=0.1 + 0.01 * i) for i, n in enumerate(names)}, redshift=1.5,
                    blends={"OII_3727": ("OII_3727", "OII_3730"), "Ha": ("Ha", "NII_6550", "NII_6585")},
                    provenance={"method": "joint"}, truth={"grad_z": -0.1})


def test_round_trip(tmp_path):
    m = _maps()
    m.write(tmp_path / "m.fits")
    r = read_linemaps(tmp_path / "m.fits")
    assert r.kind == "linemaps" and r.names == m.names
    np.testing.assert_array_equal(r.flux, m.flux)
    np.testing.assert_array_equal(r.variance, m.variance)
    assert r.pixel_scale == m.pixel_scale and r.redshift == m.redshift
    assert r.psfs == m.psfs and r.blends == m.blends
    assert r.provenance == m.provenance and r.truth == m.truth
    assert r.psf == m.psfs["Ha"]  # the reddest map's PSF
    x, y = r.offsets()
    assert x.shape == (11,) and y.shape == (9,) and x[0] > 0 > x[-1]


def test_write_refuses_to_overwrite(tmp_path):
    _maps().write(tmp_path / "m.fits")
    with pytest.raises(DataError, match="exists"):
        _maps().write(tmp_path / "m.fits")


def test_missing_var_is_a_data_error(tmp_path):
    _maps().write(tmp_path / "m.fits")
    with fits.open(tmp_path / "m.fits") as h:
        keep = fits.HDUList([x for x in h if x.name != "VAR_HB"])
        keep.writeto(tmp_path / "bad.fits")
    with pytest.raises(DataError, match="VAR_HB"):
        read_product(tmp_path / "bad.fits")


def test_read_product_dispatches_on_extensions(tmp_path):
    from mockzgrad.config import MockConfig
    from mockzgrad.observation.ifu import build_cube

    _maps().write(tmp_path / "m.fits")
    build_cube(MockConfig()).write(tmp_path / "c.fits")
    assert product_kind(tmp_path / "m.fits") == "linemaps"
    assert product_kind(tmp_path / "c.fits") == "ifu"
    assert read_product(tmp_path / "c.fits").kind == "ifu"
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "empty.fits")
    with pytest.raises(DataError, match="neither"):
        read_product(tmp_path / "empty.fits")


def test_bad_values_are_refused():
    with pytest.raises(DataError, match="not a known line"):
        LineMaps(names=("Hx",), flux=np.ones((1, 2, 2)), variance=np.ones((1, 2, 2)), pixel_scale=0.1,
                 psfs={"Hx": PSF}, redshift=1.0)
    with pytest.raises(DataError, match="PSF"):
        LineMaps(names=("Hb",), flux=np.ones((1, 2, 2)), variance=np.ones((1, 2, 2)), pixel_scale=0.1,
                 psfs={}, redshift=1.0)


def _with_covariance():
    m = _maps()
    offsets = np.array([(0, 0), (0, 1), (0, -1)])
    cov = np.stack([m.variance, -0.3 * m.variance, -0.3 * m.variance], axis=1)
    return LineMaps(names=m.names, flux=m.flux, variance=m.variance, pixel_scale=m.pixel_scale, psfs=m.psfs,
                    redshift=m.redshift, blends=m.blends, covariance=cov, cov_offsets=offsets)


def test_covariance_stencils_round_trip(tmp_path):
    m = _with_covariance()
    m.write(tmp_path / "m.fits")
    r = read_linemaps(tmp_path / "m.fits")
    np.testing.assert_array_equal(r.covariance, m.covariance)
    np.testing.assert_array_equal(r.cov_offsets, m.cov_offsets)
    assert read_linemaps(_write(_maps(), tmp_path / "plain.fits")).covariance is None


def _write(maps, path):
    maps.write(path)
    return path


def test_bad_covariance_is_refused():
    m = _with_covariance()
    with pytest.raises(DataError, match="cov_offsets"):
        LineMaps(names=m.names, flux=m.flux, variance=m.variance, pixel_scale=0.03, psfs=m.psfs, redshift=1.5,
                 covariance=m.covariance[:, :2], cov_offsets=m.cov_offsets[:2])  # (0, -1) missing
    with pytest.raises(DataError, match="covariance: shape"):
        LineMaps(names=m.names, flux=m.flux, variance=m.variance, pixel_scale=0.03, psfs=m.psfs, redshift=1.5,
                 covariance=m.covariance[:, :, :3], cov_offsets=m.cov_offsets)
    with pytest.raises(DataError, match="together"):
        LineMaps(names=m.names, flux=m.flux, variance=m.variance, pixel_scale=0.03, psfs=m.psfs, redshift=1.5,
                 covariance=m.covariance)
