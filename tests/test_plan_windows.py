"""Depth per spectral window (issue 19, round 2): ``noise.windows`` and windowed preset sensitivities."""

import math

import numpy as np
import pytest

from mockzgrad.config import config_from_dict
from mockzgrad.corrections import plan as PL
from mockzgrad.corrections.plan_cache import observe_cached as _OBSERVE_CACHED  # the original, before any spy
from mockzgrad.errors import ConfigError
from mockzgrad.observation.ifu import build_cube
from mockzgrad.observation.presets import load_preset, sensitivity_at
from mockzgrad.physics.lines import LINES

from _seed import seeded

Z = 2.2
LINES4 = ["Hb", "OIII_5008", "Ha", "NII_6585"]
TARGET = {"redshift": Z, "r_eff": 2.0, "sersic_n": 1.0, "inclination": 40.0, "reference_line": "Ha",
          "reference_flux": 1e-16, "grad_z": [0.1], "lines": LINES4, "generating_set": ["S25_R3", "S25_N2"]}
#: Two windows of a user preset: blue (Hb, [OIII] at 15556-16026 A) 3e-20 at 1 h; red (Ha, [NII]) 1e-20 at 4 h.
BLUE, T_BLUE, RED, T_RED = 3e-20, 3600.0, 1e-20, 14400.0


def _windowed_preset(tmp_path) -> str:
    path = tmp_path / "two_windows.toml"
    path.write_text(
        '[preset]\nname = "two_windows"\nkind = "ifu"\nstatus = "approximate"\nsources = ["test"]\n'
        '[instrument]\npixel_scale = 0.1\n[instrument.psf]\nfwhm = 0.3\n'
        f'[sensitivity]\nquantity = "pixel_sigma"\nvalue = 5e-20\nexposure = 3600.0\ncitation = "base"\n'
        f'[[sensitivity.windows]]\nwave_min = 15000.0\nwave_max = 17000.0\nvalue = {BLUE}\nexposure = {T_BLUE}\n'
        'citation = "blue grating"\n'
        f'[[sensitivity.windows]]\nlines = ["Ha", "NII_6585"]\nvalue = {RED}\nexposure = {T_RED}\n'
        'citation = "red grating"\n')
    return str(path)


def _setup(tmp_path, exposure):
    return PL.setup_from_dict({"name": "w", "preset": _windowed_preset(tmp_path), "exposure": exposure,
                               "n_mocks": 1, "recipe": "lee2026"}, "setup")


def _cube_at(target, setup, exposure, seed):
    depth = PL.depth_at(setup, exposure, PL._reference(target, setup))
    table = PL._fixed(target, setup)
    table["noise"]["sigma"] = depth.value
    return build_cube(config_from_dict(dict(table, seed=seed)))


def _channel_sigma(cube, line):
    """Noise sigma (the variance's) in the channel nearest the line's observed wavelength."""
    k = int(np.argmin(np.abs(cube.grid.centres - LINES[line].wavelength * (1 + Z))))
    return float(np.sqrt(cube.variance[k, 0, 0])), k


def test_preset_windows_parse_and_pick_by_wavelength_or_line(tmp_path):
    sens = load_preset(_windowed_preset(tmp_path)).sensitivity
    assert len(sens.windows) == 2 and sens.windows[1].lines == ("Ha", "NII_6585")
    assert sens.at("OIII_5008", 16026.0).value == BLUE and sens.at("Ha", 21004.0).value == RED
    assert sens.at("SII_6718", 21500.0) is sens  # no window: the table's own value
    # t^-1/2 in each window: doubling the exposure lowers the sigma by sqrt(2) exactly
    for line, wave in (("Hb", 15556.0), ("Ha", 21004.0)):
        a, b = (sensitivity_at(sens, t, line=line, wave=wave) for t in (5000.0, 10000.0))
        assert a / b == pytest.approx(math.sqrt(2.0), rel=1e-14)


