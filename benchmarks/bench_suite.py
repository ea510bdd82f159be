"""Benchmark: suite throughput, start-up and the 1 -> 2 worker speed-up.

Runs the first ``--n-mocks`` mocks (default 102; up to the flagship's 1500)
of the flagship suite (annuli + Method I + analytic gradient) into fresh
temporary folders with the local executor on 1 and 2 workers and with a dask
LocalCluster of 1 and 2 workers, then the quickstart suite on all cores.

Each run is split into its start-up and its steady state, both printed:

- steady state: the mocks recorded between the 10 % and the 90 % marks of
  the run, their rate (mocks/s) and the CPU they cost per mock, in the
  worker processes (every child process, read with psutil as each mock is
  recorded) and in this parent process (with dask the scheduler, the nannies
  and the client live here): least-squares slopes of wall and CPU time over
  the count of recorded mocks, so mocks that arrive in chunks (dask) do not
  bias them;
- start-up: the wall time the steady rate does not explain
  (``wall - n / rate``: spawning the workers, imports, numba's cache, the
  first mocks, the last chunk, shutting down) and the workers' CPU that
  the steady per-mock CPU does not explain, per worker.

The speed-up from 1 to 2 workers is printed as the ratio of the walls of the
``--n-mocks`` runs, as the ratio of the steady rates, and (the headline) as
the ratio of the walls of the 1500-mock flagship suite: measured when
``--n-mocks 1500``, otherwise projected from each run's start-up and steady
rate (``start-up + 1500 / rate``). With start-up s and N mocks of t each,
``wall(1) = s + N t`` and ``wall(2) = s + N t / 2``, so the start-up alone
holds short runs below 2x. Targets (issue 23): dask CPU per mock in a worker
within 10 % of local; speed-up >= 1.8 for both executors at the flagship size.

Run: ``python benchmarks/bench_suite.py [--n-mocks 102] [--skip-dask] [--skip-local] [--skip-quickstart]``
(``--n-mocks 1500``: the full flagship suite, ~4 minutes on a quiet 2-core machine).
Without psutil the CPU split is not available and only walls and rates are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP_N = 1500


def _children_cpu() -> dict:
    """CPU time (s) of each live descendant process of this one, by pid; {} without psutil."""
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


@contextlib.contextmanager
def _marks_between(k0: int, k1: int):
    """Marks ``(count, wall, parent CPU, workers' CPU)`` at each recorded mock from the ``k0``-th to the
    ``k1``-th (wraps ResultsStore.record), and the wall at the first.

    The workers' CPU is accumulated over the processes alive at consecutive marks (a worker that is
    replaced drops out); the parent's excludes the marks' own cost.
    """
    from mockzgrad.suites.store import ResultsStore

    state = {"n": 0, "prev": None, "workers": 0.0, "own": 0.0, "first": None, "marks": []}
    original = ResultsStore.record

    def record(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        state["n"] += 1
        if state["first"] is None:
            state["first"] = time.perf_counter()
        if k0 <= state["n"] <= k1:
            c = time.process_time()
            wall, kids = time.perf_counter(), _children_cpu()
            if state["prev"] is not None:
                state["workers"] += sum(v - state["prev"][pid] for pid, v in kids.items() if pid in state["prev"])
            state["prev"] = kids
            state["marks"].append((state["n"], wall, c - state["own"], state["workers"]))
            state["own"] += time.process_time() - c
        return out

    ResultsStore.record = record
    try:
        yield state
    finally:
        ResultsStore.record = original


def _slope(x, y) -> float:
    """Least-squares slope of y on x."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx


