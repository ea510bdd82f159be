"""Suites of mocks: a TOML description, its expansion into mocks, and a
resumable, parallel run that writes every finished mock to a results store.

This module is the entry point (:func:`load_suite`, :func:`run_suite`); the
parts live beside it, one idea per module:

==================== ======================================================
:mod:`.spec`         the suite file and its checks (:class:`SuiteSpec`,
                     :func:`load_suite`, :func:`suite_from_dict`); the file
                     format and its rules are documented there
:mod:`.params`       parameter names (:func:`parameter_paths`,
                     :data:`DERIVED_PARAMETERS`) and dotted tables
:mod:`.sampling`     the ``[sample]`` distributions
:mod:`.expand`       mock ``i`` of a suite (:class:`MockSpec`)
:mod:`.executors`    where mocks run: serial, local processes, dask
:mod:`.loop`         the run loop: submit, collect, record
:mod:`.control`      signals, the folder lock, the progress bar
:mod:`.runfolder`    the output folder and its results store
:mod:`.store`        the results store (SQLite)
:mod:`.job`          one real mock: observe, recover, compare
==================== ======================================================

Running
-------
:func:`run_suite` runs every mock not yet in ``<outdir>/results.sqlite``
(:class:`mockzgrad.suites.store.ResultsStore`) through an injected ``run_mock``
callable on local worker processes or a dask.distributed cluster. The parent
process alone writes the store, one committed transaction per finished mock.
An exception inside ``run_mock`` is recorded as status ``"failed"``; SIGINT
or SIGTERM stops the run cleanly (nothing finished is lost) and a re-run
resumes. Temporary files of kept cubes that a killed run left in ``cubes/``
are removed when a run starts and when it ends. With the shipped job as
``run_mock``, the suite's ``[recovery]`` table is checked
(:func:`~mockzgrad.suites.recipes.check_recovery`) before anything is run.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..validate import choice, integer
from .control import FolderLock, StopOnSignal
from .executors import EXECUTORS, ByName, import_target
from .expand import MockSpec
from .loop import execute
from .params import DERIVED_PARAMETERS, parameter_paths
from .recipes import check_recovery
from .runfolder import RESULTS_FILENAME, move_aside, prepare_store, remove_parts
from .sampling import DISTRIBUTIONS
from .spec import SuiteSpec, load_suite, suite_from_dict

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
    first_error : (int, str) or None
        The failed mock of lowest index and its error, or None.
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
    first_error: tuple | None = None

    @property
    def complete(self) -> bool:
        """Every mock of the suite is recorded (ok or failed)."""
        return self.n_ok + self.n_failed == self.n_mocks


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
        Worker processes; >= 1; None = all cores available to this process
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
        Mocks submitted but not finished at any time; >= 1; None = 4 per
        worker (local, serial), or room for two full chunks per worker
        thread and one being filled (dask: 96 per worker thread; a smaller
        value also makes the chunks smaller). Submission is lazy, so memory
        stays bounded for any ``n_mocks``.

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
    as results arrive. A dead local worker process restarts the pool and its
    mocks are re-run one at a time; one that kills its worker alone is
    recorded ``"failed"`` (``WorkerDied: ...``; see :mod:`.loop`). Under dask
    mocks are sent in chunks of about half a second of work (one dask task
    each; see :class:`~mockzgrad.suites.executors.DaskBackend`), each mock
    still recorded in its own transaction as soon as its chunk returns; an
    interrupted run runs the chunks that were running again when resumed. A
    dead worker's task is rescheduled by dask; a chunk dask gives up on
    (``KilledWorker``) is run again one mock per task, so only a mock that
    kills its worker alone is recorded ``"failed"``. A mock whose
    configuration cannot be built is recorded ``"failed"`` without running.
    """
    from .store import ResultsStore

    t0 = time.perf_counter()
    run_mock, workers = _check_arguments(spec, run_mock, workers=workers, executor=executor,
                                         scheduler=scheduler, max_pending=max_pending)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    db = outdir / RESULTS_FILENAME
    with FolderLock(outdir):
        if new:
            move_aside(outdir)
        with ResultsStore(db) as store:
            prepare_store(store, spec, outdir)
            todo, n_todo, n_skipped = _todo(store, spec.n_mocks, retry_failed)
            interrupted, n_run = None, 0
            remove_parts(outdir)  # left by a killed run
            with StopOnSignal() as stop:
                try:
                    if n_todo:
                        interrupted, n_run = execute(
                            spec, store, run_mock, todo, n_todo, outdir, executor=executor, workers=workers,
                            scheduler=scheduler, progress=progress, max_pending=max_pending, stop=stop,
                        )
                finally:
                    remove_parts(outdir)  # the workers are ended by now
            n_ok, n_failed = _tally(store, spec.n_mocks)
            first_error = store.first_error(spec.n_mocks) if n_failed else None
    return SuiteRun(outdir=outdir, store_path=db, n_mocks=spec.n_mocks, n_skipped=n_skipped, n_run=n_run,
                    n_ok=n_ok, n_failed=n_failed, elapsed_s=time.perf_counter() - t0,
                    interrupted=interrupted, fingerprint=spec.fingerprint(), first_error=first_error)