def test_two_lines_in_windows_of_different_depth_get_the_preset_noise_ratio(tmp_path):
    """[OIII] (blue window) over Ha (red window): sigma ratio = (3e-20 sqrt(3600)) / (1e-20 sqrt(14400)) = 1.5.

    The variance holds the ratio exactly; the drawn noise holds it within five
    Monte Carlo standard errors of a ratio of two sample std's (each 1/sqrt(2n)).
    """
    target = PL.target_from_dict(TARGET)
    setup = _setup(tmp_path, [7200.0])
    cube = _cube_at(target, setup, 7200.0, seeded(11))
    expected = (BLUE * math.sqrt(T_BLUE)) / (RED * math.sqrt(T_RED))
    s_oiii, k_oiii = _channel_sigma(cube, "OIII_5008")
    s_ha, k_ha = _channel_sigma(cube, "Ha")
    assert s_oiii / s_ha == pytest.approx(expected, rel=1e-6)
    # the snr_line (Ha) sigma is the red window's value at 7200 s
    assert s_ha == pytest.approx(RED * math.sqrt(T_RED / 7200.0), rel=1e-6)
    assert cube.truth["noise_sigma"] == pytest.approx(s_ha, rel=1e-12)
    resid = cube.data - cube.noise_free
    a, b = resid[k_oiii].ravel(), resid[k_ha].ravel()
    se = math.sqrt(1.0 / (2 * a.size) + 1.0 / (2 * b.size))
    assert abs(a.std() / b.std() / expected - 1.0) <= 5.0 * se


def test_doubling_the_exposure_lowers_every_window_by_sqrt2(tmp_path):
    target = PL.target_from_dict(TARGET)
    setup = _setup(tmp_path, [3600.0])
    c1, c2 = (_cube_at(target, setup, t, seeded(12)) for t in (3600.0, 7200.0))
    for line in ("Hb", "OIII_5008", "Ha", "NII_6585"):
        assert _channel_sigma(c1, line)[0] / _channel_sigma(c2, line)[0] == pytest.approx(math.sqrt(2), rel=1e-6)
    # common random numbers: the same deviates, scaled (noise(t) / noise(2t) = sqrt(2) pixel by pixel)
    r1, r2 = c1.data - c1.noise_free, c2.data - c2.noise_free
    assert np.allclose(r1, math.sqrt(2.0) * r2, rtol=1e-9, atol=1e-30)


def _mock(windows=None, **noise):
    table = {"galaxy": {"redshift": Z}, "lines": {"lines": LINES4, "generating_set": ["S25_R3", "S25_N2"]},
             "noise": dict({"snr": 20.0, "snr_line": "Ha"}, **noise), "seed": seeded(13)}
    if windows is not None:
        table["noise"]["windows"] = windows
    return build_cube(config_from_dict(table))


def test_noise_windows_scale_and_absolute_sigma_keep_the_snr_line():
    plain = _mock()
    win = _mock({"blue": {"lines": ["Hb", "OIII_5008"], "scale": 2.5},
                 "nii": {"wave_min": 21050.0, "wave_max": 21100.0, "sigma": 1e-19}})  # [NII] 6585 at 21073 A
    assert win.truth["snr"] == pytest.approx(20.0, rel=1e-12)  # the snr_line keeps the target S/N
    s_ha = _channel_sigma(win, "Ha")[0]
    assert s_ha == pytest.approx(plain.truth["noise_sigma"], rel=1e-12)
    assert _channel_sigma(win, "OIII_5008")[0] / s_ha == pytest.approx(2.5, rel=1e-12)
    assert _channel_sigma(win, "Hb")[0] / s_ha == pytest.approx(2.5, rel=1e-12)
    assert _channel_sigma(win, "NII_6585")[0] == pytest.approx(1e-19, rel=1e-6)


def test_windows_covering_no_line_or_scale_one_leave_the_cube_unchanged():
    plain = _mock()
    for windows in ({"far": {"wave_min": 1000.0, "wave_max": 2000.0, "scale": 7.0}},
                    {"all": {"lines": LINES4, "scale": 3.0}}):  # every line x 3: relative to Ha, unchanged
        other = _mock(windows)
        # the same deviates and sigmas (to rounding: sigma x 3 / 3)
        assert np.allclose(other.data, plain.data, rtol=1e-12, atol=0.0)
        assert np.allclose(other.variance, plain.variance, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("windows, words", [
    ({"a": {"lines": ["Hb"]}}, ["noise.windows.a", "scale", "sigma"]),
    ({"a": {"lines": ["Hx"], "scale": 1.0}}, ["noise.windows.a.lines", "Hx"]),
    ({"a": {"scale": 1.0}}, ["noise.windows.a", "lines or wave_min"]),
    ({"a": {"wave_min": 3.0, "wave_max": 2.0, "scale": 1.0}}, ["wave_min = 3.0", "wave_max = 2.0"]),
    ({"a": {"lines": ["Ha"], "sigma": 1e-20}}, ["noise.windows.a.sigma", "snr_line", "scale"]),
    ({"a": {"lines": ["Hb"], "scale": -1.0}}, ["noise.windows.a.scale", "-1.0"]),
    ({"a": {"lines": ["Hb"], "scale": 1.0, "depth": 2}}, ["noise.windows.a.depth", "unknown"]),
])
def test_bad_windows_are_one_line(windows, words):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"noise": {"snr_line": "Ha", "windows": windows},
                          "lines": {"lines": LINES4, "generating_set": ["S25_R3", "S25_N2"]}})
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_preset_window_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[preset]\nname = "bad"\nkind = "ifu"\nstatus = "approximate"\nsources = ["t"]\n'
                    '[instrument]\npixel_scale = 0.1\n[sensitivity]\nquantity = "pixel_sigma"\nvalue = 1e-20\n'
                    'exposure = 3600.0\ncitation = "t"\n[[sensitivity.windows]]\nvalue = 1e-20\ncitation = "t"\n')
    with pytest.raises(ConfigError) as exc:
        load_preset(str(path))
    assert "\n" not in str(exc.value) and "sensitivity.windows[0]" in str(exc.value)


