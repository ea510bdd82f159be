"""The observation entry point and the stages every mode shares.

- ``observe`` dispatches on ``instrument.kind``: the IFU mode is
  ``build_cube``; an unregistered kind is refused in one line;
- the pre-PSF scene (source layer) holds every line's analytic flux
  (radial quadrature, :func:`mockzgrad.source.lineflux.analytic_line_totals`);
- the PSF stage conserves every channel's flux;
- the LSF stage: the width of a line's spatially integrated spectrum rises
  in quadrature with ``lsf_sigma``;
- products follow one protocol; the source layer imports nothing above it.
"""

import ast
import dataclasses
import math
import types
from pathlib import Path

import numpy as np
import pytest

from mockzgrad.config import INSTRUMENT_KINDS, MockConfig, x_resolution
from mockzgrad.errors import ConfigError
from mockzgrad.observation import MODES, observe
from mockzgrad.observation.ifu import build_cube, model_cube, plan_ifu, psf_stage
from mockzgrad.observation.lsf import gaussian_line_sigma
from mockzgrad.physics.lines import C_KMS, LINES
from mockzgrad.products import MockCube, Product
from mockzgrad.source.galaxy import resolve_galaxy
from mockzgrad.source.lineflux import analytic_line_totals
from mockzgrad.source.scene import SceneSampling, render_scene

PKG = Path(__file__).resolve().parents[1] / "mockzgrad"


