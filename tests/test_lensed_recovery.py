"""Source-plane recovery of lensed mocks with the observer's lens model."""

from __future__ import annotations

import numpy as np
import pytest

from mockzgrad.config import MockConfig, load_recipe
from mockzgrad.errors import ConfigError, DataError
from mockzgrad.observation.ifu import build_cube
from mockzgrad.products.lens import observer_lens
from mockzgrad.recovery import recover
from mockzgrad.recovery.lensing import fit_source_geometry

#: noise-free, PSF 0.01", a compact disk whose major axis (PA 90) lies along the lens's stretch (east)
BASE = MockConfig(seed=1).replace(**{"instrument.psf.fwhm": 0.01, "noise.enabled": False, "galaxy.r_eff": 0.8,
                                     "galaxy.pa": 90.0, "instrument.pixel_scale": 0.025})
#: monotonic diagnostics only: no branch choice in the way of the geometry under test
RECIPE = load_recipe("lee2026").replace(**{"metallicity.diagnostics": ["S25_O32", "S25_Ne3O2"]})
LENSED = RECIPE.replace(**{"lensing.use": True})


def _observed(cfg):
    cube = build_cube(cfg)
    return cube, observer_lens(cfg, cube.data.shape[1], cfg.instrument.pixel_scale)


@pytest.fixture(scope="module")
def stretched():
    """mu_t = 5 (along east), mu_r = 1: kappa = gamma1 = 0.4."""
    return _observed(BASE.replace(**{"lensing.kind": "constant", "lensing.kappa": 0.4, "lensing.gamma1": 0.4}))


def test_round_trip_recovers_the_source_plane_gradient(stretched):
    cube, lens = stretched
    assert cube.truth["mu_t"] == pytest.approx(5.0) and cube.truth["mu_r"] == pytest.approx(1.0)
    result = recover(cube, LENSED, lens=lens)
    assert abs(result.grad_z - cube.truth["grad_z"]) < 0.005
    assert result.geometry["pa"] == pytest.approx(90.0, abs=1.0)


def test_without_the_lens_radii_are_stretched(stretched):
    """Image-plane analysis: the stretch mu_t along the major axis makes every radius mu_t times larger,
    so the measured gradient is the true one over mu_t (same sign), to 10 %."""
    cube, _ = stretched
    result = recover(cube, RECIPE)
    ratio = result.grad_z / cube.truth["grad_z"]
    assert ratio > 0
    assert ratio == pytest.approx(1.0 / cube.truth["mu_t"], rel=0.10)


@pytest.mark.parametrize("eps", [0.1, -0.1])
def test_lens_model_error_scales_the_gradient(eps):
    """Observer deflection (1 + eps) alpha, constant kappa: radii scale by (1 - kappa (1 + eps)) / (1 - kappa)."""
    kappa = 0.3
    cfg = BASE.replace(**{"lensing.kind": "constant", "lensing.kappa": kappa})
    cube, lens_true = _observed(cfg)
    lens_bad = observer_lens(cfg.replace(**{"lensing.observer_model": "scaled", "lensing.observer_eps": eps}),
                             cube.data.shape[1], cfg.instrument.pixel_scale)
    g_true = recover(cube, LENSED, lens=lens_true).grad_z
    g_bad = recover(cube, LENSED, lens=lens_bad).grad_z
    assert g_bad / g_true == pytest.approx((1 - kappa) / (1 - kappa * (1 + eps)), rel=0.01)


def test_lens_given_to_unlensed_recipe_and_missing_lens(stretched):
    cube, lens = stretched
    with pytest.raises(ConfigError, match="not lensed"):
        recover(cube, RECIPE, lens=lens)
    with pytest.raises(ConfigError, match="lens model"):
        recover(cube, LENSED)
    small = observer_lens(BASE.replace(**{"lensing.kind": "constant", "lensing.kappa": 0.1}), 11, 0.025)
    with pytest.raises(DataError, match="does not match"):
        recover(cube, LENSED, lens=small)