def test_a_suite_sweeps_noise_windows_as_whole_tables():
    from mockzgrad.suites.suite import suite_from_dict

    def w(scale):
        return {"IZ": {"lines": ["Hb", "OIII_5008"], "scale": scale}}

    spec = suite_from_dict({"suite": {"name": "w", "seed": 1, "n_mocks": 2},
                            "fixed": {"lines": {"lines": LINES4, "generating_set": ["S25_R3", "S25_N2"]},
                                      "noise": {"snr_line": "Ha"}},
                            "grid": {"noise.windows": [w(1.0), w(2.0)]}})
    scales = sorted(config_from_dict(spec.mock(k).config).noise.windows["IZ"]["scale"] for k in range(2))
    assert scales == [1.0, 2.0]


def _grism_cfg(windows=None):
    """A small NIRISS mock: [OII] in F115W, [OIII] (the S/N line) in F150W, one exposure each."""
    noise = {"snr": 10.0, "snr_line": "OIII_5008"}
    if windows is not None:
        noise["windows"] = windows
    return config_from_dict({
        "galaxy": {"redshift": 2.2, "r_eff": 1.5, "inclination": 30.0},
        "lines": {"reference_line": "OIII_5008", "lines": ["OII_3727", "OII_3730", "Hb", "OIII_5008"],
                  "generating_set": ["C20_R3", "C20_O32"]},
        "instrument": {"kind": "grism", "pixel_scale": 0.06, "fov": 1.8, "oversample": 2,
                       "psf": {"kind": "gaussian", "fwhm": 0.1},
                       "grism": {"preset": "niriss_gr150", "noise_model": "snr", "exposures": [
                           {"grism": "GR150C", "filter": "F115W", "pa": 0.0, "exptime": 5000.0},
                           {"grism": "GR150C", "filter": "F150W", "pa": 0.0, "exptime": 5000.0}]}},
        "noise": noise})


def test_grism_exposures_take_their_window_scale():
    """Per-window depth in a grism mock: the exposure without the S/N line gets scale(window) / scale(snr_line).

    The F150W exposure holds [OIII] 5008 (the S/N line): its sigma is set by
    noise.snr either way; F115W holds only [OII], whose window is 2x noisier
    (scale 2 against 1), and Hbeta's window (scale 0.5) is in F150W, which the
    S/N already fixes: exactly twice the sigma without windows.
    """
    from mockzgrad.observation.grism.forward import build_grism

    plain = build_grism(_grism_cfg(), keep_noise_free=False).truth["noise_sigma"]
    win = {"blue": {"lines": ["OII_3727", "OII_3730"], "scale": 2.0}, "hb": {"lines": ["Hb"], "scale": 0.5}}
    scaled = build_grism(_grism_cfg(win), keep_noise_free=False).truth["noise_sigma"]
    assert scaled["2"] == pytest.approx(plain["2"], rel=1e-12)  # F150W: set by the S/N of [OIII]
    assert scaled["1"] == pytest.approx(2.0 * plain["1"], rel=1e-12)
    ref = {"ref": {"lines": ["OIII_5008"], "scale": 4.0}}  # the S/N line's own window divides the others
    assert build_grism(_grism_cfg(dict(win, **ref)), keep_noise_free=False).truth["noise_sigma"]["1"] == \
        pytest.approx(0.5 * plain["1"], rel=1e-12)
    with pytest.raises(ConfigError, match="blue.sigma") as exc:
        build_grism(_grism_cfg({"blue": {"lines": ["OII_3727"], "sigma": 1e-20}}), keep_noise_free=False)
    assert "\n" not in str(exc.value) and "scale" in str(exc.value)


