"""A suite of mocks: its TOML file, its checks, and its identity (fingerprint).

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

    # or, instead of (or beside) distributions, draw real galaxies jointly:
    # [sample.table]
    # file = "my_sample.ecsv"  # one row per galaxy: redshift, r_eff [kpc], inclination [deg]
    #                          # or axis_ratio, snr, psf_fwhm [arcsec] (see suites.sampling)

    [derived]                  # derived parameters held fixed (optional)
    # x_resolution = 3.0

    [recovery]                 # handed to run_mock; see mockzgrad.suites.recipes
    recipe = "lee2026"         # shipped name, or a recipe file (relative to the suite file)

    [output]
    keep_cubes = [0, 1, 2]     # mocks whose cube run_mock should write

Semantics
---------
* **Parameters** are dotted paths of the mock configuration
  (:class:`mockzgrad.config.MockConfig`, e.g. ``galaxy.metallicity.grad_z``;
  :func:`~mockzgrad.suites.params.parameter_paths` lists them) or derived
  parameters (:data:`~mockzgrad.suites.params.DERIVED_PARAMETERS`). TOML
  needs the dotted names quoted (``"galaxy.r_eff" = ...``); written unquoted
  they form nested tables, which are read the same way.
* **Grid.** The grid is the Cartesian product of the ``[grid]`` lists, taken
  over the parameter names in sorted order, the last name varying fastest;
  its size ``G`` is the product of the list lengths. ``n_mocks`` must be a
  multiple of ``G``; mock ``i`` sits on grid point ``i % G`` (replicate
  ``i // G``), so every grid point gets ``n_mocks / G`` mocks.
* **Sample.** The ``[sample]`` parameters are drawn independently for each
  mock (also at each grid point): ``uniform`` on [low, high), ``loguniform``
  (uniform in log, 0 < low), ``choice`` (one of ``values``, equal weights);
  see :mod:`mockzgrad.suites.sampling`. ``[sample.table]`` draws, per mock,
  one row of a table of real galaxies (uniformly, after the distributions)
  and sets all its columns together, so the mocks have the sample's joint
  distribution of redshift, size, inclination, S/N and PSF; the row index
  is the mock parameter ``sample_row`` (a column of the exported results).
* **Derived.** ``x_resolution`` = 2 r_eff / psf_fwhm (both in arcsec) sets
  ``instrument.psf.fwhm`` by :func:`mockzgrad.config.psf_fwhm_for_x` from the
  mock's ``galaxy.r_eff``, ``galaxy.redshift`` and cosmology (proper kpc),
  after the grid and sample values are applied. It is active when named in
  ``[grid]``, ``[sample]`` or ``[derived]`` (a number there holds it fixed);
  ``instrument.psf.fwhm`` may then not be varied itself. A PSF that scales
  with wavelength has this FWHM at its ``ref_wavelength``.
* **Checks.** The suite's own tables are checked here; the mock
  configuration is checked by :func:`mockzgrad.config.config_from_dict`,
  as a single mock's is: when the suite is read, the mocks of the first
  grid points are built and a bad value gives the configuration's message
  after the mock it was found in (``mock 1 (grid point 1) of suite 'x':
  galaxy.inclination = 95.0 deg; allowed [0.0, 90.0] deg``). A sampled
  range is checked at both bounds, and each ``choice`` value, in mock 0's
  configuration, so a range that reaches outside the allowed values is
  refused before any mock runs. ``[recovery]`` is checked as the shipped job
  reads it by :func:`~mockzgrad.suites.recipes.check_recovery` (called by
  ``run_suite`` when the shipped job is the ``run_mock``).
* **Determinism.** Mock ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``:
  its first spawned child draws the sampled parameters (in sorted-name
  order), its second gives the mock's 63-bit seed (``config["seed"]``, which
  seeds the noise). A mock therefore depends on the suite seed and its index
  only, not on ``n_mocks``: :meth:`SuiteSpec.mock` rebuilds any one alone,
  and ``n_mocks`` can grow (by multiples of ``G``) in an existing output
  folder, leaving the finished mocks valid.
* **Fingerprint.** :meth:`SuiteSpec.fingerprint` hashes what determines the
  mocks' inputs and results: seed, the resolved ``[fixed]`` (base file
  included), grid, sample, derived and recovery, and the digest of the
  recipe's content and calibration files
  (:func:`~mockzgrad.suites.recipes.recipe_digest`). Name, description,
  ``n_mocks`` and ``keep_cubes`` are not part of it.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..config import config_from_dict, read_toml
from ..errors import ConfigError
from ..validate import integer, is_number, text
from .expand import MockSpec, expand_mock, grid_point, grid_size, mock_config
from .params import DERIVED_PARAMETERS, check_derived_value, check_parameter, deep_merge, flatten_table
from .recipes import recipe_digest
from .sampling import SAMPLE_ROW, TABLE_KEY, check_distribution, is_distribution, load_sample_table

__all__ = ["SuiteSpec", "suite_from_dict", "load_suite", "canonical_json"]

_TABLES = ("suite", "fixed", "grid", "sample", "derived", "recovery", "output")
_SUITE_KEYS = ("name", "seed", "n_mocks", "description")
_OUTPUT_KEYS = ("keep_cubes",)
#: Mocks validated (config built) when a suite is read: the first grid points.
_N_VALIDATE = 256
_LAYOUT = 1  # version of the (seed, index) -> mock mapping; part of the fingerprint


def canonical_json(obj) -> str:
    """Compact JSON with sorted keys, the form that is hashed and stored."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


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
    base_dir : str or None
        Directory against which a recipe path in ``[recovery]`` is resolved
        (the suite file's); None = the current directory.
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
    base_dir: str | None = None
    recipe_digest: str | None = field(default=None, init=False, repr=False)
    sample_table: object = field(default=None, init=False, repr=False)  # sampling.SampleTable

    # ---------------------------------------------------------------- checks

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        if not text("suite.name", self.name).strip():
            raise ConfigError(f"suite.name = {self.name!r}: expected a non-empty string")
        set_("seed", integer("suite.seed", self.seed, 0))
        set_("n_mocks", integer("suite.n_mocks", self.n_mocks, 1))
        text("suite.description", self.description)
        set_("fixed", self._table("fixed"))
        set_("recovery", self._table("recovery"))
        if "seed" in self.fixed:
            raise ConfigError("[fixed] seed: the mock seed is derived from [suite] seed and the mock index; "
                              "remove it")
        set_("grid", self._check_grid())
        set_("sample_table", self._load_sample_table())
        set_("sample", self._check_sample())
        set_("derived", self._check_derived())
        self._check_conflicts()
        self._check_n_mocks()
        set_("keep_cubes", self._check_keep_cubes())
        self._validate_sample_bounds()
        self._validate_mocks()
        set_("recipe_digest", recipe_digest(self.recovery, self.base_dir))

    def _table(self, attr: str) -> dict:
        value = getattr(self, attr)
        if not isinstance(value, dict):
            raise ConfigError(f"[{attr}]: expected a table, got {value!r}")
        return copy.deepcopy(value)

    def _check_grid(self) -> dict:
        grid = flatten_table("grid", self.grid, lambda v: False)
        out = {}
        for name in sorted(grid):
            check_parameter("grid", name)
            values = grid[name]
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise ConfigError(f"[grid] {name} = {values!r}: expected a non-empty list of values")
            if name in DERIVED_PARAMETERS:
                for v in values:
                    check_derived_value("[grid] ", name, v)
            out[name] = [copy.deepcopy(v) for v in values]
        return out

    def _load_sample_table(self):
        """``[sample.table]``, read and checked (None without one)."""
        if not isinstance(self.sample, dict) or TABLE_KEY not in self.sample:
            return None
        from ..config import MockConfig

        q0 = self.fixed.get("galaxy", {}).get("q0", MockConfig().galaxy.q0)
        return load_sample_table(self.sample[TABLE_KEY], self.base_dir, q0=float(q0))

    def _check_sample(self) -> dict:
        raw = {k: v for k, v in self.sample.items() if k != TABLE_KEY} if isinstance(self.sample, dict) \
            else self.sample
        sample = flatten_table("sample", raw, is_distribution)
        out = {}
        for name in sorted(sample):
            check_parameter("sample", name)
            out[name] = check_distribution(name, sample[name])
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
            elif not is_number(value) or value <= 0:
                raise ConfigError(f"[derived] {name} = {value!r}; allowed: a number > 0 (or true when "
                                  "it is varied in [grid]/[sample])")
            out[name] = value if value is True else float(value)
        return out

    def _check_conflicts(self):
        if self.sample_table is not None:
            for name in self.sample_table.parameters:
                for table, names in (("grid", self.grid), ("sample", self.sample), ("derived", self.derived)):
                    if name in names:
                        raise ConfigError(f"{name}: set by [sample.table] and in [{table}]; vary it in one place")
            if "instrument.psf.fwhm" in self.sample_table.parameters and self.active_derived:
                raise ConfigError("[sample.table] psf_fwhm sets instrument.psf.fwhm, which x_resolution "
                                  "also sets; use one of them")
        both = sorted(set(self.grid) & set(self.sample))
        if both:
            raise ConfigError(f"{', '.join(both)}: in both [grid] and [sample]; vary a parameter in one place")
        for name in self.active_derived:
            target = DERIVED_PARAMETERS[name]
            for table, names in (("grid", self.grid), ("sample", self.sample)):
                if target in names:
                    raise ConfigError(f"[{table}] {target}: set by the derived parameter {name}; "
                                      f"vary {name} instead, or drop {name}")

    def _check_n_mocks(self):
        g = self.grid_size
        if self.n_mocks % g:
            lo, hi = (self.n_mocks // g) * g, (self.n_mocks // g + 1) * g
            near = f"{lo} or {hi}" if lo else f"{hi}"
            raise ConfigError(
                f"suite.n_mocks = {self.n_mocks} is not a multiple of the grid size {g} "
                f"({' x '.join(str(len(v)) for v in self.grid.values())}); use e.g. {near}"
            )

    def _check_keep_cubes(self) -> tuple:
        keep = self.keep_cubes
        if isinstance(keep, (str, bytes)) or not isinstance(keep, (list, tuple)):
            raise ConfigError(f"output.keep_cubes = {keep!r}: expected a list of mock indices")
        return tuple(sorted({integer("output.keep_cubes: mock index", i, 0, self.n_mocks - 1) for i in keep}))

    def _validate_mocks(self):
        """Build the configuration of the first grid points' mocks, as a single mock's is built."""
        n = min(self.n_mocks, self.grid_size, _N_VALIDATE)
        for i in range(n):
            try:
                self.mock(i).mock_config()
            except ConfigError as exc:
                where = "mock 0" if self.grid_size == 1 else f"mock {i} (grid point {i})"
                raise ConfigError(f"{where} of suite {self.name!r}: {exc}") from None

    def _validate_sample_bounds(self):
        """Mock 0 with each sampled parameter at its low and high bound (or each choice value),
        and with each row of ``[sample.table]`` (the first 256)."""
        self._validate_table_rows()
        if not self.sample:
            return
        try:
            base = self.mock(0)
        except ConfigError:  # mock 0 itself cannot be built: _validate_mocks says why
            return
        for name, dist in self.sample.items():
            tries = ([("low", dist["low"]), ("high", dist["high"])] if "low" in dist
                     else [(f"values[{k}]", v) for k, v in enumerate(dist["values"])])
            for label, value in tries:
                try:
                    inputs = _inputs_only(self, base.params)
                    inputs[name] = value
                    config, _ = mock_config(self.fixed, inputs, self.active_derived, base.seed)
                    config_from_dict(config)
                except ConfigError as exc:
                    raise ConfigError(f"[sample] {name}: {label} = {value!r} is not allowed: {exc}") from None

    def _validate_table_rows(self):
        if self.sample_table is None:
            return
        try:
            base = self.mock(0)
        except ConfigError:
            return
        for i, row in enumerate(self.sample_table.rows[:_N_VALIDATE]):
            try:
                inputs = _inputs_only(self, base.params)
                inputs.pop(SAMPLE_ROW, None)
                inputs.update(row)
                config, _ = mock_config(self.fixed, inputs, self.active_derived, base.seed)
                config_from_dict(config)
            except ConfigError as exc:
                raise ConfigError(f"[sample.table] row {i}: {exc}") from None

    # ---------------------------------------------------------------- expansion

    @property
    def grid_size(self) -> int:
        """Number of grid points (1 without ``[grid]``)."""
        return grid_size(self.grid)

    @property
    def active_derived(self) -> tuple[str, ...]:
        """Derived parameters in use (named in grid, sample or derived)."""
        return tuple(n for n in DERIVED_PARAMETERS if n in self.derived or n in self.grid or n in self.sample)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the varied (and derived) parameters, as in :attr:`MockSpec.params`."""
        names = list(self.grid) + list(self.sample)
        if self.sample_table is not None:
            names += list(self.sample_table.parameters) + [SAMPLE_ROW]
        names += [n for n in self.derived if n not in names]
        names += [DERIVED_PARAMETERS[n] for n in self.active_derived]
        return tuple(names)

    def grid_point(self, index: int) -> dict:
        """The grid values of mock ``index`` (empty without ``[grid]``)."""
        return grid_point(self.grid, index)

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
            computed for this mock (its galaxy or cosmology is invalid).
        """
        return expand_mock(self, integer("mock index", index, 0, self.n_mocks - 1))

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
            **({"recipe_content": self.recipe_digest} if self.recipe_digest else {}),
            **({"sample_table": {"columns": self.sample_table.columns, "digest": self.sample_table.digest}}
               if self.sample_table is not None else {}),
        }

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`canonical`.

        Name, description, ``n_mocks`` and ``keep_cubes`` are excluded: they
        do not change any mock's inputs or results.
        """
        return hashlib.sha256(canonical_json(self.canonical()).encode()).hexdigest()

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
        if self.sample_table is not None:
            out.setdefault("sample", {})[TABLE_KEY] = {"file": self.sample_table.path}
        if self.keep_cubes:
            out["output"] = {"keep_cubes": list(self.keep_cubes)}
        return out


def _inputs_only(spec: SuiteSpec, params: dict) -> dict:
    """Grid, sample and fixed derived values of a mock's params (the fields they set dropped)."""
    targets = {DERIVED_PARAMETERS[n] for n in spec.active_derived}
    return {k: v for k, v in params.items() if k not in targets}


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------

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
    _check_tables(data)
    suite = data.get("suite", {})
    fixed = _resolve_fixed(data.get("fixed", {}), base_dir)
    return SuiteSpec(
        name=suite.get("name", Path(path).stem if path else "suite"),
        seed=suite["seed"],
        n_mocks=_n_mocks(suite, data.get("grid", {})),
        description=suite.get("description", ""),
        fixed=fixed,
        grid=data.get("grid", {}),
        sample=data.get("sample", {}),
        derived=data.get("derived", {}),
        recovery=data.get("recovery", {}),
        keep_cubes=data.get("output", {}).get("keep_cubes", ()),
        source=source,
        path=path,
        base_dir=None if base_dir is None else str(base_dir),
    )


def _check_tables(data) -> None:
    """Known tables, known keys in ``[suite]`` and ``[output]``, and a seed."""
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
    for key in data.get("output", {}):
        if key not in _OUTPUT_KEYS:
            raise ConfigError(f"output.{key}: unknown key; allowed: {', '.join(_OUTPUT_KEYS)}")


def _resolve_fixed(fixed: dict, base_dir) -> dict:
    """``[fixed]`` applied over the mock file named by ``fixed.base`` (its seed dropped)."""
    fixed = dict(fixed)
    base = fixed.pop("base", None)
    if base is None:
        return fixed
    if not isinstance(base, str) or not base:
        raise ConfigError(f"fixed.base = {base!r}: expected the path of a mock TOML file")
    try:
        base_data, _ = read_toml(Path(base_dir or ".") / base, "mock file")
    except ConfigError as exc:
        raise ConfigError(f"fixed.base = {base!r}: {exc}") from None
    base_data.pop("seed", None)  # a mock file's own seed is replaced per mock
    return deep_merge(base_data, fixed)


def _n_mocks(suite: dict, grid) -> int:
    """``suite.n_mocks``, or the grid size when it is not given."""
    if "n_mocks" in suite:
        return suite["n_mocks"]
    if grid:
        return math.prod(len(v) if isinstance(v, (list, tuple)) else 1
                         for v in flatten_table("grid", grid, lambda v: False).values())
    raise ConfigError("suite.n_mocks is missing: give the number of mocks (it defaults to the grid "
                      "size only when [grid] is given)")


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
    path = Path(path)
    data, source = read_toml(path, "suite file")
    try:
        return suite_from_dict(data, base_dir=path.parent, source=source, path=str(path))
    except ConfigError as exc:
        raise ConfigError(f"suite file {str(path)!r}: {exc}") from None
