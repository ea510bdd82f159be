"""Configuration of a slitless grism observation: ``[instrument.grism]`` and its exposures.

A grism mock (``instrument.kind = "grism"``) names one or more instrument
presets (data files in ``mockzgrad/instruments/``, each value cited there)
and a list of exposures, each a grism, a blocking filter, a position angle
and an exposure time. The 2D spectra and direct images are simulated on
the map grid, ``instrument.pixel_scale`` (e.g. 0.03" for NIRISS, S4 Sect.
3.1; 0.065" interlaced for WFC3, S3 Sect. 2.1.3); the native dispersion is
rescaled to it.

TOML::

    [instrument]
    kind = "grism"
    pixel_scale = 0.03
    [instrument.grism]
    preset = "niriss_gr150"
    [[instrument.grism.exposures]]
    grism = "GR150R"
    filter = "F150W"
    pa = 0.0
    exptime = 5000.0

Exposures may also be given as named tables (``[instrument.grism.exposures.r150]``);
a list is stored with the labels ``"1"``, ``"2"``, ...
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

from .. import validate
from ..errors import ConfigError
from ._checks import check_fields, choice_field, integer_field, number_field, strings_field
from .toml_io import parse_toml

__all__ = ["GRISM_NOISE_MODELS", "CONTINUUM_KINDS", "ExposureConfig", "GrismConfig", "grism_preset", "available_grism_presets"]

#: ``instrument.grism.continuum``: no continuum, flat in f_lambda, or a power law in wavelength.
CONTINUUM_KINDS = ("none", "flat", "power_law")
#: ``instrument.grism.noise_model``: target S/N on ``noise.snr_line`` or detector noise from the exposure times.
GRISM_NOISE_MODELS = ("snr", "detector")


@dataclass(frozen=True, kw_only=True)
class ExposureConfig:
    """One slitless exposure.

    Parameters
    ----------
    grism : str
        A grism of the preset(s) (e.g. ``"GR150R"``, ``"G141"``).
    filter : str
        A blocking filter of the preset(s) (e.g. ``"F150W"``; WFC3: the grism's own name).
    pa : float
        Position angle of the aperture, deg east of north; [-360, 360]. The
        dispersion points at ``pa + dispersion_angle`` of the grism (WFC3:
        ``pa`` = PA_V3, dispersion at PA_V3 - 45, S3 Table 1).
    exptime : float
        Exposure time, s; (0, 1e7].
    """

    grism: str
    filter: str
    pa: float = number_field(0.0, -360.0, 360.0, unit="deg")
    exptime: float = number_field(1000.0, 0.0, 1e7, lo_open=True, unit="s")

    def __post_init__(self):
        p = "instrument.grism.exposures"
        validate.text(f"{p}.grism", self.grism, empty=False)
        validate.text(f"{p}.filter", self.filter, empty=False)
        check_fields(self, p)


@dataclass(frozen=True, kw_only=True)
class GrismConfig:
    """Slitless grism set-up (``[instrument.grism]``).

    Parameters
    ----------
    preset : str
        Instrument preset(s) in ``mockzgrad/instruments/`` with a ``[grism]``
        table (``"niriss_gr150"``, ``"wfc3_g102"``, ``"wfc3_g141"``); several
        joined by ``","`` (e.g. ``"wfc3_g102,wfc3_g141"``).
    exposures : dict
        Label -> ``{grism, filter, pa, exptime}`` (:class:`ExposureConfig`);
        a TOML list is labelled ``"1"``, ``"2"``, ...; at least one.
    noise_model : {"snr", "detector"}
        ``"snr"``: Gaussian noise of constant sigma per exposure, set so that
        the mean S/N per pixel of the ``noise.snr_line`` map inside the r_eff
        ellipse is ``noise.snr`` in the exposures that cover it (sigma scales
        as exptime^-1/2 between exposures). ``"detector"``: Poisson source +
        background and Gaussian read noise from ``exptime`` (needs
        ``sensitivity_peak``).
    sensitivity_peak : float or None
        Peak sensitivity, (e-/s) per (erg/s/cm^2); (0, 1e30]. None: 1 (a
        relative scale; SCI is then flux x S/S_peak).
    background : float
        Sky + thermal background, e-/s per map pixel, already subtracted from SCI; [0, 1e6].
    read_noise : float
        Read noise, e- per map pixel per exposure; [0, 1e4].
    wave_oversample : int
        Fine wavelength steps per map pixel of dispersion (step <= dispersion/4); [4, 4096].
    dispersion_scale : float
        Factor on every grism's dispersion (tests of the IFU limit); (0, 1e4].
    direct_filters : list of str
        Filters of the direct images (default: every filter an exposure uses).
    wave_offset_sigma : float
        Standard deviation of the wavelength zero-point error drawn per exposure, Angstrom; [0, 1000].
    continuum : {"none", "flat", "power_law"}
        Stellar continuum added to the scene: none, flat in f_lambda, or f_lambda ~ lambda^continuum_beta.
    continuum_ew : float
        Rest-frame equivalent width of ``lines.reference_line`` over the galaxy's total continuum, Angstrom;
        (0, 1e5]. Sets the continuum level at the line.
    continuum_beta : float
        Power-law index of f_lambda (``"power_law"``; -2 = flat in f_nu); [-10, 10].
    continuum_r_eff : float or None
        Effective radius of the continuum's own Sersic profile, kpc; (0, 100] (None: ``galaxy.r_eff``).
        Same centre, inclination and PA as the galaxy.
    continuum_sersic_n : float or None
        Its Sersic index; [0.2, 10] (None: the galaxy's).
    conf : dict
        Grism name -> path of a user GRISMCONF file (Pirzkal & Ryan 2017) whose first-order trace
        replaces the preset's dispersion, tilt and reference wavelength (a linear fit; field
        polynomials at the constant term). The preset still gives the filters and native pixel.
    """

    preset: str = "niriss_gr150"
    exposures: dict = field(default_factory=dict)
    noise_model: str = choice_field("snr", GRISM_NOISE_MODELS)
    sensitivity_peak: float | None = number_field(None, 0.0, 1e30, lo_open=True, unit="(e-/s)/(erg/s/cm^2)")
    background: float = number_field(0.0, 0.0, 1e6, unit="e-/s")
    read_noise: float = number_field(0.0, 0.0, 1e4, unit="e-")
    wave_oversample: int = integer_field(4, 4, 4096)
    dispersion_scale: float = number_field(1.0, 0.0, 1e4, lo_open=True)
    direct_filters: tuple = strings_field(())
    wave_offset_sigma: float = number_field(0.0, 0.0, 1000.0, unit="Angstrom")
    continuum: str = choice_field("none", CONTINUUM_KINDS)
    continuum_ew: float = number_field(100.0, 0.0, 1e5, lo_open=True, unit="Angstrom")
    continuum_beta: float = number_field(-2.0, -10.0, 10.0)
    continuum_r_eff: float | None = number_field(None, 0.0, 100.0, lo_open=True, unit="kpc")
    continuum_sersic_n: float | None = number_field(None, 0.2, 10.0)
    conf: dict = field(default_factory=dict)

    def __post_init__(self):
        p = "instrument.grism"
        validate.text(f"{p}.preset", self.preset, empty=False)
        check_fields(self, p)
        table = merged_presets(self.preset)
        object.__setattr__(self, "exposures", _exposures(p, self.exposures, table))
        used = tuple(dict.fromkeys(e["filter"] for e in self.exposures.values()))
        for name in self.direct_filters:
            if name not in table["filters"]:
                raise ConfigError(f"{p}.direct_filters: {name!r} is not a filter of preset {self.preset!r}; "
                                  f"allowed: {', '.join(table['filters'])}")
        if not self.direct_filters:
            object.__setattr__(self, "direct_filters", used)
        if not isinstance(self.conf, dict):
            raise ConfigError(f"{p}.conf: expected a table grism -> GRISMCONF path, got {self.conf!r}")
        for name, path in self.conf.items():
            if name not in table["grisms"]:
                raise ConfigError(f"{p}.conf.{name}: not a grism of preset {self.preset!r}; "
                                  f"allowed: {', '.join(table['grisms'])}")
            validate.text(f"{p}.conf.{name}", path, empty=False)

    def exposure_list(self) -> list[tuple[str, ExposureConfig]]:
        """``(label, ExposureConfig)`` of every exposure, in order."""
        return [(k, ExposureConfig(**v)) for k, v in self.exposures.items()]

    def preset_table(self) -> dict:
        """The merged preset(s): ``pixel_scale``, ``taper``, ``grisms`` and ``filters`` tables."""
        return merged_presets(self.preset)


def _exposures(p: str, raw, table: dict) -> dict:
    """Normalise and check the exposures: label -> plain dict of an ExposureConfig."""
    from .dicts import config_to_dict, from_dict  # same layer

    if isinstance(raw, (list, tuple)):
        raw = {str(i + 1): e for i, e in enumerate(raw)}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}.exposures: expected a list of tables {{grism, filter, pa, exptime}}, got {raw!r}")
    if not raw:
        raise ConfigError(f"{p}.exposures is empty; give at least one {{grism, filter, pa, exptime}}")
    out = {}
    for label, e in raw.items():
        path = f"{p}.exposures.{label}"
        exp = e if isinstance(e, ExposureConfig) else from_dict(ExposureConfig, e, path)
        if exp.grism not in table["grisms"]:
            raise ConfigError(f"{path}.grism = {exp.grism!r}; allowed: {', '.join(table['grisms'])}")
        if exp.filter not in table["filters"]:
            raise ConfigError(f"{path}.filter = {exp.filter!r}; allowed: {', '.join(table['filters'])}")
        out[str(label)] = config_to_dict(exp)
    return out


def available_grism_presets() -> list[str]:
    """Names of the presets in ``mockzgrad/instruments/`` that have a ``[grism]`` table."""
    names = sorted(f.name[:-5] for f in resources.files("mockzgrad.instruments").iterdir()
                   if f.name.endswith(".toml"))
    return [n for n in names if "grism" in _read_preset(n)]


@functools.lru_cache(maxsize=None)
def _read_preset(name: str) -> dict:
    text = resources.files("mockzgrad.instruments").joinpath(f"{name}.toml").read_text()
    return parse_toml(text, f"instrument preset {name}")


@functools.lru_cache(maxsize=None)
def grism_preset(name: str) -> dict:
    """The ``[grism]`` table of preset ``name``, checked (dispersion > 0, filter ranges ordered).

    Raises
    ------
    ConfigError
        Unknown preset, or a missing or invalid value in it.
    """
    names = available_grism_presets()
    if name not in names:
        raise ConfigError(f"instrument.grism.preset = {name!r}; allowed: {', '.join(names)}")
    g = _read_preset(name)["grism"]
    where = f"instrument preset {name}: grism"
    validate.number(f"{where}.pixel_scale", g.get("pixel_scale"), 0.0, 5.0, lo_open=True, unit="arcsec")
    validate.number(f"{where}.taper", g.get("taper", 0.0), 0.0, 1e4, unit="Angstrom")
    for gname, gr in g.get("grisms", {}).items():
        validate.number(f"{where}.grisms.{gname}.dispersion", gr.get("dispersion"), 0.0, 1e4, lo_open=True,
                        unit="Angstrom/pixel")
        validate.number(f"{where}.grisms.{gname}.dispersion_angle", gr.get("dispersion_angle", 0.0), -360, 360)
        validate.number(f"{where}.grisms.{gname}.tilt", gr.get("tilt", 0.0), -45.0, 45.0, unit="deg")
    for fname, f in g.get("filters", {}).items():
        lo = validate.number(f"{where}.filters.{fname}.wave_min", f.get("wave_min"), 900.0, 3e5)
        validate.number(f"{where}.filters.{fname}.wave_max", f.get("wave_max"), lo, 3e5, lo_open=True)
    if not g.get("grisms") or not g.get("filters"):
        raise ConfigError(f"{where}: needs [grism.grisms.*] and [grism.filters.*] tables")
    return g


def merged_presets(spec: str) -> dict:
    """Grisms and filters of one or more presets (``"a,b"``); the first preset's pixel scale and taper.

    Each grism and filter keeps its own values; a grism's native ``pixel_scale``
    and ``taper`` come from the preset that defines it.
    """
    out = {"grisms": {}, "filters": {}}
    for name in [s.strip() for s in spec.split(",") if s.strip()]:
        g = grism_preset(name)
        out.setdefault("pixel_scale", g["pixel_scale"])
        out.setdefault("taper", g.get("taper", 0.0))
        out.setdefault("instrument", g.get("instrument", name))
        for gname, gr in g["grisms"].items():
            out["grisms"][gname] = dict(gr, pixel_scale=g["pixel_scale"], preset=name)
        for fname, f in g["filters"].items():
            out["filters"][fname] = dict(f, taper=g.get("taper", 0.0), preset=name)
    if not out["grisms"]:
        raise ConfigError(f"instrument.grism.preset = {spec!r}; allowed: {', '.join(available_grism_presets())}")
    return out