def test_source_plane_gaussian_fit_recovers_an_ellipse():
    """A Gaussian sampled at scattered source-plane points: centre, axis ratio and PA come back."""
    rng = np.random.default_rng(3)
    bx, by = rng.uniform(-1, 1, (40, 40)), rng.uniform(-1, 1, (40, 40))
    pa, q, sa = 30.0, 0.5, 0.3
    t = np.radians(pa)
    u = (bx - 0.1) * np.sin(t) + (by + 0.05) * np.cos(t)
    v = -(bx - 0.1) * np.cos(t) + (by + 0.05) * np.sin(t)
    f = np.exp(-0.5 * ((u / sa) ** 2 + (v / (q * sa)) ** 2))
    g = fit_source_geometry(f, np.full_like(f, 0.01), bx, by)
    assert (g.x_offset, g.y_offset) == pytest.approx((0.1, -0.05), abs=1e-6)
    assert g.axis_ratio == pytest.approx(q, rel=1e-5) and g.pa == pytest.approx(pa, abs=1e-3)


def test_lensed_recipes_ship():
    for name in ("wang2017_lensed", "wang2022_lensed"):
        r = load_recipe(name)
        assert r.lensing.use and r.recipe.name == name
    assert load_recipe("wang2022").lensing is None


def test_cli_cube_lens_file_recover_and_lens_check(tmp_path, capsys):
    from mockzgrad.cli import main
    from mockzgrad.config import save_config
    from mockzgrad.config.toml_io import dumps_toml

    cfg = BASE.replace(**{"instrument.pixel_scale": 0.05, "lensing.kind": "constant", "lensing.kappa": 0.2,
                          "lensing.gamma1": 0.1})
    save_config(cfg, tmp_path / "lensed.toml")
    (tmp_path / "lensed_recipe.toml").write_text(dumps_toml(LENSED.to_dict()))
    cube = tmp_path / "lensed.fits"
    assert main(["cube", str(tmp_path / "lensed.toml"), "-o", str(cube)]) == 0
    lens = tmp_path / "lensed_lens.fits"
    assert lens.exists()
    assert main(["lens-check", str(tmp_path / "lensed.toml")]) == 0
    assert "source plane" in capsys.readouterr().out
    out = tmp_path / "r.json"
    assert main(["recover", str(cube), "--recipe", str(tmp_path / "lensed_recipe.toml"), "--lens", str(lens),
                 "-o", str(out)]) == 0
    assert out.exists()
    capsys.readouterr()
    assert main(["recover", str(cube), "--recipe", str(tmp_path / "lensed_recipe.toml"), "-o", str(out),
                 "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--lens" in err and len(err.splitlines()) == 1
    assert main(["recover", str(cube), "--lens", str(lens), "-o", str(out), "--overwrite"]) == 2
    assert "not lensed" in capsys.readouterr().err


def test_profile_and_json_name_the_planes(stretched):
    """Lensed: radii and sector azimuths are source-plane (the axis, the JSON's geometry and the figure
    note say so); unlensed results carry neither."""
    from mockzgrad.recovery.figures import profile_figure

    cube, lens = stretched
    lensed = recover(cube, LENSED.replace(**{"binning.sectors": True}), lens=lens)
    fig = profile_figure(lensed, n_draws=0)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "source-plane radius [kpc]"
    assert any("source plane" in t.get_text() for t in ax.texts)
    planes = lensed.to_dict()["geometry"]["planes"]
    assert planes["radius"].startswith("source plane") and planes["sector_azimuth"].startswith("source plane")
    plain = recover(cube, RECIPE)
    ax = profile_figure(plain, n_draws=0).axes[0]
    assert ax.get_xlabel() == "deprojected radius [kpc]" and not ax.texts
    assert "planes" not in plain.geometry


def _folded_azimuth(bx, by, geo):
    """Disk azimuth (deg, folded to [0, 90]) of source-plane offsets by an explicit rotation."""
    t = np.radians(geo["pa"])
    dx, dy = bx - geo["x_offset"], by - geo["y_offset"]
    u = dx * np.sin(t) + dy * np.cos(t)
    v = -dx * np.cos(t) + dy * np.sin(t)
    return np.degrees(np.arctan2(np.abs(v) / geo["axis_ratio"], np.abs(u)))


def test_sectors_follow_the_source_plane_azimuth(stretched):
    """Lensed sectors: every spaxel's sector holds the azimuth of its ray-traced centre about the
    source-plane major axis. The lens (kappa = gamma1 = 0.4) maps theta to beta = (0.2 x, y), so the
    image-plane azimuth of the same spaxels is much smaller: the test would fail on it."""
    from mockzgrad.recovery.frontend import cube_front_end

    cube, lens = stretched
    recipe = LENSED.replace(**{"binning.sectors": True})
    front = cube_front_end(cube, recipe, lens=lens)
    b = front.binning
    x1, y1 = cube.offsets()
    xx, yy = np.meshgrid(x1, y1)
    geo = front.geometry.__dict__
    phi_src = _folded_azimuth((1.0 - 0.4 - 0.4) * xx, (1.0 - 0.4 + 0.4) * yy, geo)
    phi_img = _folded_azimuth(xx, yy, geo)
    lab = b.labels
    used = lab >= 0
    lo, hi = b.sector[lab[used], 0], b.sector[lab[used], 1]
    in_sector = (phi_src[used] >= lo - 1e-9) & (phi_src[used] <= hi + 1e-9)
    assert used.sum() > 50 and in_sector.all()
    img_in = (phi_img[used] >= lo) & (phi_img[used] <= hi)
    assert img_in.mean() < 0.8  # the image-plane azimuth puts many spaxels elsewhere


def _lensed_line_maps(kappa, gamma1, n=81, scale=0.03, z_red=3.06):
    """Noise-free line maps (unit noise scale) of an exponential disk (PA 90, b/a 0.75, scale length 0.08")
    seen through a constant lens: each pixel's surface brightness is the source's at
    beta = ((1 - kappa - gamma1) x, (1 - kappa + gamma1) y); line ratios from Bian et al. 2018."""
    from mockzgrad.physics.calibrations import get_diagnostic
    from mockzgrad.physics.cosmology import kpc_per_arcsec
    from mockzgrad.products.linemaps import LineMaps

    names = ("OII_3727", "NeIII_3870", "Hb", "OIII_5008")
    c = (np.arange(n) - n // 2) * scale
    xx, yy = np.meshgrid(-c, c)  # x grows to the east (left), as LineMaps.offsets
    bx, by = (1.0 - kappa - gamma1) * xx, (1.0 - kappa + gamma1) * yy
    r_arcsec = np.hypot(bx, by / 0.75)  # PA 90: the major axis is east-west
    z = np.clip(8.1 - 0.05 * (r_arcsec * kpc_per_arcsec(z_red) - 1.0), 7.82, 8.38)
    oiii = np.exp(-r_arcsec / 0.08)
    log = {k: get_diagnostic(k).log_ratio(z) for k in ("B18_R3", "B18_O32_inv", "B18_Ne3O2_inv")}
    oii = oiii / 10 ** log["B18_O32_inv"]
    flux = np.stack([oii, oii * 10 ** log["B18_Ne3O2_inv"], oiii / 10 ** log["B18_R3"], oiii])
    psf = {"PSF_KIND": "gaussian", "PSF_FWHM": 0.01}
    return LineMaps(names=names, flux=flux, variance=np.full(flux.shape, (1e-3) ** 2), pixel_scale=scale,
                    psfs={k: psf for k in names}, redshift=z_red, blends={"OII_3727": ("OII_3727", "OII_3730")})


def test_maps_front_end_sectors_follow_the_source_plane_azimuth():
    """Line maps (the grism's product): the maps front end hands the ray-traced spaxel centres to the
    sectors, so every spaxel's sector holds its source-plane azimuth; lens kappa = gamma1 = 0.4 maps theta
    to beta = (0.2 x, y), so the image-plane azimuth puts many spaxels in another sector."""
    from mockzgrad.physics.lensing import ConstantLens
    from mockzgrad.products.lens import sample_lens
    from mockzgrad.recovery.maps_frontend import maps_front_end

    maps = _lensed_line_maps(0.4, 0.4)
    lens = sample_lens(ConstantLens(0.4, 0.4, 0.0), maps.shape, maps.pixel_scale,
                       {"observer_model": "truth", "lens_kind": "constant"})
    recipe = load_recipe("wang2022_lensed").replace(**{"binning.sectors": True})
    front = maps_front_end(maps, recipe, lens=lens)
    b = front.binning
    geo = front.geometry.__dict__
    assert geo["pa"] == pytest.approx(90.0, abs=2.0) and geo["axis_ratio"] == pytest.approx(0.75, abs=0.05)
    xx, yy = np.meshgrid(*maps.offsets())
    phi_src = _folded_azimuth(0.2 * xx, yy, geo)
    phi_img = _folded_azimuth(xx, yy, geo)
    used = b.labels >= 0
    lo, hi = b.sector[b.labels[used], 0], b.sector[b.labels[used], 1]
    assert used.sum() > 50 and b.n_bins > 6
    assert ((phi_src[used] >= lo - 1e-9) & (phi_src[used] <= hi + 1e-9)).all()
    assert ((phi_img[used] >= lo) & (phi_img[used] <= hi)).mean() < 0.8
