"""Real-data cube layouts: a mock galaxy injected into JWST s3d and ESO (MUSE, KMOS) files, each with its
layout's units and header keywords, recovers the gradient of the native mock (issue 22).

The injected files are written here from the mock's arrays with the conversions of the instrument
documents (JWST: MJy/sr, ERR as sigma, DQ; MUSE: 1e-20 erg/s/cm2/A, STAT as variance, air wavelengths;
KMOS: erg/s/cm2/um, NOISE as sigma), independently of mockzgrad's writer.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from _seed import seeded
from mockzgrad.config import load_config
from mockzgrad.errors import DataError
from mockzgrad.observation import observe
from mockzgrad.products.cube import read_cube
from mockzgrad.products.readers import cube_layout

ROOT = Path(__file__).resolve().parents[1]
C_A = 2.99792458e18  # Angstrom/s
PSF_FWHM = 0.2547  # arcsec, the flagship's


def _vac_to_air(lam):
    """Air wavelength, Angstrom (Morton 2000, IAU standard; an independent formula from the reader's)."""
    s2 = (1e4 / lam) ** 2
    return lam / (1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2))


@pytest.fixture(scope="module")
def mock():
    """The flagship mock on a linear-wavelength grid (as NIRSpec and ESO cubes are), circular Gaussian PSF."""
    cfg = load_config(ROOT / "examples" / "flagship_z5.toml").replace(
        seed=seeded(7), **{"instrument.spectral.grid": "linear", "instrument.spectral.dispersion": 10.0,
                           "instrument.spectral.full_grid": True})
    return observe(cfg, keep_noise_free=False)


def _celestial(h, mock, *, cd=False):
    ny, nx = mock.data.shape[1:]
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["CRPIX1"], h["CRPIX2"] = 0.5 * (nx + 1), 0.5 * (ny + 1)
    h["CRVAL1"], h["CRVAL2"] = 53.16, -27.78
    step = mock.pixel_scale / 3600.0
    if cd:
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -step, 0.0, 0.0, step
    else:
        h["CDELT1"], h["CDELT2"] = -step, step


def _widths(mock):
    lo, hi = mock.edges_lo, mock.edges_hi
    assert np.allclose(np.diff(lo), lo[1] - lo[0])  # the fixture's grid is linear and contiguous
    return lo, hi


def write_jwst(mock, path):
    """A NIRSpec-IFU-like ``*_s3d.fits``: SCI/ERR in MJy/sr, DQ, WAVE in um, PIXAR_SR; no PSF cards."""
    lo, hi = _widths(mock)
    omega = (mock.pixel_scale / 206264.80624709636) ** 2
    # erg/s/cm2 per channel -> erg/s/cm2/Hz -> MJy (1 MJy = 1e-17 erg/s/cm2/Hz) -> per sr
    to_mjysr = (1.0 / (C_A / lo - C_A / hi) / 1e-17 / omega)[:, None, None]
    sci = (mock.data * to_mjysr).astype(np.float32)
    err = (np.sqrt(mock.variance) * to_mjysr).astype(np.float32)
    dq = np.zeros(sci.shape, np.uint32)
    dq[:, :3, :] = 1 | 512  # DO_NOT_USE | NON_SCIENCE: a border without data, filled with garbage
    sci[:, :3, :], err[:, :3, :] = 1e30, 0.0
    primary = fits.PrimaryHDU()
    primary.header.update(TELESCOP="JWST", INSTRUME="NIRSPEC", GRATING="G395M", FILTER="F290LP")
    hdus = [primary]
    for name, arr in (("SCI", sci), ("ERR", err), ("DQ", dq)):
        hdu = fits.ImageHDU(arr, name=name)
        h = hdu.header
        _celestial(h, mock)
        h["CTYPE3"], h["CUNIT3"] = "WAVE", "um"
        h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = 1.0, 0.5 * (lo[0] + hi[0]) * 1e-4, (hi[0] - lo[0]) * 1e-4
        if name != "DQ":
            h["BUNIT"] = "MJy/sr"
        h["PIXAR_SR"], h["PIXAR_A2"] = omega, mock.pixel_scale**2
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


