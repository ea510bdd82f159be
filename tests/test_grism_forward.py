"""The slitless grism forward model: trace geometry, flux, adjoint, noise, determinism, product I/O, bad input."""

import json
import math
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest

from mockzgrad.config import MockConfig, load_config
from mockzgrad.errors import ConfigError, DataError
from mockzgrad.observation import observe
from mockzgrad.observation.grism.dispersion import GrismDispersion, disperse, disperse_adjoint, make_frame
from mockzgrad.observation.grism.forward import build_grism, exposure_models, grism_scene
from mockzgrad.products.grism import GrismMock, read_grism

EXPOSURES = [{"grism": "GR150C", "filter": "F200W", "pa": 0.0, "exptime": 3000.0},
             {"grism": "GR150R", "filter": "F200W", "pa": 0.0, "exptime": 2000.0}]


def small_cfg(**changes):
    """A z = 3.06 NIRISS mock small enough for tests: [OIII] + Hb in F200W, 40 x 40 pixels of 0.06"."""
    base = {
        "seed": 11, "galaxy.redshift": 3.06, "galaxy.r_eff": 1.2, "galaxy.inclination": 40.0,
        "lines.reference_line": "OIII_5008", "lines.lines": ["Hb", "OIII_4960", "OIII_5008"],
        "lines.generating_set": ["B18_R3"], "instrument.kind": "grism", "instrument.pixel_scale": 0.06,
        "instrument.fov": 2.4, "instrument.oversample": 2, "instrument.psf.fwhm": 0.12,
        "instrument.grism": {"preset": "niriss_gr150", "exposures": EXPOSURES}, "noise.snr": 5.0,
    }
    base.update(changes)
    return MockConfig().replace(**base)


@pytest.fixture(scope="module")
def mock():
    return build_grism(small_cfg())


# --------------------------------------------------------------- geometry
def _model(pa_disp, tilt, n=31, ps=0.05):
    m = GrismDispersion(grism="G", filter="F", pa=0.0, pa_disp=pa_disp, dispersion=20.0, wave_ref=15000.0,
                        tilt=tilt, sens_peak=3.0, sens_lo=13000.0, sens_hi=17000.0, sens_taper=400.0)
    return make_frame(m, n, ps, 13000.0, 17000.0)


@pytest.mark.parametrize("pa_disp", [0.0, 90.0])
@pytest.mark.parametrize("tilt", [0.0, 3.0])
@pytest.mark.parametrize("wave", [13700.0, 15123.4, 16850.0])
def test_monochromatic_point_source_lands_on_the_trace(pa_disp, tilt, wave):
    """Written independently: pa_disp = 0 disperses toward north (+row), 90 toward east (-col)."""
    m = _model(pa_disp, tilt)
    n, c = m.n_direct, 0.5 * (m.n_direct - 1)
    i, j, flux = 9, 20, 2.5e-17
    cube = np.zeros((1, n, n))
    cube[0, i, j] = flux
    img = disperse(cube, [wave], m)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    xc, yc = (img * xx).sum() / img.sum(), (img * yy).sum() / img.sum()
    d = (wave - 15000.0) / 20.0
    if pa_disp == 0.0:  # +x = north = +row, +y = east = -col
        x0, y0 = m.xref + (i - c), m.yref - (j - c)
    else:  # +x = east = -col, +y = south = -row
        x0, y0 = m.xref - (j - c), m.yref - (i - c)
    assert xc == pytest.approx(x0 + d, abs=0.05)
    assert yc == pytest.approx(y0 + d * math.tan(math.radians(tilt)), abs=0.05)
    # S(lambda): 3 on the flat top, raised cosine over the 400 A edges
    edge = min(wave - 13000.0, 17000.0 - wave) / 400.0
    s = 3.0 if edge >= 1 else 3.0 * 0.5 * (1 - math.cos(math.pi * edge))
    assert img.sum() == pytest.approx(flux * s, rel=0.005)


def test_wavelength_solution_inverts_the_trace():
    m = _model(90.0, 2.0)
    w = np.array([13500.0, 15000.0, 16900.0])
    np.testing.assert_allclose(m.wavelength(m.dx(w)), w, rtol=1e-14)
    assert m.dy(16000.0) == pytest.approx(m.dx(16000.0) * math.tan(math.radians(2.0)))


def test_header_round_trip_is_the_observers_calibration():
    m = replace(_model(0.0, 1.0), wave_offset=7.0)
    back = GrismDispersion.from_header(m.to_header(), m.shape)
    assert back == m.observer() and back.wave_offset == 0.0
    with pytest.raises(DataError, match="WAVE_REF"):
        GrismDispersion.from_header({k: v for k, v in m.to_header().items() if k != "WAVE_REF"}, m.shape)


