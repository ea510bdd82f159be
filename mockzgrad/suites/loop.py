"""The run loop of a suite: submit mocks lazily, collect outcomes, record each one.

The parent process alone writes the results store, one committed
transaction per finished mock, as outcomes arrive. At most ``limit`` mocks
are submitted and unfinished at any time, so memory stays bounded for any
``n_mocks``. When a local worker process dies, the pool is restarted and the
mocks it held are re-run one at a time ("suspects"): one that kills its
worker alone is recorded ``"failed"`` (``WorkerDied: ...``); a pool that
dies twice before any mock finished is a broken setup and raises.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import MockzgradError
from .control import progress_bar
from .executors import WorkerDied, describe, make_backend
from .expand import mock_inputs

__all__ = ["RunLoop", "execute"]

_WAIT_S = 0.25  # longest wait for an outcome before new work is submitted


@dataclass(frozen=True)
class _Stub:
    """Stands in for a MockSpec that could not be built: its index, seed and drawn values."""

    index: int
    seed: int | None = None
    params: dict | None = None


def execute(spec, store, run_mock, todo, n_todo: int, outdir: Path, *, executor: str, workers: int,
            scheduler: str | None, progress: bool, max_pending: int | None, stop) -> tuple[str | None, int]:
    """Run the mocks ``todo`` of ``spec`` and record each in ``store``.

    Parameters
    ----------
    spec : SuiteSpec
    store : ResultsStore
        Open for writing.
    run_mock : callable
        ``run_mock(MockSpec) -> dict``, picklable for the process executors.
    todo : iterator of int
        Indices of the mocks to run; ``n_todo`` of them (for the progress bar).
    outdir : pathlib.Path
        The run's folder; kept cubes go to ``outdir/cubes``.
    executor, workers, scheduler, progress, max_pending
        As for :func:`~mockzgrad.suites.suite.run_suite` (checked there).
    stop : StopOnSignal
        Polled: once it holds a signal name, no more work is submitted.

    Returns
    -------
    (str or None, int)
        The name of the signal that stopped the run (or None), and the number
        of mocks recorded.
    """
    backend = make_backend(executor, run_mock, workers, scheduler)
    limit = backend.pending_limit(max_pending)
    bar = progress_bar(n_todo, spec.name, progress)
    loop = RunLoop(spec, store, backend, todo, outdir, stop=stop, bar=bar, limit=limit)
    loop.run()
    return stop.signame, loop.n_run


class RunLoop:
    """One pass over a suite's unfinished mocks with one backend (see :func:`execute`)."""

    def __init__(self, spec, store, backend, todo, outdir: Path, *, stop, bar, limit: int):
        self.spec, self.store, self.backend, self.todo = spec, store, backend, iter(todo)
        self.outdir = outdir
        self.width = max(6, len(str(spec.n_mocks - 1)))
        self.stop, self.bar, self.limit = stop, bar, limit
        self.pending: dict = {}  # future -> MockSpec
        self.suspects: collections.deque = collections.deque()  # to re-run alone after a pool died
        self.isolated: set = set()  # indices re-run alone
        self.n_run = self.n_failed = self.n_outcomes = self.early_deaths = 0
        self.exhausted = False

    @property
    def stopped(self) -> bool:
        """A signal arrived: submit nothing more."""
        return self.stop.signame is not None

    def run(self) -> None:
        """Submit and collect until every mock is recorded or a signal arrives."""
        try:
            while True:
                self.fill()
                if self.stopped or (not self.pending and self.exhausted and not self.suspects):
                    break
                if self.pending:
                    self.collect()
            if self.stopped:
                self.drain()
            else:
                self.backend.close()
        except BaseException:
            self.backend.abort(list(self.pending))
            raise
        finally:
            self.bar.close()

    # ---------------------------------------------------------------- submit

    def fill(self) -> None:
        """Submit work up to the limit; a suspect runs alone, with nothing else pending."""
        while not self.stopped:
            if self.suspects:
                if self.pending:
                    return
                ms = self.suspects.popleft()
                self.isolated.add(ms.index)
                self.pending[self.backend.submit(ms)] = ms
                return
            if self.exhausted or len(self.pending) >= self.limit:
                return
            ms = self.next_spec()
            if ms is None:
                return
            self.pending[self.backend.submit(ms)] = ms

    def next_spec(self):
        """The next mock to run (with its cube path when kept), or None when done.

        A mock that cannot be built (e.g. a derived value impossible for
        this draw) is recorded ``"failed"`` here and skipped.
        """
        for i in self.todo:
            try:
                ms = self.spec.mock(i)
            except MockzgradError as exc:
                seed, params = mock_inputs(self.spec, i)
                self.record(_Stub(i, seed, params), i, "failed", {}, 0.0, describe(exc), outcome=False)
                continue
            if ms.keep_cube:
                name = f"mock_{i:0{self.width}d}.fits"
                ms = dataclasses.replace(ms, cube_path=str(self.outdir / "cubes" / name))
                (self.outdir / "cubes").mkdir(exist_ok=True)
            return ms
        self.exhausted = True
        return None

    # ---------------------------------------------------------------- collect

    def collect(self) -> None:
        """Record the outcomes that arrive within a short wait."""
        done = self.backend.wait(list(self.pending), _WAIT_S)
        broken = False
        for fut in done:
            ms = self.pending.pop(fut)
            if self.stopped:  # errors now may be our own shutdown: keep only good outcomes
                self.record_finished(fut, ms)
                continue
            broken |= self.handle(fut, ms)
        if broken:
            self.requeue_dead_pool()

    def handle(self, fut, ms) -> bool:
        """Record one outcome; True when its worker process died (the pool is broken)."""
        try:
            out = self.backend.outcome(fut)
        except WorkerDied as exc:
            self.worker_died(ms, exc)
            return True
        except Exception as exc:  # dask KilledWorker, unpicklable spec, ...
            self.record(ms, ms.index, "failed", {}, None, describe(exc))
            return False
        self.record(ms, *out)
        return False

    def worker_died(self, ms, exc: WorkerDied) -> None:
        """Queue a mock of a dead pool to run alone, or record it when it died alone."""
        if ms.index not in self.isolated:
            self.suspects.append(ms)  # re-run alone to find the culprit
        elif self.n_outcomes == 0:  # has this pool ever worked?
            self.early_deaths += 1
            if self.early_deaths >= 2:
                raise MockzgradError(
                    "local worker processes die before finishing any mock "
                    f"({exc}); check that run_mock's module imports in a fresh "
                    "Python process (spawn start method; a script needs an "
                    "`if __name__ == '__main__':` guard), or try executor='serial'"
                ) from None
            self.suspects.append(ms)
        else:
            self.record(ms, ms.index, "failed", {}, None,
                        f"WorkerDied: the worker process died while running this mock alone "
                        f"(killed, out of memory, or a crash in compiled code): {exc}",
                        outcome=False)

    def requeue_dead_pool(self) -> None:
        """Keep what the dead pool finished, queue the rest as suspects, restart the pool."""
        for fut in list(self.pending):
            ms = self.pending.pop(fut)
            out = self.backend.finished(fut)
            if out is not None:
                self.record(ms, *out)
            else:
                self.suspects.append(ms)
        self.backend.restart()

    def drain(self) -> None:
        """After a signal: keep the finished outcomes, end the workers."""
        for fut in list(self.pending):
            self.record_finished(fut, self.pending[fut])
        self.backend.abort(list(self.pending))
        self.pending.clear()

    def record_finished(self, fut, ms) -> None:
        """Record a future's outcome if it finished normally; drop it otherwise."""
        out = self.backend.finished(fut)
        if out is not None:
            self.record(ms, *out)

    def record(self, ms, index, status, result, elapsed, error, *, outcome=True) -> None:
        """Write one mock's row (one transaction) and advance the progress bar."""
        self.store.record(index, status, result, elapsed, error, seed=ms.seed, params=ms.params)
        self.n_run += 1
        self.n_outcomes += outcome
        if status == "failed":
            self.n_failed += 1
            self.bar.set_postfix(failed=self.n_failed, refresh=False)
        self.bar.update(1)
