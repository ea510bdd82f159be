"""Where a suite's mocks run: in this process, local worker processes, or dask.

Each executor is a backend with one interface, used by the run loop
(:mod:`mockzgrad.suites.loop`): ``submit(spec) -> future``,
``wait(futures, timeout) -> done``, ``outcome(future)`` (raises
:class:`WorkerDied` when a local worker process died), ``finished(future)``
(the outcome of a normally finished future, else None), ``restart()``,
``abort(futures)`` and ``close()``, ``n_slots`` (mocks it runs at once) and
``pending_limit(max_pending)`` (mocks the loop may hold submitted and
unfinished). A future's outcome is the tuple of :func:`run_one`; there is
one future per mock.

The dask backend sends mocks to dask in chunks (:func:`run_chunk`, several
mocks per dask task, about :data:`DASK_CHUNK_S` of work each), because each
dask task costs the scheduler, client and worker a few milliseconds of CPU;
its per-mock futures settle when their chunk returns, so each mock is still
recorded (its own transaction) as soon as its chunk is back in the parent.

This module imports only the standard library and :mod:`mockzgrad.errors`:
a local worker process imports it (for its initializer) and must set the
thread-count variables before numpy or numba are loaded.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
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
    "run_chunk",
    "chunk_size",
    "DASK_CHUNK_S",
    "DASK_MAX_CHUNK",
    "DASK_TASKS_PER_SLOT",
    "LOCAL_CLUSTER_CONFIG",
    "describe",
    "worker_init",
    "worker_environ",
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
#: Work per dask task, s: mocks go to dask in chunks of about this many seconds (from the measured
#: per-mock times), so dask's per-task cost is paid once per chunk. It is also about the most work a
#: worker loses when the run is interrupted (a chunk still running is run again on resume).
DASK_CHUNK_S = 0.5
#: Most mocks in one dask task.
DASK_MAX_CHUNK = 32
#: Dask tasks sent and unfinished per worker thread (one running, one ready to start).
DASK_TASKS_PER_SLOT = 2
#: dask settings of the LocalCluster a suite starts (a scheduler given by address keeps its own).
#: The profiler is off (it sampled every thread's stack every 10 ms). The event-loop tick (a check for
#: a blocked loop, diagnostics only; 20 ms), the memory monitor (spill/pause/terminate checks; 100 ms)
#: and the system monitor (dashboard metrics; 500 ms) ran often enough to cost an idle 2-worker
#: cluster ~27 ms CPU per second in the parent and ~26 ms in the workers; at these intervals ~8 and ~6.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
}
#: Per-mock times the chunk size is taken from (the most recent ones).
_N_RECENT = 16


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


@contextlib.contextmanager
def worker_environ():
    """:data:`WORKER_ENV` in this process's environment while worker processes are spawned, then as before.

    A spawned worker runs the parent's main script again before its initializer (as ``__mp_main__``);
    a script that imports numpy at its top would load OpenBLAS there with one thread per core, which
    :func:`worker_init` can no longer change. Set at spawn time, the variables hold from the start.
    """
    old = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


def run_chunk(run_mock: Callable, specs) -> list:
    """:func:`run_one` of each mock of ``specs`` in turn (one dask task); their outcome tuples."""
    return [run_one(run_mock, spec) for spec in specs]


def chunk_size(recent_s, target_s: float = DASK_CHUNK_S, most: int = DASK_MAX_CHUNK) -> int:
    """Mocks per dask task: ``target_s`` over the median of the recent per-mock times, rounded, in [1, ``most``].

    Parameters
    ----------
    recent_s : sequence of float
        Wall times of recently finished mocks in their workers, s; empty: not known yet (then 1).
    target_s : float
        Work per task, s.
    most : int
        Upper bound, >= 1.

    Returns
    -------
    int
    """
    times = sorted(t for t in recent_s if t is not None and t >= 0.0)
    if not times or target_s <= 0.0:
        return 1
    n = len(times)
    median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    if median <= 0.0:
        return max(1, most)
    return int(max(1, min(most, round(target_s / median))))


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

    def pending_limit(self, max_pending):
        """Mocks the loop may hold submitted and unfinished: ``max_pending``, else 4."""
        return max_pending or 4 * self.n_slots


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

    def pending_limit(self, max_pending):
        """Mocks the loop may hold submitted and unfinished: ``max_pending``, else 4 per worker."""
        return max_pending or 4 * self.n_slots

    def _new(self):
        self.pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=self.ctx,
                                           initializer=worker_init, initargs=(os.getpid(),))

    def submit(self, spec):
        try:
            if len(getattr(self.pool, "_processes", None) or ()) < self.workers:
                with worker_environ():  # the pool spawns its workers in submit
                    return self.pool.submit(run_one, self.run_mock, spec)
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


class _Chunk:
    """One dask task of :class:`DaskBackend`: its future, its mocks' handles and, once settled, the outcomes."""

    __slots__ = ("future", "handles", "outcomes", "error")

    def __init__(self, future, handles):
        self.future, self.handles, self.outcomes, self.error = future, handles, None, None