def test_adjoint_of_the_dispersion_operator():
    m = _model(90.0, 0.6, n=17)
    rng = np.random.default_rng(3)
    waves = np.linspace(12800.0, 17200.0, 25)
    x, y = rng.normal(size=(25, 17, 17)), rng.normal(size=m.shape)
    for use_numba in (True, False):
        lhs = float((disperse(x, waves, m, use_numba=use_numba) * y).sum())
        rhs = float((x * disperse_adjoint(y, waves, m, use_numba=use_numba)).sum())
        assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


# --------------------------------------------------------------- forward model
def test_noise_free_flux_is_conserved_per_exposure(mock):
    cfg = small_cfg()
    scene = grism_scene(cfg)
    for exp, (_, _, m) in zip(mock.exposures, exposure_models(cfg, scene.setup.n)):
        expected = float((scene.cube.sum(axis=(1, 2)) * m.sensitivity(scene.waves)).sum())
        assert exp.noise_free.sum() == pytest.approx(expected, rel=1e-6)
        assert expected > 0


def test_orthogonal_grisms_disperse_orthogonally(mock):
    c, r = (GrismDispersion.from_header(e.header, e.shape) for e in mock.exposures)
    assert (r.pa_disp - c.pa_disp) % 180.0 == pytest.approx(90.0)


def test_snr_noise_has_the_stated_variance(mock):
    for exp in mock.exposures:
        z = (exp.sci - exp.noise_free) / np.sqrt(exp.var)
        n = z.size  # Monte Carlo: the mean within 5/sqrt(n), the variance within 5 sqrt(2/n)
        assert abs(z.mean()) < 5 / math.sqrt(n) and abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    # sigma scales as exptime^-1/2 between the two exposures (both cover [OIII])
    s = [math.sqrt(e.var[0, 0]) * math.sqrt(e.exptime) for e in mock.exposures]
    assert s[0] == pytest.approx(s[1], rel=0.05)


def test_detector_noise_poisson_background_read_noise():
    cfg = small_cfg(**{"instrument.grism.noise_model": "detector", "instrument.grism.sensitivity_peak": 3e18,
                       "instrument.grism.background": 0.5, "instrument.grism.read_noise": 12.0})
    m = build_grism(cfg)
    for exp in m.exposures:
        t = exp.exptime
        expected_var = ((np.clip(exp.noise_free, 0, None) + 0.5) * t + 144.0) / t**2
        np.testing.assert_allclose(exp.var, expected_var, rtol=1e-12)
        z = (exp.sci - exp.noise_free) / np.sqrt(exp.var)
        n = z.size
        assert abs(z.mean()) < 5 / math.sqrt(n) and abs(z.var() - 1) < 5 * math.sqrt(2 / n)


def test_same_seed_same_bytes_other_seed_other_noise(mock):
    again = build_grism(small_cfg())
    other = build_grism(small_cfg(seed=12))
    for a, b, o in zip(mock.exposures, again.exposures, other.exposures):
        assert a.sci.tobytes() == b.sci.tobytes() and a.noise_free.tobytes() == b.noise_free.tobytes()
        assert a.sci.tobytes() != o.sci.tobytes()


def test_wavelength_zero_point_error_shifts_the_trace():
    cfg = small_cfg(**{"instrument.grism.wave_offset_sigma": 30.0, "noise.enabled": False})
    m = build_grism(cfg)
    ref = build_grism(small_cfg(**{"noise.enabled": False}))
    for exp, exp0 in zip(m.exposures, ref.exposures):
        off = m.truth["wave_offsets"][exp.name]
        disp = exp.header["DISP"]
        def centroid(e):  # along x, from the field centre's nominal position
            x = np.arange(e.shape[1]) - e.header["XREF"]
            return (e.noise_free.sum(0) * x).sum() / e.noise_free.sum()

        assert centroid(exp) - centroid(exp0) == pytest.approx(-off / disp, abs=0.01)
        assert off != 0.0
        # the observer's calibration is the nominal one (the frame is only padded more)
        drop = ("XREF", "YREF")
        assert {k: v for k, v in exp.header.items() if k not in drop} == \
            {k: v for k, v in exp0.header.items() if k not in drop}


def test_direct_image_holds_the_in_filter_flux(mock):
    f200 = mock.direct["F200W"]
    assert f200.shape == (mock.n_direct, mock.n_direct)
    # S peaks at 1 (relative): the direct image sum equals each exposure's total rate
    assert f200.sum() == pytest.approx(mock.exposures[0].noise_free.sum(), rel=1e-9)


