"""Configuration of the instrument: PSF, spectral grid (and its presets), spaxels, LSF."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

from .. import validate
from ..errors import ConfigError
from ._checks import bool_field, check_fields, choice_field, integer_field, number_field
from .slitstep import SlitstepConfig
from .grism import GrismConfig
from .toml_io import parse_toml

__all__ = [
    "PSF_KINDS",
    "SPECTRAL_GRIDS",
    "INSTRUMENT_KINDS",
    "PSFConfig",
    "SpectralConfig",
    "InstrumentConfig",
    "available_spectral_presets",
    "available_instrument_presets",
]

#: PSF shapes, ``instrument.psf.kind`` (see :mod:`mockzgrad.observation.psf`).
PSF_KINDS = ("gaussian", "elliptical_gaussian", "moffat", "image")
#: Channel spacings, ``instrument.spectral.grid``.
SPECTRAL_GRIDS = ("velocity", "linear")
#: Pixel units of a written cube, ``instrument.cube_unit`` (``mockzgrad.products.readers.units.CUBE_UNITS``):
#: 1e-20 erg/s/cm^2/Angstrom (ESO cubes) or MJy/sr (JWST ``*_s3d.fits``).
CUBE_UNITS = ("flam", "MJy/sr")
#: Observation modes, ``instrument.kind`` (see :func:`mockzgrad.observation.observe`).
INSTRUMENT_KINDS = (
    "ifu",
    "slitstep",
    "grism",
)


@dataclass(frozen=True, kw_only=True)
class PSFConfig:
    """Point-spread function (see :mod:`mockzgrad.observation.psf`).

    Parameters
    ----------
    kind : {"gaussian", "elliptical_gaussian", "moffat", "image"}
    fwhm : float
        FWHM, arcsec (major-axis FWHM for the elliptical Gaussian); (0, 10].
    fwhm_minor : float or None
        Minor-axis FWHM of the elliptical Gaussian, arcsec; (0, fwhm].
    pa : float
        Position angle of the elliptical PSF's major axis, deg east of north; [-360, 360].
    beta : float or None
        Moffat power index; (1, 100]. Required for ``kind = "moffat"``.
    file : str or None
        FITS image of the PSF (``kind = "image"``).
    ref_wavelength : float or None
        Observed wavelength at which ``fwhm`` holds, Angstrom; [900, 3e5].
        With ``scaling_exponent`` the FWHM varies as (lambda/ref)^exponent.
    scaling_exponent : float or None
        Exponent of the FWHM-wavelength scaling (1 = diffraction limited); [-3, 3].
    """

    kind: str = choice_field("gaussian", PSF_KINDS)
    fwhm: float = number_field(0.255, 0.0, 10.0, lo_open=True, unit="arcsec")
    fwhm_minor: float | None = None
    pa: float = number_field(0.0, -360.0, 360.0, unit="deg")
    beta: float | None = None
    file: str | None = None
    ref_wavelength: float | None = number_field(None, 900.0, 3e5, unit="Angstrom")
    scaling_exponent: float | None = number_field(None, -3.0, 3.0)

    def __post_init__(self):
        p = "instrument.psf"
        check_fields(self, p)
        # the shape parameters are checked only for the kind that uses them
        if self.kind == "elliptical_gaussian":
            if self.fwhm_minor is None:
                raise ConfigError(f"{p}.kind = 'elliptical_gaussian' needs {p}.fwhm_minor (arcsec)")
            validate.number(f"{p}.fwhm_minor", self.fwhm_minor, 0.0, self.fwhm, lo_open=True, unit="arcsec")
        if self.kind == "moffat":
            if self.beta is None:
                raise ConfigError(f"{p}.kind = 'moffat' needs {p}.beta (> 1)")
            validate.number(f"{p}.beta", self.beta, 1.0, 100.0, lo_open=True)
        if self.kind == "image":
            if not isinstance(self.file, str) or not self.file:
                raise ConfigError(f"{p}.kind = 'image' needs {p}.file (path to a FITS image)")
        if (self.ref_wavelength is None) != (self.scaling_exponent is None):
            raise ConfigError(f"{p}.ref_wavelength and {p}.scaling_exponent go together; give both or neither")


@dataclass(frozen=True, kw_only=True)
class SpectralConfig:
    """Spectral grid of the cube (observed frame, vacuum wavelengths).

    Parameters
    ----------
    grid : {"velocity", "linear"}
        ``velocity``: channels of constant width in km/s (log-lambda).
        ``linear``: channels of constant width in Angstrom (NIRSpec-like).
    channel_width : float
        Channel width, km/s (``velocity``); (0, 2000].
    dispersion : float or None
        Channel width, Angstrom (``linear``); (0, 1000].
    window : float or None
        Half-width of the stored window around each redshifted line, km/s;
        [100, 1e5]. Only channels within it are stored unless ``full_grid``.
        None: six times sqrt(sigma0^2 + lsf_sigma^2) plus the projected
        rotation speed.
    full_grid : bool
        Store every channel from ``wave_min`` to ``wave_max``.
    wave_min, wave_max : float or None
        Observed wavelength range of the full grid, Angstrom; [900, 3e5]
        (default: the span of the lines plus ``window``); with a preset, the band.
    preset : str or None
        A spectral grid shipped in ``mockzgrad/instruments/`` (e.g.
        ``"nirspec_g395m"``, ``"nirspec_g235m"``: linear-lambda grids at
        R ~ 1000); it sets ``grid``, ``dispersion``, ``wave_min``, ``wave_max``.
    """

    grid: str = choice_field("velocity", SPECTRAL_GRIDS)
    channel_width: float = number_field(106.0, 0.0, 2000.0, lo_open=True, unit="km/s")
    dispersion: float | None = None
    window: float | None = number_field(None, 100.0, 1e5, unit="km/s")
    full_grid: bool = bool_field(False)
    wave_min: float | None = number_field(None, 900.0, 3e5, unit="Angstrom")
    wave_max: float | None = number_field(None, 900.0, 3e5, unit="Angstrom")
    preset: str | None = None

    def __post_init__(self):
        p = "instrument.spectral"
        if self.preset is not None:
            self._apply_preset(p)
        check_fields(self, p)
        if self.grid == "linear":
            if self.dispersion is None:
                raise ConfigError(f"{p}.grid = 'linear' needs {p}.dispersion (Angstrom per channel)")
            validate.number(f"{p}.dispersion", self.dispersion, 0.0, 1000.0, lo_open=True, unit="Angstrom")
        if self.wave_min is not None and self.wave_max is not None and self.wave_max <= self.wave_min:
            raise ConfigError(f"{p}.wave_max = {self.wave_max} must exceed {p}.wave_min = {self.wave_min}")

    def _apply_preset(self, p):
        """A preset fixes the grid; values given explicitly must agree with it."""
        data = _spectral_preset(self.preset)
        for key in ("grid", "dispersion", "wave_min", "wave_max"):
            given = getattr(self, key)
            default = {"grid": "velocity"}.get(key)
            if given not in (None, default) and given != data[key]:
                raise ConfigError(f"{p}.{key} = {given!r} conflicts with {p}.preset = {self.preset!r} "
                                  f"({key} = {data[key]!r}); drop one of them")
            object.__setattr__(self, key, data[key])


def available_spectral_presets() -> list[str]:
    """Names of the spectral-grid presets shipped in ``mockzgrad/instruments/``."""
    return sorted(p.name[:-5] for p in resources.files("mockzgrad.instruments").iterdir()
                  if p.name.endswith(".toml") and "spectral" in _preset_file(p.name[:-5]))


@functools.lru_cache(maxsize=None)
def _preset_file(name: str) -> dict:
    """Parsed preset ``name`` of ``mockzgrad/instruments/`` (or a TOML path ending in ``.toml``)."""
    if name.endswith(".toml"):
        from pathlib import Path

        try:
            text = Path(name).read_text()
        except OSError as exc:
            raise ConfigError(f"instrument.preset = {name!r}: cannot read it ({exc.strerror})") from None
    else:
        text = resources.files("mockzgrad.instruments").joinpath(f"{name}.toml").read_text()
    return parse_toml(text, f"instrument preset {name}")


def available_instrument_presets() -> list[str]:
    """Names of the presets in ``mockzgrad/instruments/`` with an ``[instrument]`` table."""
    return sorted(p.name[:-5] for p in resources.files("mockzgrad.instruments").iterdir()
                  if p.name.endswith(".toml") and "instrument" in _preset_file(p.name[:-5]))


def _instrument_table(name: str) -> dict:
    import difflib

    names = available_instrument_presets()
    if not name.endswith(".toml") and name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4) or names
        raise ConfigError(f"instrument.preset = {name!r}: unknown preset; close names: {', '.join(close)}")
    data = _preset_file(name).get("instrument")
    if not isinstance(data, dict):
        raise ConfigError(f"instrument.preset = {name!r} has no [instrument] table")
    return data


def _merge_preset(where: str, given: dict, defaults: dict, preset: dict, name: str) -> dict:
    """``given`` with the preset's values; a value set away from its default must agree."""
    out = dict(given)
    for key, value in preset.items():
        if isinstance(value, dict):
            continue
        if key not in defaults:
            raise ConfigError(f"instrument preset {name!r}: unknown field {where}.{key}")
        if given.get(key) not in (defaults[key], value):
            raise ConfigError(f"{where}.{key} = {given[key]!r} conflicts with instrument.preset = {name!r} "
                              f"({key} = {value!r}); drop one of them")
        out[key] = value
    return out


