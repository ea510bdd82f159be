"""Configuration of one mock: frozen dataclasses, TOML I/O and validation.

This is the only module that checks user input. Every dataclass validates
its fields in ``__post_init__``, so a configuration built in Python is
checked exactly like one read from TOML. Errors are :class:`ConfigError`
with a message naming the field (dotted TOML path), the value and what is
allowed.

Units inside a configuration are fixed and documented per field (kpc, km/s,
arcsec, deg, Angstrom, erg/s/cm^2); a TOML file holds bare numbers in those
units. The defaults are the flagship experiment of DESIGN.md (a
JWST/NIRSpec-IFU-like mock of a z = 5 disk).

Examples
--------
>>> from mockzgrad.config import MockConfig, load_config
>>> cfg = MockConfig()                       # flagship defaults
>>> cfg2 = cfg.replace(**{"galaxy.metallicity.grad_z": -0.2})
>>> cfg2.galaxy.metallicity.grad_z
-0.2
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..errors import ConfigError
from ..physics.lines import LINES, NII_DOUBLET_RATIO, OII_DOUBLET_RATIO, OIII_DOUBLET_RATIO, SII_DOUBLET_RATIO

__all__ = [
    "RotationConfig",
    "MetallicityConfig",
    "GalaxyConfig",
    "DustConfig",
    "LinesConfig",
    "PSFConfig",
    "SpectralConfig",
    "InstrumentConfig",
    "NoiseConfig",
    "CosmologyConfig",
    "MockConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "dumps_toml",
    "save_config",
    "Recipe",
    "load_recipe",
    "available_recipes",
]

ROTATION_KINDS = ("exponential_disk", "arctan")
Z_PROFILES = ("linear", "broken_linear")
DUST_LAWS = ("calzetti2000", "cardelli1989", "battisti2022")
PSF_KINDS = ("gaussian", "elliptical_gaussian", "moffat", "image")
SPECTRAL_GRIDS = ("velocity", "linear")
#: Observation modes, ``instrument.kind`` (see :func:`mockzgrad.observe.observe`).
INSTRUMENT_KINDS = ("ifu",)
OUTSIDE_RANGE_POLICIES = ("clip", "extrapolate", "raise")
RATIO_SCATTER_MODES = ("none", "per_mock", "per_ring", "per_spaxel")
DEFAULT_SNR = 30.0


# --------------------------------------------------------------------------
# small validators: each names the field, the value and what is allowed
# --------------------------------------------------------------------------

def _num(path: str, value, lo=None, hi=None, *, lo_open=False, hi_open=False, unit=""):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path} = {value!r}: expected a number{_u(unit)}")
    value = float(value)
    ok = math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        raise ConfigError(
            f"{path} = {value!r}{_u(unit)}; allowed {_interval(lo, hi, lo_open, hi_open)}{_u(unit)}"
        )
    return value


def _int(path: str, value, lo=None, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path} = {value!r}: expected an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{path} = {value!r}; allowed {_interval(lo, hi, False, False)}")
    return value


def _choice(path: str, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{path} = {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def _u(unit):
    return f" {unit}" if unit else ""


def _interval(lo, hi, lo_open, hi_open):
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _line(path: str, name):
    if not isinstance(name, str) or name not in LINES:
        close = difflib.get_close_matches(str(name), LINES, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{path} = {name!r} is not a known line{hint}; allowed: {', '.join(LINES)}")
    return name


# --------------------------------------------------------------------------
# galaxy
# --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class RotationConfig:
    """Rotation curve.

    Parameters
    ----------
    kind : {"exponential_disk", "arctan"}
        ``"exponential_disk"``: circular velocity of a razor-thin exponential
        disk of baryonic mass ``10**log_mbary`` and the galaxy's ``r_eff``
        (Freeman 1970). ``"arctan"``: V(R) = v0 + (2/pi) vc arctan(R/rt).
    log_mbary : float
        log10 of the baryonic mass, Msun; [6, 13].
    pressure_support : bool
        Subtract the asymmetric-drift term of a self-gravitating exponential
        disk of constant ``sigma0`` (Burkert et al. 2010):
        V^2 = Vc^2 - 3.36 sigma0^2 (R / r_eff); clipped at zero.
    v0 : float
        Arctan offset velocity, km/s.
    vc : float
        Arctan asymptotic amplitude, km/s; [0, 1000].
    rt : float
        Arctan turnover radius, kpc; > 0.
    """

    kind: str = "exponential_disk"
    log_mbary: float = 10.5
    pressure_support: bool = False
    v0: float = 0.0
    vc: float = 200.0
    rt: float = 1.0

    def __post_init__(self):
        p = "galaxy.rotation"
        _choice(f"{p}.kind", self.kind, ROTATION_KINDS)
        _num(f"{p}.log_mbary", self.log_mbary, 6.0, 13.0, unit="log Msun")
        if not isinstance(self.pressure_support, bool):
            raise ConfigError(f"{p}.pressure_support = {self.pressure_support!r}: expected true or false")
        _num(f"{p}.v0", self.v0, -1000.0, 1000.0, unit="km/s")
        _num(f"{p}.vc", self.vc, 0.0, 1000.0, unit="km/s")
        _num(f"{p}.rt", self.rt, 0.0, 100.0, lo_open=True, unit="kpc")


@dataclass(frozen=True, kw_only=True)
class MetallicityConfig:
    """Radial gas-phase metallicity Z(r) = 12 + log(O/H).

    Parameters
    ----------
    profile : {"linear", "broken_linear"}
        ``linear``: Z = z0 + grad_z r. ``broken_linear``: slope ``grad_z``
        inside ``r_break`` and ``grad_z_outer`` outside, continuous.
    grad_z : float
        Gradient, dex/kpc, on the deprojected radius; [-1, 1].
    z0 : float or None
        Z at r = 0. None: chosen so that Z(r) stays inside the validity range
        of every generating calibration out to ``r_valid`` (DESIGN.md).
    r_break : float or None
        Break radius, kpc (broken_linear only).
    grad_z_outer : float or None
        Outer gradient, dex/kpc (broken_linear only).
    r_valid : float
        Radius out to which Z must stay inside the calibrations' validity
        ranges, in units of ``r_eff``; (0, 10].
    """

    profile: str = "linear"
    grad_z: float = -0.10
    z0: float | None = None
    r_break: float | None = None
    grad_z_outer: float | None = None
    r_valid: float = 3.0

    def __post_init__(self):
        p = "galaxy.metallicity"
        _choice(f"{p}.profile", self.profile, Z_PROFILES)
        _num(f"{p}.grad_z", self.grad_z, -1.0, 1.0, unit="dex/kpc")
        if self.z0 is not None:
            _num(f"{p}.z0", self.z0, 6.5, 9.8, unit="(12+log(O/H))")
        _num(f"{p}.r_valid", self.r_valid, 0.0, 10.0, lo_open=True, unit="r_eff")
        if self.profile == "broken_linear":
            if self.r_break is None or self.grad_z_outer is None:
                raise ConfigError(
                    f"{p}.profile = 'broken_linear' needs {p}.r_break (kpc) and {p}.grad_z_outer (dex/kpc)"
                )
        if self.r_break is not None:
            _num(f"{p}.r_break", self.r_break, 0.0, 100.0, lo_open=True, unit="kpc")
        if self.grad_z_outer is not None:
            _num(f"{p}.grad_z_outer", self.grad_z_outer, -1.0, 1.0, unit="dex/kpc")


@dataclass(frozen=True, kw_only=True)
class GalaxyConfig:
    """Disk galaxy: light profile, geometry, kinematics, metallicity.

    Parameters
    ----------
    redshift : float
        Redshift; (0, 20].
    r_eff : float
        Effective (half-light) radius of the Sersic light profile, kpc; > 0.
    sersic_n : float
        Sersic index; [0.3, 8]. 1 = exponential disk.
    inclination : float
        Inclination, deg; [0, 90]. 0 = face-on.
    pa : float
        Position angle of the receding major axis, deg east of north; [-360, 360].
    q0 : float
        Intrinsic axial ratio of the disk (thickness); [0, 1). Observed axis
        ratio is sqrt(cos^2 i + q0^2 sin^2 i).
    x_offset, y_offset : float
        Offset of the centre from the field centre, arcsec (x towards east,
        y towards north).
    sigma0 : float
        Intrinsic velocity dispersion, km/s; [0, 500].
    """

    redshift: float = 5.0
    r_eff: float = 2.0
    sersic_n: float = 1.0
    inclination: float = 20.0
    pa: float = 0.0
    q0: float = 0.0
    x_offset: float = 0.0
    y_offset: float = 0.0
    sigma0: float = 80.0
    rotation: RotationConfig = field(default_factory=RotationConfig)
    metallicity: MetallicityConfig = field(default_factory=MetallicityConfig)

    def __post_init__(self):
        p = "galaxy"
        _num(f"{p}.redshift", self.redshift, 0.0, 20.0, lo_open=True)
        _num(f"{p}.r_eff", self.r_eff, 0.0, 100.0, lo_open=True, unit="kpc")
        _num(f"{p}.sersic_n", self.sersic_n, 0.3, 8.0)
        _num(f"{p}.inclination", self.inclination, 0.0, 90.0, unit="deg")
        _num(f"{p}.pa", self.pa, -360.0, 360.0, unit="deg")
        _num(f"{p}.q0", self.q0, 0.0, 1.0, hi_open=True)
        _num(f"{p}.x_offset", self.x_offset, -60.0, 60.0, unit="arcsec")
        _num(f"{p}.y_offset", self.y_offset, -60.0, 60.0, unit="arcsec")
        _num(f"{p}.sigma0", self.sigma0, 0.0, 500.0, unit="km/s")


# --------------------------------------------------------------------------
# line model
# --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class DustConfig:
    """Dust attenuation applied to the generated line fluxes.

    Parameters
    ----------
    law : {"calzetti2000", "cardelli1989", "battisti2022"}
        Attenuation curve.
    a_v : float
        V-band attenuation at the centre, mag; [0, 10]. 0 = no dust.
    a_v_grad : float
        Radial slope of A_V, mag/kpc; A_V(r) = max(0, a_v + a_v_grad r).
    """

    law: str = "calzetti2000"
    a_v: float = 0.0
    a_v_grad: float = 0.0

    def __post_init__(self):
        _choice("lines.dust.law", self.law, DUST_LAWS)
        _num("lines.dust.a_v", self.a_v, 0.0, 10.0, unit="mag")
        _num("lines.dust.a_v_grad", self.a_v_grad, -5.0, 5.0, unit="mag/kpc")


FLAGSHIP_LINES = ("OII_3727", "OII_3730", "NeIII_3870", "Hb", "OIII_4960", "OIII_5008")


@dataclass(frozen=True, kw_only=True)
class LinesConfig:
    """Which lines are made and how their fluxes follow from Z(r).

    Parameters
    ----------
    reference_line : str
        Line that follows the light profile (e.g. ``"OIII_5008"`` at z ~ 5,
        ``"Ha"`` at z ~ 1-2).
    reference_flux : float
        Total (spatially integrated, intrinsic) flux of the reference line,
        erg/s/cm^2; > 0.
    lines : tuple of str
        Lines rendered into the cube.
    generating_set : tuple of str
        Calibration diagnostics (keys such as ``"S25_R3"``) that give every
        other line relative to the reference line. Together with the fixed
        doublet and Balmer ratios they must determine each rendered line
        exactly once.
    oiii_doublet_ratio, nii_doublet_ratio, oii_doublet_ratio, sii_doublet_ratio : float
        [OIII] 5008/4960, [NII] 6585/6550, [OII] 3730/3727, [SII] 6718/6733
        flux ratios (see :mod:`mockzgrad.physics.lines` for their sources).
    outside_range : {"clip", "extrapolate", "raise"}
        What to do where Z(r) leaves a generating calibration's validity
        range: evaluate at the clipped Z (default, with a warning),
        extrapolate the published form, or refuse.
    ratio_scatter : {"none", "per_mock", "per_ring", "per_spaxel"}
        Perturb each generating log ratio by a Gaussian draw of its
        calibration's intrinsic scatter: once per mock (coherent over the
        disk), once per ring of deprojected width ``ratio_scatter_ring``
        (independent between annuli of that width, as a chi^2 with the
        scatter term assumes), or once per spaxel; the draws are recorded
        in the truth (per mock and per ring).
    ratio_scatter_ring : float
        Ring width for ``per_ring``, kpc; > 0.
    dust : DustConfig
    """

    reference_line: str = "OIII_5008"
    reference_flux: float = 1.0e-16
    lines: tuple[str, ...] = FLAGSHIP_LINES
    generating_set: tuple[str, ...] = ("S25_R3", "S25_O32", "S25_Ne3O2")
    oiii_doublet_ratio: float = OIII_DOUBLET_RATIO
    nii_doublet_ratio: float = NII_DOUBLET_RATIO
    oii_doublet_ratio: float = OII_DOUBLET_RATIO
    sii_doublet_ratio: float = SII_DOUBLET_RATIO
    outside_range: str = "clip"
    ratio_scatter: str = "none"
    ratio_scatter_ring: float = 0.5
    dust: DustConfig = field(default_factory=DustConfig)

    def __post_init__(self):
        p = "lines"
        _line(f"{p}.reference_line", self.reference_line)
        _num(f"{p}.reference_flux", self.reference_flux, 0.0, 1e-5, lo_open=True, unit="erg/s/cm^2")
        _strtuple(self, "lines", f"{p}.lines")
        _strtuple(self, "generating_set", f"{p}.generating_set")
        if not self.lines:
            raise ConfigError(f"{p}.lines = []: at least one line must be rendered")
        for name in self.lines:
            _line(f"{p}.lines", name)
        if len(set(self.lines)) != len(self.lines):
            raise ConfigError(f"{p}.lines = {list(self.lines)}: a line is listed twice")
        for key in ("oiii_doublet_ratio", "nii_doublet_ratio", "oii_doublet_ratio", "sii_doublet_ratio"):
            _num(f"{p}.{key}", getattr(self, key), 0.0, 10.0, lo_open=True)
        _choice(f"{p}.outside_range", self.outside_range, OUTSIDE_RANGE_POLICIES)
        _choice(f"{p}.ratio_scatter", self.ratio_scatter, RATIO_SCATTER_MODES)
        _num(f"{p}.ratio_scatter_ring", self.ratio_scatter_ring, 0.0, 100.0, lo_open=True, unit="kpc")
        _check_generating_set(self)


def _strtuple(obj, attr, path):
    value = getattr(obj, attr)
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) for v in value
    ):
        raise ConfigError(f"{path} = {value!r}: expected a list of strings")
    object.__setattr__(obj, attr, tuple(value))


def _check_generating_set(cfg: LinesConfig):
    """Unknown or unusable calibration keys are user mistakes: say so here."""
    from ..physics import calibrations  # physics data; imports nothing above it

    known = calibrations.all_diagnostics()
    for key in cfg.generating_set:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=4)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"lines.generating_set: unknown calibration {key!r}{hint}; "
                "`mockzgrad calibrations` lists them"
            )
        diag = known[key]
        if not diag.usable:
            raise ConfigError(
                f"lines.generating_set: calibration {key!r} has status {diag.status} and is not "
                f"usable for generating lines ({diag.notes.strip()[:160]})"
            )


# --------------------------------------------------------------------------
# instrument
# --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PSFConfig:
    """Point-spread function (see :mod:`mockzgrad.observe.psf`).

    Parameters
    ----------
    kind : {"gaussian", "elliptical_gaussian", "moffat", "image"}
    fwhm : float
        FWHM, arcsec (major-axis FWHM for the elliptical Gaussian); (0, 10].
    fwhm_minor : float or None
        Minor-axis FWHM of the elliptical Gaussian, arcsec; <= fwhm.
    pa : float
        Position angle of the elliptical PSF's major axis, deg east of north.
    beta : float or None
        Moffat power index; > 1. Required for ``kind = "moffat"``.
    file : str or None
        FITS image of the PSF (``kind = "image"``).
    ref_wavelength : float or None
        Observed wavelength at which ``fwhm`` holds, Angstrom. With
        ``scaling_exponent`` the FWHM varies as (lambda/ref)^exponent.
    scaling_exponent : float or None
        Exponent of the FWHM-wavelength scaling (1 = diffraction limited).
    """

    kind: str = "gaussian"
    fwhm: float = 0.255
    fwhm_minor: float | None = None
    pa: float = 0.0
    beta: float | None = None
    file: str | None = None
    ref_wavelength: float | None = None
    scaling_exponent: float | None = None

    def __post_init__(self):
        p = "instrument.psf"
        _choice(f"{p}.kind", self.kind, PSF_KINDS)
        _num(f"{p}.fwhm", self.fwhm, 0.0, 10.0, lo_open=True, unit="arcsec")
        _num(f"{p}.pa", self.pa, -360.0, 360.0, unit="deg")
        if self.kind == "elliptical_gaussian":
            if self.fwhm_minor is None:
                raise ConfigError(f"{p}.kind = 'elliptical_gaussian' needs {p}.fwhm_minor (arcsec)")
            _num(f"{p}.fwhm_minor", self.fwhm_minor, 0.0, self.fwhm, lo_open=True, unit="arcsec")
        if self.kind == "moffat":
            if self.beta is None:
                raise ConfigError(f"{p}.kind = 'moffat' needs {p}.beta (> 1)")
            _num(f"{p}.beta", self.beta, 1.0, 100.0, lo_open=True)
        if self.kind == "image":
            if not isinstance(self.file, str) or not self.file:
                raise ConfigError(f"{p}.kind = 'image' needs {p}.file (path to a FITS image)")
        if (self.ref_wavelength is None) != (self.scaling_exponent is None):
            raise ConfigError(f"{p}.ref_wavelength and {p}.scaling_exponent go together; give both or neither")
        if self.ref_wavelength is not None:
            _num(f"{p}.ref_wavelength", self.ref_wavelength, 900.0, 3e5, unit="Angstrom")
            _num(f"{p}.scaling_exponent", self.scaling_exponent, -3.0, 3.0)


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
        Channel width, Angstrom (``linear``).
    window : float or None
        Half-width of the stored window around each redshifted line, km/s;
        only channels within it are stored unless ``full_grid``. None: six
        times sqrt(sigma0^2 + lsf_sigma^2) plus the projected rotation speed.
    full_grid : bool
        Store every channel from ``wave_min`` to ``wave_max``.
    wave_min, wave_max : float or None
        Observed wavelength range of the full grid, Angstrom (default: the
        span of the lines plus ``window``); with a preset, the band.
    preset : str or None
        A spectral grid shipped in ``mockzgrad/instruments/`` (e.g.
        ``"nirspec_g395m"``, ``"nirspec_g235m"``: linear-lambda grids at
        R ~ 1000); it sets ``grid``, ``dispersion``, ``wave_min``, ``wave_max``.
    """

    grid: str = "velocity"
    channel_width: float = 106.0
    dispersion: float | None = None
    window: float | None = None
    full_grid: bool = False
    wave_min: float | None = None
    wave_max: float | None = None
    preset: str | None = None

    def __post_init__(self):
        p = "instrument.spectral"
        if self.preset is not None:
            data = _spectral_preset(self.preset)
            # a preset fixes the grid; values given explicitly must agree with it
            for key in ("grid", "dispersion", "wave_min", "wave_max"):
                given = getattr(self, key)
                default = {"grid": "velocity"}.get(key)
                if given not in (None, default) and given != data[key]:
                    raise ConfigError(f"{p}.{key} = {given!r} conflicts with {p}.preset = {self.preset!r} "
                                      f"({key} = {data[key]!r}); drop one of them")
                object.__setattr__(self, key, data[key])
        _choice(f"{p}.grid", self.grid, SPECTRAL_GRIDS)
        _num(f"{p}.channel_width", self.channel_width, 0.0, 2000.0, lo_open=True, unit="km/s")
        if self.grid == "linear":
            if self.dispersion is None:
                raise ConfigError(f"{p}.grid = 'linear' needs {p}.dispersion (Angstrom per channel)")
            _num(f"{p}.dispersion", self.dispersion, 0.0, 1000.0, lo_open=True, unit="Angstrom")
        if self.window is not None:
            _num(f"{p}.window", self.window, 100.0, 1e5, unit="km/s")
        if not isinstance(self.full_grid, bool):
            raise ConfigError(f"{p}.full_grid = {self.full_grid!r}: expected true or false")
        for key in ("wave_min", "wave_max"):
            if getattr(self, key) is not None:
                _num(f"{p}.{key}", getattr(self, key), 900.0, 3e5, unit="Angstrom")
        if self.wave_min is not None and self.wave_max is not None and self.wave_max <= self.wave_min:
            raise ConfigError(f"{p}.wave_max = {self.wave_max} must exceed {p}.wave_min = {self.wave_min}")


