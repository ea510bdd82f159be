"""Suites of mocks: a TOML description, its expansion into mocks, and a
resumable, parallel run that writes every finished mock to a results store.

Suite file
----------
::

    [suite]
    name = "beam_smearing_z5"
    seed = 20260509            # int >= 0; every mock's inputs derive from it
    n_mocks = 400              # default: the grid size
    description = "x vs grad_z at z = 5"

    [fixed]                    # partial mock config, tables as in a mock TOML
    base = "flagship.toml"     # optional; relative to the suite file; [fixed] applies over it
    galaxy.redshift = 5.0
    noise.snr = 20.0

    [grid]                     # dotted name -> list of values (Cartesian product)
    "galaxy.metallicity.grad_z" = [-0.2, -0.1, 0.0]

    [sample]                   # dotted name -> distribution, drawn per mock
    "galaxy.inclination" = {dist = "uniform", low = 0.0, high = 60.0}
    x_resolution = {dist = "loguniform", low = 0.5, high = 8.0}
    "galaxy.pa" = {dist = "choice", values = [0.0, 45.0, 90.0]}

    [derived]                  # derived parameters held fixed (optional)
    # x_resolution = 3.0

    [recovery]                 # opaque to the suite: handed to run_mock as is
    recipe = "default"

    [output]
    keep_cubes = [0, 1, 2]     # mocks whose cube run_mock should write

Semantics
---------
* **Parameters** are dotted paths of the mock configuration
  (:class:`mockzgrad.config.MockConfig`, e.g. ``galaxy.metallicity.grad_z``;
  :func:`parameter_paths` lists them) or derived parameters
  (:data:`DERIVED_PARAMETERS`). TOML needs the dotted names quoted
  (``"galaxy.r_eff" = ...``); written unquoted they form nested tables, which
  are read the same way.
* **Grid.** The grid is the Cartesian product of the ``[grid]`` lists, taken
  over the parameter names in sorted order, the last name varying fastest;
  its size ``G`` is the product of the list lengths. ``n_mocks`` must be a
  multiple of ``G``; mock ``i`` sits on grid point ``i % G`` (replicate
  ``i // G``), so every grid point gets ``n_mocks / G`` mocks.
* **Sample.** The ``[sample]`` parameters are drawn independently for each
  mock (also at each grid point): ``uniform`` on [low, high), ``loguniform``
  (uniform in log, 0 < low), ``choice`` (one of ``values``, equal weights).
* **Derived.** ``x_resolution`` = 2 r_eff / psf_fwhm (both in arcsec) sets
  ``instrument.psf.fwhm`` = 2 r_eff[kpc] / kpc_per_arcsec(redshift) / x from the
  mock's ``galaxy.r_eff``, ``galaxy.redshift`` and cosmology (proper kpc; see
  :func:`mockzgrad.physics.cosmology.kpc_per_arcsec`), after the grid and sample
  values are applied. It is active when named in ``[grid]``, ``[sample]`` or
  ``[derived]`` (a number there holds it fixed); ``instrument.psf.fwhm`` may
  then not be varied itself. A PSF that scales with wavelength has this FWHM
  at its ``ref_wavelength``.
* **Determinism.** Mock ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``:
  its first spawned child draws the sampled parameters (in sorted-name
  order), its second gives the mock's 63-bit seed (``config["seed"]``, which
  seeds the noise). A mock therefore depends on the suite seed and its index
  only, not on ``n_mocks``: :meth:`SuiteSpec.mock` rebuilds any one alone,
  and ``n_mocks`` can grow (by multiples of ``G``) in an existing output
  folder, leaving the finished mocks valid.
* **Fingerprint.** :meth:`SuiteSpec.fingerprint` hashes what determines the
  mocks' inputs and results: seed, the resolved ``[fixed]`` (base file
  included), grid, sample, derived and recovery. Name, description,
  ``n_mocks`` and ``keep_cubes`` are not part of it.

Running
-------
:func:`run_suite` runs every mock not yet in ``<outdir>/results.sqlite``
(:class:`mockzgrad.suites.store.ResultsStore`) through an injected ``run_mock``
callable on local worker processes or a dask.distributed cluster. The parent
process alone writes the store, one committed transaction per finished mock.
An exception inside ``run_mock`` is recorded as status ``"failed"``; SIGINT
or SIGTERM stops the run cleanly (nothing finished is lost) and a re-run
resumes.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import copy
import dataclasses
import difflib
import functools
import hashlib
import importlib
import json
import math
import numbers
import os
import pickle
import shutil
import signal
import sys
import threading
import time
import traceback
import typing
import warnings
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..config import MockConfig, config_from_dict
from ..errors import ConfigError, MockzgradError, MockzgradWarning

# numpy is imported inside functions: a worker process imports this module
# (for its initializer) and must set the thread-count variables first.

__all__ = [
    "DERIVED_PARAMETERS",
    "DISTRIBUTIONS",
    "EXECUTORS",
    "RESULTS_FILENAME",
    "MockSpec",
    "SuiteSpec",
    "SuiteRun",
    "load_suite",
    "suite_from_dict",
    "parameter_paths",
    "run_suite",
]

#: Derived parameters a suite may vary, and the config field each one sets.
DERIVED_PARAMETERS = {"x_resolution": "instrument.psf.fwhm"}
#: Sampling distributions of ``[sample]``.
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
#: Executors of :func:`run_suite`.
EXECUTORS = ("local", "dask", "serial")
#: Name of the results database inside a suite's output folder.
RESULTS_FILENAME = "results.sqlite"

_TABLES = ("suite", "fixed", "grid", "sample", "derived", "recovery", "output")
_SUITE_KEYS = ("name", "seed", "n_mocks", "description")
_OUTPUT_KEYS = ("keep_cubes",)
_SAMPLE_KEYS = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "choice": ("values",)}
_WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1"}
#: Mocks validated (config built) when a suite is read: the first grid points.
_N_VALIDATE = 256
_LAYOUT = 1  # version of the (seed, index) -> mock mapping; part of the fingerprint


# --------------------------------------------------------------------------
# parameter names
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def parameter_paths() -> tuple[str, ...]:
    """Dotted names of every mock-configuration field a suite may set or vary.

    Returns
    -------
    tuple of str
        Leaves of the :class:`~mockzgrad.config.MockConfig` dataclass tree,
        e.g. ``"galaxy.metallicity.grad_z"``; ``seed`` is excluded (it is
        derived per mock).
    """
    out = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            name = f"{prefix}{f.name}"
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                walk(tp, name + ".")
            elif name != "seed":
                out.append(name)

    walk(MockConfig, "")
    return tuple(out)


def _check_name(table: str, name: str) -> None:
    if name in DERIVED_PARAMETERS or name in parameter_paths():
        return
    if name == "seed":
        raise ConfigError(f"[{table}] seed: the mock seed is derived from [suite] seed and the mock index; "
                          "it cannot be set or varied")
    allowed = list(parameter_paths()) + list(DERIVED_PARAMETERS)
    close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
    leaf = name.rsplit(".", 1)[-1]
    close += [p for p in allowed if p.rsplit(".", 1)[-1] == leaf and p not in close]
    hint = f" (did you mean {', '.join(repr(c) for c in close[:4])}?)" if close else ""
    raise ConfigError(
        f"[{table}] {name!r} is not a mock parameter{hint}; parameters are dotted config paths "
        f"such as 'galaxy.r_eff' or derived names ({', '.join(DERIVED_PARAMETERS)})"
    )


def _flatten(table: str, data, is_leaf) -> dict:
    """{"galaxy": {"r_eff": v}} and {"galaxy.r_eff": v} both -> {"galaxy.r_eff": v}."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{table}]: expected a table, got {data!r}")
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and not is_leaf(value):
                walk(value, name + ".")
            else:
                if name in out:
                    raise ConfigError(f"[{table}] {name!r} is given twice")
                out[name] = value

    walk(data, "")
    return out


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _set_path(data: dict, path: str, value) -> None:
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):  # pragma: no cover - names are checked against the tree
            raise ConfigError(f"{path}: {k} is not a table")
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = copy.deepcopy(value)


