"""recover() on LineMaps: the maps front end, its errors, and the CLI."""

import json

import numpy as np
import pytest

from mockzgrad.config import MockConfig, load_recipe
from mockzgrad.errors import DataError, RecoveryError
from mockzgrad.observation.ifu import build_cube
from mockzgrad.physics.lines import LINES
from mockzgrad.products.linemaps import LineMaps
from mockzgrad.recovery import geometry as geomod
from mockzgrad.recovery.pipeline import recover

Z = 2.0
GRAD = -0.1
# (window centre in rest Angstrom or None = the line's own, half-width km/s, blend)
WINDOWS = {"OII_3727": (3728.5, 800.0, ("OII_3727", "OII_3730")), "NeIII_3870": (None, 600.0, None),
           "Hb": (None, 600.0, None), "OIII_4960": (None, 600.0, None), "OIII_5008": (None, 600.0, None)}


class _NoTruth(dict):
    def __getitem__(self, key):
        raise AssertionError("recovery read the truth")

    get = items = keys = values = __iter__ = __getitem__


@pytest.fixture(scope="module")
def maps():
    """Noise-free line maps of a seeing-free IFU mock: each line's channels summed (the [OII] doublet as one blend)."""
    cfg = MockConfig().replace(**{
        "galaxy.metallicity.grad_z": GRAD, "instrument.psf.fwhm": 0.02, "noise.enabled": False, "noise.snr": 1e4,
        "seed": 7, "galaxy.redshift": Z, "lines.generating_set": ["B18_R3", "B18_O32_inv", "B18_Ne3O2_inv"],
        "instrument.pixel_scale": 0.065, "instrument.oversample": 3})
    cube = build_cube(cfg)
    flux, var, blends = [], [], {}
    for n, (w, hw, b) in WINDOWS.items():
        f, e = geomod.line_map(cube, (w or LINES[n].wavelength) * (1 + Z), half_width_kms=hw)
        flux.append(f)
        var.append(e**2)
        if b:
            blends[n] = b
    return LineMaps(names=tuple(WINDOWS), flux=np.array(flux), variance=np.array(var), pixel_scale=cube.pixel_scale,
                    psfs={n: dict(cube.psf) for n in WINDOWS}, redshift=Z, blends=blends)


def test_wang2022_on_noise_free_maps_recovers_the_gradient(maps):
    maps.truth = _NoTruth()
    res = recover(maps, "wang2022")
    assert res.status == "ok", res.reason
    assert res.grad_z == pytest.approx(GRAD, abs=0.005)
    assert res.redshift == Z


def test_gating_line_without_a_map_names_it(maps):
    recipe = load_recipe("wang2022").replace(**{"gating.line": "Ha"})
    with pytest.raises(RecoveryError, match="gating line Ha"):
        recover(maps, recipe)


def test_blended_halpha_needs_nii_ha():
    shape = (2, 15, 15)
    yy, xx = np.mgrid[:15, :15] - 7
    f = np.exp(-(xx**2 + yy**2) / 8.0)
    m = LineMaps(names=("Hb", "Ha"), flux=np.stack([f, 2.86 * f]), variance=np.full(shape, 1e-4), pixel_scale=0.1,
                 psfs={"Hb": {"PSF_KIND": "gaussian", "PSF_FWHM": 0.1}, "Ha": {"PSF_KIND": "gaussian", "PSF_FWHM": 0.1}},
                 redshift=1.0, blends={"Ha": ("Ha", "NII_6550", "NII_6585")})
    recipe = load_recipe("lee2026").replace(**{"metallicity.diagnostics": ["PP04_N2_cubic"], "gating.line": "Ha"})
    with pytest.raises(RecoveryError):
        recover(m, recipe)


def test_maps_without_variance_are_a_data_error(maps):
    bad = LineMaps(names=maps.names, flux=maps.flux, variance=np.zeros_like(maps.flux), pixel_scale=maps.pixel_scale,
                   psfs=maps.psfs, redshift=Z, blends=maps.blends)
    with pytest.raises(DataError, match="VAR"):
        recover(bad, "wang2022")


def test_cli_recover_reads_line_maps(maps, tmp_path):
    from mockzgrad.cli import main

    maps.truth = {}
    maps.write(tmp_path / "maps.fits")
    assert main(["recover", str(tmp_path / "maps.fits"), "--recipe", "wang2022", "-o", str(tmp_path / "r.json")]) == 0
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["grad_z"] == pytest.approx(GRAD, abs=0.005)