def write_eso(mock, path, *, flavour):
    """A MUSE-like (DATA, STAT variance, 1e-20 erg/s/cm2/A, AWAV in Angstrom, CD matrix) or KMOS-like
    (IFU.1.DATA, IFU.1.NOISE sigma, erg/s/cm2/um, WAVE in um) cube with ESO keywords."""
    lo, hi = _widths(mock)
    primary = fits.PrimaryHDU()
    primary.header.update(ORIGIN="ESO-PARANAL", TELESCOP="ESO-VLT-U4" if flavour == "muse" else "ESO-VLT-U1",
                          INSTRUME=flavour.upper())
    primary.header["HIERARCH ESO PRO CATG"] = "DATACUBE_FINAL" if flavour == "muse" else "SCI_RECONSTRUCTED"
    if flavour == "muse":
        flam = (mock.data / (hi - lo)[:, None, None] / 1e-20).astype(np.float32)
        stat = (mock.variance / ((hi - lo)[:, None, None] * 1e-20) ** 2).astype(np.float32)
        arrays = [("DATA", flam, "10**(-20)*erg/s/cm**2/Angstrom", "DATA"),
                  ("STAT", stat, "(10**(-20)*erg/s/cm**2/Angstrom)**2", "MSE")]
        centre0 = _vac_to_air(0.5 * (lo[0] + hi[0]))
        cunit, crval, cdelt, ctype = "Angstrom", centre0, (hi[0] - lo[0]) / (0.5 * (lo[0] + hi[0]) / centre0), "AWAV"
    else:
        per_um = (hi - lo)[:, None, None] * 1e-4
        arrays = [("IFU.1.DATA", (mock.data / per_um).astype(np.float32), "erg/s/cm^2/um", "DATA"),
                  ("IFU.1.NOISE", (np.sqrt(mock.variance) / per_um).astype(np.float32), "erg/s/cm^2/um", "RMSE")]
        cunit, crval, cdelt, ctype = "um", 0.5 * (lo[0] + hi[0]) * 1e-4, (hi[0] - lo[0]) * 1e-4, "WAVE"
    hdus = [primary]
    for name, arr, bunit, cls3 in arrays:
        hdu = fits.ImageHDU(arr, name=name)
        h = hdu.header
        _celestial(h, mock, cd=flavour == "muse")
        h["CTYPE3"], h["CUNIT3"], h["CRPIX3"], h["CRVAL3"] = ctype, cunit, 1.0, crval
        h["CD3_3" if flavour == "muse" else "CDELT3"] = cdelt
        h["BUNIT"], h["HDUCLASS"], h["HDUCLAS3"] = bunit, "ESO", cls3
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture(scope="module")
def files(mock, tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    native = folder / "native.fits"
    mock.write(native)
    return {"native": native, "jwst": write_jwst(mock, folder / "cube_s3d.fits"),
            "muse": write_eso(mock, folder / "muse.fits", flavour="muse"),
            "kmos": write_eso(mock, folder / "kmos.fits", flavour="kmos")}


@pytest.mark.parametrize("name, layout", [("native", "mockzgrad"), ("jwst", "jwst_s3d"), ("muse", "eso"),
                                          ("kmos", "eso")])
def test_layout_is_detected(files, name, layout):
    with fits.open(files[name]) as h:
        assert cube_layout(h) == layout


@pytest.mark.parametrize("name", ["jwst", "muse", "kmos"])
def test_pixels_convert_back_to_the_mocks_flux_per_channel(files, mock, name):
    cube = read_cube(files[name])
    rows = slice(3, None)  # the JWST file's masked border is NaN
    assert cube.data.shape == mock.data.shape
    assert np.isnan(read_cube(files["jwst"]).data[:, :3]).all()
    # float32 storage: 1e-6 relative; air -> vacuum round trip of two different formulas: < 1e-5 in the width
    rtol = 2e-5 if name == "muse" else 2e-6
    scale = np.nanmax(np.abs(mock.data))
    assert np.allclose(cube.data[:, rows], mock.data[:, rows], rtol=rtol, atol=1e-6 * scale)
    assert np.allclose(cube.variance[:, rows], mock.variance[:, rows], rtol=2 * rtol)
    # air wavelengths linear in the header are not exactly linear in vacuum: < 1e-6 (0.3 km/s)
    assert np.allclose(cube.edges_lo, mock.edges_lo, rtol=1e-6 if name == "muse" else 1e-10)


def _recover(path, out, *extra):
    r = subprocess.run([sys.executable, "-m", "mockzgrad.cli", "recover", str(path), "--recipe", "lee2026",
                        "-o", str(out), *extra], capture_output=True, text=True, timeout=600)
    return r


@pytest.fixture(scope="module")
def native_result(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "native.json"
    r = _recover(files["native"], out)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["jwst", "muse", "kmos"])
def test_recover_gives_the_native_gradient(files, native_result, name, tmp_path):
    out, fig = tmp_path / f"{name}.json", tmp_path / f"{name}.png"
    r = _recover(files[name], out, "--psf-fwhm", str(PSF_FWHM), "--plot", str(fig))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["status"] == "ok" and math.isfinite(res["grad_z"])
    assert abs(res["grad_z"] - native_result["grad_z"]) < 1e-3, (res["grad_z"], native_result["grad_z"])
    assert fig.stat().st_size > 0
    assert not res.get("truth")  # a real cube has none


def test_a_cube_without_psf_names_the_options(files, tmp_path):
    r = _recover(files["jwst"], tmp_path / "x.json")
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(err) == 1, r.stderr
    assert "--psf-fwhm" in err[0] and "--psf-image" in err[0]
    assert not (tmp_path / "x.json").exists()


def test_sky_res_gives_the_psf(files, tmp_path):
    path = tmp_path / "muse_psf.fits"
    with fits.open(files["muse"]) as h:
        h["DATA"].header["SKY_RES"] = PSF_FWHM
        h.writeto(path)
    assert read_cube(path).psf == {"PSF_KIND": "gaussian", "PSF_FWHM": PSF_FWHM}


def test_a_unit_that_is_no_flux_is_refused(files, tmp_path):
    path = tmp_path / "counts.fits"
    with fits.open(files["jwst"]) as h:
        h["SCI"].header["BUNIT"] = "DN/s"
        h.writeto(path)
    with pytest.raises(DataError, match="BUNIT = 'DN/s'") as err:
        read_cube(path)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_psf_image_supplies_the_psf(files, native_result, tmp_path):
    """A Gaussian PSF image of the flagship's FWHM (PIXSCALE in arcsec) does what --psf-fwhm does."""
    pix = 0.01  # arcsec
    y, x = np.mgrid[-100:101, -100:101] * pix
    sigma = PSF_FWHM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    image = np.exp(-0.5 * (x**2 + y**2) / sigma**2)
    psf = tmp_path / "psf.fits"
    hdu = fits.PrimaryHDU(image / image.sum())
    hdu.header["PIXSCALE"] = pix
    hdu.writeto(psf)
    out = tmp_path / "r.json"
    r = _recover(files["jwst"], out, "--psf-image", str(psf))
    assert r.returncode == 0, r.stderr
    # the image samples the Gaussian: the annuli (PSF HWHM wide) and the gradient agree to a few 1e-3
    assert abs(json.loads(out.read_text())["grad_z"] - native_result["grad_z"]) < 5e-3


def test_two_psfs_are_refused(files, tmp_path):
    r = _recover(files["jwst"], tmp_path / "x.json", "--psf-fwhm", "0.2", "--psf-image", "psf.fits")
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(err) == 1 and "not both" in err[0], r.stderr


def test_a_redshift_that_cannot_be_estimated_names_the_option(tmp_path):
    """Channels blueward of every catalogue line (no positive redshift fits): the error names --redshift."""
    from mockzgrad.products.cube import MockCube

    shape = (30, 12, 12)
    data = np.zeros(shape)
    data[15] = 1e-18  # one bright channel at 1200 A
    lo = 1185.0 + np.arange(30.0)
    path = tmp_path / "blue.fits"
    MockCube(data=data, variance=np.full(shape, 1e-40), edges_lo=lo, edges_hi=lo + 1.0, pixel_scale=0.1,
             psf={"PSF_KIND": "gaussian", "PSF_FWHM": 0.3}, lsf_sigma=50.0).write(path)
    r = _recover(path, tmp_path / "x.json")
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(err) == 1 and "--redshift" in err[0], r.stderr
    assert "redshift=" not in err[0], r.stderr  # the CLI names its option, not the Python keyword
