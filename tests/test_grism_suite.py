"""Grism suites end to end: NIRISS mocks -> extracted line maps -> wang2022 -> a correction curve.

The noise-free check is the issue's gradient test (PSF FWHM 0.01", NIRISS z = 3.06, wang2022:
grad_z within 0.005 dex/kpc); the suite runs the shipped NIRISS example through
``mockzgrad suite`` and ``mockzgrad curves`` (the issue's "Done when").
"""

import dataclasses
import functools
import json
import sqlite3
import tomllib
from pathlib import Path

import numpy as np
import pytest

from mockzgrad.cli import main
from mockzgrad.config import config_from_dict, load_recipe
from mockzgrad.observation import observe
from mockzgrad.observation.grism.forward import grism_scene
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.grism_extract import extract_line_maps
from mockzgrad.recovery.pipeline import recover

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "niriss_z3.toml"


def _config(**changes):
    d = tomllib.loads(EXAMPLE.read_text())
    d["noise"]["enabled"] = False
    d["instrument"]["psf"]["fwhm"] = 0.01
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = d
        for p in path:
            node = node[p]
        node[key] = value
    return config_from_dict(d)


#: VAR of the noise-free gradient mocks: noise.snr = 30, the shipped NIRISS suite's depth (Wang et al. 2022 had
#: >= 50 Voronoi bins of [OIII] S/N 10). At the example's noise.snr = 10 the fitted-velocity extraction leaves
#: 4 bins, and even the TRUE line maps with those variances give +0.0550 for +0.05 (measured 2026-12-06), so
#: there the test could not tell a good extraction from a bad one; at 30: 49-59 bins, truth maps +0.0520 /
#: -0.0511 (test_the_truth_maps_recover_the_gradient_at_this_depth).
GRADIENT_SNR = 30.0


@functools.lru_cache(maxsize=None)
def _mock_and_maps(grad, velocities):
    """Noise-free NIRISS z = 3.06 mock (PSF 0.01", noise.snr = GRADIENT_SNR) and its extracted maps."""
    cfg = _config(**{"galaxy.metallicity.grad_z": grad, "noise.snr": GRADIENT_SNR})
    return cfg, extract_line_maps(observe(cfg, keep_noise_free=False), cfg.galaxy.redshift, velocities=velocities)


def _truth_maps(cfg, names):
    """The mock's own (PSF-convolved) line maps: the slices of its scene nearest each line, summed."""
    scene = grism_scene(cfg)
    waves = np.array([LINES[n].wavelength for n in cfg.lines.lines]) * (1 + cfg.galaxy.redshift)
    nearest = np.argmin(np.abs(scene.waves[:, None] - waves[None, :]), axis=1)
    per_line = {n: scene.cube[nearest == k].sum(axis=0) for k, n in enumerate(cfg.lines.lines)}
    per_line["OII_3727"] = per_line["OII_3727"] + per_line.pop("OII_3730")  # the map is the doublet's total
    return {n: per_line[n] for n in names}


def _xfail_none(measured):
    return pytest.mark.xfail(strict=True, reason=f"velocities='none' on a rotating disk, measured {measured}: "
                             "the unmodelled line-of-sight velocities move the bright [OIII] core's light into the "
                             "faint outer Hbeta that shares its trace (Hbeta/truth 1.16-1.30 at 0.3-0.5\"; Hgamma "
                             "0.53-0.92 beyond 0.4\"), so Hgamma/Hbeta falls outward and the A_V fit rises "
                             "outward (grism_extract notes)")


@pytest.mark.slow
@pytest.mark.parametrize("grad, velocities", [
    (-0.05, "rotation"),
    (0.05, "rotation"),
    pytest.param(-0.05, "none", marks=_xfail_none(-0.0231)),
    pytest.param(0.05, "none", marks=_xfail_none(0.0752)),
])
def test_noise_free_niriss_mock_recovers_the_gradient(grad, velocities):
    """Issue 16: wang2022 on a noise-free NIRISS z = 3 mock with a negligible PSF, within 0.005 dex/kpc.

    The mock rotates (sigma0 and an exponential-disk rotation curve); with fitted ring velocities and line
    width (``velocities="rotation"``) measured +0.0513 / -0.0529; without velocities (``"none"``, the
    default: see DEFAULT_VELOCITIES for why) +0.0752 / -0.0231 (strict xfails).
    """
    _, maps = _mock_and_maps(grad, velocities)
    assert maps.provenance["velocities"] == velocities
    result = recover(maps, load_recipe("wang2022"), rng=np.random.default_rng(1))
    assert result.grad_z == pytest.approx(grad, abs=0.005)