def _reaped_children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_run(spec, executor: str, workers) -> dict:
    """One run of ``spec`` into a fresh folder, split into start-up and steady state (see the module doc).

    Returns
    -------
    dict
        ``wall`` (s), ``n_ok``, ``n_failed``, ``first`` (s to the first recorded mock), ``rate``
        (steady mocks/s), ``startup_wall`` (s), and with psutil ``worker_ms`` and ``parent_ms``
        (steady CPU per mock) and ``startup_cpu`` (workers' CPU not explained by it, s per worker).
    """
    from mockzgrad.suites.suite import run_suite

    n = spec.n_mocks
    k0, k1 = max(1, n // 10), max(2, n - n // 10)
    with tempfile.TemporaryDirectory() as tmp, _marks_between(k0, k1) as marks:
        t, c, reaped = time.perf_counter(), time.process_time(), _reaped_children_cpu()
        run = run_suite(spec, Path(tmp) / "run", "mockzgrad.suites.job:run_mock", workers=workers,
                        executor=executor, progress=False)
        wall, cpu, reaped = time.perf_counter() - t, time.process_time() - c, _reaped_children_cpu() - reaped
    out = {"wall": wall, "n_ok": run.n_ok, "n_failed": run.n_failed, "parent_total": cpu - marks["own"],
           "workers_total": reaped, "first": (marks["first"] or float("nan")) - t}
    rows = marks["marks"]
    if len(rows) >= 3 and rows[-1][1] > rows[0][1]:
        count = [r[0] for r in rows]
        # slopes over every recorded mock of the window: robust to mocks arriving in chunks
        out["rate"] = 1.0 / _slope(count, [r[1] for r in rows])
        out["startup_wall"] = wall - n / out["rate"]
        if marks["prev"]:  # psutil saw the workers
            out["worker_ms"] = 1e3 * _slope(count, [r[3] for r in rows])
            out["parent_ms"] = 1e3 * _slope(count, [r[2] for r in rows])
            out["startup_cpu"] = (reaped - n * out["worker_ms"] / 1e3) / (workers or 1)
    return out


def _flagship_wall(r: dict, n: int) -> float:
    """The 1500-mock wall: measured when the run had 1500 mocks, else start-up + 1500 / steady rate."""
    if n == FLAGSHIP_N:
        return r["wall"]
    return r["startup_wall"] + FLAGSHIP_N / r["rate"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-mocks", type=int, default=102,
                        help=f"mocks per timing (a multiple of 6, at most {FLAGSHIP_N})")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-quickstart", action="store_true")
    args = parser.parse_args(argv)

    from mockzgrad.suites.suite import load_suite

    flagship = load_suite(ROOT / "examples" / "flagship_suite.toml")
    n = min(FLAGSHIP_N, max(12, args.n_mocks - args.n_mocks % 6))
    spec = dataclasses.replace(flagship, n_mocks=n)
    quick = load_suite(ROOT / "examples" / "quickstart_suite.toml")
    timed_run(dataclasses.replace(quick, n_mocks=8), "local", 2)  # one grid of 8: warm numba caches

    label = "measured" if n == FLAGSHIP_N else "projected: start-up + 1500 / steady rate"
    print(f"flagship suite, first {n} mocks (annuli + Method I + analytic gradient)")
    results = {}
    for executor in (() if args.skip_local else ("local",)) + (() if args.skip_dask else ("dask",)):
        for workers in (1, 2):
            r = results[(executor, workers)] = timed_run(spec, executor, workers)
            text = (f"  {executor:<5} {workers} worker(s): wall {r['wall']:6.1f} s ({r['n_failed']} failed); "
                    f"first result after {r['first']:.1f} s; steady {r.get('rate', float('nan')):5.2f} mocks/s, "
                    f"start-up {r.get('startup_wall', float('nan')):.1f} s of the wall")
            if "worker_ms" in r:
                text += (f"; CPU per mock (steady): workers {r['worker_ms']:.1f} ms, parent {r['parent_ms']:.1f} ms; "
                         f"worker start-up {r['startup_cpu']:.2f} s CPU each")
            print(text)
        one, two = results[(executor, 1)], results[(executor, 2)]
        print(f"  {executor}: speed-up 1 -> 2 workers: wall of {n} mocks {one['wall'] / two['wall']:.2f}, "
              f"steady rate {two['rate'] / one['rate']:.2f}")
        w1, w2 = _flagship_wall(one, n), _flagship_wall(two, n)
        print(f"  {executor}: HEADLINE 1500-mock flagship suite ({label}): {w1:.0f} s on 1 worker, "
              f"{w2:.0f} s on 2 -> speed-up {w1 / w2:.2f} (target >= 1.8; start-up {one['startup_wall']:.1f} / "
              f"{two['startup_wall']:.1f} s of it)")
    if ("local", 2) in results and ("dask", 2) in results:
        lo1, da1 = results[("local", 1)], results[("dask", 1)]
        lo2, da2 = results[("local", 2)], results[("dask", 2)]
        if "worker_ms" in lo1 and "worker_ms" in da1:
            print(f"  dask / local, CPU per mock in the workers (steady): 1 worker {da1['worker_ms'] / lo1['worker_ms']:.2f}, "
                  f"2 workers {da2['worker_ms'] / lo2['worker_ms']:.2f} (target <= 1.10); parent "
                  f"{da2['parent_ms']:.1f} vs {lo2['parent_ms']:.1f} ms per mock; worker start-up "
                  f"{da2['startup_cpu']:.2f} vs {lo2['startup_cpu']:.2f} s CPU")
        print(f"  dask / local, wall on 2 workers: {da2['wall'] / lo2['wall']:.2f}")
    if not args.skip_quickstart:
        r = timed_run(quick, "local", None)
        print(f"quickstart suite ({quick.n_mocks} mocks), all cores: {r['wall']:.1f} s, "
              f"{r['n_ok'] / r['wall']:.2f} mocks/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
