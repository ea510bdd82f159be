"""The SQLite results store: one row per mock, dynamic result columns,
crash safety, export."""

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from mockzgrad.errors import ConfigError, DataError
from mockzgrad.suites.store import FIXED_COLUMNS, ResultsStore, normalise_result

TESTS = Path(__file__).parent


@pytest.fixture
def store(tmp_path):
    with ResultsStore(tmp_path / "results.sqlite") as s:
        yield s


def test_record_and_read_back(store):
    store.record(0, "ok", {"grad_z_measured": -0.08, "n": 3}, 1.5, seed=11, params={"galaxy.r_eff": 2.0})
    store.record(1, "failed", {}, 0.5, "ValueError: boom", seed=12, params={"galaxy.r_eff": 3.0})
    rows = store.rows()
    assert rows[0] == {"mock_index": 0, "status": "ok", "error": None, "elapsed_s": 1.5, "seed": 11,
                       "params": json.dumps({"galaxy.r_eff": 2.0}), "grad_z_measured": -0.08, "n": 3}
    assert rows[1]["error"] == "ValueError: boom" and rows[1]["grad_z_measured"] is None
    assert store.count() == 2 and store.count("ok") == 1 and store.count("failed") == 1
    assert store.done_indices() == {0, 1}
    assert store.done_indices(include_failed=False) == {0}
    assert store.max_index() == 1


def test_record_again_replaces_never_duplicates(store):
    store.record(4, "failed", {"a": 1.0}, 0.1, "RuntimeError: x", seed=1)
    store.record(4, "ok", {"b": 2.0}, 0.2, seed=1)
    rows = store.rows()
    assert len(rows) == 1
    assert rows[0]["status"] == "ok" and rows[0]["error"] is None
    assert rows[0]["a"] is None and rows[0]["b"] == 2.0  # the whole row is replaced
    n = store._c().execute("SELECT COUNT(*) FROM mocks WHERE mock_index = 4").fetchone()[0]
    assert n == 1


def test_dynamic_columns_and_value_normalisation(store):
    store.record(0, "ok", {"x": 1.0}, 0.1)
    store.record(1, "ok", {"x": np.float32(2.5), "new_key": np.int64(7), "flag": np.bool_(True),
                           "nan": float("nan"), "inf": float("inf"), "nested": {"a": [1, 2]},
                           "arr": np.arange(3), "status": "shadow", "Label": "text"}, 0.1)
    cols = [r[1] for r in store._c().execute("PRAGMA table_info(mocks)")]
    assert tuple(cols[:6]) == FIXED_COLUMNS
    assert {"x", "new_key", "flag", "nan", "inf", "nested", "arr", "result_status", "Label"} <= set(cols)
    row = store.rows([1])[0]
    assert row["x"] == 2.5 and row["new_key"] == 7 and row["flag"] == 1
    assert row["nan"] is None and row["inf"] == math.inf
    assert json.loads(row["nested"]) == {"a": [1, 2]} and json.loads(row["arr"]) == [0, 1, 2]
    assert row["result_status"] == "shadow" and row["status"] == "ok"
    table = store.to_table()
    assert table["new_key"].dtype.kind == "i" and table["new_key"].mask.tolist() == [True, False]
    assert table["x"].dtype.kind == "f" and table["Label"].dtype.kind == "U"
    assert table["nan"].mask.all()


@pytest.mark.parametrize("result, match", [
    ({"a": 1, "A": 2}, "differ only in case"),
    ({"": 1}, "non-empty string"),
    ({1: 1}, "non-empty string"),
    ({"a": object()}, r"result\['a'\]: object is not JSON-serialisable"),
    ({"a": b"x"}, "bytes"),
    ([1, 2], "must be a dict"),
])
def test_bad_results(result, match):
    with pytest.raises(TypeError, match=match):
        normalise_result(result)


def test_bad_arguments(store):
    with pytest.raises(ConfigError, match=r"status = 'done'; allowed: 'ok', 'failed'"):
        store.record(0, "done", {}, 0.1)
    with pytest.raises(ConfigError, match=r"index = -1"):
        store.record(-1, "ok", {}, 0.1)
    with pytest.raises(ConfigError, match="status = 'x'"):
        store.count("x")
    assert store.count() == 0