@functools.lru_cache(maxsize=1)
def _defaults() -> MockConfig:
    return MockConfig()


def _lookup(config: dict, path: str):
    """Value at ``path`` in a partial config dict, else the MockConfig default."""
    node = config
    for k in path.split("."):
        if isinstance(node, dict) and k in node:
            node = node[k]
        else:
            obj = _defaults()
            for kk in path.split("."):
                obj = getattr(obj, kk)
            return obj
    return node


@functools.lru_cache(maxsize=4096)
def _kpc_per_arcsec(redshift: float, h0: float, om0: float, name: str | None) -> float:
    from ..config import CosmologyConfig
    from ..physics.cosmology import kpc_per_arcsec

    cosmo = CosmologyConfig(h0=h0, om0=om0, name=name)
    return kpc_per_arcsec(redshift, cosmo.to_astropy())


def _psf_fwhm_from_x(config: dict, x: float) -> float:
    """instrument.psf.fwhm (arcsec) giving 2 r_eff / psf_fwhm = x for this mock."""
    if not _is_number(x) or x <= 0:
        raise ConfigError(f"x_resolution = {x!r}; allowed: a number > 0")
    r_eff = _lookup(config, "galaxy.r_eff")
    redshift = _lookup(config, "galaxy.redshift")
    for path, v in (("galaxy.r_eff", r_eff), ("galaxy.redshift", redshift)):
        if not _is_number(v) or v <= 0:
            raise ConfigError(f"{path} = {v!r}; x_resolution needs a number > 0")
    scale = _kpc_per_arcsec(float(redshift), float(_lookup(config, "cosmology.h0")),
                            float(_lookup(config, "cosmology.om0")), _lookup(config, "cosmology.name"))
    return 2.0 * float(r_eff) / scale / float(x)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