def available_spectral_presets() -> list[str]:
    """Names of the spectral-grid presets shipped in ``mockzgrad/instruments/``."""
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("mockzgrad.instruments").iterdir()
                  if p.name.endswith(".toml"))


@functools.lru_cache(maxsize=None)
def _spectral_preset(name: str) -> dict:
    from importlib import resources

    names = available_spectral_presets()
    if name not in names:
        raise ConfigError(f"instrument.spectral.preset = {name!r}; allowed: {', '.join(names)}")
    data = tomllib.loads(resources.files("mockzgrad.instruments").joinpath(f"{name}.toml").read_text())
    return dict(data["spectral"])


@dataclass(frozen=True, kw_only=True)
class InstrumentConfig:
    """IFU instrument.

    Parameters
    ----------
    name : str
        Label written to the output.
    kind : str
        Observation mode, one of :data:`INSTRUMENT_KINDS`: ``"ifu"`` (an
        integral-field cube; default). Grism and slit-stepping modes add
        their names here.
    pixel_scale : float
        Spaxel size, arcsec; (0, 5].
    fov : float or None
        Side of the square field of view, arcsec. None: chosen so that at
        least ``fov_flux_fraction`` of every line's PSF-smeared flux falls
        inside (a given ``fov`` is checked against the same criterion).
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
        ``oversample``; > 0.
    lsf_sigma : float
        Gaussian line-spread function sigma, km/s; [0, 2000].
    psf : PSFConfig
    spectral : SpectralConfig
    """

    name: str = "nirspec_ifu"
    kind: str = "ifu"
    pixel_scale: float = 0.05
    fov: float | None = None
    fov_flux_fraction: float = 0.995
    oversample: int = 3
    oversample_outer: int = 1
    oversample_radius: float = 2.0
    lsf_sigma: float = 125.0
    psf: PSFConfig = field(default_factory=PSFConfig)
    spectral: SpectralConfig = field(default_factory=SpectralConfig)

    def __post_init__(self):
        p = "instrument"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{p}.name = {self.name!r}: expected a non-empty string")
        _choice(f"{p}.kind", self.kind, INSTRUMENT_KINDS)
        _num(f"{p}.pixel_scale", self.pixel_scale, 0.0, 5.0, lo_open=True, unit="arcsec")
        if self.fov is not None:
            _num(f"{p}.fov", self.fov, self.pixel_scale * 4, 600.0, unit="arcsec")
        _num(f"{p}.fov_flux_fraction", self.fov_flux_fraction, 0.9, 1.0, hi_open=True)
        _int(f"{p}.oversample", self.oversample, 1, 20)
        _int(f"{p}.oversample_outer", self.oversample_outer, 1, self.oversample)
        _num(f"{p}.oversample_radius", self.oversample_radius, 0.0, 100.0, lo_open=True, unit="r_eff")
        _num(f"{p}.lsf_sigma", self.lsf_sigma, 0.0, 2000.0, unit="km/s")


