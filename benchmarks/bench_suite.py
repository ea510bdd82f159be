"""Benchmark: suite throughput and the 1 -> 2 worker speed-up.

Runs the first ``--n-mocks`` mocks (default 100) of the flagship suite
(annuli + Method I + analytic gradient) into fresh temporary folders with
the local executor on 1 and 2 workers and with a dask LocalCluster of 1 and
2 workers, and the quickstart suite on all cores. Prints wall time, mocks/s,
the speed-up from 1 to 2 workers per executor, and the estimated wall time
of the 1500-mock flagship suite on this machine, and the parent process's
CPU time per mock (with dask the scheduler and client run there). Targets: flagship suite
under 5 minutes on 2 cores; speed-up >= 1.8 for both executors.

Run: ``python benchmarks/bench_suite.py [--n-mocks 100] [--skip-dask] [--skip-local]``
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed_run(spec, executor, workers):
    """Wall time of a run, the run, this (parent) process's CPU time and its workers' CPU time, s.

    The parent's CPU includes its threads (for dask: the scheduler and the
    client live here); the workers' is that of the child processes reaped
    during the run (local workers; dask nannies and their workers)."""
    from mockzgrad.suites.suite import run_suite

    def children():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        t, c, k = time.perf_counter(), time.process_time(), children()
        run = run_suite(spec, Path(tmp) / "run", "mockzgrad.suites.job:run_mock", workers=workers,
                        executor=executor, progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    return wall, run, cpu, children() - k


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-mocks", type=int, default=102, help="mocks per timing (a multiple of 6)")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args(argv)

    from mockzgrad.suites.suite import load_suite

    flagship = load_suite(ROOT / "examples" / "flagship_suite.toml")
    n = max(6, args.n_mocks - args.n_mocks % 6)
    spec = dataclasses.replace(flagship, n_mocks=n)
    quick = load_suite(ROOT / "examples" / "quickstart_suite.toml")
    _timed_run(dataclasses.replace(quick, n_mocks=8), "local", 2)  # one grid of 8: warm numba caches

    print(f"flagship suite, first {n} mocks (annuli + Method I + analytic gradient)")
    rates, cpus = {}, {}
    for executor in (() if args.skip_local else ("local",)) + (() if args.skip_dask else ("dask",)):
        for workers in (1, 2):
            wall, run, cpu, wcpu = _timed_run(spec, executor, workers)
            rates[(executor, workers)] = run.n_ok / wall
            cpus[workers] = (cpu, wcpu)
            per = 1.0 / max(run.n_ok, 1)
            print(f"  {executor:<5} {workers} worker(s): {wall:6.1f} s, {run.n_ok / wall:5.2f} mocks/s "
                  f"({run.n_failed} failed); CPU per mock: parent {1e3 * cpu * per:.1f} ms, workers "
                  f"{1e3 * wcpu * per:.1f} ms (with the workers' start-up)")
        # workers' CPU = start-up per worker f + n x per-mock m; two runs give both
        f = cpus[2][1] - cpus[1][1]
        m = (2 * cpus[1][1] - cpus[2][1]) / n
        parent = 0.5 * (cpus[1][0] + cpus[2][0]) / n
        print(f"  {executor}: worker start-up {f:.2f} s CPU each, {1e3 * m:.1f} ms CPU per mock in a worker, "
              f"{1e3 * parent:.1f} ms in the parent -> 1500 mocks on 2 workers = {2 * f + 1500 * (m + parent):.0f} s "
              f"CPU, / 2 cores = {(2 * f + 1500 * (m + parent)) / 2:.0f} s (the wall of a quiet 2-core machine)")
        speedup = rates[(executor, 2)] / rates[(executor, 1)]
        est = 1500 / rates[(executor, 2)]
        print(f"  {executor}: speed-up 1 -> 2 workers = {speedup:.2f} (target >= 1.8); "
              f"1500-mock flagship estimate on 2 workers: {est / 60:.1f} min (target < 5 min)")
    wall, run, _, _ = _timed_run(quick, "local", None)
    print(f"quickstart suite ({quick.n_mocks} mocks), all cores: {wall:.1f} s, {run.n_ok / wall:.2f} mocks/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
