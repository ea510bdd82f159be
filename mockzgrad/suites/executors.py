"""Where a suite's mocks run: in this process, local worker processes, or dask.

Each executor is a backend with one interface, used by the run loop
(:mod:`mockzgrad.suites.loop`): ``submit(spec) -> future``,
``wait(futures, timeout) -> done``, ``outcome(future)`` (raises
:class:`WorkerDied` when a local worker process died), ``finished(future)``
(the outcome of a normally finished future, else None), ``restart()``,
``abort(futures)`` and ``close()``, and ``n_slots`` (mocks it runs at once).
A future's outcome is the tuple of :func:`run_one`.

This module imports only the standard library and :mod:`mockzgrad.errors`:
a local worker process imports it (for its initializer) and must set the
thread-count variables before numpy or numba are loaded.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

__all__ = [
    "EXECUTORS",
    "SCHEDULER_TIMEOUT_S",
    "WORKER_ENV",
    "WorkerDied",
    "SerialBackend",
    "LocalBackend",
    "DaskBackend",
    "make_backend",
    "run_one",
    "describe",
    "worker_init",
    "ByName",
    "import_target",
]

#: Executors of :func:`~mockzgrad.suites.suite.run_suite`.
EXECUTORS = ("local", "dask", "serial")
#: Seconds to wait for a dask scheduler to answer before giving up.
SCHEDULER_TIMEOUT_S = 5.0
#: Environment of a worker process: one thread for numba and the BLAS libraries.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}


# --------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------

def worker_init(parent_pid: int) -> None:
    """Initializer of local worker processes: one thread each, ignore SIGINT,
    and exit when the parent dies (so a SIGKILLed run leaves no orphans)."""
    os.environ.update(WORKER_ENV)
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


def import_target(target: str) -> Callable:
    """The object named ``"package.module:function"`` (imported; ``function`` may be dotted)."""
    import importlib

    mod, _, qual = target.partition(":")
    obj = importlib.import_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


class ByName:
    """A ``run_mock`` named ``"package.module:function"``, imported where it is first called.

    Sent to the workers instead of the function itself, so the parent need
    not import the (heavy) job module that only the workers run. Pickles as
    its name; equal names resolve to the same function.
    """

    _cache: dict = {}

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (ByName, (self.target,))

    def resolve(self) -> Callable:
        """The named function (imported once per process)."""
        fn = ByName._cache.get(self.target)
        if fn is None:
            fn = ByName._cache[self.target] = import_target(self.target)
        return fn

    def __call__(self, spec):
        return self.resolve()(spec)

    def __repr__(self) -> str:
        return f"ByName({self.target!r})"


def describe(exc: BaseException) -> str:
    """``"Type: message [at file:line in function]"`` of an exception (innermost frame)."""
    text = f"{type(exc).__name__}: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        fs = tb[-1]
        text += f" [at {Path(fs.filename).name}:{fs.lineno} in {fs.name}]"
    return text


def run_one(run_mock: Callable, spec) -> tuple:
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
        result, status, error = {}, "failed", describe(exc)
    return spec.index, status, result, time.perf_counter() - t0, error


# --------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------

class WorkerDied(Exception):
    """The local worker process running (or holding) this mock died."""


def make_backend(executor: str, run_mock: Callable, workers: int, scheduler: str | None):
    """The backend of ``executor`` (one of :data:`EXECUTORS`, checked by the caller)."""
    if executor == "serial":
        return SerialBackend(run_mock)
    if executor == "local":
        return LocalBackend(run_mock, workers)
    return DaskBackend(run_mock, None if scheduler else workers, scheduler)


class SerialBackend:
    """In-process execution (debugging; no isolation)."""

    def __init__(self, run_mock):
        self.run_mock = run_mock
        self.n_slots = 1

    def submit(self, spec):
        fut = cf.Future()
        fut.set_result(run_one(self.run_mock, spec))
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


class LocalBackend:
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
                                           initializer=worker_init, initargs=(os.getpid(),))

    def submit(self, spec):
        try:
            return self.pool.submit(run_one, self.run_mock, spec)
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
            raise WorkerDied(str(exc)) from None

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


def _connect(client_cls, scheduler: str):
    """A dask Client of a running scheduler; an address nobody answers at fails fast, in one line."""
    try:
        return client_cls(scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"scheduler = {scheduler!r}: unreachable (no dask scheduler answered within "
                          f"{SCHEDULER_TIMEOUT_S:g} s: {type(exc).__name__}); start the scheduler or fix "
                          "the address (tcp://HOST:PORT)") from None
    except ValueError as exc:  # a malformed address
        raise ConfigError(f"scheduler = {scheduler!r}: not a scheduler address ({exc}); expected "
                          "tcp://HOST:PORT") from None


class DaskBackend:
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
            # The nanny also puts distributed.nanny.pre-spawn-environ into each
            # worker before it starts; its MALLOC_TRIM_THRESHOLD_=65536 turns off
            # glibc's adaptive mmap threshold, so every large array was mapped
            # and unmapped afresh (~20,000 page faults and ~60 ms system CPU a
            # mock). LocalCluster(env=...) is applied too late for malloc, so
            # the key is replaced here by the thread-count variables alone.
            with dask.config.set({"distributed.worker.profile.enabled": False,
                                  "distributed.nanny.pre-spawn-environ": dict(WORKER_ENV)}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", env=dict(WORKER_ENV))
            self.client = Client(self.cluster)
        else:
            self.client = _connect(Client, scheduler)
        self.n_slots = max(1, sum(self.client.nthreads().values()))
        self.ac = as_completed(with_results=False)
        self._token = os.urandom(4).hex()

    def submit(self, spec):
        fut = self.client.submit(run_one, self.run_mock, spec, pure=False,
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