class MockFuture:
    """One mock's handle in a chunk of :class:`DaskBackend` (what ``submit`` returns).

    ``settled`` once its chunk returned (then ``outcome`` is its tuple) or failed for good
    (then ``error`` is the exception).
    """

    __slots__ = ("spec", "chunk", "pos", "alone", "settled", "outcome", "error")

    def __init__(self, spec):
        self.spec, self.chunk, self.pos, self.alone = spec, None, 0, False
        self.settled, self.outcome, self.error = False, None, None

    def done(self) -> bool:
        """The mock's outcome (or its error) is here."""
        return self.settled

    def __repr__(self) -> str:
        return f"MockFuture(index={self.spec.index}, settled={self.settled})"


class DaskBackend:
    """dask.distributed: a LocalCluster (1 thread per worker process) or a scheduler address.

    Mocks are queued here and sent to dask in chunks (:func:`run_chunk`): a
    chunk holds about :data:`DASK_CHUNK_S` of work (:func:`chunk_size` of the
    recent per-mock times; one mock while none is known), and at most
    :data:`DASK_TASKS_PER_SLOT` chunks per worker thread are in dask at a
    time. When a chunk of several mocks fails as a whole (a worker died under
    it and dask gave up, or it could not be sent), its mocks are sent again
    one per task, so a mock that kills its worker fails alone.

    Parameters
    ----------
    run_mock : callable
        ``run_mock(MockSpec) -> dict``, picklable.
    workers : int or None
        Worker processes of the LocalCluster started here (one thread each); None with ``scheduler``.
    scheduler : str or None
        Address of a running scheduler (``tcp://HOST:PORT``); None starts a LocalCluster.
    client : distributed.Client, optional
        A connected client to use instead (or a stand-in with its ``submit``, ``gather``,
        ``nthreads``, ``cancel`` and ``close``); closed with the backend.
    """

    def __init__(self, run_mock, workers: int | None, scheduler: str | None, *, client=None):
        self.run_mock = run_mock
        self.cluster = None
        if client is not None:  # a connected client (or a stand-in of one), closed with the backend
            self.client = client
        else:
            self.client = self._start(workers, scheduler)
        self.n_slots = max(1, sum(self.client.nthreads().values()))
        self.limit = None
        self._queue: collections.deque = collections.deque()  # MockFutures not sent yet
        self._inflight: set = set()  # chunks sent and not settled
        self._recent: collections.deque = collections.deque(maxlen=_N_RECENT)  # per-mock times, s
        self._token = os.urandom(4).hex()
        self._n_sent = 0

    def _start(self, workers, scheduler):
        """A client of a new LocalCluster of ``workers`` processes, or of the scheduler at ``scheduler``."""
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("executor = 'dask' needs dask.distributed: pip install mockzgrad[dask]") from None
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
            # LOCAL_CLUSTER_CONFIG also slows the periodic callbacks (see there).
            # The nanny writes pre-spawn-environ into THIS process's environment
            # and leaves it there; NUMBA_NUM_THREADS there would make numba's
            # next compile here fail once its threads run at another count, so
            # it reaches the workers through env= alone (numba reads it at its
            # first compile in the worker, after env= is applied).
            pre_spawn = {k: v for k, v in WORKER_ENV.items() if k != "NUMBA_NUM_THREADS"}
            with dask.config.set({**LOCAL_CLUSTER_CONFIG, "distributed.nanny.pre-spawn-environ": pre_spawn}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", env=dict(WORKER_ENV))
            return Client(self.cluster)
        return _connect(Client, scheduler)

    def pending_limit(self, max_pending):
        """Mocks the loop may hold submitted and unfinished: ``max_pending``, else room for
        :data:`DASK_TASKS_PER_SLOT` full chunks per worker thread and one more being filled."""
        self.limit = max_pending or self.n_slots * (DASK_TASKS_PER_SLOT + 1) * DASK_MAX_CHUNK
        return self.limit

    def chunk(self) -> int:
        """Mocks in the next chunk: :func:`chunk_size`, small enough for the pending limit, and at most
        the queued mocks' share of one worker thread (so the last chunks of a run shrink and the
        workers finish together)."""
        n = chunk_size(self._recent, DASK_CHUNK_S, DASK_MAX_CHUNK)
        if self.limit is not None:
            n = min(n, max(1, self.limit // (self.n_slots * (DASK_TASKS_PER_SLOT + 1))))
        return min(n, max(1, -(-len(self._queue) // self.n_slots)))

    def submit(self, spec):
        handle = MockFuture(spec)
        self._queue.append(handle)
        self._dispatch()
        return handle

    def _dispatch(self) -> None:
        """Send queued mocks while fewer than DASK_TASKS_PER_SLOT chunks per worker thread are in dask."""
        while self._queue and len(self._inflight) < DASK_TASKS_PER_SLOT * self.n_slots:
            if self._queue[0].alone:
                handles = [self._queue.popleft()]
            else:
                n = self.chunk()
                handles = []
                while self._queue and len(handles) < n and not self._queue[0].alone:
                    handles.append(self._queue.popleft())
            self._send(handles)

    def _send(self, handles) -> None:
        self._n_sent += 1
        key = f"mockzgrad-mocks-{handles[0].spec.index}-{len(handles)}-{self._n_sent}-{self._token}"
        try:
            fut = self.client.submit(run_chunk, self.run_mock, [h.spec for h in handles], pure=False, key=key)
        except Exception as exc:  # e.g. a spec that cannot be sent
            fut = None
            error = exc
        chunk = _Chunk(fut, handles)
        for pos, h in enumerate(handles):
            h.chunk, h.pos = chunk, pos
        self._inflight.add(chunk)
        if fut is None:
            chunk.error = error

    def _poll(self) -> None:
        """Settle the chunks dask has finished: their results fetched in one round trip."""
        finished, failed = [], []
        for chunk in self._inflight:
            if chunk.error is not None:
                failed.append(chunk)
                continue
            status = chunk.future.status
            if status == "finished":
                finished.append(chunk)
            elif status in ("error", "cancelled"):
                failed.append(chunk)
        if finished:
            try:
                results = self.client.gather([c.future for c in finished])
            except Exception:  # one of them went wrong meanwhile: one at a time
                results = []
                for c in finished:
                    try:
                        results.append(c.future.result())
                    except Exception as exc:
                        c.error = exc
                        results.append(None)
            for chunk, outcomes in zip(finished, results):
                if chunk.error is not None:
                    failed.append(chunk)
                    continue
                self._inflight.discard(chunk)
                chunk.future = None  # releases the result in the cluster
                for h, out in zip(chunk.handles, outcomes):
                    h.outcome, h.settled = out, True
                    self._recent.append(out[3])
        for chunk in failed:
            self._inflight.discard(chunk)
            error = chunk.error
            if error is None:
                try:
                    error = chunk.future.exception() or RuntimeError(f"dask task {chunk.future.status}")
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # a cancelled future raises its CancelledError
                    error = exc
            chunk.future = None
            if len(chunk.handles) > 1:  # again, one mock per task: only a culprit fails
                for h in reversed(chunk.handles):
                    h.chunk, h.alone = None, True
                    self._queue.appendleft(h)
            else:
                h = chunk.handles[0]
                h.error, h.settled = error, True

    def wait(self, futures, timeout):
        t_end = time.monotonic() + timeout
        while True:
            self._poll()
            self._dispatch()
            done = {f for f in futures if f.settled}
            if done or time.monotonic() >= t_end:
                return done
            time.sleep(0.02)

    def outcome(self, fut):
        if fut.error is not None:
            raise fut.error
        return fut.outcome

    def finished(self, fut):
        if not fut.settled and self.client is not None:
            self._poll()  # a chunk dask finished since the last wait
        return fut.outcome if fut.settled and fut.error is None else None

    def restart(self):  # pragma: no cover - dask reschedules work of dead workers itself
        pass

    def abort(self, futures=()):
        self.close(cancel=[c.future for c in self._inflight if c.future is not None])

    def close(self, cancel=()):
        client, self.client = getattr(self, "client", None), None
        if client is None:
            return
        self._queue.clear()
        self._inflight.clear()
        try:
            if cancel:
                client.cancel(list(cancel), force=True)
            client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None