# ---------------------------------------------------------------------- entry point
def test_observe_default_config_is_the_ifu_cube():
    cfg = MockConfig()
    a, b = observe(cfg), build_cube(cfg)
    assert isinstance(a, MockCube)
    for name in ("data", "variance", "noise_free", "edges_lo", "edges_hi"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.truth == b.truth and a.psf == b.psf and a.config_toml == b.config_toml


def test_unknown_kind_refused_in_one_line():
    cfg = types.SimpleNamespace(instrument=types.SimpleNamespace(kind="nosuchmode"))
    with pytest.raises(ConfigError) as err:
        observe(cfg)
    msg = str(err.value)
    assert "\n" not in msg and "instrument.kind = 'nosuchmode'" in msg and "'ifu'" in msg
    # the configuration refuses it before any mode is asked
    with pytest.raises(ConfigError, match="instrument.kind") as err:
        MockConfig().replace(**{"instrument.kind": "nosuchmode"})
    assert "\n" not in str(err.value)


def test_every_configurable_kind_has_a_mode():
    assert set(MODES) == set(INSTRUMENT_KINDS)


def test_products_follow_the_protocol():
    cube = MockCube(data=np.zeros((2, 3, 3)), variance=np.ones((2, 3, 3)), edges_lo=np.array([1.0, 2.0]),
                    edges_hi=np.array([2.0, 3.0]), pixel_scale=0.05, psf={"PSF_KIND": "gaussian"}, lsf_sigma=0.0)
    assert isinstance(cube, Product)
    assert cube.kind == "ifu" and "kind" not in {f.name for f in dataclasses.fields(MockCube)}
    assert not isinstance({"pixel_scale": 0.05}, Product)


def test_truth_x_resolution_is_the_config_conversion_bit_for_bit():
    """config.x_resolution equals 2 r_eff_arcsec / fwhm of the resolved galaxy exactly."""
    for z, h0, fwhm in ((5.0, 70.0, 0.2), (1.3, 67.7, 0.437), (2.71, 73.0, 0.0913)):
        cfg = MockConfig().replace(**{"galaxy.redshift": z, "cosmology.h0": h0, "instrument.psf.fwhm": fwhm})
        model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
        assert x_resolution(cfg) == 2.0 * model.r_eff_arcsec / fwhm


# ---------------------------------------------------------------------- scene
@pytest.fixture(scope="module")
def flagship():
    return MockConfig().replace(**{"noise.enabled": False, "seed": 3})


def test_pre_psf_scene_holds_the_analytic_line_fluxes(flagship):
    """A field wide enough for all the light and one contiguous grid: every
    line's flux equals its radial quadrature (the render's errors: sub-pixel
    sampling of the light, 5-sigma truncation at 6e-7)."""
    cfg = flagship
    model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    waves = np.array([LINES[n].wavelength * (1.0 + model.redshift) for n in cfg.lines.lines])
    edges = np.geomspace(waves.min() * (1 - 3000 / C_KMS), waves.max() * (1 + 3000 / C_KMS), 1200)
    ps, n = 0.05, 181  # 9 arcsec: beyond the radius holding all but 1e-7 of the light
    sampling = SceneSampling(edges_lo=edges[:-1], edges_hi=edges[1:], pixel_scale=ps, n=n, pad=2, n_ext=n + 4,
                             line_sigma=model.sigma0, oversample=4, oversample_outer=2, oversample_radius=2.0)
    scene = render_scene(model, cfg.lines, sampling, rng=np.random.default_rng(0))
    assert scene.cube.shape == (edges.size - 1, n + 4, n + 4)
    assert scene.crop().shape == (edges.size - 1, n, n)
    totals = analytic_line_totals(model, cfg.lines)
    centres = np.sqrt(edges[:-1] * edges[1:])
    nearest = np.argmin(np.abs(centres[:, None] - waves[None, :]), axis=1)
    spec = scene.cube.sum(axis=(1, 2))
    sums = {name: spec[nearest == j].sum() for j, name in enumerate(cfg.lines.lines)}
    # the [OII] doublet is blended (224 km/s apart): compare its sum
    oii = sums.pop("OII_3727") + sums.pop("OII_3730")
    assert oii == pytest.approx(totals["OII_3727"] + totals["OII_3730"], rel=1e-3)
    for name, value in sums.items():
        assert value == pytest.approx(totals[name], rel=1e-3), name


@pytest.mark.parametrize("changes", [{}, {"instrument.psf.ref_wavelength": 25000.0,
                                          "instrument.psf.scaling_exponent": 1.0}],
                         ids=["constant", "varies_with_wavelength"])
def test_psf_stage_conserves_every_channel(flagship, changes):
    cfg = flagship.replace(**changes)
    plan = plan_ifu(cfg)
    assert plan.psf.varies == bool(changes)  # both branches of the stage
    scene = render_scene(plan.model, cfg.lines, plan.sampling, rng=np.random.default_rng(0))
    after = psf_stage(scene.cube, plan)
    before_chan, after_chan = scene.cube.sum(axis=(1, 2)), after.sum(axis=(1, 2))
    # the periodic FFT on the padded field loses nothing; float32 rounding ~1e-7
    np.testing.assert_allclose(after_chan, before_chan, rtol=0, atol=1e-6 * before_chan.max())
    assert after.max() < scene.cube.max()  # and it does smooth


# ---------------------------------------------------------------------- LSF
def test_gaussian_lsf_stage_is_the_quadrature_sum():
    assert gaussian_line_sigma(80.0, 125.0) == math.hypot(80.0, 125.0)
    assert gaussian_line_sigma(80.0, 0.0) == 80.0
    with pytest.raises(ConfigError, match="lsf_sigma"):
        gaussian_line_sigma(80.0, -1.0)


def test_line_width_rises_in_quadrature_with_lsf_sigma():
    """Second moment of the spatially integrated [OIII] 5008 line: rotation,
    sigma0 and the channel width (Sheppard's dv^2/12) are the same for every
    lsf_sigma, so var(lsf) - lsf^2 must not depend on lsf_sigma."""
    cfg = MockConfig().replace(**{
        "lines.lines": ["OIII_5008"], "lines.generating_set": [], "galaxy.metallicity.z0": 8.0,
        "galaxy.inclination": 60.0, "noise.enabled": False, "instrument.spectral.channel_width": 40.0,
        "instrument.spectral.window": 2500.0})
    var = {}
    for lsf_sigma in (0.0, 125.0, 300.0):
        cube, setup = model_cube(cfg.replace(**{"instrument.lsf_sigma": lsf_sigma}), apply_psf=False)
        v = (setup.grid.centres / setup.line_waves[0] - 1.0) * C_KMS
        spec = cube.sum(axis=(1, 2))
        m1 = np.sum(v * spec) / spec.sum()
        var[lsf_sigma] = np.sum((v - m1) ** 2 * spec) / spec.sum()
    base = var[0.0]
    chan = 40.0
    # intrinsic: sigma0^2 + rotation spread + channel width^2 / 12, well above the channel term
    assert base > 80.0**2 + chan**2 / 12
    for lsf_sigma in (125.0, 300.0):
        assert var[lsf_sigma] - lsf_sigma**2 == pytest.approx(base, rel=2e-4), lsf_sigma


# ---------------------------------------------------------------------- layering
def _imported_modules(path: Path, root: Path = PKG.parent) -> set[str]:
    """Dotted names of the package modules a file under ``root`` imports (absolute and relative)."""
    parts = list(path.relative_to(root).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("mockzgrad")}


@pytest.mark.parametrize("path", sorted((PKG / "source").glob("*.py")), ids=lambda p: p.name)
def test_source_layer_imports_nothing_above_it(path):
    bad = {m for m in _imported_modules(path)
           if m.startswith(("mockzgrad.observation", "mockzgrad.products", "mockzgrad.recovery", "mockzgrad.suites"))}
    assert not bad, f"{path.name} imports {bad}"


def test_layer_check_catches_planted_imports(tmp_path):
    planted = tmp_path / "mockzgrad" / "source" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from ..observation.ifu import build_cube\nimport mockzgrad.products.cube\n")
    found = _imported_modules(planted, root=tmp_path)
    assert {"mockzgrad.observation.ifu.build_cube", "mockzgrad.products.cube"} <= found
