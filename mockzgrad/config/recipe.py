"""Recovery recipes: each published pipeline's choices, as one checked dataclass.

A :class:`Recipe` has one part per recovery step (geometry, binning,
gating, errors, dust, metallicity, gradient), each a TOML table of the
recipe file. Recipes ship in ``mockzgrad/recipes/``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import ConfigError
from ._checks import (bool_field, calibration_keys, check_fields, choice_field, integer_field, line_name,
                      number_field, strings_field)
from .dicts import config_to_dict, from_dict, set_path
from .lensing import LensingRecipe
from .lines import DUST_LAWS
from .toml_io import parse_toml, read_toml

__all__ = [
    "BINNING_SCHEMES",
    "METHODS",
    "GRADIENT_FITS",
    "ERROR_MODELS",
    "GATE_MODES",
    "RecipeInfo",
    "GeometryRecipe",
    "BinningRecipe",
    "GatingRecipe",
    "ErrorsRecipe",
    "DustRecipe",
    "MetallicityRecipe",
    "GradientRecipe",
    "Recipe",
    "load_recipe",
    "available_recipes",
]

#: Binning schemes, ``binning.scheme``.
BINNING_SCHEMES = ("annuli", "fixed_annuli", "grown_annuli", "spaxels", "voronoi")
#: Metallicity methods, ``metallicity.method`` and ``metallicity.also``.
METHODS = ("I", "II", "flux")
#: Gradient fits, ``gradient.fit``.
GRADIENT_FITS = ("analytic", "emcee")
#: Spectral error models, ``errors.model``.
ERROR_MODELS = ("variance", "rms")
#: How a diagnostic is admitted to a bin, ``gating.mode``.
GATE_MODES = ("lines", "ratio")
_BALMER_PAIRS = (("Ha", "Hb"), ("Hg", "Hb"))


@dataclass(frozen=True, kw_only=True)
class RecipeInfo:
    """Who measures gradients this way, and where it is written (``[recipe]``).

    Parameters
    ----------
    name : str
        Recipe name (recorded with every result and correction curve); not empty.
    description : str
        One line on what the recipe reproduces.
    source : str
        The publication whose measurement the recipe follows.
    notes : str
        Free text: stand-ins, assumptions and departures from the source.
    """

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
    mode : {"fit", "given", "catalog"}
        ``catalog``: PA and b/a from the product's imaging catalogue
        (``MockCube.catalog``, e.g. S1 Sect. 3.2: CANDELS), centre fitted
        as for ``fit``.
    x_offset, y_offset : float
        Centre, arcsec east/north of the field centre (``given``); [-60, 60].
    axis_ratio : float
        Observed b/a (``given``); (0, 1].
    pa : float
        Major-axis position angle, deg east of north (``given``); [-360, 360].
    q0 : float
        Intrinsic thickness used to turn the axis ratio into an inclination; [0, 1).
    centre : {"fit", "continuum_peak"} or None
        ``continuum_peak`` (modes ``fit`` and ``catalog``): the centre is the
        peak of the continuum in the rest 5500 +- 25 A window
        (:data:`mockzgrad.config.continuum.CENTRE_WINDOW_REST`; S1 Sect. 3.2)
        when the cube has a detected continuum there, else the fitted
        centre with a note in the result. None or ``fit``: the fitted centre.
    """

    mode: str = choice_field("fit", ("fit", "given", "catalog"))
    x_offset: float = number_field(0.0, -60.0, 60.0, unit="arcsec")
    y_offset: float = number_field(0.0, -60.0, 60.0, unit="arcsec")
    axis_ratio: float = number_field(1.0, 0.0, 1.0, lo_open=True)
    pa: float = number_field(0.0, -360.0, 360.0, unit="deg")
    q0: float = number_field(0.0, 0.0, 1.0, hi_open=True)
    centre: str | None = choice_field(None, ("fit", "continuum_peak"))

    def __post_init__(self):
        check_fields(self, "geometry")


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
    snr_outer : float
        S/N of the outermost annulus (``annuli``); (0, 1e4].
    n_annuli : int
        Number of annuli (``fixed_annuli``); [1, 100].
    width_arcsec : float
        Annulus width (``fixed_annuli``), arcsec; (0, 60].
    target_snr : float
        S/N each grown annulus or Voronoi bin reaches; (0, 1e4].
    snr_min : float
        S/N cut of the ``spaxels`` scheme; [0, 1e4].
    r_min_kpc, r_max_kpc : float
        Radial range of the bins used, deprojected kpc; [0, 1e3] and
        (r_min_kpc, 1e3] (spaxels: a cut applied to each spaxel; other
        schemes: to each bin's radius). ``r_max_kpc`` None: no outer cut.
    min_spaxels : int
        Fewest spaxels in a bin; [1, 1e7].
    sectors : bool
        Split bins into azimuthal sectors (0-30, 30-60, 60-90 deg from the
        major axis).
    ew_snr_min : float or None
        ``spaxels`` scheme: keep only spaxels whose EW of the gating line
        has S/N above this (S1 Sect. 3.1: EW(Halpha) S/N > 5), applied when
        the cube has a detected continuum (else not applied, with a note);
        EW from each spaxel's line fit (:func:`mockzgrad.recovery.continuum.spaxel_ew`);
        [0, 1e4]. None: no EW cut.
    """

    scheme: str = choice_field("annuli", BINNING_SCHEMES)
    snr_outer: float = number_field(3.0, 0.0, 1e4, lo_open=True)
    n_annuli: int = integer_field(3, 1, 100)
    width_arcsec: float = number_field(0.5, 0.0, 60.0, lo_open=True, unit="arcsec")
    target_snr: float = number_field(15.0, 0.0, 1e4, lo_open=True)
    snr_min: float = number_field(10.0, 0.0, 1e4)
    r_min_kpc: float = number_field(0.0, 0.0, 1e3, unit="kpc")
    r_max_kpc: float | None = None
    min_spaxels: int = integer_field(20, 1, 10**7)
    sectors: bool = bool_field(False)
    ew_snr_min: float | None = number_field(None, 0.0, 1e4)

    def __post_init__(self):
        check_fields(self, "binning")
        if self.r_max_kpc is not None:
            validate.number("binning.r_max_kpc", self.r_max_kpc, self.r_min_kpc, 1e3, lo_open=True, unit="kpc")


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
        Threshold, default 2.5 (DESIGN.md); [0, 1e3].
    """

    line: str = "brightest"
    mode: str = choice_field("lines", GATE_MODES)
    snr_min: float = number_field(2.5, 0.0, 1e3)

    def __post_init__(self):
        if self.line != "brightest":
            line_name("gating.line", self.line)
        check_fields(self, "gating")


@dataclass(frozen=True, kw_only=True)
class ErrorsRecipe:
    """Spectral errors: from the variance cube, or an RMS in a moving window.

    Parameters
    ----------
    model : {"variance", "rms"}
        Per-channel errors from the cube's variance, or the RMS of the
        line-masked spectrum in a moving window.
    window : int
        Moving-window length of the RMS, channels; [5, 1e5].
    mask_kms : float
        Half-width masked around each line before the RMS, km/s; [0, 1e5].
    """

    model: str = choice_field("variance", ERROR_MODELS)
    window: int = integer_field(160, 5, 100000)
    mask_kms: float = number_field(500.0, 0.0, 1e5, unit="km/s")

    def __post_init__(self):
        check_fields(self, "errors")


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
        the integrated (global) A_V is used, and each bin says which; [0, 1e3].
    """

    correct: bool = bool_field(False)
    law: str = choice_field("calzetti2000", DUST_LAWS)
    law_lines: str | None = choice_field(None, DUST_LAWS)
    pair: tuple[str, ...] = strings_field(("Ha", "Hb"))
    snr_min: float = number_field(4.0, 0.0, 1e3)

    def __post_init__(self):
        check_fields(self, "dust")
        if self.law == "battisti2022" and self.law_lines in (None, "battisti2022"):
            raise ConfigError("dust.law = 'battisti2022' is known only at Halpha and Hbeta: set dust.law_lines "
                              "to the curve that de-reddens the other lines ('calzetti2000' or 'cardelli1989')")
        if self.pair not in _BALMER_PAIRS:
            raise ConfigError(f"dust.pair = {list(self.pair)}; allowed: {', '.join(map(str, map(list, _BALMER_PAIRS)))}")


def _method(path, value):
    """One of the methods "I", "II", "flux" (:data:`METHODS`)."""
    return validate.choice(path, value, METHODS)


def _nii_ha(path, value):
    """[NII]6585/Halpha of a blended Halpha: a number in [0, 0.5] or "nuisance"."""
    if isinstance(value, str) and value != "nuisance":
        raise ConfigError(f"{path} = {value!r}; allowed: a number in [0, 0.5], 'nuisance', or absent (pure Halpha)")
    return value if isinstance(value, str) else validate.number(path, value, 0.0, 0.5)


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
        log10 of the ionisation parameter for calibrations that need one; [-4, -1].
    sampler : {"grid", "emcee"}
        How a bin's metallicity posterior is explored: on a grid in Z, or
        sampled with emcee.
    nii_ha : float, "nuisance" or None
        Line-flux method. None: "Ha" is pure Halpha (resolved from [NII]).
        A number in [0, 0.5]: "Ha" is the Halpha+[NII] 6550,6585 blend of
        grism data with this fixed [NII]6585/Halpha (Wang et al. 2017
        "vanilla": 0.05, Table 3). ``"nuisance"``: the blend with
        [NII]/Halpha free under a Jeffreys prior on
        ``recovery.metallicity.NII_HA_RANGE`` = [0.005, 0.5] (Wang et al.
        2017 "extended", Sect. 4.4; the log-uniform prior needs a lower bound).
    oii_ratio : float or None
        Tie the [OII] doublet at this 3730/3727 ratio in the line fit; (0, 10].
    also : tuple of str
        Further methods whose results are reported beside ``method``.
    max_z_err : float or None
        Leave out bins whose metallicity error exceeds this, dex; (0, 10].
    fit_a_v : bool
        Line-flux method: fit A_V jointly with Z (False: spectra taken as
        de-reddened, A_V = 0).
    """

    method: str = choice_field("I", METHODS)
    diagnostics: tuple[str, ...] = strings_field(("S25_R3", "S25_O32", "S25_Ne3O2", "S25_N2", "S25_S2"))
    scatter: bool = bool_field(True)
    covariance: bool = bool_field(False)
    logu: float = number_field(-2.5, -4.0, -1.0)
    sampler: str = choice_field("grid", ("grid", "emcee"))
    nii_ha: Any = field(default=None, metadata={"check": _nii_ha, "store": False})  # float | "nuisance" | None
    oii_ratio: float | None = number_field(None, 0.0, 10.0, lo_open=True)
    also: tuple[str, ...] = strings_field((), each=_method)
    max_z_err: float | None = number_field(None, 0.0, 10.0, lo_open=True, unit="dex")
    fit_a_v: bool = bool_field(False)

    def __post_init__(self):
        p = "metallicity"
        check_fields(self, p)
        calibration_keys(f"{p}.diagnostics", self.diagnostics)
        if not self.diagnostics:
            raise ConfigError(f"{p}.diagnostics = []: at least one calibration is needed")


@dataclass(frozen=True, kw_only=True)
class GradientRecipe:
    """Linear fit of Z against radius.

    Parameters
    ----------
    fit : {"analytic", "emcee"}
        Exact analytic posterior of the linear fit, or an emcee sampling.
    bootstrap : int
        Bootstrap resamplings of the bins for the error (0: none); [0, 1e5].
    r_min_kpc : float
        Bins inside this deprojected radius are left out, kpc; [0, 1e3].
    """

    fit: str = choice_field("analytic", GRADIENT_FITS)
    bootstrap: int = integer_field(0, 0, 100000)
    r_min_kpc: float = number_field(0.0, 0.0, 1e3, unit="kpc")

    def __post_init__(self):
        check_fields(self, "gradient")


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
    lensing: LensingRecipe = None  # None: unlensed (no [lensing] table); see mockzgrad.recovery.lensing

    def replace(self, **changes) -> "Recipe":
        """Copy with changes given by dotted paths, e.g. ``{"metallicity.method": "II"}``."""
        data = config_to_dict(self)
        for path, value in changes.items():
            set_path(data, path, value)
        return from_dict(Recipe, data, "")

    def to_dict(self) -> dict:
        """Nested dict of this recipe (see :func:`~mockzgrad.config.config_to_dict`)."""
        return config_to_dict(self)


def available_recipes() -> list[str]:
    """Names of the recipes shipped with mockzgrad."""
    return sorted(p.name[:-5] for p in resources.files("mockzgrad.recipes").iterdir()
                  if p.name.endswith(".toml"))


def load_recipe(name_or_path) -> Recipe:
    """A shipped recipe by name, or a recipe TOML file by path.

    Raises
    ------
    ConfigError
        Unknown name, unreadable file or invalid value.
    """
    path = Path(str(name_or_path))
    names = available_recipes()
    # a shipped name wins over a file or folder of that name in the working directory;
    # a path is explicit when it has a folder part or a .toml suffix
    explicit = path.suffix == ".toml" or len(path.parts) > 1
    if explicit or (str(name_or_path) not in names and path.is_file()):
        return from_dict(Recipe, read_toml(path, "recipe file")[0], "")
    if str(name_or_path) not in names:
        close = difflib.get_close_matches(str(name_or_path), names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"recipe = {str(name_or_path)!r} is not a shipped recipe{hint}; "
                          f"allowed: {', '.join(names)}, or a path to a .toml file")
    text = resources.files("mockzgrad.recipes").joinpath(f"{name_or_path}.toml").read_text()
    return from_dict(Recipe, parse_toml(text, f"recipe {name_or_path}"), "")
