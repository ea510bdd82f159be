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
    got = gx.extract_line_maps(_mock(), Z + 1.2 * PIXEL_DZ, velocities="none", continuum=False, segmentation=0.05, redshift_fit=True)
    assert abs(got.redshift - Z) < 0.05 * PIXEL_DZ
    assert got.provenance["redshift_guess"] == pytest.approx(Z + 1.2 * PIXEL_DZ)
    assert got.provenance["redshift_fitted"] == got.redshift


def test_bad_redshift_fit_arguments():
    with pytest.raises(ConfigError, match="redshift_guess"):
        gx.fit_redshift(_mock(), -1.0)
    with pytest.raises(ConfigError, match="span_pixels"):
        gx.fit_redshift(_mock(), Z, span_pixels=0.0)


def _written(tmp_path, catalogue_redshift):
    from dataclasses import replace

    path = tmp_path / "g.fits"
    replace(_mock(), catalogue_redshift=catalogue_redshift).write(path)
    return path


def test_extract_command_fits_the_redshift_from_the_catalogue_value(tmp_path, capsys):
    """`mockzgrad extract g.fits -o maps.fits` without --redshift: the grism z is fitted from the file's
    catalogue redshift (ZCAT, 1.2 pixels off); the maps are the Python call's, the z within 0.05 pixel
    of the input (noise-free) and printed; the guess is in the provenance."""
    from mockzgrad.cli import main
    from mockzgrad.products.grism import read_grism
    from mockzgrad.products.linemaps import read_linemaps

    guess = Z + 1.2 * PIXEL_DZ
    path, out = _written(tmp_path, guess), tmp_path / "maps.fits"
    assert read_grism(path).catalogue_redshift == pytest.approx(guess)
    assert main(["extract", str(path), "-o", str(out), "--velocities", "none"]) == 0
    printed = capsys.readouterr().out
    got = read_linemaps(out)
    want = gx.extract_line_maps(read_grism(path), guess, velocities="none", redshift_fit=True)
    assert got.names == want.names
    np.testing.assert_allclose(got.flux, want.flux, rtol=1e-6, atol=1e-30)
    assert got.redshift == pytest.approx(want.redshift, abs=1e-12)
    assert abs(got.redshift - Z) < 0.05 * PIXEL_DZ, (got.redshift - Z) / PIXEL_DZ
    assert got.provenance["redshift_guess"] == pytest.approx(guess)
    assert f"{got.redshift:.5f}" in printed


def test_extract_command_guess_option_and_fixed_redshift(tmp_path):
    """--redshift-guess replaces the catalogue value as the start; --redshift fixes z (no fit)."""
    from mockzgrad.cli import main
    from mockzgrad.products.linemaps import read_linemaps

    path = _written(tmp_path, Z + 2.5 * PIXEL_DZ)
    out = tmp_path / "m.fits"
    assert main(["extract", str(path), "-o", str(out), "--redshift-guess", str(Z - 0.8 * PIXEL_DZ),
                 "--velocities", "none"]) == 0
    got = read_linemaps(out)
    assert got.provenance["redshift_guess"] == pytest.approx(Z - 0.8 * PIXEL_DZ)
    assert abs(got.redshift - Z) < 0.05 * PIXEL_DZ
    fixed = Z + 0.3 * PIXEL_DZ
    assert main(["extract", str(path), "-o", str(out), "--overwrite", "--redshift", str(fixed),
                 "--velocities", "none"]) == 0
    got = read_linemaps(out)
    assert got.redshift == pytest.approx(fixed) and "redshift_guess" not in got.provenance


def test_extract_command_without_any_redshift_is_one_line(tmp_path, capsys):
    from mockzgrad.cli import main

    path = _written(tmp_path, None)
    assert main(["extract", str(path), "-o", str(tmp_path / "m.fits")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ZCAT" in err[0] and "--redshift" in err[0]
    assert not (tmp_path / "m.fits").exists()


def test_a_mock_carries_its_catalogue_redshift_not_the_truth_digits():
    """The forward model hands the observer the redshift to 0.01 (what a catalogue gives), not more."""
    from mockzgrad.observation.grism.forward import catalogue_redshift

    assert catalogue_redshift(3.0637) == pytest.approx(3.06)
    assert abs(catalogue_redshift(1.4951) - 1.4951) <= 0.005
