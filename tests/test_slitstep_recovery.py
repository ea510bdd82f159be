"""Recovery of slit-stepped (MSA-3D-like) cubes: catalogue geometry, the effective kernel, lines in gaps.

- ``geometry.mode = "catalog"`` (ju_msa3d, S1 Sect. 3.2): PA and b/a are
  exactly the product's imaging catalogue (the CATALOG extension, through a
  FITS round trip), perturbed catalogues included; the centre is fitted; a
  product without a catalogue is a one-line DataError.
- A cube carrying its effective kernel (``psf_image``) is recovered with
  that image as its PSF; the gradient of a noise-free mock stays within
  0.01 dex/kpc (the tolerance of tests/test_slitstep.py).
- Recipe lines in a gap: a RecoveryError naming the lines and the channels' span.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from mockzgrad.config import MockConfig, SlitstepConfig, load_recipe
from mockzgrad.errors import DataError, FieldOfViewWarning, RecoveryError
from mockzgrad.observation.psf import ImagePSF
from mockzgrad.observation.slitstep import build_slitstep_cube
from mockzgrad.physics.lines import LINES as CATALOGUE
from mockzgrad.products.cube import read_cube
from mockzgrad.recovery import recover
from mockzgrad.recovery.frontend import check_cube

LINES = {"reference_line": "Ha", "lines": ["NII_6550", "Ha", "NII_6585"], "generating_set": ["PP04_N2_cubic"],
         "reference_flux": 1e-16}
GRAD = -0.05


def _cfg(slitstep=None, **over) -> MockConfig:
    """A noise-free z = 1 disk observed by slit stepping (telescope PSF 0.01" at 1.3 um)."""
    base = {"galaxy.redshift": 1.0, "galaxy.r_eff": 6.0, "galaxy.inclination": 40.0, "galaxy.pa": 30.0,
            "galaxy.metallicity.grad_z": GRAD, "instrument.kind": "slitstep", "instrument.psf.fwhm": 0.01,
            "instrument.fov_flux_fraction": 0.9, "noise.snr_line": "Ha", "noise.snr": 100.0,
            "noise.enabled": False}
    base.update({f"lines.{k}": v for k, v in LINES.items()})
    base.update(over)
    cfg = MockConfig().replace(**base)
    return replace(cfg, instrument=replace(cfg.instrument, slitstep=SlitstepConfig(**(slitstep or {}))))


def _build(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FieldOfViewWarning)
        return build_slitstep_cube(cfg)


@pytest.fixture(scope="module")
def cube():
    return _build(_cfg())


def _true_axis_ratio(inclination_deg: float) -> float:
    """b/a of an infinitely thin disk (the mock's q0 = 0)."""
    return math.cos(math.radians(inclination_deg))


# ---------------------------------------------------------------- catalogue geometry
def test_ju_msa3d_takes_pa_and_axis_ratio_from_the_catalog(cube, tmp_path):
    """Through the CATALOG extension: PA and b/a are the catalogue's to the bit, the centre is fitted."""
    assert load_recipe("ju_msa3d").geometry.mode == "catalog"
    cube.write(tmp_path / "msa.fits")
    back = read_cube(tmp_path / "msa.fits")
    assert back.catalog["pa"] == 30.0
    assert back.catalog["axis_ratio"] == pytest.approx(_true_axis_ratio(40.0), rel=1e-12)
    geo = recover(back, "ju_msa3d").geometry
    assert geo["pa"] == back.catalog["pa"] and geo["axis_ratio"] == back.catalog["axis_ratio"]
    assert geo["inclination"] == pytest.approx(40.0, abs=1e-9)
    # the centre is fitted (the disk is at the field centre; a spaxel is 0.08")
    assert math.isfinite(geo["x_offset_err"]) and math.isfinite(geo["y_offset_err"])
    assert math.hypot(geo["x_offset"], geo["y_offset"]) < 0.02


def test_perturbed_catalog_gives_the_perturbed_values():
    """catalog_pa_error = 12 deg, catalog_axis_ratio_error = -0.1: recovery uses true + error, not the truth."""
    perturbed = _build(_cfg({"catalog_pa_error": 12.0, "catalog_axis_ratio_error": -0.1}))
    assert perturbed.catalog["pa"] == pytest.approx(42.0, abs=1e-12)
    assert perturbed.catalog["axis_ratio"] == pytest.approx(_true_axis_ratio(40.0) - 0.1, abs=1e-12)
    geo = recover(perturbed, "ju_msa3d").geometry
    assert geo["pa"] == pytest.approx(42.0, abs=1e-12)
    assert geo["axis_ratio"] == pytest.approx(_true_axis_ratio(40.0) - 0.1, abs=1e-12)


def test_catalog_geometry_without_a_catalog_is_a_one_line_error(cube):
    bare = replace(cube, catalog={})
    with pytest.raises(DataError, match="geometry.mode = 'catalog'") as err:
        recover(bare, "ju_msa3d")
    assert "\n" not in str(err.value) and "CATALOG" in str(err.value)
    # the same cube with the geometry fitted does not need one
    fit = recover(bare, load_recipe("ju_msa3d").replace(**{"geometry.mode": "fit"}))
    assert fit.status == "ok"


# ---------------------------------------------------------------- the effective kernel
def test_recovery_uses_the_effective_kernel(cube):
    """check_cube returns the PSF image (unit sum, its pixel); an IFU-like cube without one keeps its header PSF."""
    _, psf = check_cube(cube)
    assert isinstance(psf, ImagePSF) and not psf.varies
    assert psf.pixel_scale == cube.psf_image_pixel
    assert float(np.sum(psf.kernel(cube.pixel_scale))) == pytest.approx(1.0, rel=1e-6)
    _, header_psf = check_cube(replace(cube, psf_image=None, psf_image_pixel=None))
    assert not isinstance(header_psf, ImagePSF)


def test_gradient_with_the_effective_kernel(cube):
    """Noise-free, r_eff = 6 kpc, telescope PSF negligible: grad_z within 0.01 dex/kpc with the image PSF."""
    result = recover(cube, "ju_msa3d")
    assert result.status == "ok", result.reason
    assert result.summary()["grad_z_measured"] == pytest.approx(GRAD, abs=0.01)


def test_fitted_geometry_deconvolves_the_effective_kernel(cube):
    """Fitted b/a with the kernel image removed (as a covariance): the disk's cos i, not the blurred shape.

    The 0.26" x 0.12" kernel along (dispersion, slit) makes the observed image of this 0.75" disk rounder;
    deconvolved, b/a is within 0.05 of cos 40 deg (a Gaussian fit to an exponential disk), and the kernel
    image and its elliptical-Gaussian header summary (same FWHMs) give the same b/a within 0.01."""
    rec = load_recipe("ju_msa3d").replace(**{"geometry.mode": "fit"})
    geo = recover(cube, rec).geometry
    header = recover(replace(cube, psf_image=None, psf_image_pixel=None), rec).geometry
    assert geo["axis_ratio"] == pytest.approx(_true_axis_ratio(40.0), abs=0.05)
    assert geo["axis_ratio"] == pytest.approx(header["axis_ratio"], abs=0.01)


# ---------------------------------------------------------------- lines in gaps
def test_recipe_lines_in_a_gap_name_lines_and_channels():
    """Halpha and [NII] in a gap, [SII] observed: ju_msa3d has no usable diagnostic; the error says why."""
    lines = {"lines.lines": ["NII_6550", "Ha", "NII_6585", "SII_6718", "SII_6733"],
             "lines.generating_set": ["PP04_N2_cubic", "C20_S2"], "noise.snr_line": "SII_6718",
             "galaxy.r_eff": 2.0}
    gapped = _build(_cfg({"gaps": [[13050.0, 13250.0]]}, **lines))
    with pytest.raises(RecoveryError) as err:
        recover(gapped, "ju_msa3d", redshift=1.0)
    msg = str(err.value)
    assert "\n" not in msg
    for name in ("Ha", "NII_6585"):  # PP04 N2's lines, at their observed wavelengths
        assert f"{name} at {CATALOGUE[name].wavelength * 2:.0f} A" in msg
    lo, hi = gapped.edges_lo.min(), gapped.edges_hi.max()
    assert f"{lo:.0f}-{hi:.0f} A" in msg


def test_channel_intervals_show_the_gaps():
    """Channels split by gaps give one interval per contiguous run (what the error above lists)."""
    from types import SimpleNamespace

    from mockzgrad.recovery.frontend import _channel_intervals, _not_covered_note

    lo = np.r_[np.arange(10.0, 15.0), np.arange(20.0, 22.0)] * 1000.0
    fake = SimpleNamespace(edges_lo=lo, edges_hi=lo + 1000.0)
    assert _channel_intervals(fake) == [(10000.0, 15000.0), (20000.0, 22000.0)]
    note = _not_covered_note(fake, {"Ha", "NII_6585"}, ("NII_6585",), 1.0)
    assert "not covered: Ha at" in note and "channels only in 10000-15000, 20000-22000 A" in note
