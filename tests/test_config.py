"""Configuration: defaults, TOML round trip, and the message of each class of mistake."""

import dataclasses
import typing
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


def _is_mock_config(path) -> bool:
    """Examples that are single mock configurations (not suite or planner files)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    return not {"suite", "target", "setup"} & set(tomllib.loads(path.read_text()))


MOCK_EXAMPLES = [p for p in sorted(EXAMPLES.glob("*.toml")) if _is_mock_config(p)]


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


def _declared_number_fields(cls, table):
    """(dotted path, field) of every field of the dataclass tree declared with a range check."""
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _declared_number_fields(tp, f"{table}.{f.name}" if table else f.name)
        elif f.metadata.get("check") is not None and tp in (float, float | None):
            yield (f"{table}.{f.name}" if table else f.name), f


MOCK_NUMBERS = list(_declared_number_fields(C.MockConfig, ""))
RECIPE_NUMBERS = list(_declared_number_fields(C.Recipe, ""))


def test_every_section_declares_its_numbers():
    tables = {path.rsplit(".", 1)[0] for path, _ in MOCK_NUMBERS + RECIPE_NUMBERS}
    assert {"galaxy", "galaxy.rotation", "galaxy.metallicity", "lines", "lines.dust", "instrument",
            "instrument.psf", "instrument.spectral", "noise", "cosmology"} <= tables
    assert {"geometry", "binning", "gating", "errors", "dust", "metallicity", "gradient"} <= tables


@pytest.mark.parametrize("path", [p for p, _ in MOCK_NUMBERS if p != "noise.sigma"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30, -1e30])
def test_every_mock_number_refuses_non_finite_and_far_values(path, bad):
    with pytest.raises(ConfigError) as info:
        MockConfig().replace(**{path: bad})
    assert str(info.value).startswith(f"{path} = ")
    assert "allowed" in str(info.value)


@pytest.mark.parametrize("path", [p for p, _ in RECIPE_NUMBERS])
def test_every_recipe_number_refuses_nan_and_says_where(path):
    with pytest.raises(ConfigError) as info:
        C.Recipe().replace(**{path: float("nan")})
    assert str(info.value).startswith(f"{path} = nan")


@pytest.mark.parametrize(
    "changes, pieces",
    [
        ({"binning.r_min_kpc": 2.0, "binning.r_max_kpc": 1.0}, ["binning.r_max_kpc = 1.0", "(2.0, 1000.0]"]),
        ({"binning.min_spaxels": 0}, ["binning.min_spaxels = 0", "[1, 10000000]"]),
        ({"binning.sectors": 1}, ["binning.sectors", "expected true or false"]),
        ({"gating.line": "Hbeta"}, ["gating.line = 'Hbeta' is not a known line"]),
        ({"errors.model": "rsm"}, ["errors.model = 'rsm'", "did you mean 'rms'"]),
        ({"dust.pair": ["Hb", "Ha"]}, ["dust.pair = ['Hb', 'Ha']", "['Ha', 'Hb']"]),
        ({"dust.law": "battisti2022"}, ["dust.law = 'battisti2022'", "dust.law_lines"]),
        ({"metallicity.also": ["I", "III"]}, ["metallicity.also = 'III'", "'II'"]),
        ({"metallicity.diagnostics": ["S25_R33"]}, ["metallicity.diagnostics", "unknown calibration 'S25_R33'",
                                                    "S25_R3"]),
        ({"metallicity.diagnostics": []}, ["metallicity.diagnostics = []"]),
        ({"gradient.bootstrap": -1}, ["gradient.bootstrap = -1"]),
        ({"recipe.name": ""}, ["recipe.name", "non-empty"]),
    ],
)
def test_recipe_messages(changes, pieces):
    with pytest.raises(ConfigError) as info:
        C.Recipe().replace(**changes)
    msg = str(info.value)
    for piece in pieces:
        assert piece in msg, f"{piece!r} not in {msg!r}"


@pytest.mark.parametrize("name", C.available_recipes())
def test_shipped_recipes_round_trip(name, tmp_path):
    recipe = C.load_recipe(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(dumps_toml(recipe.to_dict()))
    assert C.load_recipe(path) == recipe
    assert C.Recipe().replace(**{k: v for k, v in _flat(recipe.to_dict())}) == recipe


def _flat(data, prefix=""):
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _flat(value, path)
        else:
            yield path, value


def test_lists_become_tuples_and_values_are_not_converted():
    lines = C.LinesConfig(lines=["Hb", "OIII_5008"], generating_set=["S25_R3"])
    assert lines.lines == ("Hb", "OIII_5008") and isinstance(lines.generating_set, tuple)
    galaxy = C.GalaxyConfig(r_eff=3)
    assert galaxy.r_eff == 3 and type(galaxy.r_eff) is int  # checked, not rewritten
    with pytest.raises(ConfigError, match="lines.lines = 'Hb': expected a list of strings"):
        C.LinesConfig(lines="Hb")


def test_dependent_bounds():
    with pytest.raises(ConfigError, match=r"instrument.fov = 0.1 arcsec; allowed \[0.2, 600.0\]"):
        C.InstrumentConfig(pixel_scale=0.05, fov=0.1)
    with pytest.raises(ConfigError, match=r"instrument.oversample_outer = 4; allowed \[1, 3\]"):
        C.InstrumentConfig(oversample=3, oversample_outer=4)
    with pytest.raises(ConfigError, match=r"instrument.psf.fwhm_minor = 0.3 arcsec; allowed \(0.0, 0.2\]"):
        C.PSFConfig(kind="elliptical_gaussian", fwhm=0.2, fwhm_minor=0.3)
    # a shape parameter of another kind is not looked at
    assert C.PSFConfig(kind="gaussian", beta=0.5).beta == 0.5


def test_spectral_preset_sets_the_grid_and_refuses_a_conflict():
    spec = C.SpectralConfig(preset="nirspec_g395m")
    assert spec.grid == "linear" and spec.dispersion > 0 and spec.wave_min < spec.wave_max
    with pytest.raises(ConfigError, match="conflicts with instrument.spectral.preset"):
        C.SpectralConfig(preset="nirspec_g395m", dispersion=spec.dispersion * 2)
    with pytest.raises(ConfigError, match="instrument.spectral.preset = 'nirspec_g999'"):
        C.SpectralConfig(preset="nirspec_g999")


def test_set_path_creates_tables_and_none_removes():
    data = {"galaxy": {"r_eff": 2.0}}
    C.set_path(data, "galaxy.metallicity.grad_z", -0.3)
    C.set_path(data, "lines.lines", ("Ha", "Hb"))
    C.set_path(data, "galaxy.r_eff", None)
    assert data == {"galaxy": {"metallicity": {"grad_z": -0.3}}, "lines": {"lines": ["Ha", "Hb"]}}
    with pytest.raises(ConfigError, match="galaxy.metallicity.grad_z.x: grad_z is not a table"):
        C.set_path(data, "galaxy.metallicity.grad_z.x", 1.0)
