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

import re
from pathlib import Path
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
    "RECIPE_KEY",
    "read_text",
    "header_recipe",
    "declared_recipe",
    "check_recipe",
]

#: Column, meta key and ``# recipe: NAME`` header key by which a table declares its recipe.
RECIPE_KEY = "recipe"
_RECIPE_LINE = re.compile(r"^#\s*recipe\s*[:=]\s*(\S.*?)\s*$", re.IGNORECASE)

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


def read_text(path, what: str = "table") -> str:
    """The text of a file as UTF-8, a leading byte-order mark (an Excel export's) dropped.

    Raises
    ------
    DataError
        The file cannot be read or is not UTF-8 text.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}: "
                        f"{exc.reason}); save it as UTF-8 CSV/ECSV") from None
    except OSError as exc:
        raise DataError(f"{what} {str(path)!r}: cannot read ({exc.strerror or exc})") from None


def header_recipe(lines) -> str | None:
    """The recipe a ``# recipe: NAME`` comment line declares (the last one), or None."""
    found = None
    for line in lines:
        m = _RECIPE_LINE.match(line.strip())
        if m:
            found = m.group(1).strip().strip("'\"")
    return found


def declared_recipe(table: Table, where: str = "table") -> str | None:
    """The recipe a table of measured gradients declares, or None.

    A ``recipe`` column (one value for every row; empty entries ignored), a
    ``recipe`` meta key (ECSV meta, or a ``# recipe: NAME`` header line read
    by :func:`~mockzgrad.corrections.correct.read_gradient_table`).

    Raises
    ------
    DataError
        The column holds several recipes, or the column and meta disagree.
    """
    meta = table.meta.get(RECIPE_KEY) if table.meta else None
    meta = str(meta).strip() if meta not in (None, "") else None
    column = None
    if RECIPE_KEY in table.colnames:
        values = sorted({str(v).strip() for v in table[RECIPE_KEY]} - {"", "--"})  # "--": masked
        if len(values) > 1:
            raise DataError(f"{where}: column {RECIPE_KEY!r} holds several recipes ({', '.join(values)}); "
                            "correct each recipe's rows with its own curves")
        column = values[0] if values else None
    if meta and column and meta != column:
        raise DataError(f"{where}: header declares recipe {meta!r} but column {RECIPE_KEY!r} says {column!r}")
    return column or meta


def _recipe_id(value: str) -> str:
    """A recipe as compared: a shipped name, or the stem of a recipe file."""
    text = str(value).strip()
    if "/" in text or "\\" in text or text.endswith(".toml"):
        return Path(text).stem
    return text


def check_recipe(table: Table, curves_recipe, *, force: bool = False, where: str = "table") -> str | None:
    """Refuse curves made with another recipe than the one the table declares.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Measured gradients (see :func:`declared_recipe`).
    curves_recipe : str or None
        The recipe of the curves (their provenance ``recipe``).
    force : bool
        Accept a mismatch (the caller knows the recipes agree in what matters).
    where : str
        The table, for the message.

    Returns
    -------
    str or None
        The declared recipe.

    Raises
    ------
    DataError
        Both recipes are known and differ, and ``force`` is False.
    """
    declared = declared_recipe(table, where)
    if declared is None or curves_recipe in (None, "") or force:
        return declared
    if _recipe_id(declared) != _recipe_id(curves_recipe):
        raise DataError(f"{where} declares recipe {declared!r} but the curves were made with recipe "
                        f"{str(curves_recipe)!r}; use curves of a suite run with {declared!r}, or "
                        "--force-recipe (force=True) to apply them anyway")
    return declared
