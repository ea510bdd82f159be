"""Expansion of a suite into mocks: grid point, sampled and derived values, config.

Mock ``i`` of a suite is built from the suite alone (see
:mod:`mockzgrad.suites.spec` for the rules): its grid point ``i % G``, the
``[sample]`` values drawn from ``SeedSequence(seed, spawn_key=(i,))``, the
fixed derived values, then the derived configuration fields. The
configuration is the suite's ``[fixed]`` dict with these values set by
dotted path (:func:`mockzgrad.config.set_path`), so it stays a partial
TOML-like dict: a mock's record and the suite fingerprint do not depend on
defaults added to :class:`~mockzgrad.config.MockConfig` later.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field

from ..config import MockConfig, config_from_dict, psf_fwhm_for_x, set_path
from ..config.resolution import elliptical_fwhms_for_x, r_eff_arcsec
from ..errors import ConfigError
from ..validate import positive
from .params import DERIVED_PARAMETERS
from .recipes import run_recovery
from .sampling import SAMPLE_ROW, draw, draw_row

__all__ = ["MockSpec", "grid_size", "grid_point", "mock_inputs", "mock_config", "derived_value",
           "expand_mock"]

#: Configuration tables the derived parameters read (x_resolution: r_eff, redshift, cosmology).
_DERIVATION_TABLES = ("galaxy", "cosmology")
_CACHE_SIZE = 1024
_derivation_cache: dict[str, MockConfig] = {}


@dataclass(frozen=True, kw_only=True)
class MockSpec:
    """Everything one worker needs to make and measure one mock (picklable).

    Parameters
    ----------
    index : int
        Index of the mock in its suite; >= 0.
    seed : int
        The mock's seed, derived from the suite seed and ``index``; also in
        ``config["seed"]``.
    config : dict
        Full mock configuration for :func:`mockzgrad.config.config_from_dict`
        (the suite's ``[fixed]`` with this mock's parameters applied).
    params : dict
        The varied parameters by dotted name (grid, sample and derived ones;
        with ``x_resolution`` also the ``instrument.psf.fwhm`` it sets).
    recovery : dict
        The suite's ``[recovery]`` table, its ``recipe`` resolved to a file
        when it can be (:func:`~mockzgrad.suites.recipes.run_recovery`).
    keep_cube : bool
        Whether ``run_mock`` should write this mock's cube.
    cube_path : str or None
        Where to write it (set by :func:`~mockzgrad.suites.suite.run_suite`:
        ``<outdir>/cubes/mock_<index>.fits``); None outside a run.
    """

    index: int
    seed: int
    config: dict
    params: dict
    recovery: dict = field(default_factory=dict)
    keep_cube: bool = False
    cube_path: str | None = None

    def mock_config(self) -> MockConfig:
        """The validated :class:`~mockzgrad.config.MockConfig` of this mock."""
        return config_from_dict(self.config)


def grid_size(grid: dict) -> int:
    """Number of points of a grid (name -> list of values); 1 for an empty grid."""
    return math.prod(len(v) for v in grid.values()) if grid else 1


def grid_point(grid: dict, index: int) -> dict:
    """Values of grid point ``index % grid_size(grid)``, the last name varying fastest."""
    g = index % grid_size(grid)
    out = {}
    for name in reversed(list(grid)):
        values = grid[name]
        g, k = divmod(g, len(values))
        out[name] = copy.deepcopy(values[k])
    return {n: out[n] for n in grid}


def mock_inputs(suite, index: int) -> tuple[int, dict]:
    """Seed and parameter values of mock ``index``, before derived fields.

    Parameters
    ----------
    suite : SuiteSpec
        Its ``seed``, ``grid``, ``sample`` (in sorted-name order) and ``derived``.
    index : int
        Mock index, in range.

    Returns
    -------
    (int, dict)
        The mock's 63-bit seed (from the second child of
        ``SeedSequence(suite.seed, spawn_key=(index,))``) and its grid,
        sampled (drawn from the first child) and fixed derived values by name.
    """
    import numpy as np

    ss = np.random.SeedSequence(suite.seed, spawn_key=(index,))
    param_ss, seed_ss = ss.spawn(2)
    rng = np.random.default_rng(param_ss)
    params = grid_point(suite.grid, index)
    for name, spec in suite.sample.items():
        params[name] = draw(rng, spec)
    table = getattr(suite, "sample_table", None)
    if table is not None:  # one real galaxy, all its columns jointly; drawn last (other streams unchanged)
        row = draw_row(rng, table)
        params.update(copy.deepcopy(table.rows[row]))
        params[SAMPLE_ROW] = row
    for name, value in suite.derived.items():
        if value is not True:
            params[name] = value
    seed = int(seed_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return seed, params


def mock_config(fixed: dict, params: dict, derived: tuple, seed: int) -> tuple[dict, dict]:
    """A mock's configuration dict, and its parameters with the derived fields added.

    Parameters
    ----------
    fixed : dict
        The suite's ``[fixed]`` (not changed).
    params : dict
        From :func:`mock_inputs` (not changed).
    derived : tuple of str
        Active derived parameters; each is applied after every other value.
    seed : int
        Written as ``config["seed"]``.
    """
    config = copy.deepcopy(fixed)
    params = dict(params)
    for name, value in params.items():
        if name not in DERIVED_PARAMETERS and name != SAMPLE_ROW:
            set_path(config, name, copy.deepcopy(value))
    for name in derived:
        target = DERIVED_PARAMETERS[name]
        value = derived_value(name, config, params[name])
        coupled = coupled_values(name, config, params[name])
        set_path(config, target, value)
        params[target] = value
        for path, extra in coupled.items():  # e.g. an elliptical PSF's minor FWHM, scaled with the major one
            set_path(config, path, extra)
            params[path] = extra
    config["seed"] = seed
    return config, params


def derived_value(name: str, config: dict, value) -> float:
    """The configuration field a derived parameter sets, for one mock.

    ``x_resolution`` -> ``instrument.psf.fwhm`` (arcsec) by
    :func:`mockzgrad.config.psf_fwhm_for_x`, with the mock's ``galaxy`` and
    ``cosmology`` checked as in a single mock configuration.

    Raises
    ------
    ConfigError
        ``value`` is not > 0, or the mock's galaxy or cosmology is invalid
        (the message of :func:`mockzgrad.config.config_from_dict`).
    """
    return _DERIVATIONS[name](config, value)


def _psf_fwhm(config: dict, x) -> float:
    if _elliptical_psf(config) is not None:
        return _elliptical_fwhms(config, x)[0]
    return psf_fwhm_for_x(_derivation_config(config), x)


def coupled_values(name: str, config: dict, value) -> dict:
    """Other configuration fields a derived parameter sets with its own, by dotted path.

    ``x_resolution`` with an elliptical Gaussian PSF: ``instrument.psf.fwhm_minor``,
    scaled with ``instrument.psf.fwhm`` so that the PSF's axis ratio and PA
    stay those of the suite (:func:`mockzgrad.config.resolution.elliptical_fwhms_for_x`);
    ``x_resolution`` is then 2 r_eff / the PSF FWHM along the galaxy's major axis.
    Empty otherwise. Call it before the derived field is set.
    """
    if name == "x_resolution" and _elliptical_psf(config) is not None:
        return {"instrument.psf.fwhm_minor": _elliptical_fwhms(config, value)[1]}
    return {}


def _elliptical_psf(config: dict):
    """The suite's ``instrument.psf`` table when it is an elliptical Gaussian (with both FWHMs), else None."""
    psf = config.get("instrument", {}).get("psf", {})
    if not isinstance(psf, dict) or psf.get("kind") != "elliptical_gaussian":
        return None
    if "fwhm" not in psf or "fwhm_minor" not in psf:
        raise ConfigError("x_resolution with instrument.psf.kind = 'elliptical_gaussian' needs both "
                          f"instrument.psf.fwhm and instrument.psf.fwhm_minor (got {sorted(psf)}): they set the "
                          "PSF's axis ratio, kept while x_resolution scales both FWHMs")
    return psf