def _check_arguments(spec, run_mock, *, workers, executor, scheduler, max_pending) -> tuple[Callable, int]:
    """Checked arguments of :func:`run_suite`: the callable and the number of workers."""
    if not isinstance(spec, SuiteSpec):
        raise ConfigError(f"spec = {spec!r}: expected a SuiteSpec (see load_suite)")
    choice("executor", executor, EXECUTORS)
    if workers is not None:
        integer("workers", workers, 1)
    if scheduler is not None and executor != "dask":
        raise ConfigError(f"scheduler = {scheduler!r} needs executor = 'dask' (got {executor!r})")
    if max_pending is not None:
        integer("max_pending", max_pending, 1)
    run_mock = _resolve_run_mock(run_mock, executor)
    if _is_shipped_job(run_mock):  # its [recovery] table: checked before any mock runs
        try:
            check_recovery(spec.recovery, spec.base_dir)
        except ConfigError as exc:
            where = f"suite file {spec.path!r}" if spec.path else f"suite {spec.name!r}"
            raise ConfigError(f"{where}: {exc}") from None
    if executor == "local":
        try:
            pickle.dumps(run_mock)
        except Exception as exc:
            raise ConfigError(
                f"run_mock = {run_mock!r} cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
                "use a module-level function, or executor='serial'"
            ) from None
    return run_mock, int(workers) if workers is not None else _default_workers()


#: The shipped job, named: the parent passes it to the workers by name (no import).
_SHIPPED_JOB = "mockzgrad.suites.job:run_mock"


def _resolve_run_mock(run_mock, executor: str = "serial") -> Callable:
    """A callable, or ``"package.module:function"`` imported.

    The shipped job run on worker processes (local, dask) is not imported
    here: it is sent by name (:class:`~.executors.ByName`) and imported by
    each worker, so the parent does not pay for numba and the pipeline.
    """
    if isinstance(run_mock, str):
        mod, _, qual = run_mock.partition(":")
        if not mod or not qual:
            raise ConfigError(f"run_mock = {run_mock!r}: expected a callable or 'package.module:function'")
        if run_mock == _SHIPPED_JOB and executor != "serial" and mod not in sys.modules:
            return ByName(run_mock)
        try:
            run_mock = import_target(run_mock)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"run_mock = {run_mock!r}: cannot import ({exc})") from None
    if not callable(run_mock):
        raise ConfigError(f"run_mock = {run_mock!r}: expected a callable taking a MockSpec")
    return run_mock


def _is_shipped_job(run_mock) -> bool:
    """True for :func:`mockzgrad.suites.job.run_mock` (compared by name: no import needed)."""
    if isinstance(run_mock, ByName):
        return run_mock.target == _SHIPPED_JOB
    return (getattr(run_mock, "__module__", None) == "mockzgrad.suites.job"
            and getattr(run_mock, "__qualname__", None) == "run_mock")


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _todo(store, n_mocks: int, retry_failed: bool):
    """Indices still to run (lazily), how many, and how many are skipped as finished."""
    done = store.done_indices(include_failed=not retry_failed)
    n_skipped = sum(1 for i in done if i < n_mocks)
    return (i for i in range(n_mocks) if i not in done), n_mocks - n_skipped, n_skipped


def _tally(store, n_mocks: int) -> tuple[int, int]:
    """Mocks of the suite recorded ok and failed."""
    in_range = [r for r in store.done_indices() if r < n_mocks]
    ok = store.done_indices(include_failed=False)
    n_ok = sum(1 for i in in_range if i in ok)
    return n_ok, len(in_range) - n_ok
