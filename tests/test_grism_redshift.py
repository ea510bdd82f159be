"""The grism redshift (issue 16: LineMaps carry the grism redshift): chi2 of the joint line model over z.

Exposures made with the dispersion operator from known Hbeta and [OIII] maps (test_grism_extract.py,
22 A per pixel at z = 2). A pixel of trace shift of [OIII] 5008 is dz = 22 A / 5008 A = 0.0044.
"""

import numpy as np
import pytest

from mockzgrad.errors import ConfigError
from mockzgrad.physics.lines import LINES
from mockzgrad.products.grism import GrismExposure, GrismMock
from mockzgrad.recovery import grism_extract as gx

from _seed import seeded
from test_grism_extract import PS, Z, _mock

PIXEL_DZ = 22.0 / LINES["OIII_5008"].wavelength


def test_noise_free_redshift_is_the_input():
    """Started 1.7 pixels off, the fit lands within 0.05 pixel of the input z (the model is exact, so
    what is left is the parabola's interpolation on a tenth-of-a-pixel grid)."""
    z = gx.fit_redshift(_mock(), Z + 1.7 * PIXEL_DZ, continuum=False, segmentation=0.05)
    assert abs(z - Z) < 0.05 * PIXEL_DZ, (z - Z) / PIXEL_DZ


@pytest.mark.slow
def test_noisy_redshifts_scatter_about_the_input():
    """Over 12 noisy realisations (started 0.7 pixel off) the mean z is the input within 4 Monte Carlo
    errors (scatter / sqrt(K)) plus the 0.05-pixel noise-free allowance, and the scatter is well below
    a pixel (S/N ~ 13 per frame pixel at the peak of the [OIII] trace)."""
    mock = _mock()
    rng = np.random.default_rng(seeded(1611))
    got = []
    for _ in range(12):
        sigma = 3e-2
        exps = [GrismExposure(name=e.name, sci=e.sci + sigma * rng.normal(size=e.sci.shape),
                              var=np.full(e.sci.shape, sigma**2), header=e.header, exptime=e.exptime)
                for e in mock.exposures]
        noisy = GrismMock(exposures=exps, direct=mock.direct, pixel_scale=PS, psf=mock.psf)
        got.append((gx.fit_redshift(noisy, Z + 0.7 * PIXEL_DZ, continuum=False, segmentation=0.05) - Z) / PIXEL_DZ)
    got = np.array(got)
    assert got.std(ddof=1) < 0.2, got
    assert abs(got.mean()) < 4.0 * got.std(ddof=1) / np.sqrt(got.size) + 0.05, got


def test_extraction_at_the_fitted_redshift_records_it():
    """redshift_fit=True: the maps' redshift is the fitted one, the guess and error in the provenance."""
    got = gx.extract_line_maps(_mock(), Z + 1.2 * PIXEL_DZ, continuum=False, segmentation=0.05, redshift_fit=True)
    assert abs(got.redshift - Z) < 0.05 * PIXEL_DZ
    assert got.provenance["redshift_guess"] == pytest.approx(Z + 1.2 * PIXEL_DZ)
    assert got.provenance["redshift_fitted"] == got.redshift


def test_bad_redshift_fit_arguments():
    with pytest.raises(ConfigError, match="redshift_guess"):
        gx.fit_redshift(_mock(), -1.0)
    with pytest.raises(ConfigError, match="span_pixels"):
        gx.fit_redshift(_mock(), Z, span_pixels=0.0)