# --------------------------------------------------------------------------
# specs
# --------------------------------------------------------------------------

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
        The suite's ``[recovery]`` table, untouched.
    keep_cube : bool
        Whether ``run_mock`` should write this mock's cube.
    cube_path : str or None
        Where to write it (set by :func:`run_suite`:
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


@dataclass(frozen=True, kw_only=True)
class SuiteSpec:
    """A validated suite (see the module docstring for the file format).

    Build one with :func:`load_suite` or :func:`suite_from_dict`; a direct
    construction is checked the same way. Dict fields are normalised copies:
    ``grid`` and ``sample`` are keyed by dotted name in sorted order.

    Parameters
    ----------
    name : str
        Suite label.
    seed : int
        Suite seed; >= 0.
    n_mocks : int
        Number of mocks; >= 1 and a multiple of the grid size.
    description : str
    fixed : dict
        Partial mock configuration common to all mocks (base file merged).
    grid : dict
        Dotted name -> list of values.
    sample : dict
        Dotted name -> ``{"dist": ..., "low": ..., "high": ...}`` or
        ``{"dist": "choice", "values": [...]}``.
    derived : dict
        Derived parameter -> fixed value (or True when it is varied in
        ``grid``/``sample``).
    recovery : dict
        Handed to ``run_mock`` untouched.
    keep_cubes : tuple of int
        Indices of mocks whose cube is kept.
    source : str or None
        Text of the suite file (stored with the results).
    path : str or None
        The suite file, if read from one.
    """

    name: str
    seed: int
    n_mocks: int
    description: str = ""
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    sample: dict = field(default_factory=dict)
    derived: dict = field(default_factory=dict)
    recovery: dict = field(default_factory=dict)
    keep_cubes: tuple = ()
    source: str | None = None
    path: str | None = None

    # ---------------------------------------------------------------- checks

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"suite.name = {self.name!r}: expected a non-empty string")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ConfigError(f"suite.seed = {self.seed!r}: expected an integer >= 0")
        if isinstance(self.n_mocks, bool) or not isinstance(self.n_mocks, numbers.Integral) or self.n_mocks < 1:
            raise ConfigError(f"suite.n_mocks = {self.n_mocks!r}: expected an integer >= 1")
        if not isinstance(self.description, str):
            raise ConfigError(f"suite.description = {self.description!r}: expected a string")
        for attr in ("fixed", "recovery"):
            if not isinstance(getattr(self, attr), dict):
                raise ConfigError(f"[{attr}]: expected a table, got {getattr(self, attr)!r}")
        if "seed" in self.fixed:
            raise ConfigError("[fixed] seed: the mock seed is derived from [suite] seed and the mock index; "
                              "remove it")
        set_ = functools.partial(object.__setattr__, self)
        set_("seed", int(self.seed))
        set_("n_mocks", int(self.n_mocks))
        set_("fixed", copy.deepcopy(self.fixed))
        set_("recovery", copy.deepcopy(self.recovery))
        set_("grid", self._check_grid())
        set_("sample", self._check_sample())
        set_("derived", self._check_derived())
        self._check_conflicts()
        g = self.grid_size
        if self.n_mocks % g:
            lo, hi = (self.n_mocks // g) * g, (self.n_mocks // g + 1) * g
            near = f"{lo} or {hi}" if lo else f"{hi}"
            raise ConfigError(
                f"suite.n_mocks = {self.n_mocks} is not a multiple of the grid size {g} "
                f"({' x '.join(str(len(v)) for v in self.grid.values())}); use e.g. {near}"
            )
        keep = self.keep_cubes
        if isinstance(keep, (str, bytes)) or not isinstance(keep, (list, tuple)):
            raise ConfigError(f"output.keep_cubes = {keep!r}: expected a list of mock indices")
        for i in keep:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < self.n_mocks:
                raise ConfigError(f"output.keep_cubes: {i!r} is not a mock index; allowed integers "
                                  f"in [0, {self.n_mocks - 1}]")
        set_("keep_cubes", tuple(sorted({int(i) for i in keep})))
        self._validate_mocks()

    def _check_grid(self) -> dict:
        grid = _flatten("grid", self.grid, lambda v: False)
        out = {}
        for name in sorted(grid):
            _check_name("grid", name)
            values = grid[name]
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise ConfigError(f"[grid] {name} = {values!r}: expected a non-empty list of values")
            if name in DERIVED_PARAMETERS:
                for v in values:
                    if not _is_number(v) or v <= 0:
                        raise ConfigError(f"[grid] {name}: value {v!r}; allowed: numbers > 0")
            out[name] = [copy.deepcopy(v) for v in values]
        return out

    def _check_sample(self) -> dict:
        sample = _flatten("sample", self.sample, lambda v: bool({"dist", "low", "high", "values"} & set(v)))
        out = {}
        for name in sorted(sample):
            _check_name("sample", name)
            spec = sample[name]
            where = f"[sample] {name}"
            if not isinstance(spec, dict):
                raise ConfigError(f"{where} = {spec!r}: expected a table such as "
                                  "{dist = \"uniform\", low = 0.0, high = 1.0}")
            dist = spec.get("dist")
            if "dist" not in spec:
                raise ConfigError(f"{where}: no dist given; allowed: {', '.join(map(repr, DISTRIBUTIONS))}")
            if dist not in DISTRIBUTIONS:
                raise ConfigError(f"{where}: dist = {dist!r}; allowed: {', '.join(map(repr, DISTRIBUTIONS))}")
            keys = _SAMPLE_KEYS[dist]
            extra = sorted(set(spec) - {"dist", *keys})
            missing = [k for k in keys if k not in spec]
            if extra or missing:
                raise ConfigError(
                    f"{where}: dist = {dist!r} takes {', '.join(keys)}"
                    + (f"; unknown: {', '.join(extra)}" if extra else "")
                    + (f"; missing: {', '.join(missing)}" if missing else "")
                )
            if dist == "choice":
                values = spec["values"]
                if not isinstance(values, (list, tuple)) or len(values) == 0:
                    raise ConfigError(f"{where}: values = {values!r}: expected a non-empty list")
                if name in DERIVED_PARAMETERS and not all(_is_number(v) and v > 0 for v in values):
                    raise ConfigError(f"{where}: values = {list(values)!r}; allowed: numbers > 0")
                out[name] = {"dist": dist, "values": [copy.deepcopy(v) for v in values]}
                continue
            low, high = spec["low"], spec["high"]
            for key, v in (("low", low), ("high", high)):
                if not _is_number(v):
                    raise ConfigError(f"{where}: {key} = {v!r}; expected a finite number")
            if not low < high:
                raise ConfigError(f"{where}: low = {low} >= high = {high}; need low < high")
            if dist == "loguniform" and low <= 0:
                raise ConfigError(f"{where}: low = {low}; loguniform needs 0 < low < high")
            if name in DERIVED_PARAMETERS and low <= 0:
                raise ConfigError(f"{where}: low = {low}; {name} must be > 0")
            out[name] = {"dist": dist, "low": float(low), "high": float(high)}
        return out

    def _check_derived(self) -> dict:
        if not isinstance(self.derived, dict):
            raise ConfigError(f"[derived]: expected a table, got {self.derived!r}")
        out = {}
        for name in sorted(self.derived):
            value = self.derived[name]
            if name not in DERIVED_PARAMETERS:
                close = difflib.get_close_matches(name, list(DERIVED_PARAMETERS), n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"[derived] {name!r}: unknown derived parameter{hint}; "
                                  f"allowed: {', '.join(DERIVED_PARAMETERS)}")
            varied = name in self.grid or name in self.sample
            if value is True:
                if not varied:
                    raise ConfigError(f"[derived] {name} = true but {name} is in neither [grid] nor "
                                      f"[sample]; give it a value or vary it")
            elif varied:
                raise ConfigError(f"[derived] {name} = {value!r} but {name} is also varied in "
                                  "[grid]/[sample]; give it in one place")
            elif not _is_number(value) or value <= 0:
                raise ConfigError(f"[derived] {name} = {value!r}; allowed: a number > 0 (or true when "
                                  "it is varied in [grid]/[sample])")
            out[name] = value if value is True else float(value)
        return out

    def _check_conflicts(self):
        both = sorted(set(self.grid) & set(self.sample))
        if both:
            raise ConfigError(f"{', '.join(both)}: in both [grid] and [sample]; vary a parameter in one place")
        for name in self.active_derived:
            target = DERIVED_PARAMETERS[name]
            for table, names in (("grid", self.grid), ("sample", self.sample)):
                if target in names:
                    raise ConfigError(f"[{table}] {target}: set by the derived parameter {name}; "
                                      f"vary {name} instead, or drop {name}")

    def _validate_mocks(self):
        n = min(self.n_mocks, self.grid_size, _N_VALIDATE)
        for i in range(n):
            try:
                config_from_dict(self.mock(i).config)
            except ConfigError as exc:
                where = "mock 0" if self.grid_size == 1 else f"mock {i} (grid point {i})"
                raise ConfigError(f"{where} of suite {self.name!r}: {exc}") from None

    # ---------------------------------------------------------------- expansion

    @property
    def grid_size(self) -> int:
        """Number of grid points (1 without ``[grid]``)."""
        return math.prod(len(v) for v in self.grid.values()) if self.grid else 1

    @property
    def active_derived(self) -> tuple[str, ...]:
        """Derived parameters in use (named in grid, sample or derived)."""
        return tuple(n for n in DERIVED_PARAMETERS if n in self.derived or n in self.grid or n in self.sample)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the varied (and derived) parameters, as in :attr:`MockSpec.params`."""
        names = list(self.grid) + list(self.sample)
        names += [n for n in self.derived if n not in names]
        names += [DERIVED_PARAMETERS[n] for n in self.active_derived]
        return tuple(names)

    def grid_point(self, index: int) -> dict:
        """The grid values of mock ``index`` (empty without ``[grid]``)."""
        g = index % self.grid_size
        out = {}
        for name in reversed(list(self.grid)):  # last name fastest
            values = self.grid[name]
            g, k = divmod(g, len(values))
            out[name] = copy.deepcopy(values[k])
        return {n: out[n] for n in self.grid}

    def mock(self, index: int) -> MockSpec:
        """Build mock ``index`` alone, exactly as in the full expansion.

        Parameters
        ----------
        index : int
            Mock index; [0, n_mocks).

        Raises
        ------
        ConfigError
            ``index`` is out of range, or a derived parameter cannot be
            computed for this mock (e.g. an invalid sampled cosmology).
        """
        import numpy as np

        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < self.n_mocks:
            raise ConfigError(f"mock index = {index!r}; allowed integers in [0, {self.n_mocks - 1}]")
        index = int(index)
        ss = np.random.SeedSequence(self.seed, spawn_key=(index,))
        param_ss, seed_ss = ss.spawn(2)
        rng = np.random.default_rng(param_ss)
        params = self.grid_point(index)
        for name, spec in self.sample.items():
            params[name] = _draw(rng, spec)
        for name, value in self.derived.items():
            if value is not True:
                params[name] = value
        config = copy.deepcopy(self.fixed)
        for name, value in params.items():
            if name not in DERIVED_PARAMETERS:
                _set_path(config, name, value)
        for name in self.active_derived:  # after every other value is in place
            target = DERIVED_PARAMETERS[name]
            value = _psf_fwhm_from_x(config, params[name])
            _set_path(config, target, value)
            params[target] = value
        seed = int(seed_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
        config["seed"] = seed
        return MockSpec(index=index, seed=seed, config=config, params=params,
                        recovery=copy.deepcopy(self.recovery), keep_cube=index in self.keep_cubes)

    def mocks(self, indices=None):
        """Iterate :meth:`mock` over ``indices`` (default all), lazily."""
        for i in range(self.n_mocks) if indices is None else indices:
            yield self.mock(i)

    # ---------------------------------------------------------------- identity

    def canonical(self) -> dict:
        """The part of the spec that determines each mock (see :meth:`fingerprint`)."""
        return {
            "layout": _LAYOUT,
            "seed": self.seed,
            "fixed": self.fixed,
            "grid": self.grid,
            "sample": self.sample,
            "derived": self.derived,
            "recovery": self.recovery,
        }

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`canonical`.

        Name, description, ``n_mocks`` and ``keep_cubes`` are excluded: they
        do not change any mock's inputs or results.
        """
        return hashlib.sha256(_canonical_json(self.canonical()).encode()).hexdigest()

    def to_dict(self) -> dict:
        """Plain dict of the spec, in suite-file layout (``[fixed]`` resolved)."""
        out = {
            "suite": {"name": self.name, "seed": self.seed, "n_mocks": self.n_mocks,
                      "description": self.description},
            "fixed": copy.deepcopy(self.fixed),
        }
        for key in ("grid", "sample", "derived", "recovery"):
            if getattr(self, key):
                out[key] = copy.deepcopy(getattr(self, key))
        if self.keep_cubes:
            out["output"] = {"keep_cubes": list(self.keep_cubes)}
        return out


def _draw(rng, spec: dict):
    import numpy as np

    dist = spec["dist"]
    if dist == "uniform":
        return float(rng.uniform(spec["low"], spec["high"]))
    if dist == "loguniform":
        return float(np.exp(rng.uniform(math.log(spec["low"]), math.log(spec["high"]))))
    return copy.deepcopy(spec["values"][int(rng.integers(len(spec["values"])))])


def suite_from_dict(data: dict, *, base_dir=None, source: str | None = None,
                    path: str | None = None) -> SuiteSpec:
    """Build a :class:`SuiteSpec` from a dict laid out like a suite file.

    Parameters
    ----------
    data : dict
        Tables ``suite``, ``fixed``, ``grid``, ``sample``, ``derived``,
        ``recovery``, ``output`` (see the module docstring).
    base_dir : str or os.PathLike or None
        Directory against which ``fixed.base`` is resolved; None = the
        current directory.
    source, path : str or None
        Suite file text and path, kept for the record.

    Raises
    ------
    ConfigError
        An unknown table or key, a bad value, or a mock configuration that
        does not validate.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"suite: expected a table, got {data!r}")
    for key in data:
        if key not in _TABLES:
            close = difflib.get_close_matches(key, _TABLES, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise ConfigError(f"[{key}]: unknown table{hint}; allowed: "
                              + ", ".join(f"[{t}]" for t in _TABLES))
    for key in _TABLES:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"[{key}]: expected a table, got {data[key]!r}")
    suite = data.get("suite", {})
    for key in suite:
        if key not in _SUITE_KEYS:
            close = difflib.get_close_matches(key, _SUITE_KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"suite.{key}: unknown key{hint}; allowed: {', '.join(_SUITE_KEYS)}")
    if "seed" not in suite:
        raise ConfigError("suite.seed is missing: every suite needs an integer seed >= 0")
    output = data.get("output", {})
    for key in output:
        if key not in _OUTPUT_KEYS:
            raise ConfigError(f"output.{key}: unknown key; allowed: {', '.join(_OUTPUT_KEYS)}")
    fixed = dict(data.get("fixed", {}))
    base = fixed.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"fixed.base = {base!r}: expected the path of a mock TOML file")
        base_path = Path(base_dir or ".") / base
        try:
            text = base_path.read_text()
        except OSError as exc:
            raise ConfigError(f"fixed.base = {base!r}: cannot read {str(base_path)!r} ({exc.strerror})") from None
        try:
            base_data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"fixed.base = {base!r}: {str(base_path)!r} is not valid TOML ({exc})") from None
        base_data.pop("seed", None)  # a mock file's own seed is replaced per mock
        fixed = _deep_merge(base_data, fixed)
    grid = data.get("grid", {})
    if "n_mocks" in suite:
        n_mocks = suite["n_mocks"]
    elif grid:
        n_mocks = math.prod(len(v) if isinstance(v, (list, tuple)) else 1
                            for v in _flatten("grid", grid, lambda v: False).values())
    else:
        raise ConfigError("suite.n_mocks is missing: give the number of mocks (it defaults to the grid "
                          "size only when [grid] is given)")
    return SuiteSpec(
        name=suite.get("name", Path(path).stem if path else "suite"),
        seed=suite["seed"],
        n_mocks=n_mocks,
        description=suite.get("description", ""),
        fixed=fixed,
        grid=grid,
        sample=data.get("sample", {}),
        derived=data.get("derived", {}),
        recovery=data.get("recovery", {}),
        keep_cubes=output.get("keep_cubes", ()),
        source=source,
        path=path,
    )


def load_suite(path) -> SuiteSpec:
    """Read and validate a suite TOML file.

    Parameters
    ----------
    path : str or os.PathLike
        Suite file; ``fixed.base`` is resolved against its directory.

    Raises
    ------
    ConfigError
        The file is missing or not valid TOML, or the suite is invalid; the
        message starts with the file name.
    """
    from ..config import read_toml

    path = Path(path)
    data, text = read_toml(path, "suite file")
    try:
        return suite_from_dict(data, base_dir=path.parent, source=text, path=str(path))
    except ConfigError as exc:
        raise ConfigError(f"suite file {str(path)!r}: {exc}") from None


# --------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------

def _worker_init(parent_pid: int) -> None:
    """Initializer of local worker processes: one thread each, ignore SIGINT,
    and exit when the parent dies (so a SIGKILLed run leaves no orphans)."""
    os.environ.update(_WORKER_ENV)
    if "numba" in sys.modules:  # imported before us (e.g. by __main__): cap it now
        try:
            sys.modules["numba"].set_num_threads(1)
        except Exception:  # pragma: no cover
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="mockzgrad-parent-watch", daemon=True).start()


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        fs = tb[-1]
        text += f" [at {Path(fs.filename).name}:{fs.lineno} in {fs.name}]"
    return text


def _run_one(run_mock: Callable, spec: MockSpec) -> tuple:
    """Run one mock; never raises for an ordinary exception of ``run_mock``.

    Returns ``(index, status, result, elapsed_s, error)``.
    """
    from .store import normalise_result

    t0 = time.perf_counter()
    try:
        result = run_mock(spec)
        if result is None:
            result = {}
        result = normalise_result(result)
        status, error = "ok", None
    except Exception as exc:
        result, status, error = {}, "failed", _describe(exc)
    return spec.index, status, result, time.perf_counter() - t0, error


# --------------------------------------------------------------------------
# executors
# --------------------------------------------------------------------------

class _WorkerDied(Exception):
    """The local worker process running (or holding) this mock died."""


class _SerialBackend:
    """In-process execution (debugging; no isolation)."""

    def __init__(self, run_mock):
        self.run_mock = run_mock
        self.n_slots = 1

    def submit(self, spec):
        fut = cf.Future()
        fut.set_result(_run_one(self.run_mock, spec))
        return fut

    def wait(self, futures, timeout):
        return {f for f in futures if f.done()}

    def outcome(self, fut):
        return fut.result()

    def finished(self, fut):
        return fut.result()

    def restart(self):  # pragma: no cover - nothing can break
        pass

    def abort(self, futures=()):
        pass

    def close(self):
        pass


class _LocalBackend:
    """concurrent.futures.ProcessPoolExecutor with the spawn start method."""

    def __init__(self, run_mock, workers: int):
        import multiprocessing

        self.run_mock = run_mock
        self.workers = workers
        self.n_slots = workers
        self.ctx = multiprocessing.get_context("spawn")
        self.pool = None
        self._new()

    def _new(self):
        self.pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=self.ctx,
                                           initializer=_worker_init, initargs=(os.getpid(),))

    def submit(self, spec):
        try:
            return self.pool.submit(_run_one, self.run_mock, spec)
        except BrokenProcessPool as exc:  # broke before we saw it: report via the future
            fut = cf.Future()
            fut.set_exception(exc)
            return fut

    def wait(self, futures, timeout):
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return done

    def outcome(self, fut):
        try:
            return fut.result()
        except BrokenProcessPool as exc:
            raise _WorkerDied(str(exc)) from None

    def finished(self, fut):
        """Outcome of a future that finished normally, else None."""
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        return None

    def abort(self, futures=()):
        pool, self.pool = self.pool, None
        if pool is None:
            return
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                proc.terminate()
            except Exception:  # pragma: no cover
                pass
        pool.shutdown(wait=True, cancel_futures=True)

    def restart(self):
        self.abort()
        self._new()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class _DaskBackend:
    """dask.distributed: a LocalCluster (1 thread per worker process) or a scheduler address."""

    def __init__(self, run_mock, workers: int | None, scheduler: str | None):
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise ConfigError("executor = 'dask' needs dask.distributed: pip install mockzgrad[dask]") from None
        self.run_mock = run_mock
        self.cluster = None
        if scheduler is None:
            import dask

            # distributed's statistical profiler samples every thread's stack
            # every 10 ms; in a GIL-bound task that halved the throughput. The
            # nanny hands the parent's config to its workers, so set it here.
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", env=dict(_WORKER_ENV))
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler)
        self.n_slots = max(1, sum(self.client.nthreads().values()))
        self.ac = as_completed(with_results=False)
        self._token = os.urandom(4).hex()

    def submit(self, spec):
        fut = self.client.submit(_run_one, self.run_mock, spec, pure=False,
                                 key=f"mockzgrad-mock-{spec.index}-{self._token}")
        self.ac.add(fut)
        return fut

    def wait(self, futures, timeout):
        t_end = time.monotonic() + timeout
        while True:
            batch = set(self.ac.next_batch(block=False)) if self.ac.has_ready() else set()
            done = {f for f in futures if f.done()} | (batch & set(futures))
            if done or time.monotonic() >= t_end:
                return done
            time.sleep(0.02)

    def outcome(self, fut):
        return fut.result()

    def finished(self, fut):
        if fut.status == "finished":
            return fut.result()
        return None

    def restart(self):  # pragma: no cover - dask reschedules work of dead workers itself
        pass

    def abort(self, futures=()):
        self.close(cancel=list(futures))

    def close(self, cancel=()):
        client, self.client = getattr(self, "client", None), None
        if client is None:
            return
        try:
            self.ac.clear()
            if cancel:
                client.cancel(list(cancel), force=True)
            client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None


# --------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SuiteRun:
    """Summary of one :func:`run_suite` call.

    Parameters
    ----------
    outdir : pathlib.Path
    store_path : pathlib.Path
        The results database.
    n_mocks : int
        Mocks in the suite.
    n_skipped : int
        Mocks already finished before this call (not re-run).
    n_run : int
        Mocks finished and recorded by this call.
    n_ok, n_failed : int
        Mocks of the suite recorded with each status, after this call.
    elapsed_s : float
        Wall-clock time of the call, s.
    interrupted : str or None
        Name of the signal that stopped the run (``"SIGINT"``, ``"SIGTERM"``),
        or None if it ran to the end.
    fingerprint : str
    """

    outdir: Path
    store_path: Path
    n_mocks: int
    n_skipped: int
    n_run: int
    n_ok: int
    n_failed: int
    elapsed_s: float
    interrupted: str | None
    fingerprint: str

    @property
    def complete(self) -> bool:
        """Every mock of the suite is recorded (ok or failed)."""
        return self.n_ok + self.n_failed == self.n_mocks


class _Stop:
    """SIGINT/SIGTERM -> a flag the run loop polls; a second signal raises KeyboardInterrupt."""

    def __init__(self):
        self.signame = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.signame is not None:
            raise KeyboardInterrupt
        self.signame = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        return False


class _Lock:
    """Exclusive advisory lock on ``<outdir>/.lock``: one run per folder."""

    def __init__(self, outdir: Path):
        self.path = outdir / ".lock"
        self.fh = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "?"
            self.fh.close()
            self.fh = None
            raise ConfigError(f"outdir {str(self.path.parent)!r} is in use by another suite run "
                              f"(pid {holder}); wait for it or use another folder") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()  # releases the flock
            self.fh = None
        return False


def _resolve_run_mock(run_mock) -> Callable:
    if isinstance(run_mock, str):
        mod, _, qual = run_mock.partition(":")
        if not mod or not qual:
            raise ConfigError(f"run_mock = {run_mock!r}: expected a callable or 'package.module:function'")
        try:
            obj = importlib.import_module(mod)
            for part in qual.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"run_mock = {run_mock!r}: cannot import ({exc})") from None
        run_mock = obj
    if not callable(run_mock):
        raise ConfigError(f"run_mock = {run_mock!r}: expected a callable taking a MockSpec")
    return run_mock


def _diff(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            p = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(p)
            else:
                out += _diff(old[k], new[k], p)
        return out
    return [] if _canonical_json(old) == _canonical_json(new) else [prefix or "(all)"]


def _timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def _move_aside(outdir: Path) -> Path | None:
    """Rename results.sqlite (with its WAL files) and cubes/ to *.<timestamp>*."""
    from .store import ResultsStore

    db = outdir / RESULTS_FILENAME
    if not db.exists():
        return None
    with ResultsStore(db) as store:  # fold the WAL into the main file
        store._c().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stamp = _timestamp()
    n = 0
    while True:
        tag = stamp if n == 0 else f"{stamp}-{n}"
        aside = outdir / f"results.{tag}.sqlite"
        if not aside.exists() and not (outdir / f"cubes.{tag}").exists():
            break
        n += 1
    for suffix in ("-wal", "-shm"):
        extra = Path(str(db) + suffix)
        if extra.exists():
            os.replace(extra, Path(str(aside) + suffix))
    os.replace(db, aside)
    cubes = outdir / "cubes"
    if cubes.exists():
        shutil.move(str(cubes), str(outdir / f"cubes.{tag}"))
    return aside


def _prepare_store(store, spec: SuiteSpec, outdir: Path) -> None:
    from .. import __version__
    from .store import utc_now

    fp = spec.fingerprint()
    stored = store.get_meta("fingerprint")
    if stored is None:
        if store.count():
            raise ConfigError(f"outdir {str(outdir)!r} holds a results store with mocks but no suite "
                              "fingerprint; use a new folder or new=True to start over")
        store.update_meta({
            "fingerprint": fp,
            "suite_name": spec.name,
            "suite_spec": _canonical_json(spec.canonical()),
            "suite_toml": spec.source if spec.source is not None else _canonical_json(spec.to_dict()),
            "n_mocks": str(spec.n_mocks),
            "mockzgrad_version": __version__,
            "updated_utc": utc_now(),
        })
        return
    if stored != fp:
        try:
            old = json.loads(store.get_meta("suite_spec", "{}"))
        except ValueError:  # pragma: no cover
            old = {}
        changed = _diff(old, json.loads(_canonical_json(spec.canonical()))) or ["(unknown)"]
        shown = ", ".join(changed[:6]) + (f", ... ({len(changed)} in all)" if len(changed) > 6 else "")
        raise ConfigError(
            f"outdir {str(outdir)!r} holds suite {store.get_meta('suite_name', '?')!r} with a different "
            f"specification (changed: {shown}); use a new folder or new=True to start over"
        )
    top = store.max_index()
    if top is not None and top >= spec.n_mocks:
        raise ConfigError(
            f"suite.n_mocks = {spec.n_mocks}, but outdir {str(outdir)!r} already holds mock {top}; "
            f"n_mocks may grow in an existing folder, not shrink (use >= {top + 1}, or a new folder)"
        )
    old_version = store.get_meta("mockzgrad_version")
    if old_version and old_version != __version__:
        warnings.warn(f"resuming suite {spec.name!r} made with mockzgrad {old_version} under "
                      f"mockzgrad {__version__}; finished mocks are not re-run",
                      MockzgradWarning, stacklevel=3)
    store.update_meta({"n_mocks": str(spec.n_mocks), "updated_utc": utc_now(),
                       "suite_toml": spec.source if spec.source is not None
                       else _canonical_json(spec.to_dict())})


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_suite(spec: SuiteSpec, outdir, run_mock, *, workers: int | None = None,
              executor: str = "local", scheduler: str | None = None, progress: bool = True,
              new: bool = False, retry_failed: bool = False,
              max_pending: int | None = None) -> SuiteRun:
    """Run every unfinished mock of a suite and record each in ``<outdir>/results.sqlite``.

    Parameters
    ----------
    spec : SuiteSpec
        The suite.
    outdir : str or os.PathLike
        Output folder (created): ``results.sqlite``, ``cubes/`` (kept
        cubes), ``.lock``.
    run_mock : callable or str
        ``run_mock(spec: MockSpec) -> dict`` of flat JSON-serialisable
        results (see :mod:`mockzgrad.suites.store`), or ``"package.module:function"``.
        For the local and dask executors it must be importable by the worker
        processes (a module-level function, not a lambda or a function
        defined in a test file or notebook). An exception it raises marks
        that mock ``"failed"`` with ``"Type: message [at file:line in func]"``.
    workers : int or None
        Worker processes; None = all cores available to this process
        (``"local"``, and ``"dask"`` without ``scheduler``).
    executor : {"local", "dask", "serial"}
        ``"local"``: a ProcessPoolExecutor with the spawn start method; each
        worker sets NUMBA_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS and
        OPENBLAS_NUM_THREADS to 1 before the work's modules are imported (a
        numba imported earlier, e.g. by the calling script's top level, is
        capped with ``numba.set_num_threads(1)``). ``"dask"``: a
        dask.distributed cluster. ``"serial"``: in this process, one mock at
        a time (debugging).
    scheduler : str or None
        Address of a running dask scheduler (``executor="dask"`` only); None
        starts a LocalCluster of ``workers`` processes with one thread each.
    progress : bool
        Show a tqdm progress bar (rate and ETA) on stderr; it is off anyway
        when stderr is not a terminal.
    new : bool
        Start over: move an existing ``results.sqlite`` (and ``cubes/``)
        aside as ``results.<UTC timestamp>.sqlite`` (never deleted).
    retry_failed : bool
        Re-run mocks recorded as ``"failed"`` (their rows are replaced).
    max_pending : int or None
        Mocks submitted but not finished at any time; None = 4 per worker.
        Submission is lazy, so memory stays bounded for any ``n_mocks``.

    Returns
    -------
    SuiteRun
        Counts and timing. After SIGINT or SIGTERM the run stops submitting,
        keeps every finished mock, ends its workers (their unfinished mocks
        are re-run next time) and returns with ``interrupted`` set; a second
        signal raises KeyboardInterrupt at once.

    Raises
    ------
    ConfigError
        Bad arguments; ``outdir`` holds a suite with a different
        fingerprint (use another folder or ``new=True``); ``n_mocks`` shrank
        below a recorded mock; ``outdir`` is in use by another run.

    Notes
    -----
    Only this (parent) process writes the store, one transaction per mock,
    as results arrive. A local worker process that dies (out of memory,
    killed, crash in compiled code) breaks the pool: the pool is restarted,
    and the mocks it held are re-run one at a time; one that kills its
    worker alone is recorded ``"failed"`` with error ``WorkerDied: ...``.
    Under dask a dying worker's task is rescheduled by dask and recorded
    ``"failed"`` (``KilledWorker``) only after dask gives up.
    """
    from .store import ResultsStore

    t0 = time.perf_counter()
    if not isinstance(spec, SuiteSpec):
        raise ConfigError(f"spec = {spec!r}: expected a SuiteSpec (see load_suite)")
    if executor not in EXECUTORS:
        raise ConfigError(f"executor = {executor!r}; allowed: {', '.join(map(repr, EXECUTORS))}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise ConfigError(f"workers = {workers!r}: expected an integer >= 1 or None (all cores)")
    if scheduler is not None and executor != "dask":
        raise ConfigError(f"scheduler = {scheduler!r} needs executor = 'dask' (got {executor!r})")
    if max_pending is not None and (isinstance(max_pending, bool) or not isinstance(max_pending, numbers.Integral)
                                    or max_pending < 1):
        raise ConfigError(f"max_pending = {max_pending!r}: expected an integer >= 1 or None")
    run_mock = _resolve_run_mock(run_mock)
    if executor == "local":
        try:
            pickle.dumps(run_mock)
        except Exception as exc:
            raise ConfigError(
                f"run_mock = {run_mock!r} cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
                "use a module-level function, or executor='serial'"
            ) from None
    workers = int(workers) if workers is not None else _default_workers()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    db = outdir / RESULTS_FILENAME
    interrupted = None
    n_run = 0
    with _Lock(outdir):
        if new:
            _move_aside(outdir)
        store = ResultsStore(db)
        try:
            _prepare_store(store, spec, outdir)
            done = store.done_indices(include_failed=not retry_failed)
            n_skipped = sum(1 for i in done if i < spec.n_mocks)
            todo = [i for i in range(spec.n_mocks) if i not in done] if spec.n_mocks <= 10**7 else None
            if todo is None:  # pragma: no cover - huge suites: stream the indices
                todo = (i for i in range(spec.n_mocks) if i not in done)
            n_todo = spec.n_mocks - n_skipped
            width = max(6, len(str(spec.n_mocks - 1)))
            with _Stop() as stop:
                if n_todo:
                    interrupted, n_run = _execute(
                        spec, store, run_mock, iter(todo), n_todo, outdir, width,
                        executor=executor, workers=workers, scheduler=scheduler,
                        progress=progress, max_pending=max_pending, stop=stop,
                    )
            in_range = [r for r in store.done_indices() if r < spec.n_mocks]
            ok = store.done_indices(include_failed=False)
            n_ok = sum(1 for i in in_range if i in ok)
            n_failed = len(in_range) - n_ok
        finally:
            store.close()
    return SuiteRun(outdir=outdir, store_path=db, n_mocks=spec.n_mocks, n_skipped=n_skipped, n_run=n_run,
                    n_ok=n_ok, n_failed=n_failed, elapsed_s=time.perf_counter() - t0,
                    interrupted=interrupted, fingerprint=spec.fingerprint())


def _execute(spec, store, run_mock, todo, n_todo, outdir, width, *, executor, workers, scheduler,
             progress, max_pending, stop):
    from tqdm.auto import tqdm

    if executor == "serial":
        backend = _SerialBackend(run_mock)
    elif executor == "local":
        backend = _LocalBackend(run_mock, workers)
    else:
        backend = _DaskBackend(run_mock, None if scheduler else workers, scheduler)
    limit = max_pending or 4 * backend.n_slots
    bar = tqdm(total=n_todo, desc=spec.name, unit="mock", file=sys.stderr, dynamic_ncols=True,
               disable=None if progress else True, smoothing=0.05)
    pending: dict = {}
    suspects: collections.deque = collections.deque()
    isolated: set = set()
    state = {"n_run": 0, "n_failed": 0, "n_outcomes": 0, "early_deaths": 0, "exhausted": False}

    def record(ms, index, status, result, elapsed, error, *, outcome=True):
        store.record(index, status, result, elapsed, error, seed=ms.seed, params=ms.params)
        state["n_run"] += 1
        state["n_outcomes"] += outcome
        if status == "failed":
            state["n_failed"] += 1
            bar.set_postfix(failed=state["n_failed"], refresh=False)
        bar.update(1)

    def next_spec():
        while True:
            try:
                i = next(todo)
            except StopIteration:
                state["exhausted"] = True
                return None
            try:
                ms = spec.mock(i)
            except MockzgradError as exc:  # e.g. a derived value impossible for this draw
                record(_Stub(i), i, "failed", {}, 0.0, _describe(exc), outcome=False)
                continue
            if ms.keep_cube:
                ms = dataclasses.replace(ms, cube_path=str(outdir / "cubes" / f"mock_{i:0{width}d}.fits"))
                (outdir / "cubes").mkdir(exist_ok=True)
            return ms

    def fill():
        while stop.signame is None:
            if suspects:  # re-run mocks of a dead pool one at a time
                if pending:
                    return
                ms = suspects.popleft()
                isolated.add(ms.index)
                pending[backend.submit(ms)] = ms
                return
            if state["exhausted"] or len(pending) >= limit:
                return
            ms = next_spec()
            if ms is None:
                return
            pending[backend.submit(ms)] = ms

    try:
        while True:
            fill()
            if stop.signame is not None or (not pending and state["exhausted"] and not suspects):
                break
            if not pending:
                continue
            done = backend.wait(list(pending), 0.25)
            broken = False
            for fut in done:
                ms = pending.pop(fut)
                if stop.signame is not None:  # errors now may be our own shutdown: keep only good outcomes
                    out = backend.finished(fut)
                    if out is not None:
                        record(ms, *out)
                    continue
                try:
                    out = backend.outcome(fut)
                except _WorkerDied as exc:
                    broken = True
                    if ms.index not in isolated:
                        suspects.append(ms)  # re-run alone to find the culprit
                    elif state["n_outcomes"] == 0:  # has this pool ever worked?
                        state["early_deaths"] += 1
                        if state["early_deaths"] >= 2:
                            raise MockzgradError(
                                "local worker processes die before finishing any mock "
                                f"({exc}); check that run_mock's module imports in a fresh "
                                "Python process (spawn start method; a script needs an "
                                "`if __name__ == '__main__':` guard), or try executor='serial'"
                            ) from None
                        suspects.append(ms)
                    else:
                        record(ms, ms.index, "failed", {}, None,
                               f"WorkerDied: the worker process died while running this mock alone "
                               f"(killed, out of memory, or a crash in compiled code): {exc}",
                               outcome=False)
                    continue
                except Exception as exc:  # dask KilledWorker, unpicklable spec, ...
                    record(ms, ms.index, "failed", {}, None, _describe(exc))
                    continue
                record(ms, *out)
            if broken:
                for fut in list(pending):  # the rest of the dead pool's work
                    ms = pending.pop(fut)
                    out = backend.finished(fut)
                    if out is not None:
                        record(ms, *out)
                    else:
                        suspects.append(ms)
                backend.restart()
        if stop.signame is not None:
            for fut in list(pending):
                out = backend.finished(fut)
                if out is not None:
                    record(pending[fut], *out)
            backend.abort(list(pending))
            pending.clear()
        else:
            backend.close()
    except BaseException:
        backend.abort(list(pending))
        raise
    finally:
        bar.close()
    return stop.signame, state["n_run"]


@dataclass(frozen=True)
class _Stub:
    """Stands in for a MockSpec that could not be built (no seed/params known)."""

    index: int
    seed: int | None = None
    params: dict | None = None