def _grism_plan(tmp_path, windows):
    """A NIRISS plan setup ([OII] in F115W, [OIII] 5008 the S/N line in F150W) with an optional windowed
    sensitivity, and a z = 2.2 target of those lines."""
    sens = {"quantity": "pixel_sigma", "value": 1e-20, "exposure": 3600.0, "citation": "test base"}
    if windows:
        sens["windows"] = windows
    setup = PL.setup_from_dict({
        "name": "niriss", "preset": "niriss_gr150", "snr": [10.0], "snr_line": "OIII_5008", "n_mocks": 2,
        "recipe": "wang2022", "sensitivity": sens,
        "overrides": {"metallicity.diagnostics": ["C20_R3", "C20_O32"], "gating.line": "OIII_5008",
                      "metallicity.nii_ha": 0.0},
        "instrument": {"pixel_scale": 0.06, "fov": 1.8, "oversample": 2, "psf": {"kind": "gaussian", "fwhm": 0.1},
                       "grism": {"noise_model": "snr", "exposures": [
                           {"grism": "GR150C", "filter": "F115W", "pa": 0.0, "exptime": 5000.0},
                           {"grism": "GR150C", "filter": "F150W", "pa": 0.0, "exptime": 5000.0}]}}}, "setup")
    target = PL.target_from_dict({"redshift": 2.2, "r_eff": 1.5, "sersic_n": 1.0, "inclination": 30.0,
                                  "reference_line": "OIII_5008", "reference_flux": 1e-16, "grad_z": [0.05],
                                  "lines": ["OII_3727", "OII_3730", "Hb", "OIII_5008"],
                                  "generating_set": ["C20_R3", "C20_O32"]})
    return target, setup


class _Observed(Exception):
    """Raised by the spy after observing: the suite marks the mock failed and skips its recovery."""


def _spy_suite(monkeypatch, tmp_path, target, setup) -> list:
    """Run the plan's suites for ``setup`` (serial, in this process) and return, per mock, the noise
    windows of its configuration and its exposures' noise sigmas, as the planner's job observed them."""
    from mockzgrad.corrections import plan_cache

    seen, observe = [], _OBSERVE_CACHED

    def spy(cfg, **kw):
        product = observe(cfg, **kw)
        seen.append((cfg.seed, cfg.noise.windows, dict(product.truth["noise_sigma"])))
        raise _Observed("observed")

    monkeypatch.setattr(plan_cache, "observe_cached", spy)
    groups = PL._run_grid(target, setup, tmp_path / setup.name, [0.05], PL._depths(setup), workers=1, seed=19)
    assert [r["status"] for rows in groups.values() for r in rows] == ["failed"] * setup.n_mocks
    return sorted(seen, key=lambda v: v[0])


def test_plan_passes_grism_window_depths_to_the_suite_mocks(tmp_path, monkeypatch):
    """A grism setup whose sensitivity has a window on F115W ([OII]): the plan's suite mocks carry it.

    At a common exposure the F115W window's sigma is (2e-20 sqrt(3600)) / (1e-20 sqrt(3600)) = 2 times
    the base (which holds [OIII], the S/N line): the F115W exposure of every suite mock has twice the
    noise sigma of the same mock planned without windows; the F150W exposure (set by the S/N of [OIII])
    is unchanged.
    """
    f115w = [{"wave_min": 10130.0, "wave_max": 12830.0, "value": 2e-20, "citation": "test F115W"}]
    target, plain_setup = _grism_plan(tmp_path, None)
    _, win_setup = _grism_plan(tmp_path, f115w)
    plain = _spy_suite(monkeypatch, tmp_path / "plain", target, plain_setup)
    win = _spy_suite(monkeypatch, tmp_path / "win", target, win_setup)
    assert len(win) == len(plain) == 2 and [s for s, _, _ in win] == [s for s, _, _ in plain]
    for (_, w0, s0), (_, w1, s1) in zip(plain, win):
        assert w0 is None
        # one window per line; [OII] at 11927-11936 A is in F115W
        assert w1["OII_3727"]["scale"] / w1["OIII_5008"]["scale"] == pytest.approx(2.0, rel=1e-12)
        assert s1["1"] == pytest.approx(2.0 * s0["1"], rel=1e-12)   # F115W: the window's depth
        assert s1["2"] == pytest.approx(s0["2"], rel=1e-12)         # F150W: set by the S/N of [OIII]