def _apply_instrument_preset(inst: "InstrumentConfig", p: str) -> None:
    """``instrument.preset`` fills the fields it names; explicit values must agree with it."""
    import dataclasses

    table = _instrument_table(inst.preset)
    top = {k: v for k, v in table.items() if not isinstance(v, dict)}
    given = {k: getattr(inst, k) for k in top if hasattr(inst, k)}
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                for f in dataclasses.fields(InstrumentConfig)}
    for key, value in _merge_preset(p, given, defaults, top, inst.preset).items():
        object.__setattr__(inst, key, value)
    for key, cls in (("psf", PSFConfig), ("spectral", SpectralConfig)):
        sub = table.get(key)
        if not sub:
            continue
        current = getattr(inst, key)
        given = {f.name: getattr(current, f.name) for f in dataclasses.fields(cls)}
        sub_defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        if key == "spectral" and "preset" in sub:  # a spectral-grid preset: its fields were filled from it
            given = {k: (sub_defaults[k] if k in ("grid", "dispersion", "wave_min", "wave_max")
                         and current.preset in (None, sub["preset"]) else v) for k, v in given.items()}
        merged = _merge_preset(f"{p}.{key}", given, sub_defaults, sub, inst.preset)
        object.__setattr__(inst, key, cls(**merged))


