"""Distributions of a suite's ``[sample]`` table: their checks and their draws.

Each sampled parameter is a table ``{dist = ..., ...}``:

* ``uniform``: ``low``, ``high``; uniform on [low, high).
* ``loguniform``: ``low``, ``high``; uniform in log on [low, high), 0 < low.
* ``choice``: ``values``; one of the values, equal weights.

``[sample.table]`` (``{file = "sample.ecsv"}``) instead draws one row of a
table of real galaxies per mock and sets all its columns at once (redshift,
r_eff, inclination or axis ratio, S/N, PSF FWHM; :func:`load_sample_table`),
so the mocks follow the sample's joint distribution; the row index is kept
as the mock parameter ``sample_row``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..validate import choice, finite, positive
from .params import DERIVED_PARAMETERS, check_derived_value

__all__ = ["DISTRIBUTIONS", "SAMPLE_KEYS", "is_distribution", "check_distribution", "draw",
           "TABLE_KEY", "SAMPLE_ROW", "TABLE_COLUMNS", "SampleTable", "load_sample_table",
           "inclination_from_axis_ratio", "draw_row"]

#: Sampling distributions of ``[sample]``.
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
#: Keys each distribution takes besides ``dist``.
SAMPLE_KEYS = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "choice": ("values",)}


def is_distribution(table: dict) -> bool:
    """True for a table that describes a distribution rather than nesting names."""
    return bool({"dist", "low", "high", "values"} & set(table))


def check_distribution(name: str, spec) -> dict:
    """A checked, normalised copy of the distribution of parameter ``name``.

    Parameters
    ----------
    name : str
        Dotted parameter name (already checked).
    spec : dict
        ``{"dist": "uniform" | "loguniform", "low": ..., "high": ...}`` or
        ``{"dist": "choice", "values": [...]}``; ``low`` and ``high`` in the
        parameter's unit.

    Returns
    -------
    dict
        ``low``/``high`` as floats, or a copy of ``values``.

    Raises
    ------
    ConfigError
        Unknown ``dist``, missing or unknown keys, ``low >= high``, a
        loguniform ``low <= 0``, an empty ``values``, or values a derived
        parameter cannot take.
    """
    where = f"[sample] {name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} = {spec!r}: expected a table such as "
                          "{dist = \"uniform\", low = 0.0, high = 1.0}")
    if "dist" not in spec:
        raise ConfigError(f"{where}: no dist given; allowed: {', '.join(map(repr, DISTRIBUTIONS))}")
    dist = choice(f"{where}: dist", spec["dist"], DISTRIBUTIONS)
    _check_keys(where, dist, spec)
    if dist == "choice":
        return {"dist": dist, "values": _check_values(where, name, spec["values"])}
    low = finite(f"{where}: low", spec["low"])
    high = finite(f"{where}: high", spec["high"])
    if not low < high:
        raise ConfigError(f"{where}: low = {spec['low']} >= high = {spec['high']}; need low < high")
    if dist == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: low = {spec['low']}; loguniform needs 0 < low < high")
    if name in DERIVED_PARAMETERS:
        positive(f"{where}: low", low)
    return {"dist": dist, "low": low, "high": high}


def _check_keys(where: str, dist: str, spec: dict) -> None:
    keys = SAMPLE_KEYS[dist]
    extra = sorted(set(spec) - {"dist", *keys})
    missing = [k for k in keys if k not in spec]
    if extra or missing:
        raise ConfigError(
            f"{where}: dist = {dist!r} takes {', '.join(keys)}"
            + (f"; unknown: {', '.join(extra)}" if extra else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )


def _check_values(where: str, name: str, values) -> list:
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise ConfigError(f"{where}: values = {values!r}: expected a non-empty list")
    if name in DERIVED_PARAMETERS:
        for v in values:
            check_derived_value("[sample] ", name, v)
    return [copy.deepcopy(v) for v in values]


def draw(rng, spec: dict):
    """One draw from a checked distribution.

    Parameters
    ----------
    rng : numpy.random.Generator
        Consumes one uniform (``uniform``, ``loguniform``) or one integer
        (``choice``) draw.
    spec : dict
        As returned by :func:`check_distribution`.
    """
    import numpy as np

    dist = spec["dist"]
    if dist == "uniform":
        return float(rng.uniform(spec["low"], spec["high"]))
    if dist == "loguniform":
        return float(np.exp(rng.uniform(math.log(spec["low"]), math.log(spec["high"]))))
    return copy.deepcopy(spec["values"][int(rng.integers(len(spec["values"])))])


# --------------------------------------------------------------------------
# joint draws from a table of real galaxies: [sample.table]
# --------------------------------------------------------------------------

#: Key of ``[sample]`` that names a table of real galaxies drawn jointly.
TABLE_KEY = "table"
#: Parameter under which a mock records the table row it was drawn from (0-based); it is
#: in the mock's ``params`` and so a column of the exported results.
SAMPLE_ROW = "sample_row"
#: Table columns understood (name -> (suite parameter, unit)); every column present is used.
#: ``axis_ratio`` (observed b/a) sets ``galaxy.inclination`` through the disk thickness
#: ``galaxy.q0`` when the table has no ``inclination`` column.
TABLE_COLUMNS = {
    "redshift": ("galaxy.redshift", ""),
    "r_eff": ("galaxy.r_eff", "kpc"),
    "inclination": ("galaxy.inclination", "deg"),
    "axis_ratio": ("galaxy.inclination", ""),
    "snr": ("noise.snr", ""),
    "psf_fwhm": ("instrument.psf.fwhm", "arcsec"),
}
_TABLE_KEYS = ("file", "columns")


@dataclass(frozen=True)
class SampleTable:
    """A table of real galaxies from which each mock draws one row (all its columns jointly).

    Attributes
    ----------
    path : str
        The table file (.csv or .ecsv).
    rows : tuple of dict
        Per row, suite parameter (dotted name) -> value in the parameter's unit.
    columns : dict
        Table column -> suite parameter, as used.
    digest : str
        SHA-256 of the file's bytes (part of the suite fingerprint).
    """

    path: str
    rows: tuple
    columns: dict
    digest: str

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Suite parameters the table sets."""
        return tuple(dict.fromkeys(self.columns.values()))

    def record(self) -> dict:
        """JSON-able description (file, columns, digest) for the suite's canonical form."""
        return {"file": self.path, "columns": dict(self.columns), "digest": self.digest}


