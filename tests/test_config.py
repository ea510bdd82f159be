"""Configuration: defaults, TOML round trip, and the message of each class of mistake."""

import dataclasses
from pathlib import Path

import pytest

from mockzgrad import config as C
from mockzgrad.config import MockConfig, config_from_dict, config_to_dict, dumps_toml, load_config
from mockzgrad.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_defaults_are_the_flagship():
    cfg = MockConfig()
    assert cfg.galaxy.redshift == 5.0
    assert cfg.galaxy.r_eff == 2.0
    assert cfg.galaxy.rotation.log_mbary == 10.5
    assert cfg.galaxy.sigma0 == 80.0
    assert cfg.galaxy.inclination == 20.0
    assert cfg.instrument.lsf_sigma == 125.0
    assert cfg.instrument.spectral.channel_width == 106.0
    assert cfg.instrument.pixel_scale == 0.05
    assert set(cfg.lines.generating_set) == {"S25_R3", "S25_O32", "S25_Ne3O2"}


MOCK_EXAMPLES = [p for p in sorted(EXAMPLES.glob("*.toml")) if "[suite]" not in p.read_text()]


@pytest.mark.parametrize("path", MOCK_EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip_dict_toml_dict(path):
    data = tomllib.loads(path.read_text())
    cfg = config_from_dict(data)
    d1 = config_to_dict(cfg)
    text = dumps_toml(d1)
    d2 = tomllib.loads(text)
    assert d2 == d1
    assert config_from_dict(d2) == cfg


def test_round_trip_with_every_section_changed(tmp_path):
    cfg = MockConfig().replace(**{
        "galaxy.metallicity.profile": "broken_linear",
        "galaxy.metallicity.r_break": 3.0,
        "galaxy.metallicity.grad_z_outer": 0.0,
        "galaxy.metallicity.z0": 8.3,
        "galaxy.rotation.kind": "arctan",
        "instrument.psf.kind": "moffat",
        "instrument.psf.beta": 3.5,
        "noise.snr": None,
        "noise.sigma": 1e-20,
        "cosmology.name": "Planck18",
        "seed": 12345678901,
    })
    path = tmp_path / "c.toml"
    C.save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)


def test_replace_keeps_frozen():
    cfg = MockConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.galaxy.r_eff = 3.0  # type: ignore[misc]
    assert cfg.replace(**{"galaxy.r_eff": 3.0}).galaxy.r_eff == 3.0
    assert cfg.galaxy.r_eff == 2.0


@pytest.mark.parametrize(
    "data, pieces",
    [
        ({"galaxy": {"inclinaton": 30.0}}, ["galaxy.inclinaton", "unknown key", "did you mean inclination"]),
        ({"galaxy": {"inclination": "steep"}}, ["galaxy.inclination", "'steep'", "expected a number"]),
        ({"galaxy": {"inclination": 95.0}}, ["galaxy.inclination = 95.0", "allowed [0.0, 90.0]", "deg"]),
        ({"galaxy": {"r_eff": -1.0}}, ["galaxy.r_eff = -1.0", "(0.0, 100.0]", "kpc"]),
        ({"instrument": {"oversample": 2.5}}, ["instrument.oversample", "expected an integer"]),
        ({"instrument": {"psf": {"kind": "airy"}}}, ["instrument.psf.kind = 'airy'", "'gaussian'"]),
        ({"instrument": {"psf": {"kind": "moffat"}}}, ["instrument.psf.kind = 'moffat' needs", "beta"]),
        ({"lines": {"generating_set": ["S25_R33"]}}, ["lines.generating_set", "unknown calibration 'S25_R33'",
                                                      "S25_R3"]),
        ({"lines": {"reference_line": "OIII5007"}}, ["lines.reference_line", "not a known line"]),
        ({"noise": {"snr": 10.0, "sigma": 1e-20}}, ["give exactly one of noise.snr", "noise.sigma"]),
        ({"galaxy": {"metallicity": {"grad_z": 2.0}}}, ["galaxy.metallicity.grad_z = 2.0", "dex/kpc"]),
        ({"seed": -1}, ["seed = -1"]),
        ({"galaxy": 3}, ["galaxy", "expected a table"]),
    ],
)
def test_bad_input_messages(data, pieces):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    msg = str(info.value)
    for piece in pieces:
        assert piece in msg, f"{piece!r} not in {msg!r}"


def test_suspect_calibration_refused():
    with pytest.raises(ConfigError, match="S24_R23.*SUSPECT"):
        config_from_dict({"lines": {"generating_set": ["S24_R23", "S25_O32", "S25_Ne3O2"]}})


def test_gradient_that_leaves_the_validity_range_is_refused():
    from mockzgrad.source.galaxy import resolve_galaxy

    cfg = MockConfig().replace(**{"galaxy.metallicity.z0": 9.6, "galaxy.metallicity.grad_z": 0.1})
    with pytest.raises(ConfigError) as info:
        resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    msg = str(info.value)
    assert "entirely outside" in msg and "validity range" in msg and "grad_z = 0.1" in msg


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[galaxy\nr_eff = 2")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