@functools.lru_cache(maxsize=None)
def _spectral_preset(name: str) -> dict:
    names = available_spectral_presets()
    if name not in names:
        raise ConfigError(f"instrument.spectral.preset = {name!r}; allowed: {', '.join(names)}")
    text = resources.files("mockzgrad.instruments").joinpath(f"{name}.toml").read_text()
    return dict(parse_toml(text, f"instrument preset {name}")["spectral"])


@dataclass(frozen=True, kw_only=True)
class InstrumentConfig:
    """The instrument and its observation mode.

    Parameters
    ----------
    name : str
        Label written to the output; not empty.
    kind : str
        Observation mode, one of :data:`INSTRUMENT_KINDS`: ``"ifu"`` (an
        integral-field cube; default), ``"slitstep"`` (NIRSpec MSA slit
        stepping, ``[instrument.slitstep]``) or ``"grism"`` (slitless
        exposures, ``[instrument.grism]``).
    pixel_scale : float
        Spaxel size, arcsec; (0, 5].
    fov : float or None
        Side of the square field of view, arcsec; [4 pixel_scale, 600]. None:
        chosen so that at least ``fov_flux_fraction`` of every line's
        PSF-smeared flux falls inside (a given ``fov`` is checked against the
        same criterion).
    fov_flux_fraction : float
        Required enclosed fraction of PSF-smeared flux; [0.9, 1).
    oversample : int
        Sub-pixels per spaxel per axis for rendering; [1, 20]. The default 3
        changes the flagship cube by < 0.25 % of its peak against 6, for PSF
        FWHM >= 0.1" (tests/test_cube.py checks 4 against 8).
    oversample_outer : int
        Sub-pixels per spaxel per axis beyond ``oversample_radius``; [1,
        oversample]. The rotation curve is flat and the light smooth there.
    oversample_radius : float
        Deprojected radius, in r_eff, of the spaxels rendered with
        ``oversample``; (0, 100].
    lsf_sigma : float
        Gaussian line-spread function sigma, km/s; [0, 2000].
    psf : PSFConfig
    spectral : SpectralConfig
    cube_unit : {"flam", "MJy/sr"}
        Pixel unit of the cube file: ``"flam"``, flux density in 1e-20
        erg/s/cm^2/Angstrom as ESO KMOS/MUSE cubes; ``"MJy/sr"``, surface
        brightness as JWST ``*_s3d.fits`` (the NIRSpec IFU presets). Reading
        converts back; recovery does not depend on it.
    slitstep : SlitstepConfig or None
        ``[instrument.slitstep]``, the slit-stepping set-up (kind
        ``"slitstep"``; filled from its preset when left out). That mode uses
        ``psf`` (the telescope PSF), ``fov_flux_fraction`` and
        ``spectral.window``; its spaxel, channels and LSF come from this table
        (``pixel_scale``, ``oversample*``, ``lsf_sigma`` and the rest of
        ``spectral`` are not used).
    grism : GrismConfig or None
        ``[instrument.grism]``, the slitless set-up (kind ``"grism"``).
    preset : str or None
        Instrument preset in ``mockzgrad/instruments/`` (or a TOML path)
        filling the fields it names; values given explicitly must agree
        with it (``mockzgrad presets`` lists them).
    """

    name: str = "nirspec_ifu"
    kind: str = choice_field("ifu", INSTRUMENT_KINDS)
    pixel_scale: float = number_field(0.05, 0.0, 5.0, lo_open=True, unit="arcsec")
    fov: float | None = None
    fov_flux_fraction: float = number_field(0.995, 0.9, 1.0, hi_open=True)
    oversample: int = integer_field(3, 1, 20)
    oversample_outer: int = 1
    oversample_radius: float = number_field(2.0, 0.0, 100.0, lo_open=True, unit="r_eff")
    lsf_sigma: float = number_field(125.0, 0.0, 2000.0, unit="km/s")
    psf: PSFConfig = field(default_factory=PSFConfig)
    spectral: SpectralConfig = field(default_factory=SpectralConfig)
    cube_unit: str = choice_field("flam", CUBE_UNITS)
    slitstep: SlitstepConfig | None = None  # [instrument.slitstep], kind = "slitstep" (config/slitstep.py)
    grism: GrismConfig | None = None  # [instrument.grism], kind = "grism" (config/grism.py)
    preset: str | None = None  # instrument preset (mockzgrad/instruments/ or a TOML path): _apply_instrument_preset

    def __post_init__(self):
        p = "instrument"
        if self.preset is not None:
            _apply_instrument_preset(self, p)
        validate.text(f"{p}.name", self.name, empty=False)
        check_fields(self, p)
        # bounds that depend on other fields
        if self.fov is not None:
            validate.number(f"{p}.fov", self.fov, self.pixel_scale * 4, 600.0, unit="arcsec")
        validate.integer(f"{p}.oversample_outer", self.oversample_outer, 1, self.oversample)
        _slitstep_post_init(self)
        _check_grism(self, p)


