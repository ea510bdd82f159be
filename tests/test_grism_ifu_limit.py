"""The IFU limit of slitless extraction (issue 16: "dispersion x100 -> the IFU line map of the same cube").

A grism exposure places the light of wavelength lambda from sky position s at s + (lambda - wave_ref) /
d along the dispersion (d: Angstrom per pixel). The extraction puts each line at its rest wavelength
x (1 + z), so every part of a line that the source moves off it (rotation, sigma0, a doublet's assumed
ratio) lands displaced by delta = (lambda - lambda_line) / d pixels. With d x 100 delta is ~0.002
pixel, the slitless image of an isolated line is the narrow-band image, and the extracted map must
equal the line map of the cube the mock dispersed (the same PSF-convolved scene summed over the line's
channels) to 0.1 % of its peak. To first order the difference is delta times the map's gradient, so it
falls as 1/d: x10 must be ten times x100 (at the native dispersion the same mock is ~6 % off).

The mock: NIRISS z = 3.06, [OII] 3727,3730 in F150W and [OIII] 4960,5008 in F200W (one map each, so no
two maps' traces nearly coincide at coarse dispersion), both grisms, noise-free, no continuum, the
default rotation and sigma0. ``wave_oversample`` 4096 keeps the fine grid's channel quantisation (step/2
= 0.5 A at x100) well below the kinematic shifts (lambda vc sin(i) / c ~ 8 A).
"""

import numpy as np
import pytest

from mockzgrad.config import MockConfig
from mockzgrad.observation.grism.forward import build_grism, grism_scene
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.grism_extract import extract_line_maps

Z = 3.06
LINES_IN = ("OII_3727", "OII_3730", "OIII_4960", "OIII_5008")
MAPS = {"OII_3727": ("OII_3727", "OII_3730"), "OIII_5008": ("OIII_5008",)}
EXPOSURES = [{"grism": g, "filter": f, "pa": 0.0, "exptime": 3000.0}
             for f in ("F150W", "F200W") for g in ("GR150C", "GR150R")]


def _cfg(dispersion_scale):
    return MockConfig().replace(**{
        "seed": 11, "galaxy.redshift": Z, "galaxy.r_eff": 1.2, "galaxy.inclination": 40.0,
        "lines.reference_line": "OIII_5008", "lines.lines": list(LINES_IN), "lines.generating_set": ["B18_O32_inv"],
        "instrument.kind": "grism", "instrument.pixel_scale": 0.06, "instrument.fov": 2.4,
        "instrument.oversample": 2, "instrument.psf.fwhm": 0.12, "noise.enabled": False, "noise.snr": 5.0,
        "instrument.grism": {"preset": "niriss_gr150", "exposures": EXPOSURES, "wave_oversample": 4096,
                             "dispersion_scale": dispersion_scale}})


def _ifu_maps(cfg):
    """Line maps of the dispersed scene: each channel goes to the line nearest to it, summed per map."""
    scene = grism_scene(cfg)
    waves = np.array([LINES[n].wavelength * (1 + Z) for n in LINES_IN])
    nearest = np.array(LINES_IN)[np.argmin(np.abs(scene.waves[:, None] - waves[None, :]), axis=1)]
    return {m: scene.cube[np.isin(nearest, lines)].sum(axis=0) for m, lines in MAPS.items()}


def _max_error(dispersion_scale):
    """max |extracted - IFU map| / IFU peak, per map."""
    cfg = _cfg(dispersion_scale)
    got = extract_line_maps(build_grism(cfg, keep_noise_free=False), Z, velocities="none", continuum=False, segmentation=1e-6,
                            maps=tuple(MAPS))
    out = {}
    for name, ifu in _ifu_maps(cfg).items():
        flux = got.flux[got.index(name)]
        assert np.isfinite(flux).sum() > 0.7 * flux.size  # the segmentation: >= 1e-6 of the direct peak
        out[name] = float(np.nanmax(np.abs(flux - ifu)) / ifu.max())
    return out


@pytest.fixture(scope="module")
def errors():
    return {k: _max_error(k) for k in (10.0, 100.0)}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_coarse_dispersion_extraction_is_the_ifu_line_map(errors, name):
    """Dispersion x100: extracted map = the cube's line map to 0.1 % of its peak, every pixel."""
    assert errors[100.0][name] < 1e-3, errors


@pytest.mark.parametrize("name", sorted(MAPS))
def test_the_difference_falls_as_one_over_the_dispersion(errors, name):
    """x10 / x100 = 10 to first order in the shift; the second-order part, ~ the x10 shift (<= 0.03 pixel)
    over the map's scale (PSF-convolved disk, ~3 pixels), is below 10 %."""
    assert errors[10.0][name] / errors[100.0][name] == pytest.approx(10.0, rel=0.1), errors