@pytest.mark.slow
@pytest.mark.parametrize("grad", [-0.05, 0.05])
def test_the_truth_maps_recover_the_gradient_at_this_depth(grad):
    """The premise of the test above: the mock's own line maps, with the extraction's variances (so the same
    Voronoi bins), recover grad_z within 0.005 (measured +0.0520 / -0.0511; at noise.snr = 10, 4 bins: +0.0550)."""
    cfg, maps = _mock_and_maps(grad, "rotation")
    truth = _truth_maps(cfg, maps.names)
    flux = np.stack([np.where(np.isfinite(maps.flux[k]), truth[n], np.nan) for k, n in enumerate(maps.names)])
    result = recover(dataclasses.replace(maps, flux=flux), load_recipe("wang2022"), rng=np.random.default_rng(1))
    assert len(result.bins) >= 20
    assert result.grad_z == pytest.approx(grad, abs=0.005)


#: Annuli (sky radius from the [OIII] centroid, arcsec) of the Hgamma/Hbeta profile test; together they hold
#: ~95 % of the [OIII] flux of the mock (r_eff 1.5 kpc = 0.19").
HG_HB_ANNULI = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
#: Allowed |extracted / true - 1| of Hgamma/Hbeta per annulus. The fitted-velocity model leaves an Hbeta rms
#: residual of 0.35-0.46 % of the data peak (grism_extract notes); in the 0.4-0.5" annulus, where Hbeta's
#: surface brightness is ~2 % of its peak, that is ~20-25 % per pixel, averaging down over the annulus' ~300
#: pixels to ~1.4 %; measured: <= 0.33 % in every annulus. Without velocities: 7 % at
#: 0.2-0.3", 17 % at 0.3-0.4", 29 % at 0.4-0.5".
HG_HB_TOLERANCE = 0.02


@pytest.mark.slow
@pytest.mark.parametrize("velocities", ["rotation", pytest.param("none", marks=pytest.mark.xfail(
    strict=True, reason="measured: Hgamma/Hbeta 7 % low at 0.2-0.3\", 17 % at 0.3-0.4\", 29 % at 0.4-0.5\" "
    "(unmodelled line-of-sight velocities; grism_extract notes)"))])
def test_noise_free_extracted_hgamma_over_hbeta_is_flat(velocities):
    """Noise-free and dust-free, the mock's Hgamma/Hbeta is Case B everywhere; the extracted ratio, summed in
    annuli, must follow the truth's within HG_HB_TOLERANCE out to 0.5" (2.6 r_eff): the defect that turned
    into outward-rising A_V in wang2022 (Hgamma/Hbeta 0.47 -> 0.33 at 0.4-0.5" without velocities).
    Not a filter-edge effect: Hgamma (1.763 um, on F200W's blue taper) alone is within 0.5 % of the truth
    in every annulus with fitted velocities, and at z = 3.2 (Hgamma mid-filter) the velocity-free
    extraction falls the same way."""
    cfg, maps = _mock_and_maps(0.05, velocities)
    truth = _truth_maps(cfg, ("Hg", "Hb", "OIII_5008"))
    n = truth["Hb"].shape[0]
    y, x = np.mgrid[:n, :n]
    ref = truth["OIII_5008"]
    r = np.hypot(x - (ref * x).sum() / ref.sum(), y - (ref * y).sum() / ref.sum()) * cfg.instrument.pixel_scale
    hg, hb = (np.nan_to_num(maps.flux[maps.index(k)]) for k in ("Hg", "Hb"))
    seen = np.isfinite(maps.flux[maps.index("Hb")])
    for lo, hi in zip(HG_HB_ANNULI[:-1], HG_HB_ANNULI[1:]):
        ring = seen & (r >= lo) & (r < hi)
        want = truth["Hg"][ring].sum() / truth["Hb"][ring].sum()
        assert hg[ring].sum() / hb[ring].sum() == pytest.approx(want, rel=HG_HB_TOLERANCE), (lo, hi)