def test_product_round_trip(mock, tmp_path):
    path = tmp_path / "g.fits"
    mock.write(path)
    back = read_grism(path)
    assert isinstance(back, GrismMock) and back.kind == "grism" and len(back.exposures) == 2
    for a, b in zip(mock.exposures, back.exposures):
        assert a.sci.tobytes() == b.sci.tobytes() and a.var.tobytes() == b.var.tobytes()
        assert a.header == b.header and a.name == b.name and a.exptime == b.exptime
    assert json.dumps(back.truth) == json.dumps(mock.truth) and back.psf == mock.psf  # NaN-safe
    np.testing.assert_array_equal(back.direct["F200W"], mock.direct["F200W"])
    with pytest.raises(DataError, match="exists"):
        mock.write(path)


def test_observe_dispatches_to_the_grism_mode():
    assert isinstance(observe(small_cfg(**{"noise.enabled": False})), GrismMock)


def test_example_config_loads():
    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "niriss_z3.toml")
    assert cfg.instrument.kind == "grism" and len(cfg.instrument.grism.exposures) == 6


# --------------------------------------------------------------- bad input
def _one_line_error(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_line_outside_every_filter_is_refused():
    cfg = small_cfg(**{"lines.lines": ["OII_3727", "Hb", "OIII_4960", "OIII_5008"],
                       "lines.generating_set": ["B18_R3", "B18_O32_inv"]})
    with pytest.raises(ConfigError) as err:
        build_grism(cfg)
    _one_line_error(err, "OII_3727", "15132", "F200W 17510-22260 A")


@pytest.mark.parametrize("change,words", [
    ({"instrument.grism": {"exposures": []}}, ["instrument.grism.exposures", "empty"]),
    ({"instrument.grism": {"exposures": [dict(EXPOSURES[0], exptime=0.0)]}}, ["exptime", "0.0"]),
    ({"instrument.grism": {"exposures": [dict(EXPOSURES[0], exptime=-5.0)]}}, ["exptime", "-5.0"]),
    ({"instrument.grism": {"exposures": EXPOSURES, "dispersion_scale": 0.0}}, ["dispersion_scale"]),
    ({"instrument.grism": {"exposures": [dict(EXPOSURES[0], grism="G999")]}}, ["grism", "G999", "GR150R"]),
    ({"instrument.grism": {"exposures": [dict(EXPOSURES[0], filter="F444W")]}}, ["filter", "F444W", "F150W"]),
    ({"instrument.grism": {"preset": "nirspec_g395m", "exposures": EXPOSURES}}, ["preset", "niriss_gr150"]),
    ({"instrument.grism": None}, ["instrument.kind = 'grism'", "instrument.grism"]),
])
def test_bad_grism_configuration_one_line(change, words):
    with pytest.raises(ConfigError) as err:
        small_cfg(**change)
    _one_line_error(err, *words)


def test_non_positive_dispersion_refused():
    with pytest.raises(ConfigError, match="dispersion"):
        GrismDispersion(grism="G", filter="F", pa=0.0, pa_disp=0.0, dispersion=0.0, wave_ref=1.0e4, tilt=0.0,
                        sens_peak=1.0, sens_lo=9000.0, sens_hi=11000.0, sens_taper=0.0)


def test_detector_noise_needs_a_sensitivity():
    with pytest.raises(ConfigError) as err:
        build_grism(small_cfg(**{"instrument.grism.noise_model": "detector"}))
    _one_line_error(err, "sensitivity_peak")


# --------------------------------------------------------------- continuum
def test_flat_continuum_adds_f_lambda_times_integrated_sensitivity():
    """Continuum rate = f_lambda x integral of S (raised-cosine edges integrate to half their width)."""
    from mockzgrad.observation.grism.continuum import continuum_model, continuum_slices

    grism = {"exposures": EXPOSURES, "continuum": "flat", "continuum_ew": 100.0}
    cfg = small_cfg(**{"instrument.grism": grism, "noise.enabled": False})
    with_c, without = build_grism(cfg), build_grism(small_cfg(**{"noise.enabled": False}))
    scene = grism_scene(cfg)
    cont = continuum_model(cfg, scene.setup.model, scene.setup.n, with_c.truth["line_totals"])
    # level: the reference line's total flux over the observed-frame EW
    assert cont.f_ref * 100.0 * (1 + 3.06) == pytest.approx(with_c.truth["line_totals"]["OIII_5008"], rel=1e-12)
    lo, hi, taper = 17510.0, 22260.0, 150.0
    slices, _ = continuum_slices(cont, scene.setup.psf, 0.06, lo, hi, scene.step)
    inside = slices[0].sum() / (cont.f_ref * scene.step)  # PSF-smeared fraction inside the field
    assert 0.9 < inside <= 1.0
    for a, b in zip(with_c.exposures, without.exposures):
        added = (a.noise_free - b.noise_free).sum()
        assert added == pytest.approx(cont.f_ref * (hi - lo - taper) * inside, rel=1e-3)


def test_wfc3_oblique_position_angles_conserve_flux():
    """G141 at PA_V3 32 and 119 (dispersion at -13 and 74 deg, tilt 0.3 deg): nothing falls off the frame."""
    exps = [{"grism": "G141", "filter": "G141", "pa": 32.0, "exptime": 4412.0},
            {"grism": "G141", "filter": "G141", "pa": 119.0, "exptime": 36088.0}]
    cfg = small_cfg(**{"galaxy.redshift": 1.5, "lines.reference_line": "Ha", "lines.lines": ["NII_6550", "Ha",
                       "NII_6585"], "lines.generating_set": ["C20_N2"], "noise.snr_line": "Ha",
                       "instrument.pixel_scale": 0.065, "instrument.fov": 2.6,
                       "instrument.grism": {"preset": "wfc3_g141", "exposures": exps}})
    m = build_grism(cfg)
    scene = grism_scene(cfg)
    for exp, (_, _, model) in zip(m.exposures, exposure_models(cfg, scene.setup.n)):
        assert model.pa_disp == pytest.approx((exp.header["PA"] - 45.0) % 360.0)
        expected = float((scene.cube.sum(axis=(1, 2)) * model.sensitivity(scene.waves)).sum())
        assert exp.noise_free.sum() == pytest.approx(expected, rel=1e-6)


def test_target_snr_is_met_on_the_gating_line(mock):
    """Mean over the r_eff ellipse of the [OIII] 5008 map x S / sigma = noise.snr, in each exposure."""
    from mockzgrad.observation.noise import ellipse_mask
    from mockzgrad.products.grids import spatial_offsets

    cfg = small_cfg()
    scene = grism_scene(cfg)
    wave = 5008.24 * (1 + 3.06)
    near = np.abs(scene.waves - wave) < 0.5 * (4960.30 - 5008.24) * -(1 + 3.06)  # closer to 5008 than to 4960
    lmap = scene.cube[near].sum(axis=0)
    g = scene.setup.model
    x, y = np.meshgrid(-spatial_offsets(scene.setup.n, 0.06), spatial_offsets(scene.setup.n, 0.06))
    mask = ellipse_mask(x, y, a_arcsec=g.r_eff_arcsec, axis_ratio=g.axis_ratio, pa=g.pa)
    for exp in mock.exposures:
        s = GrismDispersion.from_header(exp.header, exp.shape).sensitivity(wave)
        assert np.mean(lmap[mask] * s / np.sqrt(exp.var[0, 0])) == pytest.approx(5.0, rel=1e-3)


# --------------------------------------------------------------- GRISMCONF
CONF = """# a made-up linear first-order trace (not a real instrument)
DISPX_+1_0 -10.0
DISPX_+1_1 200.0
DISPY_+1_0 1.5
DISPY_+1_1 2.0 0.0 0.0
DISPL_+1_0 11000.0
DISPL_+1_1 9400.0
SENSITIVITY_+1 sens.fits
"""


def test_grismconf_linear_trace(tmp_path):
    from mockzgrad.observation.grism.dispersion import read_grismconf

    path = tmp_path / "g.conf"
    path.write_text(CONF)
    c = read_grismconf(path)
    assert c["dispersion"] == pytest.approx(47.0) and c["direction"] == 1
    assert c["tilt"] == pytest.approx(math.degrees(math.atan(2.0 / 200.0)))
    assert c["wave_ref"] == pytest.approx(11000.0 + 47.0 * 10.0)  # lambda where x = 0
    cfg = small_cfg(**{"galaxy.redshift": 1.5, "lines.reference_line": "Ha", "lines.lines": ["Ha"],
                       "lines.generating_set": [], "noise.snr_line": "Ha", "instrument.pixel_scale": 0.13,
                       "instrument.grism": {"preset": "wfc3_g141", "conf": {"G141": str(path)},
                                            "exposures": [{"grism": "G141", "filter": "G141"}]}})
    (_, _, m), = exposure_models(cfg, 9)
    assert m.dispersion == pytest.approx(47.0) and m.wave_ref == pytest.approx(11470.0)


def test_grismconf_without_dispx_is_refused(tmp_path):
    from mockzgrad.observation.grism.dispersion import read_grismconf

    path = tmp_path / "bad.conf"
    path.write_text(CONF.replace("DISPX_+1_1 200.0\n", ""))
    with pytest.raises(DataError) as err:
        read_grismconf(path)
    _one_line_error(err, "DISPX_+1_1", "bad.conf")