@dataclass(frozen=True, kw_only=True)
class NoiseConfig:
    """Noise: Gaussian with constant sigma per pixel and channel.

    Give exactly one of ``snr`` and ``sigma``.

    Parameters
    ----------
    snr : float or None
        Target S/N (default 30 when neither ``snr`` nor ``sigma`` is given) as defined in DESIGN.md: the mean, over spaxels inside the
        r_eff ellipse, of noise-free signal / sigma in the channel where the
        spatially integrated ``snr_line`` peaks; (0, 1e6].
    sigma : float or None
        Absolute noise sigma per pixel and channel, erg/s/cm^2 per channel.
    snr_line : str
        Line whose peak channel defines the S/N.
    enabled : bool
        False: a noise-free cube (the variance still describes ``snr``/``sigma``).
    """

    snr: float | None = None
    sigma: float | None = None
    snr_line: str = "OIII_5008"
    enabled: bool = True

    def __post_init__(self):
        p = "noise"
        if self.snr is None and self.sigma is None:  # neither given: the flagship S/N
            object.__setattr__(self, "snr", DEFAULT_SNR)
        if (self.snr is None) == (self.sigma is None):
            raise ConfigError(
                f"{p}: give exactly one of {p}.snr (target S/N) and {p}.sigma (erg/s/cm^2 per channel); "
                f"got snr = {self.snr!r}, sigma = {self.sigma!r}"
            )
        if self.snr is not None:
            _num(f"{p}.snr", self.snr, 0.0, 1e6, lo_open=True)
        if self.sigma is not None:
            _num(f"{p}.sigma", self.sigma, 0.0, 1.0, lo_open=True, unit="erg/s/cm^2")
        _line(f"{p}.snr_line", self.snr_line)
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"{p}.enabled = {self.enabled!r}: expected true or false")


