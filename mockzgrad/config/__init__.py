"""Configuration of one mock and of a recovery recipe: frozen dataclasses, TOML I/O, checks.

This package is the only place that checks user input. Every dataclass
declares each field once with its default, allowed range and unit
(:mod:`mockzgrad.config._checks`) and checks it in ``__post_init__``, so a
configuration built in Python is checked exactly like one read from TOML.
Errors are :class:`~mockzgrad.errors.ConfigError` with a message naming the
field (dotted TOML path), the value and what is allowed.

Units inside a configuration are fixed and documented per field (kpc, km/s,
arcsec, deg, Angstrom, erg/s/cm^2); a TOML file holds bare numbers in those
units. The defaults are the flagship experiment of DESIGN.md (a
JWST/NIRSpec-IFU-like mock of a z = 5 disk).

Modules: :mod:`.galaxy`, :mod:`.lines`, :mod:`.instrument`, :mod:`.noise`,
:mod:`.cosmology` (the parts of a mock), :mod:`.mock` (:class:`MockConfig`,
load/save), :mod:`.recipe` (:class:`Recipe`), :mod:`.dicts` (dataclass <->
dict), :mod:`.toml_io` (TOML read/write), :mod:`.resolution`
(``x_resolution`` <-> ``instrument.psf.fwhm``).

Examples
--------
>>> from mockzgrad.config import MockConfig, load_config
>>> cfg = MockConfig()                       # flagship defaults
>>> cfg2 = cfg.replace(**{"galaxy.metallicity.grad_z": -0.2})
>>> cfg2.galaxy.metallicity.grad_z
-0.2
"""

from .continuum import CONTINUUM_KINDS, ContinuumConfig
from .cosmology import CosmologyConfig
from .dicts import config_to_dict, set_path
from .galaxy import ROTATION_KINDS, Z_PROFILES, GalaxyConfig, MetallicityConfig, RotationConfig
from .instrument import (INSTRUMENT_KINDS, PSF_KINDS, SPECTRAL_GRIDS, InstrumentConfig, PSFConfig, SpectralConfig,
                         available_spectral_presets)
from .lines import DUST_LAWS, FLAGSHIP_LINES, OUTSIDE_RANGE_POLICIES, RATIO_SCATTER_MODES, DustConfig, LinesConfig
from .lensing import LENS_KINDS, OBSERVER_MODELS, LensingConfig, LensingRecipe, lens_from_config
from .mock import MockConfig, config_from_dict, load_config, save_config
from .noise import DEFAULT_SNR, NoiseConfig
from .recipe import (BINNING_SCHEMES, ERROR_MODELS, GATE_MODES, GRADIENT_FITS, METHODS, BinningRecipe, DustRecipe,
                     ErrorsRecipe, GatingRecipe, GeometryRecipe, GradientRecipe, MetallicityRecipe, Recipe,
                     RecipeInfo, available_recipes, load_recipe)
from .resolution import psf_fwhm_for_x, r_eff_arcsec, x_resolution
from .slitstep import COMBINE_MODES, SlitstepConfig
from .grism import GRISM_NOISE_MODELS, ExposureConfig, GrismConfig, available_grism_presets
from .toml_io import dumps_toml, read_toml

__all__ = [
    # a mock
    "MockConfig",
    "GalaxyConfig",
    "RotationConfig",
    "MetallicityConfig",
    "LinesConfig",
    "DustConfig",
    "InstrumentConfig",
    "PSFConfig",
    "SpectralConfig",
    "GrismConfig",
    "ExposureConfig",
    "available_grism_presets",
    "GRISM_NOISE_MODELS",
    "SlitstepConfig",
    "NoiseConfig",
    "CosmologyConfig",
    "LensingConfig",
    "ContinuumConfig",
    "LensingRecipe",
    "lens_from_config",
    "LENS_KINDS",
    "OBSERVER_MODELS",
    "load_config",
    "save_config",
    "config_from_dict",
    "config_to_dict",
    "set_path",
    "read_toml",
    "dumps_toml",
    "available_spectral_presets",
    # a recovery recipe
    "Recipe",
    "RecipeInfo",
    "GeometryRecipe",
    "BinningRecipe",
    "GatingRecipe",
    "ErrorsRecipe",
    "DustRecipe",
    "MetallicityRecipe",
    "GradientRecipe",
    "load_recipe",
    "available_recipes",
    # resolution
    "x_resolution",
    "psf_fwhm_for_x",
    "r_eff_arcsec",
    # allowed values
    "ROTATION_KINDS",
    "Z_PROFILES",
    "DUST_LAWS",
    "OUTSIDE_RANGE_POLICIES",
    "RATIO_SCATTER_MODES",
    "FLAGSHIP_LINES",
    "PSF_KINDS",
    "SPECTRAL_GRIDS",
    "INSTRUMENT_KINDS",
    "COMBINE_MODES",
    "CONTINUUM_KINDS",
    "DEFAULT_SNR",
    "BINNING_SCHEMES",
    "METHODS",
    "GRADIENT_FITS",
    "ERROR_MODELS",
    "GATE_MODES",
]
