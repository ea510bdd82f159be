"""The dask executor's chunks: several mocks per dask task, one outcome and one row per mock.

The backend's chunking logic is exercised with a stand-in client that runs
each chunk in this process (so a failing chunk can be made deterministic);
one real LocalCluster run checks that rows are the same as local, and a
SIGINT test that an interrupted dask run loses nothing and resumes.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _suite_worker
from mockzgrad.suites.control import StopOnSignal, progress_bar
from mockzgrad.suites.executors import (
    DASK_MAX_CHUNK,
    DASK_TASKS_PER_SLOT,
    ByName,
    DaskBackend,
    chunk_size,
    run_chunk,
)
from mockzgrad.suites.loop import RunLoop
from mockzgrad.suites.store import ResultsStore
from mockzgrad.suites.suite import load_suite, run_suite, suite_from_dict

TESTS = Path(__file__).parent
FAKE = "_suite_worker:fake_run_mock"


# --------------------------------------------------------------------------
# chunk size
# --------------------------------------------------------------------------

class TestChunkSize:
    def test_unknown_times_give_one_mock(self):
        assert chunk_size([]) == 1
        assert chunk_size([None, -1.0]) == 1

    def test_target_over_the_median(self):
        # median 0.1 s (the outlier 5 s does not move it): 0.5 s of work = 5 mocks
        assert chunk_size([0.1, 0.09, 0.11, 5.0, 0.1], target_s=0.5, most=32) == 5
        assert chunk_size([0.2, 0.3], target_s=1.0, most=32) == 4  # median 0.25
        assert chunk_size([0.04] * 10, target_s=0.5, most=32) == 12

    def test_bounds(self):
        assert chunk_size([10.0], target_s=0.5, most=32) == 1  # slower than the target: alone
        assert chunk_size([1e-6], target_s=0.5, most=32) == 32
        assert chunk_size([0.0, 0.0], target_s=0.5, most=7) == 7
        assert chunk_size([0.1], target_s=0.0, most=32) == 1


def test_run_chunk_returns_one_outcome_per_mock_in_order():
    spec = suite_from_dict({"suite": {"name": "c", "seed": 3, "n_mocks": 6}, "fixed": {},
                            "recovery": {"fail_indices": [2]}})
    specs = [spec.mock(i) for i in (4, 2, 0)]
    out = run_chunk(ByName(FAKE), specs)
    assert [o[0] for o in out] == [4, 2, 0]
    assert [o[1] for o in out] == ["ok", "failed", "ok"]
    assert out[1][4].startswith("ValueError: planned failure of mock 2")
    assert out[0][2]["grad_z_measured"] == _suite_worker.fake_run_mock(specs[0])["grad_z_measured"]


# --------------------------------------------------------------------------
# the backend with a stand-in client
# --------------------------------------------------------------------------

class _Future:
    def __init__(self, status, result=None, error=None):
        self.status, self._result, self._error = status, result, error

    def result(self):
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self):
        return self._error


class FakeClient:
    """Runs each task at once in this process; a task holding a ``poison`` index errs as dask's
    KilledWorker would (a worker died under it), without running any of its mocks."""

    def __init__(self, n_threads=2, poison=()):
        self.n_threads, self.poison = n_threads, set(poison)
        self.tasks = []  # mock indices of each task, in order
        self.cancelled = []
        self.closed = False

    def nthreads(self):
        return {f"w{i}": 1 for i in range(self.n_threads)}

    def submit(self, fn, run_mock, specs, pure, key):
        assert fn is run_chunk and pure is False and key not in {k for k, _ in self.tasks}
        self.tasks.append((key, [s.index for s in specs]))
        if self.poison & {s.index for s in specs}:
            return _Future("error", error=RuntimeError(f"KilledWorker: task {key} killed its workers"))
        return _Future("finished", result=fn(run_mock, specs))

    def gather(self, futures):
        return [f.result() for f in futures]

    def cancel(self, futures, force=False):
        self.cancelled.extend(futures)

    def close(self):
        self.closed = True


def _rows(db):
    with ResultsStore(db) as store:
        rows = store.rows()
    for r in rows:
        r.pop("elapsed_s")
    return rows


def _run_with(client, spec, tmp_path, name, max_pending=None):
    backend = DaskBackend(ByName(FAKE), None, None, client=client)
    db = tmp_path / f"{name}.sqlite"
    with ResultsStore(db) as store, StopOnSignal() as stop:
        loop = RunLoop(spec, store, backend, range(spec.n_mocks), tmp_path, stop=stop,
                       bar=progress_bar(spec.n_mocks, name, False), limit=backend.pending_limit(max_pending))
        loop.run()
    return db, loop


@pytest.fixture
def spec60():
    return suite_from_dict({"suite": {"name": "c", "seed": 11, "n_mocks": 60}, "fixed": {},
                            "sample": {"galaxy.metallicity.grad_z": {"dist": "uniform", "low": -0.3,
                                                                     "high": 0.0}},
                            "recovery": {"fail_indices": [7]}})


def test_chunks_record_every_mock_as_the_serial_run(spec60, tmp_path):
    serial = run_suite(spec60, tmp_path / "serial", FAKE, executor="serial", progress=False)
    client = FakeClient()
    db, loop = _run_with(client, spec60, tmp_path, "chunked")
    assert client.closed and loop.n_run == 60 and loop.n_failed == 1
    assert _rows(db) == _rows(serial.store_path)
    sizes = [len(ix) for _, ix in client.tasks]
    sent = sorted(i for _, ix in client.tasks for i in ix)
    assert sent == list(range(60))  # each mock sent once
    assert sizes[:2] == [1, 1]  # nothing timed yet: one mock per task
    assert max(sizes) > 1 and len(sizes) < 60
    assert max(sizes) <= DASK_MAX_CHUNK


def test_a_failed_chunk_is_run_again_one_mock_per_task(spec60, tmp_path):
    serial = run_suite(spec60, tmp_path / "serial", FAKE, executor="serial", progress=False)
    client = FakeClient(poison=[30])
    db, loop = _run_with(client, spec60, tmp_path, "poison")
    rows = {r["mock_index"]: r for r in _rows(db)}
    expected = {r["mock_index"]: r for r in _rows(serial.store_path)}
    assert sorted(rows) == list(range(60))
    assert rows[30]["status"] == "failed" and rows[30]["error"].startswith("RuntimeError: KilledWorker")
    for i in set(range(60)) - {30}:
        assert rows[i] == expected[i], i
    chunk_of_30 = [ix for _, ix in client.tasks if 30 in ix]
    assert len(chunk_of_30[0]) > 1 and chunk_of_30[-1] == [30]  # the chunk, then 30 alone
    for i in chunk_of_30[0]:  # the chunk's other mocks: again, each in its own task
        assert [i] in [ix for _, ix in client.tasks]


def test_pending_limit_bounds_the_chunks(spec60, tmp_path):
    client = FakeClient(n_threads=2)
    db, loop = _run_with(client, spec60, tmp_path, "small", max_pending=6)
    assert loop.n_run == 60
    # 6 pending over 2 threads x (tasks per slot + 1): one mock a task
    assert max(len(ix) for _, ix in client.tasks) <= max(1, 6 // (2 * (DASK_TASKS_PER_SLOT + 1)))


def test_the_last_chunks_shrink(tmp_path):
    spec = suite_from_dict({"suite": {"name": "t", "seed": 2, "n_mocks": 200}, "fixed": {}})
    client = FakeClient(n_threads=2)
    _run_with(client, spec, tmp_path, "tail")
    sizes = [len(ix) for _, ix in client.tasks]
    assert max(sizes) == DASK_MAX_CHUNK
    assert sizes[-1] == 1 and sizes[-2] <= 2  # the queue's share of a thread at the end


# --------------------------------------------------------------------------
# a real LocalCluster
# --------------------------------------------------------------------------

def test_local_cluster_rows_equal_local_rows(spec60, tmp_path):
    pytest.importorskip("distributed")
    local = run_suite(spec60, tmp_path / "local", FAKE, workers=2, progress=False)
    dask_run = run_suite(spec60, tmp_path / "dask", FAKE, workers=2, executor="dask", progress=False)
    assert (dask_run.n_ok, dask_run.n_failed) == (59, 1)
    assert _rows(dask_run.store_path) == _rows(local.store_path)


def test_local_cluster_leaves_this_process_numba_thread_count_alone(spec60, tmp_path, monkeypatch):
    # distributed's nanny writes its pre-spawn environment into the parent and keeps it there: a
    # NUMBA_NUM_THREADS = 1 left behind made the parent's next numba compile raise once its threads ran
    pytest.importorskip("distributed")
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    run = run_suite(spec60, tmp_path / "dask", FAKE, workers=1, executor="dask", progress=False)
    assert run.n_ok + run.n_failed == 60
    assert "NUMBA_NUM_THREADS" not in os.environ


KILL_SUITE = """
[suite]
name = "kill"
seed = 7
n_mocks = 60
[sample]
"galaxy.metallicity.grad_z" = {dist = "uniform", low = -0.3, high = 0.0}
[recovery]
sleep = 0.05
"""


def _count(db):
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM mocks").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_interrupted_dask_run_keeps_its_rows_and_resumes(tmp_path):
    pytest.importorskip("distributed")
    suite_path = tmp_path / "suite.toml"
    suite_path.write_text(KILL_SUITE)
    outdir = tmp_path / "out"
    db = outdir / "results.sqlite"
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_suite_worker.py"), "run", str(suite_path), str(outdir), "--workers", "2",
         "--executor", "dask"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        t_end = time.monotonic() + 120
        while _count(db) < 10:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < t_end, "suite made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on failure
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc == 130, proc.stderr.read().decode()
    with ResultsStore(db) as store:
        assert store.integrity_check() == "ok"
        before = store.rows()
    assert 10 <= len(before) < 60
    spec = load_suite(suite_path)
    run = run_suite(spec, outdir, FAKE, workers=2, executor="dask", progress=False)
    assert run.complete and run.n_skipped == len(before)
    with ResultsStore(db) as store:
        after = {r["mock_index"]: r for r in store.rows()}
    assert sorted(after) == list(range(60))
    for row in before:  # finished before the interrupt: untouched
        assert after[row["mock_index"]] == row
    serial = run_suite(spec, tmp_path / "serial", FAKE, executor="serial", progress=False)
    assert _rows(db) == _rows(serial.store_path)