@dataclass(frozen=True, kw_only=True)
class CosmologyConfig:
    """Cosmology: flat LambdaCDM by (h0, om0), or a named astropy realization.

    Parameters
    ----------
    h0 : float
        Hubble constant, km/s/Mpc; [20, 150].
    om0 : float
        Matter density today; (0, 1].
    name : str or None
        Name of an astropy realization (e.g. ``"Planck18"``); overrides h0/om0.
    """

    h0: float = 70.0
    om0: float = 0.3
    name: str | None = None

    def __post_init__(self):
        _num("cosmology.h0", self.h0, 20.0, 150.0, unit="km/s/Mpc")
        _num("cosmology.om0", self.om0, 0.0, 1.0, lo_open=True)
        if self.name is not None:
            from astropy.cosmology import realizations

            if self.name not in realizations.available:
                raise ConfigError(
                    f"cosmology.name = {self.name!r}; allowed: {', '.join(realizations.available)}"
                )

    def to_astropy(self):
        """The astropy cosmology this configuration describes (cached)."""
        return _astropy_cosmology(self.h0, self.om0, self.name)


@functools.lru_cache(maxsize=16)
def _astropy_cosmology(h0, om0, name):
    from astropy.cosmology import FlatLambdaCDM, realizations

    if name is not None:
        return getattr(realizations, name)
    return FlatLambdaCDM(H0=h0, Om0=om0)


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """Everything needed to build one mock cube.

    ``seed`` seeds the noise (and ratio-scatter) draws: same config and seed,
    same bytes.
    """

    galaxy: GalaxyConfig = field(default_factory=GalaxyConfig)
    lines: LinesConfig = field(default_factory=LinesConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    cosmology: CosmologyConfig = field(default_factory=CosmologyConfig)
    seed: int = 0

    def __post_init__(self):
        _int("seed", self.seed, 0, 2**63 - 1)
        for name, cls in (("galaxy", GalaxyConfig), ("lines", LinesConfig),
                          ("instrument", InstrumentConfig), ("noise", NoiseConfig),
                          ("cosmology", CosmologyConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.noise.snr_line not in self.lines.lines:
            raise ConfigError(
                f"noise.snr_line = {self.noise.snr_line!r} is not among lines.lines = {list(self.lines.lines)}"
            )
        if self.lines.reference_line not in self.lines.lines:
            raise ConfigError(
                f"lines.reference_line = {self.lines.reference_line!r} is not among "
                f"lines.lines = {list(self.lines.lines)}"
            )

    def replace(self, **changes) -> "MockConfig":
        """Copy with changes given by dotted paths, e.g. ``{"galaxy.r_eff": 3.0}``."""
        data = config_to_dict(self)
        for path, value in changes.items():
            _set_path(data, path, value)
        return config_from_dict(data)

    def to_dict(self) -> dict:
        return config_to_dict(self)


# --------------------------------------------------------------------------
# dict / TOML conversion
# --------------------------------------------------------------------------

def _hints(cls):
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def config_to_dict(obj) -> dict:
    """Plain nested dict of a config dataclass; None values are omitted
    (TOML has no null), tuples become lists."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _build(cls, data: dict, path: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"{full}: unknown key{hint}; allowed in [{path or 'top level'}]: {', '.join(names)}"
            )
        tp = hints[key]
        if _is_dataclass_type(tp):
            kwargs[key] = _build(tp, value, full)
        else:
            kwargs[key] = _coerce(full, value, tp)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"{path}: {exc}") from None


def _coerce(path, value, tp):
    """Check the TOML type against the annotation; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _coerce(path, value, non_none[0]) if value is not None else None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} = {value!r}: expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} = {value!r}: expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r}: expected a string")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path} = {value!r}: expected a list of strings")
        return tuple(value)
    return value  # pragma: no cover