@pytest.mark.slow
@pytest.mark.parametrize("grad", [-0.05, 0.05])
def test_noise_free_niriss_mock_without_line_velocities_recovers_the_gradient(grad):
    """As above with sigma0 = 0 and no rotation (what the extraction models): within 0.005 dex/kpc."""
    cfg = _config(**{"galaxy.metallicity.grad_z": grad, "galaxy.sigma0": 0.0})
    cfg = cfg.replace(**{"galaxy.rotation.log_mbary": 6.0})
    maps = extract_line_maps(observe(cfg, keep_noise_free=False), cfg.galaxy.redshift, velocities="none")
    result = recover(maps, load_recipe("wang2022"), rng=np.random.default_rng(1))
    assert result.grad_z == pytest.approx(grad, abs=0.005)


SUITE = """
[suite]
name = "niriss_small"
seed = 1606
n_mocks = 6

[fixed]
base = "{base}"

[grid]
"galaxy.metallicity.grad_z" = [-0.1]  # curves need >= 5 mocks per |grad_z| group
"noise.snr" = [50.0]

[sample]
"galaxy.r_eff" = {{dist = "uniform", low = 1.0, high = 2.0}}
"galaxy.inclination" = {{dist = "uniform", low = 20.0, high = 50.0}}

[recovery]
recipe = "wang2022"
"""


@pytest.mark.slow
def test_grism_suite_gives_a_correction_curve(tmp_path):
    """6 noisy NIRISS mocks through `mockzgrad suite` then `mockzgrad curves`: sensible ratios, a curve file."""
    (tmp_path / "s.toml").write_text(SUITE.format(base=EXAMPLE.as_posix()))
    run = tmp_path / "run"
    assert main(["suite", str(tmp_path / "s.toml"), "-o", str(run), "--workers", "2", "--no-progress"]) == 0
    with sqlite3.connect(run / "results.sqlite") as db:
        rows = db.execute("SELECT status, grad_z_true, grad_z_measured, n_bins, x_resolution FROM mocks").fetchall()
    assert len(rows) == 6 and all(r[0] == "ok" for r in rows)
    # the sign survives and beam smearing only flattens (measured 1.13, 1.04 at x = 5.0, 3.2). The noisy
    # positive-gradient bias (bins drawn on the noisy [OIII] map) is fixed and tested in test_grism_unbiased.py;
    # the extraction's unmodelled line velocities still bias small outer bins (see that module).
    ratios = np.array([r[2] / r[1] for r in rows])
    assert np.all((ratios > 0) & (ratios < 1.5)), rows
    assert all(3 <= r[3] < 500 for r in rows), rows
    curves = tmp_path / "curves.ecsv"
    assert main(["curves", str(run), "-o", str(curves)]) == 0
    text = curves.read_text()
    assert "wang2022" in text or "niriss" in text.lower()
    meta = [line for line in text.splitlines() if line.startswith("#")]
    assert meta and json.dumps(meta)


@pytest.mark.slow
def test_line_totals_with_a_continuum_of_ew_100_a_are_within_2_percent():
    """Issue 16: a flat continuum of rest EW 100 A on the NIRISS mock (noise-free, no kinematics) moves no
    line total by more than 2 % from the continuum-free extraction, with line-free continuum templates
    (3 re-solves; the direct images themselves, line light included, leave [NeIII] 6.5 % high)."""
    cfg = _config(**{"galaxy.sigma0": 0.0}).replace(**{"galaxy.rotation.log_mbary": 6.0})
    with_cont = cfg.replace(**{"instrument.grism.continuum": "flat", "instrument.grism.continuum_ew": 100.0})
    bare = extract_line_maps(observe(cfg, keep_noise_free=False), cfg.galaxy.redshift, velocities="none")
    got = extract_line_maps(observe(with_cont, keep_noise_free=False), cfg.galaxy.redshift, velocities="none", clean_direct=3)
    assert got.names == bare.names and len(got.names) == 5
    for name in bare.names:
        total = np.nansum(got.flux[got.index(name)])
        assert total == pytest.approx(np.nansum(bare.flux[bare.index(name)]), rel=0.02), name
