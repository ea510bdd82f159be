"""Crash-safe results store of a mock suite: one SQLite row per mock.

A suite writes its results into ``<outdir>/results.sqlite`` (stdlib
:mod:`sqlite3`, no server). The database runs in WAL mode with
``synchronous = FULL`` and every finished mock is one committed transaction,
so a process that is killed (SIGKILL, power loss) loses nothing that was
committed, and the file never holds half a row. Only one process writes (the
parent of a suite run); others may read at the same time.

Schema
------
``mocks``, one row per mock, keyed on ``mock_index`` (``INSERT OR REPLACE``:
recording a mock again replaces its row, it is never duplicated):

========== ======= ==========================================================
column     type    meaning
========== ======= ==========================================================
mock_index INTEGER index of the mock in its suite; primary key
status     TEXT    ``"ok"`` or ``"failed"``
error      TEXT    ``"ExceptionType: message"`` of a failed mock, else NULL
elapsed_s  REAL    wall-clock time the mock took in its worker, s
seed       INTEGER the mock's derived seed (63-bit)
params     TEXT    JSON object of the varied parameters, by dotted name
<key>      (none)  one column per result key, added on first sight
========== ======= ==========================================================

Result columns are real SQL columns, added with ``ALTER TABLE ADD COLUMN``
the first time a key appears (earlier rows hold NULL there), so the store
can be queried directly (``SELECT grad_z_measured FROM mocks``). They are
declared without a type (no affinity), so SQLite keeps each value exactly as
given. Values are normalised before writing: Python and numpy ints, floats
and strings are kept; bools become 0/1; None, and NaN (SQLite has no NaN),
become NULL; dicts, lists, tuples and arrays are JSON-encoded into text. A
result key equal to one of the fixed columns above is stored as
``result_<key>``. SQL column names are case-insensitive: one result with
keys differing only in case is refused, and such keys of different mocks
share a column.

``meta``: ``key TEXT PRIMARY KEY, value TEXT`` (suite fingerprint, suite
TOML text, package version, creation time, ...).

Examples
--------
>>> with ResultsStore("results.sqlite") as store:          # doctest: +SKIP
...     store.record(0, "ok", {"grad_z_measured": -0.08}, elapsed=1.2, seed=7,
...                  params={"galaxy.r_eff": 2.0})
...     table = store.to_table()
...     store.export("results.ecsv")
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import numbers
import sqlite3
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import ConfigError, DataError
from ..validate import choice, integer

__all__ = [
    "load_results_table", "ResultsStore", "STATUSES", "FIXED_COLUMNS", "normalise_result", "utc_now"]

#: Allowed values of the ``status`` column.
STATUSES = ("ok", "failed")
#: Columns every ``mocks`` table has, in order.
FIXED_COLUMNS = ("mock_index", "status", "error", "elapsed_s", "seed", "params")
#: Version of the table layout, written to ``meta`` as ``schema_version``.
SCHEMA_VERSION = "1"

_CREATE = (
    "CREATE TABLE IF NOT EXISTS mocks ("
    " mock_index INTEGER PRIMARY KEY,"
    " status TEXT NOT NULL,"
    " error TEXT,"
    " elapsed_s REAL,"
    " seed INTEGER,"
    " params TEXT)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
)
_EXPORT_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".parquet": "parquet"}


def utc_now() -> str:
    """Current UTC time as ISO 8601 text with seconds, e.g. ``2026-05-09T07:35:25Z``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scalar(value):
    """One result value as something SQLite stores without loss (see module doc)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        raise TypeError("bytes are not storable; encode them as text")
    return json.dumps(_jsonable(value), sort_keys=True, allow_nan=True)


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def normalise_result(result: dict) -> dict:
    """Check and normalise a result dict for :meth:`ResultsStore.record`.

    Parameters
    ----------
    result : dict
        Result keys (non-empty strings) to values: None, bool, int, float,
        str, or dict/list/tuple/array (JSON-encoded into text).

    Returns
    -------
    dict
        Same keys; values as stored (see the module docstring).

    Raises
    ------
    TypeError
        ``result`` is not a dict, a key is not a non-empty string, two keys
        differ only in case, or a value cannot be stored.
    """
    if not isinstance(result, dict):
        raise TypeError(f"result must be a dict, got {type(result).__name__}")
    out = {}
    seen = {}
    for key, value in result.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"result key {key!r}: expected a non-empty string")
        low = key.lower()
        if low in seen:
            raise TypeError(f"result keys {seen[low]!r} and {key!r} differ only in case "
                            "(SQL column names are case-insensitive)")
        seen[low] = key
        try:
            out[key] = _scalar(value)
        except TypeError as exc:
            raise TypeError(f"result[{key!r}]: {exc}") from None
    return out


class ResultsStore:
    """SQLite store of a suite's per-mock results (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        Database file; created (with its parent directory) if missing.
    readonly : bool
        Open an existing file read-only (no tables created; ``record`` and
        ``set_meta`` fail).

    Notes
    -----
    Use one instance per process and thread (the parent of a suite run is
    the single writer). The store is a context manager; :meth:`close` is
    idempotent.
    """

    def __init__(self, path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = bool(readonly)
        if readonly:
            if not self.path.is_file():
                raise DataError(f"results store {str(self.path)!r}: no such file")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            self._conn.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":  # pragma: no cover - e.g. some network file systems
                    raise DataError(f"results store {str(self.path)!r}: cannot use WAL mode (got {mode})")
                self._conn.execute("PRAGMA synchronous = FULL")
                with self._transaction():
                    for sql in _CREATE:
                        self._conn.execute(sql)
                    self._conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (SCHEMA_VERSION,),
                    )
                    self._conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_utc', ?)", (utc_now(),)
                    )
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise DataError(f"results store {str(self.path)!r}: not a usable SQLite database ({exc})") from None
        except BaseException:
            self._conn.close()
            raise
        self._columns = self._read_columns()

    # ------------------------------------------------------------------ basics

    def _check_schema(self):
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"mocks", "meta"} <= tables:
            raise DataError(f"results store {str(self.path)!r}: lacks the mocks/meta tables")
        cols = [r[1] for r in self._conn.execute("PRAGMA table_info(mocks)")]
        if tuple(cols[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
            raise DataError(
                f"results store {str(self.path)!r}: table mocks has columns {cols[:6]}, "
                f"expected {list(FIXED_COLUMNS)} first"
            )

    def _read_columns(self) -> list[str]:
        return [r[1] for r in self._conn.execute("PRAGMA table_info(mocks)")]

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction: committed on success, rolled back on any exception."""
        conn = self._c()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (idempotent). The last writer to close
        checkpoints the WAL into the main file."""
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            conn.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._conn is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise DataError(f"results store {str(self.path)!r} is open read-only")
        return self._c()

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DataError(f"results store {str(self.path)!r} is closed")
        return self._conn

    def __repr__(self):
        state = "closed" if self.closed else f"{self.count()} mocks"
        return f"ResultsStore({str(self.path)!r}, {state})"

    # ------------------------------------------------------------------ writing

    def result_column(self, key: str) -> str:
        """SQL column that holds result ``key`` (``result_<key>`` for a fixed column's name)."""
        return f"result_{key}" if key.lower() in FIXED_COLUMNS else key

    def record(self, index: int, status: str, result: dict | None, elapsed: float | None,
               error: str | None = None, *, seed: int | None = None,
               params: dict | None = None) -> None:
        """Write one finished mock as one committed transaction.

        Parameters
        ----------
        index : int
            Mock index; >= 0. An existing row with this index is replaced.
        status : {"ok", "failed"}
        result : dict or None
            Flat results (see :func:`normalise_result`); new keys add columns.
        elapsed : float or None
            Wall-clock time of the mock, s.
        error : str or None
            ``"ExceptionType: message"`` of a failed mock.
        seed : int or None
            The mock's derived seed.
        params : dict or None
            Varied parameters by dotted name, stored as JSON text.
        """
        index = integer("index", index, 0)
        choice("status", status, STATUSES)
        row = {
            "mock_index": index,
            "status": status,
            "error": None if error is None else str(error),
            "elapsed_s": None if elapsed is None else float(elapsed),
            "seed": None if seed is None else int(seed),
            "params": None if params is None else json.dumps(_jsonable(params), sort_keys=True),
        }
        for key, value in normalise_result(result or {}).items():
            row[self.result_column(key)] = value
        conn = self._writable()
        altered = False
        try:
            with self._transaction():
                known = {c.lower() for c in self._columns}
                for col in row:
                    if col.lower() not in known:
                        conn.execute(f"ALTER TABLE mocks ADD COLUMN {_quote(col)}")
                        known.add(col.lower())
                        altered = True
                names = ", ".join(_quote(c) for c in row)
                marks = ", ".join("?" for _ in row)
                conn.execute(f"INSERT OR REPLACE INTO mocks ({names}) VALUES ({marks})", tuple(row.values()))
        finally:
            if altered:  # also after a rollback: re-read what is really there
                self._columns = self._read_columns()

    def set_meta(self, key: str, value: str) -> None:
        """Set one ``meta`` entry (text; JSON-encode anything else), committed at once."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("meta keys and values are strings")
        self._writable()
        with self._transaction():
            self._c().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def update_meta(self, items: dict) -> None:
        """Set several ``meta`` entries in one transaction."""
        for k, v in items.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("meta keys and values are strings")
        self._writable()
        with self._transaction():
            self._c().executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(items.items()))

    # ------------------------------------------------------------------ reading

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """One ``meta`` entry, or ``default``."""
        row = self._c().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    @property
    def meta(self) -> dict[str, str]:
        """All ``meta`` entries (a copy)."""
        return dict(self._c().execute("SELECT key, value FROM meta ORDER BY key").fetchall())

    def count(self, status: str | None = None) -> int:
        """Number of recorded mocks, all or with the given ``status``."""
        if status is None:
            return self._c().execute("SELECT COUNT(*) FROM mocks").fetchone()[0]
        choice("status", status, STATUSES)
        return self._c().execute("SELECT COUNT(*) FROM mocks WHERE status = ?", (status,)).fetchone()[0]

    def done_indices(self, include_failed: bool = True) -> set[int]:
        """Indices of finished mocks: status ok, and failed too unless ``include_failed`` is False."""
        sql = "SELECT mock_index FROM mocks" + ("" if include_failed else " WHERE status = 'ok'")
        return {r[0] for r in self._c().execute(sql)}

    def first_error(self, n_mocks: int | None = None) -> tuple[int, str] | None:
        """The failed mock of lowest index (below ``n_mocks`` if given) and its error, or None."""
        sql = "SELECT mock_index, error FROM mocks WHERE status = 'failed'"
        args: tuple = ()
        if n_mocks is not None:
            sql += " AND mock_index < ?"
            args = (int(n_mocks),)
        row = self._c().execute(sql + " ORDER BY mock_index LIMIT 1", args).fetchone()
        return None if row is None else (int(row[0]), row[1] or "")

    def max_index(self) -> int | None:
        """Largest recorded mock index, or None for an empty store."""
        return self._c().execute("SELECT MAX(mock_index) FROM mocks").fetchone()[0]

    def rows(self, indices: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Raw rows as dicts (SQL column -> stored value), sorted by ``mock_index``."""
        cur = self._c().execute("SELECT * FROM mocks ORDER BY mock_index")
        names = [d[0] for d in cur.description]
        out = [dict(zip(names, r, strict=True)) for r in cur]
        if indices is not None:
            wanted = set(int(i) for i in indices)
            out = [r for r in out if r["mock_index"] in wanted]
        return out

    def to_table(self):
        """All mocks as an :class:`astropy.table.Table`, one row per mock, sorted by index.

        Columns: the fixed columns except ``params``, then one column per
        varied parameter (named by its dotted name, from the ``params``
        JSON), then one per result key. A result column whose name equals a
        parameter's is renamed ``result.<key>``. Missing values (NULL) are
        masked. Column types: integer if every value is an integer, float if
        every value is a number, else text. ``table.meta`` holds the store's
        ``meta`` entries.
        """
        from astropy.table import Table

        rows = self.rows()
        cols = self._read_columns()
        result_cols = [c for c in cols if c not in FIXED_COLUMNS]
        params = [json.loads(r["params"]) if r["params"] else {} for r in rows]
        pnames = []
        for p in params:
            for k in p:
                if k not in pnames:
                    pnames.append(k)
        table = Table(meta=self.meta)
        for name in ("mock_index", "status", "error", "elapsed_s", "seed"):
            table[name] = _column(name, [r[name] for r in rows])
        for name in pnames:
            table[name] = _column(name, [_param_value(p.get(name)) for p in params])
        for col in result_cols:
            name = f"result.{col}" if col in table.colnames else col
            table[name] = _column(name, [r[col] for r in rows])
        return table

    def export(self, path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_table` to a file; the format follows the extension.

        Parameters
        ----------
        path : str or os.PathLike
            Output file: ``.csv`` (astropy ascii.csv; masked values empty),
            ``.ecsv`` (astropy ECSV, keeps types, masks and ``meta``) or
            ``.parquet`` (needs pyarrow: ``pip install mockzgrad[parquet]``).
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        path = Path(path)
        ext = path.suffix.lower()
        if ext not in _EXPORT_FORMATS:
            raise ConfigError(
                f"export path {str(path)!r}: extension {ext or '(none)'!r}; allowed: "
                + ", ".join(_EXPORT_FORMATS)
            )
        from ..fileio import atomic_write, check_output_path

        check_output_path(path, overwrite)
        if ext == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "export to .parquet needs pyarrow, which is not installed: "
                    "pip install mockzgrad[parquet]"
                ) from None
        table = self.to_table()
        if ext == ".csv":
            table.meta.clear()  # plain CSV has no header metadata
        atomic_write(path, lambda tmp: table.write(tmp, format=_EXPORT_FORMATS[ext], overwrite=True),
                     overwrite=overwrite)
        return path

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the main database file (``PRAGMA wal_checkpoint(TRUNCATE)``)."""
        self._c().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when sound)."""
        return self._c().execute("PRAGMA integrity_check").fetchone()[0]


def _param_value(v):
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, bool):
        return int(v)
    return v


def _column(name, values):
    """Typed astropy column of stored values; None is masked (plain Column if none is)."""
    from astropy.table import Column, MaskedColumn

    mask = np.array([v is None for v in values], dtype=bool)
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        data = np.array([0 if v is None else v for v in values], dtype=np.int64)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        data = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    else:
        data = np.array(["" if v is None else str(v) for v in values], dtype=str)
    if mask.any():
        return MaskedColumn(data, name=name, mask=mask)
    return Column(data, name=name)


def load_results_table(path):
    """Results of a suite as (table, meta) from an output folder, its
    results.sqlite, or an exported CSV/ECSV table."""
    from astropy.table import Table

    path = Path(path)
    if path.is_dir():
        path = path / "results.sqlite"
    if not path.exists():
        raise DataError(f"results {str(path)!r} do not exist (give a suite output folder, its "
                        "results.sqlite, or an exported CSV/ECSV table)")
    if path.suffix == ".sqlite":
        with ResultsStore(path, readonly=True) as store:
            return store.to_table(), dict(store.meta)
    fmt = "ascii.ecsv" if path.suffix == ".ecsv" else "ascii.csv"
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:  # astropy raises many kinds (and UnicodeDecodeError) for a malformed file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"results {str(path)!r}: cannot be read as {fmt[6:].upper()} ({first})") from exc
    return table, dict(table.meta)