def _elliptical_fwhms(config: dict, x) -> tuple[float, float]:
    psf = _elliptical_psf(config)
    cfg = _derivation_config(config)
    fwhm = positive("instrument.psf.fwhm", psf["fwhm"], "arcsec")
    ratio = positive("instrument.psf.fwhm_minor", psf["fwhm_minor"], "arcsec") / fwhm
    return elliptical_fwhms_for_x(r_eff_arcsec(cfg), positive("x_resolution", x), ratio,
                                  float(psf.get("pa", 0.0)) - cfg.galaxy.pa)


def _derivation_config(config: dict) -> MockConfig:
    """A MockConfig of the mock's galaxy and cosmology (the rest default).

    The other tables are left out so that a field the derivation will set
    (e.g. a PSF FWHM that ``fwhm_minor`` must not exceed) is not checked
    before it is set. Memoised by content: a suite repeats these tables.
    """
    part = {k: config[k] for k in _DERIVATION_TABLES if k in config}
    try:
        key = json.dumps(part, sort_keys=True)
    except (TypeError, ValueError):  # not plain TOML data: build it every time
        return config_from_dict(part)
    cfg = _derivation_cache.get(key)
    if cfg is None:
        cfg = config_from_dict(part)
        if len(_derivation_cache) >= _CACHE_SIZE:
            _derivation_cache.clear()
        _derivation_cache[key] = cfg
    return cfg


#: How each derived parameter's field is computed: name -> f(config dict, value).
_DERIVATIONS = {"x_resolution": _psf_fwhm}


def expand_mock(suite, index: int) -> MockSpec:
    """Mock ``index`` of ``suite`` (in range), as :meth:`SuiteSpec.mock` returns it."""
    seed, params = mock_inputs(suite, index)
    config, params = mock_config(suite.fixed, params, suite.active_derived, seed)
    return MockSpec(index=index, seed=seed, config=config, params=params,
                    recovery=run_recovery(suite.recovery, getattr(suite, "base_dir", None)), keep_cube=index in suite.keep_cubes)