def inclination_from_axis_ratio(axis_ratio: float, q0: float) -> float:
    """Inclination (deg) of a thick disk of intrinsic axis ratio ``q0`` seen with observed b/a.

    Inverts b/a = sqrt(cos^2 i + q0^2 sin^2 i) (the convention of
    :class:`mockzgrad.config.GalaxyConfig`); b/a <= q0 gives 90 deg.
    """
    ba = float(axis_ratio)
    if not 0.0 < ba <= 1.0:
        raise ConfigError(f"[sample.table] axis_ratio = {axis_ratio!r}: expected 0 < b/a <= 1")
    cos2 = (ba * ba - q0 * q0) / (1.0 - q0 * q0) if q0 < 1.0 else 1.0
    return math.degrees(math.acos(math.sqrt(min(max(cos2, 0.0), 1.0))))


def load_sample_table(spec, base_dir=None, q0: float = 0.2) -> SampleTable:
    """Read and check ``[sample.table]``: ``{file = "sample.ecsv", columns = {...}}``.

    Parameters
    ----------
    spec : dict
        ``file``: a .csv (header row with column names) or .ecsv table, one
        row per real galaxy, path relative to ``base_dir``. Columns (any
        subset, see :data:`TABLE_COLUMNS`): ``redshift``; ``r_eff`` (kpc);
        ``inclination`` (deg) or ``axis_ratio`` (observed b/a, converted
        with ``q0``); ``snr``; ``psf_fwhm`` (FWHM, arcsec). ECSV columns
        with units are converted to these units. ``columns`` (optional)
        renames: ``{table column = standard name}``; other columns are
        ignored.
    base_dir : path, optional
        Directory of the suite file.
    q0 : float
        Intrinsic disk axis ratio, for ``axis_ratio``.

    Raises
    ------
    ConfigError
        Missing file, unknown keys, no usable column, empty table, missing
        or non-finite values.
    """
    import hashlib
    from pathlib import Path

    where = "[sample.table]"
    if not isinstance(spec, dict) or "file" not in spec:
        raise ConfigError(f"{where} = {spec!r}: expected a table {{file = \"sample.ecsv\"}} "
                          "(optional columns = {{table_name = standard_name}})")
    extra = sorted(set(spec) - set(_TABLE_KEYS))
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(_TABLE_KEYS)}")
    path = Path(spec["file"])
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.suffix.lower() not in (".csv", ".ecsv"):
        raise ConfigError(f"{where} file = {str(spec['file'])!r}: extension {path.suffix!r}; allowed .csv, .ecsv")
    if not path.is_file():
        raise ConfigError(f"{where} file = {str(spec['file'])!r}: no such file ({path})")
    rename = spec.get("columns", {}) or {}
    if not isinstance(rename, dict):
        raise ConfigError(f"{where} columns = {rename!r}: expected a table {{table_column = standard_name}}")
    for k, v in rename.items():
        choice(f"{where} columns.{k}", v, tuple(TABLE_COLUMNS))
    table = _read_table(path, where)
    used = {}  # table column -> standard name
    for col in table.colnames:
        std = rename.get(col, col if col in TABLE_COLUMNS and col not in rename.values() else None)
        if std is not None:
            used[col] = std
    if not used:
        raise ConfigError(f"{where} file {path.name}: no usable column; expected some of "
                          f"{', '.join(TABLE_COLUMNS)} (or a columns = {{...}} renaming); has "
                          f"{', '.join(table.colnames)}")
    if len(table) == 0:
        raise ConfigError(f"{where} file {path.name}: no rows")
    values = {std: _column_values(table[col], std, where, path.name) for col, std in used.items()}
    stds = set(values)
    rows = []
    for i in range(len(table)):
        row = {}
        for std, vals in values.items():
            if std == "axis_ratio" and "inclination" in stds:
                continue  # inclination given: b/a is not used
            target = TABLE_COLUMNS[std][0]
            v = vals[i]
            row[target] = inclination_from_axis_ratio(v, q0) if std == "axis_ratio" else v
        rows.append(row)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    columns = {col: TABLE_COLUMNS[std][0] for col, std in used.items()
               if not (std == "axis_ratio" and "inclination" in stds)}
    return SampleTable(path=str(path), rows=tuple(rows), columns=columns, digest=digest)


def _read_table(path, where):
    from astropy.table import Table

    try:
        return Table.read(str(path), format="ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv")
    except Exception as exc:  # astropy raises many kinds for a malformed file
        raise ConfigError(f"{where} file {path.name}: cannot read: {exc}") from None


def _column_values(col, std, where, fname) -> list:
    import numpy as np

    unit = TABLE_COLUMNS[std][1]
    if getattr(col, "unit", None) is not None and unit:
        try:
            data = col.quantity.to_value(unit)
        except Exception:
            raise ConfigError(f"{where} file {fname}: column {col.name!r} has unit {col.unit}; "
                              f"expected one convertible to {unit}") from None
    else:
        data = col
    if hasattr(data, "mask") and np.any(data.mask):
        raise ConfigError(f"{where} file {fname}: column {col.name!r} has missing values")
    try:
        arr = np.asarray(data, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} file {fname}: column {col.name!r} is not numeric") from None
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ConfigError(f"{where} file {fname}: column {col.name!r} row {int(bad[0])} is not finite")
    return [float(v) for v in arr]


def draw_row(rng, table: SampleTable) -> int:
    """Index of the table row a mock takes (uniform over the rows; one integer draw)."""
    return int(rng.integers(table.n_rows))
