"""Tables in, columns by role: reading and normalising the tables of the corrections layer.

A suite's results table (one row per mock) and a table of measured gradients
(one row per galaxy) reach the corrections as astropy tables, dicts of
columns, structured arrays or pandas DataFrames, with column names chosen by
whoever wrote them. This module turns them into astropy tables, maps *roles*
(``grad_z_true``, ``x_resolution``, ...) to column names and reads columns as
floats:

* :func:`numeric_column` is strict: a masked or non-numeric entry raises a
  :class:`~mockzgrad.errors.DataError` naming the rows (for inputs that must
  be there, such as the true gradient of a mock);
* :func:`soft_numeric` is lenient: such entries become NaN (for values a
  failed fit may leave empty, such as the measured gradient).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from astropy.table import Table

from ..errors import ConfigError, DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "as_table",
    "column_map",
    "canonical_columns",
    "status_ok",
    "numeric_column",
    "soft_numeric",
]

#: Columns (roles) a results table must have.
REQUIRED_COLUMNS = ("status", "grad_z_true", "grad_z_measured", "x_resolution")
#: Optional roles: S/N (for the S/N check), inclination in deg (for surfaces), a row id for messages.
OPTIONAL_COLUMNS = ("snr", "inclination", "mock_index")


def as_table(table) -> Table:
    """An astropy Table from a Table (returned as is), a pandas DataFrame or anything ``Table()`` takes.

    Parameters
    ----------
    table : `~astropy.table.Table`, pandas DataFrame, dict of columns or structured array

    Returns
    -------
    `~astropy.table.Table`
        ``table`` itself when it is already a Table (no copy).

    Raises
    ------
    DataError
        ``table`` cannot be converted.
    """
    if isinstance(table, Table):
        return table
    try:
        if hasattr(table, "to_records") and hasattr(table, "columns"):  # a pandas DataFrame
            return Table.from_pandas(table)
        return Table(table)
    except Exception as exc:  # Table() raises many kinds for unconvertible input
        raise DataError(f"table of type {type(table).__name__} cannot be converted to an astropy Table ({exc})") \
            from exc


def column_map(columns: Mapping | None = None) -> dict:
    """Role -> column name for a results table, every role of :data:`REQUIRED_COLUMNS` and :data:`OPTIONAL_COLUMNS`.

    Parameters
    ----------
    columns : mapping, optional
        Column names that differ from the role names, e.g.
        ``{"grad_z_true": "galaxy.metallicity.grad_z"}``.

    Returns
    -------
    dict
        Every role, in the order required then optional, mapped to its
        column name (the role name itself unless ``columns`` says otherwise).

    Raises
    ------
    ConfigError
        ``columns`` is not a mapping or names an unknown role.
    """
    roles = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    cmap = {r: r for r in roles}
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise ConfigError(f"columns = {columns!r}; expected a mapping role -> column name")
        unknown = [k for k in columns if k not in roles]
        if unknown:
            raise ConfigError(f"columns: unknown role(s) {unknown}; allowed {list(roles)}")
        cmap.update({k: str(v) for k, v in columns.items()})
    return cmap


def canonical_columns(table: Table, cmap: Mapping) -> Table:
    """A table sharing the data of ``table`` whose column names are the roles.

    Parameters
    ----------
    table : `~astropy.table.Table`
    cmap : mapping
        Role -> column name, from :func:`column_map`. Roles whose column is
        absent are left out; the required ones must be present.

    Returns
    -------
    `~astropy.table.Table`
        Columns in the order of ``cmap``, not copied.

    Raises
    ------
    DataError
        A column of :data:`REQUIRED_COLUMNS` is missing (named, with the
        columns present).
    """
    missing = [f"{cmap[r]!r}" + ("" if cmap[r] == r else f" (role {r!r})") for r in REQUIRED_COLUMNS
               if cmap[r] not in table.colnames]
    if missing:
        raise DataError(f"results table lacks column(s) {', '.join(missing)}; present: {table.colnames}")
    return Table({r: table[name] for r, name in cmap.items() if name in table.colnames}, copy=False)


def status_ok(table: Table, name: str = "status") -> np.ndarray:
    """True where the ``status`` column reads ``"ok"`` (case and surrounding blanks ignored).

    Parameters
    ----------
    table : `~astropy.table.Table`
    name : str
        The status column.

    Returns
    -------
    ndarray of bool
    """
    return np.char.strip(np.char.lower(np.asarray(table[name]).astype(str))) == "ok"


def _data_and_mask(col):
    if hasattr(col, "mask"):
        return np.ma.getdata(col), np.asarray(np.ma.getmaskarray(col))
    return np.asarray(col), np.zeros(len(col), bool)


def numeric_column(table: Table, name: str, ids) -> np.ndarray:
    """A column as floats; masked or non-numeric entries raise, naming the rows.

    Parameters
    ----------
    table : `~astropy.table.Table`
    name : str
        Column name.
    ids : sequence
        Row names for the message (e.g. ``mock_index`` or galaxy ids).

    Returns
    -------
    ndarray of float
        NaN and infinities are kept (the caller decides about them).

    Raises
    ------
    DataError
        Some entries are masked or not numbers (up to 10 rows named).
    """
    raw, mask = _data_and_mask(table[name])
    out = np.empty(len(raw))
    bad = []
    for i, v in enumerate(raw):
        if mask[i]:
            bad.append(i)
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            bad.append(i)
    if bad:
        shown = ", ".join(f"{ids[i]!s} ({raw[i]!r})" if not mask[i] else f"{ids[i]!s} (missing)" for i in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(f"column {name!r}: non-numeric or missing values in rows {shown}{more}")
    return out


def soft_numeric(table: Table, name: str) -> np.ndarray:
    """A column as floats; masked or non-numeric entries become NaN.

    For values that a failed fit may leave empty (the measured gradient);
    the caller counts and leaves out the NaN rows.

    Parameters
    ----------
    table : `~astropy.table.Table`
    name : str
        Column name.

    Returns
    -------
    ndarray of float
    """
    raw, mask = _data_and_mask(table[name])
    out = np.full(len(raw), np.nan)
    for i, v in enumerate(raw):
        if not mask[i]:
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                pass
    return out