def test_meta_and_reopen(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as s:
        created = s.get_meta("created_utc")
        s.set_meta("fingerprint", "abc")
        s.update_meta({"suite_toml": "[suite]\nseed = 1\n", "n_mocks": "3"})
        s.record(2, "ok", {"late": 1.0}, 0.1)
        assert s._c().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._c().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        with pytest.raises(TypeError):
            s.set_meta("n", 3)
    assert s.closed
    with pytest.raises(DataError, match="is closed"):
        s.count()
    with ResultsStore(path) as s:  # resume: rows, columns and meta persist
        assert s.get_meta("fingerprint") == "abc" and s.get_meta("created_utc") == created
        assert s.meta["suite_toml"].startswith("[suite]")
        assert s.get_meta("missing", "dflt") == "dflt"
        s.record(3, "ok", {"late": 2.0}, 0.1)
        assert [r["late"] for r in s.rows()] == [1.0, 2.0]
    with ResultsStore(path, readonly=True) as ro:
        assert ro.count() == 2
        with pytest.raises(DataError, match="read-only"):
            ro.record(5, "ok", {}, 0.1)
        with pytest.raises(DataError, match="read-only"):
            ro.set_meta("a", "b")


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(DataError, match="not a usable SQLite database"):
        ResultsStore(bad)
    with pytest.raises(DataError, match="no such file"):
        ResultsStore(tmp_path / "none.sqlite", readonly=True)


def test_empty_table(store):
    table = store.to_table()
    assert len(table) == 0 and table.colnames == ["mock_index", "status", "error", "elapsed_s", "seed"]


def test_parameter_columns(store):
    store.record(0, "ok", {"x_resolution": 9.0, "g": 1.0}, 0.1, params={"x_resolution": 2.0, "lines.lines": ["Ha"]})
    store.record(1, "ok", {"g": 2.0}, 0.1, params={"x_resolution": 3.0, "lines.lines": ["Hb"]})
    table = store.to_table()
    assert list(table["x_resolution"]) == [2.0, 3.0]  # the parameter keeps its name
    assert table["result.x_resolution"][0] == 9.0  # a clashing result is renamed
    assert list(table["lines.lines"]) == ['["Ha"]', '["Hb"]']


def test_export_errors(store, tmp_path, monkeypatch):
    store.record(0, "ok", {"g": 1.0}, 0.1)
    with pytest.raises(ConfigError, match=r"extension '\.txt'; allowed: \.csv, \.ecsv, \.parquet"):
        store.export(tmp_path / "t.txt")
    out = store.export(tmp_path / "t.csv")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        store.export(out)
    store.export(out, overwrite=True)
    assert len(Table.read(out)) == 1
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install mockzgrad\[parquet\]"):
        store.export(tmp_path / "t.parquet")


def test_killed_writer_loses_nothing_committed(tmp_path):
    """SIGKILL a process mid-way through recording: every committed row is
    intact, the file passes SQLite's integrity check, and writing resumes."""
    db = tmp_path / "results.sqlite"
    proc = subprocess.Popen([sys.executable, str(TESTS / "_suite_worker.py"), "write-store", str(db), "100000", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = 0
        t_end = time.monotonic() + 60
        while seen < 200:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < t_end
            time.sleep(0.05)
            try:
                with ResultsStore(db, readonly=True) as ro:
                    seen = ro.count()
            except (DataError, sqlite3.Error):
                seen = 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.wait()
    with ResultsStore(db) as s:
        assert s.integrity_check() == "ok"
        rows = s.rows()
        n = len(rows)
        assert n >= seen
        assert [r["mock_index"] for r in rows] == list(range(n))  # contiguous: no torn or lost commit
        for r in rows:
            i = r["mock_index"]
            assert (r["status"], r["value"], r["text"], r["seed"]) == ("ok", 0.5 * i, f"row {i}", i)
            assert json.loads(r["params"]) == {"i": i}
        s.record(n, "ok", {"value": 0.5 * n}, 0.01)
        assert s.count() == n + 1
