"""The 2D spectra of a slit-stepped product (``SPEC2D*``): stored, read back, and the cube rebuilt from them.

Round trip: the cube rebuilt from the stored spectra and the observing log
equals the product's cube (exactly in memory; to float32 storage in a file).
Size: the spectra cost what their arrays cost, and for the preset about
twice the cube's DATA + VAR (63 pointings x n_rows against ny x nx spaxels).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from astropy.io import fits

from mockzgrad.errors import DataError, FieldOfViewWarning
from mockzgrad.observation.slitstep import build_slitstep_cube, rebuild_cube
from mockzgrad.products.cube import read_cube
from mockzgrad.products.spectra2d import SPECTRA_EXTENSIONS
from tests.test_slitstep import _cfg

#: float32 storage: each stored value carries a relative rounding of <= 6e-8; the build adds, averages
#: and interpolates with positive weights, so the rebuilt cube is off by a few of them of the largest input.
FLOAT32_TOL = 1e-6


#: A telescope PSF wide enough (arcsec) for a path loss the correction factors show.
PSF_FWHM = 0.15


def _build(**slitstep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FieldOfViewWarning)
        return build_slitstep_cube(_cfg(slitstep=slitstep, psf_fwhm=PSF_FWHM))


@pytest.fixture(scope="module")
def corrected():
    return _build(pathloss_correct=True)


def test_spectra_shapes_follow_the_log_and_the_setup(corrected):
    sp, ss, log = corrected.spectra, corrected_ss(), corrected.exposures
    n_rows = math.ceil(ss.slit_length / ss.detector_pixel - 1e-9)
    assert sp.data.shape == (len(log["pointing"]), corrected.data.shape[0], n_rows) == (63, sp.data.shape[1], 16)
    np.testing.assert_array_equal(sp.edges_lo, corrected.edges_lo)  # the cube's channels
    assert np.all(sp.variance == corrected.truth["noise_sigma_exposure"] ** 2)
    # the rows span the slitlet: n_shutters x pitch, centred
    assert sp.row_edges[0] == pytest.approx(-0.5 * n_rows * ss.detector_pixel)
    # the bar shadow: a row's open fraction summed over rows is the open length / pixel in every dither
    np.testing.assert_allclose(sp.open_fraction.sum(axis=1) * ss.detector_pixel,
                               ss.n_shutters * ss.shutter_open[1], rtol=1e-12)
    assert np.all(sp.pathloss > 1.0)  # a correction for lost light


def corrected_ss():
    return _cfg(slitstep={"pathloss_correct": True}, psf_fwhm=PSF_FWHM).instrument.slitstep


def test_cube_rebuilt_from_the_spectra_equals_the_cube(corrected, tmp_path):
    data, var = rebuild_cube(corrected)
    np.testing.assert_array_equal(data, corrected.data)  # the same operations on the same numbers
    np.testing.assert_array_equal(var, corrected.variance)
    path = tmp_path / "msa.fits"
    corrected.write(path)
    back = read_cube(path)
    np.testing.assert_array_equal(back.spectra.data, corrected.spectra.data.astype(np.float32))
    np.testing.assert_array_equal(back.spectra.pathloss, corrected.spectra.pathloss)
    data, var = rebuild_cube(back)
    assert np.array_equal(np.isnan(data), np.isnan(back.data))
    np.testing.assert_allclose(data, back.data, rtol=FLOAT32_TOL, atol=FLOAT32_TOL * np.nanmax(np.abs(back.data)))
    np.testing.assert_allclose(var, back.variance, rtol=FLOAT32_TOL)


def test_spectra_are_optional_and_bounded_in_size(corrected, tmp_path):
    off = _build(pathloss_correct=True, store_spectra=False)
    assert off.spectra is None
    np.testing.assert_array_equal(off.data, corrected.data)  # the cube does not depend on keeping them
    with pytest.raises(DataError, match="store_spectra"):
        rebuild_cube(off)
    off.write(tmp_path / "off.fits")
    corrected.write(tmp_path / "on.fits")
    with fits.open(tmp_path / "off.fits") as hdul:
        assert not set(SPECTRA_EXTENSIONS) & {h.name for h in hdul}
    extra = (tmp_path / "on.fits").stat().st_size - (tmp_path / "off.fits").stat().st_size
    # the arrays, plus per extension at most two header blocks and one block of padding
    assert corrected.spectra.file_bytes <= extra <= corrected.spectra.file_bytes + 3 * 2880 * len(SPECTRA_EXTENSIONS)
    # against the cube: 63 x 16 rows against 25 x 22 spaxels of float32 DATA and VAR: 1.8 times, below 2.5
    cube_bytes = 2 * 4 * corrected.data.size
    assert extra < 2.5 * cube_bytes


def test_incomplete_spectra_are_refused(corrected, tmp_path):
    path = tmp_path / "msa.fits"
    corrected.write(path)
    with fits.open(path) as hdul:
        del hdul["SPEC2D_VAR"]
        hdul.writeto(tmp_path / "cut.fits")
    with pytest.raises(DataError, match="SPEC2D_VAR"):
        read_cube(tmp_path / "cut.fits")


def test_a_log_that_does_not_match_the_spectra_is_refused(corrected):
    """Every (step_disp, step_cross) pointing once: a log with a row missing or repeated is an error, not a cube."""
    from mockzgrad.observation.slitstep import cube_from_spectra

    ss = corrected_ss()
    short = {k: v[:-1] for k, v in corrected.exposures.items()}
    with pytest.raises(DataError, match="63 2D spectra but 62 rows"):
        cube_from_spectra(corrected.spectra, short, ss)
    twice = {k: v[:-1] + v[:1] for k, v in corrected.exposures.items()}  # pointing 0 twice, the last one never
    with pytest.raises(DataError, match="every"):
        cube_from_spectra(corrected.spectra, twice, ss)
