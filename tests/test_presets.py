"""Instrument presets (issue 19): schema, loader, instrument.preset, the t^-1/2 law, `mockzgrad presets`."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mockzgrad.config import InstrumentConfig, config_from_dict, config_to_dict
from mockzgrad.config.instrument import available_instrument_presets, available_spectral_presets
from mockzgrad.errors import ConfigError
from mockzgrad.observation import observe
from mockzgrad.observation import presets as P

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: A compact face-on z = 2.2 exponential disk (r_eff = 0.2 kpc = 0.024") with Halpha and [NII]
#: (in every IFU preset's band or grid).
POINT = {"galaxy.redshift": 2.2, "galaxy.r_eff": 0.2, "galaxy.sersic_n": 1.0, "galaxy.inclination": 0.0,
         "lines.reference_line": "Ha", "lines.lines": ["NII_6550", "Ha", "NII_6585"],
         "lines.generating_set": ["C20_N2"], "noise.sigma": 1e-20, "noise.snr_line": "Ha", "noise.enabled": False,
         "instrument.oversample": 6}
#: The ELT/HARMONI presets (HSIM 3.12): the H+K and Iz+J gratings at the square 10 and 20 mas spaxels.
HARMONI = ("harmoni_hk_10mas", "harmoni_hk_20mas", "harmoni_izj_10mas", "harmoni_izj_20mas")


def test_every_preset_loads_with_kind_status_sources():
    names = P.available_presets()
    assert {"nirspec_ifu_g235m", "nirspec_ifu_g395m", "nirspec_ifu_g395h", "kmos_seeing", "niriss_gr150",
            "wfc3_g102", "wfc3_g141", "nirspec_msa_g140h", "nirspec_g235m", "nirspec_g395m", "muse_wfm",
            "muse_nfm", "osiris_lgs", *HARMONI} <= set(names)
    for name in names:
        p = P.load_preset(name)
        assert p.name == name
        assert p.kind in P.PRESET_KINDS and p.status in P.PRESET_STATUSES and p.sources


def test_existing_preset_users_keep_their_tables():
    from mockzgrad.config.grism import available_grism_presets, grism_preset
    from mockzgrad.config.slitstep import SlitstepConfig

    assert available_grism_presets() == ["niriss_gr150", "wfc3_g102", "wfc3_g141"]
    for name in available_grism_presets():
        assert grism_preset(name)["grisms"]
    assert SlitstepConfig().steps_disp == 9
    # spectral-grid presets: only the files with a [spectral] table
    assert set(available_spectral_presets()) == {"niriss_gr150", "nirspec_g235m", "nirspec_g395m",
                                                  "nirspec_msa_g140h", "wfc3_g102", "wfc3_g141"}


def _axis_variances(cube) -> tuple[float, float]:
    """Second moments (arcsec^2) of the noise-free line map along x and y."""
    image = np.nansum(cube.noise_free, axis=0)
    ny, nx = image.shape
    y, x = np.mgrid[:ny, :nx] * cube.pixel_scale
    w = image / image.sum()
    return (float(np.sum(w * (x - np.sum(w * x)) ** 2)), float(np.sum(w * (y - np.sum(w * y)) ** 2)))


@pytest.mark.parametrize("name, redshift", [("nirspec_ifu_g235m", 2.2), ("nirspec_ifu_g395m", 4.0),
                                            ("nirspec_ifu_g395h", 4.0), ("kmos_seeing", 2.2), ("muse_wfm", 0.2),
                                            ("osiris_lgs", 2.2), ("muse_nfm", 0.2), ("harmoni_hk_10mas", 2.2),
                                            ("harmoni_hk_20mas", 2.2), ("harmoni_izj_10mas", 0.9),
                                            ("harmoni_izj_20mas", 0.9)])
def test_ifu_preset_mock_matches_the_preset(name, redshift):
    """Pixel scale, channel width and the PSF FWHM measured on a compact source's noise-free line map.

    The PSF's second moment per axis is the map's minus that of the same disk
    rendered on the same spaxels and field with a negligible PSF (variances add
    under convolution): no model of the disk or of the pixel response enters,
    so PSFs of one to a few spaxels (AO presets) are measured as well as wide ones.
    """
    inst = P.load_preset(name).tables["instrument"]
    psf = inst["psf"]
    # a field of >= 20 PSF FWHM (the wings hold second moment) unless the preset fixes it; sub-pixels
    # everywhere (the disk is ~1 spaxel of the AO presets)
    extra = {"instrument.oversample_outer": POINT["instrument.oversample"]}
    if "fov" not in inst:
        extra["instrument.fov"] = max(6.0 * inst["pixel_scale"], round(20.0 * psf["fwhm"], 3))
    cfg = P.config_for_preset(name, **dict(POINT, **{"galaxy.redshift": redshift}, **extra))  # Halpha in the band
    cube = observe(cfg, keep_noise_free=True)
    assert cube.pixel_scale == inst["pixel_scale"]
    spec = inst.get("spectral", {})
    widths = cube.edges_hi - cube.edges_lo
    if "dispersion" in spec or "preset" in spec:
        assert np.allclose(widths, cfg.instrument.spectral.dispersion, rtol=1e-9)
    else:  # no spectral values in the preset: the mock's velocity grid
        assert np.allclose(widths / cube.wavelengths * 299792.458, cfg.instrument.spectral.channel_width, rtol=2e-3)
    # the same mock without the preset's PSF: a circular Gaussian of 1e-4 arcsec
    bare = config_from_dict(dict(config_to_dict(cfg), instrument=dict(
        config_to_dict(cfg)["instrument"], preset=None, psf={"kind": "gaussian", "fwhm": 1e-4})))
    ref = observe(bare, keep_noise_free=True)
    assert ref.noise_free.shape == cube.noise_free.shape
    fwhm = sorted(FWHM_PER_SIGMA * math.sqrt(v - v0) for v, v0 in zip(_axis_variances(cube), _axis_variances(ref)))
    expected = sorted([psf["fwhm"], psf.get("fwhm_minor", psf["fwhm"])])
    assert fwhm == pytest.approx(expected, rel=0.01)  # measured to < 0.1 % (11 presets, this method)


def test_instrument_preset_round_trips_and_refuses_conflicts(tmp_path):
    from mockzgrad.config import load_config, save_config

    cfg = config_from_dict({"instrument": {"preset": "nirspec_ifu_g395h"}})
    assert config_from_dict(config_to_dict(cfg)) == cfg
    path = tmp_path / "m.toml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert InstrumentConfig(preset="kmos_seeing", pixel_scale=0.1).pixel_scale == 0.1  # agreeing value
    with pytest.raises(ConfigError, match=r"instrument.pixel_scale = 0.2 conflicts with instrument.preset"):
        InstrumentConfig(preset="kmos_seeing", pixel_scale=0.2)
    with pytest.raises(ConfigError, match=r"instrument.psf.fwhm = 0.3 conflicts"):
        config_from_dict({"instrument": {"preset": "nirspec_ifu_g235m", "psf": {"fwhm": 0.3}}})


def test_unknown_preset_is_one_line_with_close_names():
    for call in (lambda: P.load_preset("nirspec_ifu_g359m"), lambda: InstrumentConfig(preset="nirspec_ifu_g359m")):
        with pytest.raises(ConfigError) as exc:
            call()
        msg = str(exc.value)
        assert "\n" not in msg and "nirspec_ifu_g395m" in msg and "nirspec_ifu_g359m" in msg


def test_user_preset_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[preset]\nname = "mine"\nkind = "ifu"\nstatus = "approximate"\nsources = ["me"]\n'
                    '[instrument]\npixel_scale = 0.08\n[instrument.psf]\nfwhm = 0.4\n')
    assert P.load_preset(str(path)).status == "approximate"
    assert InstrumentConfig(preset=str(path)).psf.fwhm == 0.4
    path.write_text('[preset]\nname = "mine"\nkind = "ifu"\nstatus = "guessed"\nsources = ["me"]\n[instrument]\n')
    with pytest.raises(ConfigError, match="preset.status"):
        P.load_preset(str(path))


def test_t_minus_half_law_is_exact():
    for name in ("wfc3_g102", "wfc3_g141", "kmos_seeing"):
        s = P.load_preset(name).sensitivity
        for t in (1000.0, s.exposure, 3.7e5):
            ratio = P.sensitivity_at(s, 2 * t) / P.sensitivity_at(s, t)
            want = math.sqrt(2.0) if s.quantity == "snr" else 1.0 / math.sqrt(2.0)
            assert ratio == pytest.approx(want, rel=1e-15)
    with pytest.raises(ConfigError, match="exposure"):
        P.sensitivity_at(s, 0.0)


def test_wfc3_presets_reproduce_wang2017_limits():
    """Wang et al. 2017 Sect. 2.1.3, Table 1: 3.5e-18 (G102, 17346 s) and 1.2e-18 (G141, 81000 s) erg/s/cm^2."""
    g102, g141 = P.load_preset("wfc3_g102").sensitivity, P.load_preset("wfc3_g141").sensitivity
    assert P.sensitivity_at(g102, 8723.0 + 8623.0) == pytest.approx(3.5e-18, rel=1e-12)
    assert P.sensitivity_at(g141, 4412.0 + 36088.0 + 36088.0 + 4412.0) == pytest.approx(1.2e-18, rel=1e-12)
    # 10 G102 orbits (S3 Sect. 2.1.1) vs the 34 of G141: the deeper grism is not simply 3.4x longer
    assert P.sensitivity_at(g141, 17346.0) == pytest.approx(1.2e-18 * math.sqrt(81000.0 / 17346.0), rel=1e-12)


def test_line_flux_to_pixel_sigma_against_monte_carlo():
    """Summing n_pix x n_chan pixels of the returned sigma gives the line sigma (Monte Carlo, 4-sigma tolerance)."""
    n_pix, n_chan, line = 12, 5, 3.5e-18
    sig = P.line_flux_to_pixel_sigma(line, n_pix, n_chan)
    rng = np.random.default_rng(np.random.SeedSequence(19))
    n = 20000
    sums = rng.normal(0.0, sig, size=(n, n_pix * n_chan)).sum(axis=1)
    assert np.std(sums) == pytest.approx(line, rel=4.0 / math.sqrt(2.0 * n))


def test_presets_cli_json(capsys):
    from mockzgrad.cli import main

    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == P.available_presets()
    assert all(r["sources"] and r["status"] in P.PRESET_STATUSES for r in rows)
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "kmos_seeing" in out and "Li et al. 2025" in out
    assert set(available_instrument_presets()) == {"kmos_seeing", "nirspec_ifu_g235m", "nirspec_ifu_g395h",
                                                   "nirspec_ifu_g395m", "muse_wfm", "muse_nfm", "osiris_lgs",
                                                   *HARMONI}
    for name, status, source in (("muse_wfm", "approximate", "Bacon et al."), ("osiris_lgs", "approximate",
                                 "Wright et al."), ("muse_nfm", "approximate", "eso1824"),
                                 *((h, "from docs", "HSIM 3.12") for h in HARMONI)):  # with sources and status
        line = next(v for v in out.splitlines() if v.startswith(name))
        assert status in line and source in line, line


def test_preset_band_loads_with_its_source_and_bad_bands_are_one_line(tmp_path):
    """``preset.band`` (observed Angstrom) with ``band_source``: KMOS 0.8-2.5 um (Sharples et al. 2014)."""
    kmos = P.load_preset("kmos_seeing")
    assert kmos.band == (8000.0, 25000.0) and "Sharples" in kmos.band_source
    assert kmos.summary()["band"] == {"wave_min": 8000.0, "wave_max": 25000.0, "source": kmos.band_source}
    head = '[preset]\nname = "b"\nkind = "ifu"\nstatus = "approximate"\nsources = ["me"]\n'
    tail = '[instrument]\npixel_scale = 0.1\n[instrument.psf]\nfwhm = 0.3\n'
    for band, word in (('band = [2.0e4, 1.0e4]\nband_source = "x"\n', r"preset\.band\[1\]"),
                       ('band = [1.0e4]\nband_source = "x"\n', "preset.band"),
                       ('band = [1.0e4, 2.0e4]\n', "band_source")):
        path = tmp_path / "b.toml"
        path.write_text(head + band + tail)
        with pytest.raises(ConfigError, match=word) as exc:
            P.load_preset(str(path))
        assert "\n" not in str(exc.value)


def _harmoni_fwhm(lam_um: float, static_mas: float) -> float:
    """HSIM 3.12's LTAO PSF FWHM (arcsec) as the HARMONI presets cite it: the ELT diffraction core
    1.03 lambda / D (D = 39 m), HSIM's instrument PSF (dynamic 5.5 mas, static per scale) and the LTAO
    jitter of the default AO star (sigma 3.5 mas), in quadrature."""
    core = 1.03 * lam_um * 1e-6 / 39.0 * 206264.806e3
    return math.sqrt(core**2 + 5.5**2 + static_mas**2 + (FWHM_PER_SIGMA * 3.5) ** 2) / 1000.0


C_KMS = 299792.458


@pytest.mark.parametrize("name, status, pixel_scale, fwhm, lsf_sigma, band, sens", [
    # Bacon et al. 2004 (0.2", 465-930 nm, R ~ 3000), Bacon et al. 2017 (0.65" at 7000 A; 3.1e-19 / 3 in 10 h)
    ("muse_wfm", "approximate", 0.2, 0.65, C_KMS / 3000 / 2.35482, (4650.0, 9300.0),
     ("line_flux", 3.1e-19 / 3, 36000.0)),
    # OSIRIS manual (100 mas scale), Wright et al. (0.1" with LGS AO; R 3800), 1-2.5 um; no sensitivity
    ("osiris_lgs", "approximate", 0.1, 0.1, C_KMS / 3800 / 2.35482, (10000.0, 25000.0), None),
    # NFM: 25 mas (Bacon et al. 2004, 2014), "comparable in sharpness to HST" (eso1824): HST's 1.03 lambda / D
    # at 7000 A, D = 2.4 m; R ~ 3000; 480-930 nm; no sensitivity
    ("muse_nfm", "approximate", 0.025, 1.03 * 0.7e-6 / 2.4 * 206264.806, C_KMS / 3000 / 2.35482,
     (4800.0, 9300.0), None),
    # HSIM 3.12: 10 / 20 mas (static instrument PSF 14 / 28 mas), H+K 1.45-2.45 um and Iz+J 0.811-1.369 um at
    # R 3355; PSF at 2.2 um (H+K) and 1.25 um (Iz+J); no sensitivity
    ("harmoni_hk_10mas", "from docs", 0.01, _harmoni_fwhm(2.2, 14.0), C_KMS / 3355 / 2.35482, (14500.0, 24500.0),
     None),
    ("harmoni_hk_20mas", "from docs", 0.02, _harmoni_fwhm(2.2, 28.0), C_KMS / 3355 / 2.35482, (14500.0, 24500.0),
     None),
    ("harmoni_izj_10mas", "from docs", 0.01, _harmoni_fwhm(1.25, 14.0), C_KMS / 3355 / 2.35482, (8110.0, 13690.0),
     None),
    ("harmoni_izj_20mas", "from docs", 0.02, _harmoni_fwhm(1.25, 28.0), C_KMS / 3355 / 2.35482, (8110.0, 13690.0),
     None),
])
def test_docs_presets_carry_their_cited_numbers(name, status, pixel_scale, fwhm, lsf_sigma, band, sens):
    p = P.load_preset(name)
    cfg = config_from_dict({"instrument": {"preset": name}})
    assert p.status == status and p.sources and p.band == band and p.band_source
    assert cfg.instrument.pixel_scale == pixel_scale
    assert cfg.instrument.psf.fwhm == pytest.approx(fwhm, rel=5e-3)  # files keep 3-4 digits
    assert cfg.instrument.lsf_sigma == pytest.approx(lsf_sigma, rel=2e-3)
    if sens is None:
        assert p.sensitivity is None
    else:
        assert (p.sensitivity.quantity, p.sensitivity.exposure) == sens[::2]
        assert p.sensitivity.value == pytest.approx(sens[1], rel=5e-3)


@pytest.mark.parametrize("name, has", [("muse_wfm", "line_flux"), ("osiris_lgs", "none"), ("muse_nfm", "none"),
                                       *((h, "none") for h in HARMONI)])
def test_plan_refuses_exposure_depths_without_a_pixel_sensitivity(name, has):
    """No per-pixel sensitivity in a reachable source: `plan` wants S/N (or noise sigma), in one line."""
    from mockzgrad.corrections import plan as PL

    with pytest.raises(ConfigError) as exc:
        PL.setup_from_dict({"name": "x", "preset": name, "exposure": [3600.0], "recipe": "lee2026"}, "setup")
    msg = str(exc.value)
    assert "\n" not in msg and name in msg and has in msg and "give snr" in msg, msg
    setup = PL.setup_from_dict({"name": "x", "preset": name, "snr": [10.0], "recipe": "lee2026"}, "setup")
    assert setup.snr == (10.0,)


def test_harmoni_rectangular_scales_are_not_shipped():
    """HSIM's coarse scales (30x60, 60x60, 120x60 mas) are not modelled (one square spaxel size): no preset
    offers them, and each HARMONI preset says so."""
    for name in HARMONI:
        p = P.load_preset(name)
        assert p.tables["instrument"]["pixel_scale"] in (0.01, 0.02)
        text = (Path(P.__file__).parent.parent / "instruments" / f"{name}.toml").read_text()
        assert "30 x 60 mas" in text and "NOT" in text and "modelled" in text
    assert not [n for n in P.available_presets() if n.startswith("harmoni") and n not in HARMONI]