def _slitstep_post_init(inst: "InstrumentConfig") -> None:
    """``[instrument.slitstep]`` as a checked :class:`SlitstepConfig`; the preset's for kind ``"slitstep"``."""
    from .dicts import from_dict

    if isinstance(inst.slitstep, dict):
        object.__setattr__(inst, "slitstep", from_dict(SlitstepConfig, inst.slitstep, "instrument.slitstep"))
    elif inst.slitstep is not None and not isinstance(inst.slitstep, SlitstepConfig):
        raise ConfigError(f"instrument.slitstep = {inst.slitstep!r}; expected a table ([instrument.slitstep])")
    if inst.kind == "slitstep" and inst.slitstep is None:
        object.__setattr__(inst, "slitstep", SlitstepConfig())


def _check_grism(inst: "InstrumentConfig", p: str) -> None:
    """``[instrument.grism]`` as a checked :class:`GrismConfig`, required for kind ``"grism"``, refused otherwise."""
    from .dicts import from_dict

    if isinstance(inst.grism, dict):
        object.__setattr__(inst, "grism", from_dict(GrismConfig, inst.grism, f"{p}.grism"))
    elif inst.grism is not None and not isinstance(inst.grism, GrismConfig):
        raise ConfigError(f"{p}.grism = {inst.grism!r}; expected a table ([{p}.grism])")
    if inst.kind == "grism" and inst.grism is None:
        raise ConfigError(f"{p}.kind = 'grism' needs an [{p}.grism] table (preset, exposures)")
    if inst.kind != "grism" and inst.grism is not None:
        raise ConfigError(f"{p}.grism is given but {p}.kind = {inst.kind!r}; set {p}.kind = 'grism' or drop it")