def config_from_dict(data: dict) -> MockConfig:
    """Build and validate a :class:`MockConfig` from a nested dict (as read from TOML)."""
    return _build(MockConfig, data, "")


def _set_path(data: dict, path: str, value):
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {k} is not a table")
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = list(value) if isinstance(value, tuple) else value


def load_config(path) -> MockConfig:
    """Read and validate a TOML configuration file.

    Raises
    ------
    ConfigError
        The file is missing, is not valid TOML, or holds an invalid value.
    """
    return config_from_dict(read_toml(path, "config file")[0])


def read_toml(path, what: str) -> tuple[dict, str]:
    """Read a TOML file; errors name ``what`` and the path.

    Returns
    -------
    (dict, str)
        The parsed data and the file's text.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r}: cannot read ({exc.strerror})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r}: not valid TOML ({exc})") from None


# --------------------------------------------------------------------------
# TOML writer (tomllib reads only); enough for nested tables of scalars/lists
# --------------------------------------------------------------------------

def _toml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ConfigError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def dumps_toml(data: dict, *, _prefix: str = "") -> str:
    """Serialise a nested dict of scalars, lists and tables to TOML text."""
    lines = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_scalar(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        name = f"{_prefix}.{key}" if _prefix else key
        body = dumps_toml(value, _prefix=name).strip("\n")
        block = f"[{name}]" + (f"\n{body}" if body else "")
        out = f"{out}\n\n{block}" if out else block
    return out.strip("\n") + "\n"


def save_config(cfg: MockConfig, path) -> None:
    """Write a configuration as TOML."""
    Path(path).write_text(dumps_toml(config_to_dict(cfg)))


# --------------------------------------------------------------------------
# recovery recipes: each published pipeline's choices
# --------------------------------------------------------------------------

BINNING_SCHEMES = ("annuli", "fixed_annuli", "grown_annuli", "spaxels", "voronoi")
METHODS = ("I", "II", "flux")
GRADIENT_FITS = ("analytic", "emcee")
ERROR_MODELS = ("variance", "rms")
GATE_MODES = ("lines", "ratio")


@dataclass(frozen=True, kw_only=True)
class RecipeInfo:
    """Who measures gradients this way, and where it is written."""

    name: str = "lee2026"
    description: str = ""
    source: str = ""
    notes: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"recipe.name = {self.name!r}: expected a non-empty string")


@dataclass(frozen=True, kw_only=True)
class GeometryRecipe:
    """Centre, axis ratio and PA: fitted to the brightest line map, or given.

    Parameters
    ----------
    mode : {"fit", "given"}
    x_offset, y_offset : float
        Centre, arcsec east/north of the field centre (``given``).
    axis_ratio : float
        Observed b/a (``given``); (0, 1].
    pa : float
        Major-axis position angle, deg east of north (``given``).
    q0 : float
        Intrinsic thickness used to turn the axis ratio into an inclination.
    """

    mode: str = "fit"
    x_offset: float = 0.0
    y_offset: float = 0.0
    axis_ratio: float = 1.0
    pa: float = 0.0
    q0: float = 0.0

    def __post_init__(self):
        p = "geometry"
        _choice(f"{p}.mode", self.mode, ("fit", "given"))
        _num(f"{p}.axis_ratio", self.axis_ratio, 0.0, 1.0, lo_open=True)
        _num(f"{p}.pa", self.pa, -360.0, 360.0, unit="deg")
        _num(f"{p}.q0", self.q0, 0.0, 1.0, hi_open=True)
        _num(f"{p}.x_offset", self.x_offset, -60.0, 60.0, unit="arcsec")
        _num(f"{p}.y_offset", self.y_offset, -60.0, 60.0, unit="arcsec")


@dataclass(frozen=True, kw_only=True)
class BinningRecipe:
    """How spaxels are grouped (radii always in deprojected physical kpc).

    Parameters
    ----------
    scheme : {"annuli", "fixed_annuli", "grown_annuli", "spaxels", "voronoi"}
        ``annuli``: elliptical annuli of width = PSF HWHM, outermost set by
        the gating line's integrated S/N >= ``snr_outer`` (default);
        ``fixed_annuli``: ``n_annuli`` annuli of ``width_arcsec``;
        ``grown_annuli``: grown outward until the gating line reaches
        ``target_snr``; ``spaxels``: one bin per spaxel with cuts;
        ``voronoi``: Voronoi bins of ``target_snr`` on the gating line.
    r_min_kpc, r_max_kpc : float
        Radial range of the bins used, deprojected kpc (spaxels: a cut
        applied to each spaxel; other schemes: to each bin's radius).
    sectors : bool
        Split bins into azimuthal sectors (0-30, 30-60, 60-90 deg from the
        major axis).
    """

    scheme: str = "annuli"
    snr_outer: float = 3.0
    n_annuli: int = 3
    width_arcsec: float = 0.5
    target_snr: float = 15.0
    snr_min: float = 10.0
    r_min_kpc: float = 0.0
    r_max_kpc: float | None = None
    min_spaxels: int = 20
    sectors: bool = False

    def __post_init__(self):
        p = "binning"
        _choice(f"{p}.scheme", self.scheme, BINNING_SCHEMES)
        _num(f"{p}.snr_outer", self.snr_outer, 0.0, 1e4, lo_open=True)
        _int(f"{p}.n_annuli", self.n_annuli, 1, 100)
        _num(f"{p}.width_arcsec", self.width_arcsec, 0.0, 60.0, lo_open=True, unit="arcsec")
        _num(f"{p}.target_snr", self.target_snr, 0.0, 1e4, lo_open=True)
        _num(f"{p}.snr_min", self.snr_min, 0.0, 1e4)
        _num(f"{p}.r_min_kpc", self.r_min_kpc, 0.0, 1e3, unit="kpc")
        if self.r_max_kpc is not None:
            _num(f"{p}.r_max_kpc", self.r_max_kpc, self.r_min_kpc, 1e3, lo_open=True, unit="kpc")
        _int(f"{p}.min_spaxels", self.min_spaxels, 1, 10**7)
        if not isinstance(self.sectors, bool):
            raise ConfigError(f"{p}.sectors = {self.sectors!r}: expected true or false")


@dataclass(frozen=True, kw_only=True)
class GatingRecipe:
    """Which line gates the bins, and how diagnostics are admitted.

    Parameters
    ----------
    line : str
        Gating line, or ``"brightest"`` (the brightest fitted line; Halpha
        is preferred where it exists because [OIII] depends on Z).
    mode : {"lines", "ratio"}
        A diagnostic is used where each of its lines has S/N >= ``snr_min``
        (``lines``) or where the ratio itself is detected at ``snr_min`` sigma.
    snr_min : float
        Threshold, default 2.5 (DESIGN.md).
    """

    line: str = "brightest"
    mode: str = "lines"
    snr_min: float = 2.5

    def __post_init__(self):
        if self.line != "brightest":
            _line("gating.line", self.line)
        _choice("gating.mode", self.mode, GATE_MODES)
        _num("gating.snr_min", self.snr_min, 0.0, 1e3)


@dataclass(frozen=True, kw_only=True)
class ErrorsRecipe:
    """Spectral errors: from the variance cube, or an RMS in a moving window."""

    model: str = "variance"
    window: int = 160
    mask_kms: float = 500.0

    def __post_init__(self):
        _choice("errors.model", self.model, ERROR_MODELS)
        _int("errors.window", self.window, 5, 100000)
        _num("errors.mask_kms", self.mask_kms, 0.0, 1e5, unit="km/s")


@dataclass(frozen=True, kw_only=True)
class DustRecipe:
    """Balmer-decrement dust correction (off for de-reddened mocks).

    Parameters
    ----------
    correct : bool
        Correct the line fluxes for dust.
    law : {"calzetti2000", "cardelli1989", "battisti2022"}
        Curve used to turn the Balmer decrement into A_V.
    law_lines : str or None
        Curve used to de-redden the lines with that A_V (default ``law``).
    pair : ("Ha", "Hb") or ("Hg", "Hb")
    snr_min : float
        Both Balmer lines must exceed this S/N for a per-bin A_V; otherwise
        the integrated (global) A_V is used, and each bin says which.
    """

    correct: bool = False
    law: str = "calzetti2000"
    law_lines: str | None = None
    pair: tuple[str, ...] = ("Ha", "Hb")
    snr_min: float = 4.0

    def __post_init__(self):
        if not isinstance(self.correct, bool):
            raise ConfigError(f"dust.correct = {self.correct!r}: expected true or false")
        _choice("dust.law", self.law, DUST_LAWS)
        if self.law_lines is not None:
            _choice("dust.law_lines", self.law_lines, DUST_LAWS)
        if self.law == "battisti2022" and self.law_lines in (None, "battisti2022"):
            raise ConfigError("dust.law = 'battisti2022' is known only at Halpha and Hbeta: set dust.law_lines "
                              "to the curve that de-reddens the other lines ('calzetti2000' or 'cardelli1989')")
        _strtuple(self, "pair", "dust.pair")
        if self.pair not in (("Ha", "Hb"), ("Hg", "Hb")):
            raise ConfigError(f"dust.pair = {list(self.pair)}; allowed: ['Ha', 'Hb'], ['Hg', 'Hb']")
        _num("dust.snr_min", self.snr_min, 0.0, 1e3)


@dataclass(frozen=True, kw_only=True)
class MetallicityRecipe:
    """Metallicity per bin.

    Parameters
    ----------
    method : {"I", "II", "flux"}
        Method I (one Z for all diagnostics), Method II (each diagnostic
        inverted alone, median gradient), or the line-flux Bayesian method.
    diagnostics : tuple of str
        Calibration keys; those whose lines are not in the cube are dropped
        and reported.
    scatter : bool
        Include the calibrations' intrinsic scatter in chi^2.
    covariance : bool
        Use the full covariance of the log ratios (published Method I
        errors ignore it).
    logu : float
        Ionisation parameter for calibrations that need one.
    sampler : {"grid", "emcee"}
    nii_ha : float or None
        Fixed [NII]/Halpha for blended Halpha (line-flux method); None: fitted.
    oii_ratio : float or None
        Tie the [OII] doublet at this 3730/3727 ratio in the line fit.
    also : tuple of str
        Further methods whose results are reported beside ``method``.
    max_z_err : float or None
        Leave out bins whose metallicity error exceeds this, dex.
    fit_a_v : bool
        Line-flux method: fit A_V jointly with Z (False: spectra taken as
        de-reddened, A_V = 0).
    """

    method: str = "I"
    diagnostics: tuple[str, ...] = ("S25_R3", "S25_O32", "S25_Ne3O2", "S25_N2", "S25_S2")
    scatter: bool = True
    covariance: bool = False
    logu: float = -2.5
    sampler: str = "grid"
    nii_ha: float | None = None
    oii_ratio: float | None = None
    also: tuple[str, ...] = ()
    max_z_err: float | None = None
    fit_a_v: bool = False

    def __post_init__(self):
        p = "metallicity"
        _choice(f"{p}.method", self.method, METHODS)
        _strtuple(self, "diagnostics", f"{p}.diagnostics")
        _strtuple(self, "also", f"{p}.also")
        for m in self.also:
            _choice(f"{p}.also", m, METHODS)
        from ..physics import calibrations

        known = calibrations.all_diagnostics()
        for key in self.diagnostics:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=4)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"{p}.diagnostics: unknown calibration {key!r}{hint}")
        if not self.diagnostics:
            raise ConfigError(f"{p}.diagnostics = []: at least one calibration is needed")
        for key in ("scatter", "covariance"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{p}.{key} = {getattr(self, key)!r}: expected true or false")
        _num(f"{p}.logu", self.logu, -4.0, -1.0)
        _choice(f"{p}.sampler", self.sampler, ("grid", "emcee"))
        if self.nii_ha is not None:
            _num(f"{p}.nii_ha", self.nii_ha, 0.0, 0.5)
        if self.max_z_err is not None:
            _num(f"{p}.max_z_err", self.max_z_err, 0.0, 10.0, lo_open=True, unit="dex")
        if self.oii_ratio is not None:
            _num(f"{p}.oii_ratio", self.oii_ratio, 0.0, 10.0, lo_open=True)


@dataclass(frozen=True, kw_only=True)
class GradientRecipe:
    """Linear fit of Z against radius."""

    fit: str = "analytic"
    bootstrap: int = 0
    r_min_kpc: float = 0.0

    def __post_init__(self):
        _choice("gradient.fit", self.fit, GRADIENT_FITS)
        _int("gradient.bootstrap", self.bootstrap, 0, 100000)
        _num("gradient.r_min_kpc", self.r_min_kpc, 0.0, 1e3, unit="kpc")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """A published survey's gradient measurement, as one set of choices.

    Recipes ship as TOML files in ``mockzgrad/recipes/`` (``lee2026``,
    ``ju_msa3d``, ``li2025_kurvs``, ``wang2017``, ``wang2022``); copy one,
    edit it and pass its path. A correction curve is valid only for the
    recipe that made it.
    """

    recipe: RecipeInfo = field(default_factory=RecipeInfo)
    geometry: GeometryRecipe = field(default_factory=GeometryRecipe)
    binning: BinningRecipe = field(default_factory=BinningRecipe)
    gating: GatingRecipe = field(default_factory=GatingRecipe)
    errors: ErrorsRecipe = field(default_factory=ErrorsRecipe)
    dust: DustRecipe = field(default_factory=DustRecipe)
    metallicity: MetallicityRecipe = field(default_factory=MetallicityRecipe)
    gradient: GradientRecipe = field(default_factory=GradientRecipe)

    def replace(self, **changes) -> "Recipe":
        """Copy with changes given by dotted paths, e.g. ``{"metallicity.method": "II"}``."""
        data = config_to_dict(self)
        for path, value in changes.items():
            _set_path(data, path, value)
        return _build(Recipe, data, "")

    def to_dict(self) -> dict:
        return config_to_dict(self)


def available_recipes() -> list[str]:
    """Names of the recipes shipped with mockzgrad."""
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("mockzgrad.recipes").iterdir()
                  if p.name.endswith(".toml"))


def load_recipe(name_or_path) -> Recipe:
    """A shipped recipe by name, or a recipe TOML file by path.

    Raises
    ------
    ConfigError
        Unknown name, unreadable file or invalid value.
    """
    from importlib import resources

    path = Path(str(name_or_path))
    if path.suffix == ".toml" or path.exists():
        return _build(Recipe, read_toml(path, "recipe file")[0], "")
    else:
        names = available_recipes()
        if str(name_or_path) not in names:
            close = difflib.get_close_matches(str(name_or_path), names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"recipe = {str(name_or_path)!r} is not a shipped recipe{hint}; "
                              f"allowed: {', '.join(names)}, or a path to a .toml file")
        text = resources.files("mockzgrad.recipes").joinpath(f"{name_or_path}.toml").read_text()
        where = f"recipe {name_or_path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    return _build(Recipe, data, "")


from .resolution import psf_fwhm_for_x, r_eff_arcsec, x_resolution  # noqa: E402

__all__ += ["INSTRUMENT_KINDS", "psf_fwhm_for_x", "r_eff_arcsec", "x_resolution"]
