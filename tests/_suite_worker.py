"""Test helper for the suite runner: a cheap, deterministic stand-in for the
real per-mock work, and a command line used by the kill tests.

It lives in a module (not a test file) so that spawned worker processes can
import it. The fake reads its knobs from the suite's opaque ``[recovery]``
table:

``fail_indices``  list of mock indices that raise ``ValueError``
``die_indices``   list of mock indices whose worker process exits abruptly
``sleep``         seconds to sleep per mock (makes the kill tests possible)

Usage::

    python _suite_worker.py run SUITE.toml OUTDIR [--workers N] [--executor local]
    python _suite_worker.py write-store DB N_ROWS SLEEP
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

__all__ = ["fake_run_mock", "fake_measurement", "thread_probe", "main"]


def fake_measurement(grad_z: float, x: float, seed: int) -> float:
    """Beam-smeared gradient of the fake: grad_z x^2 / (1 + x^2) + N(0, 0.01)."""
    rng = np.random.default_rng(seed)
    return grad_z * x**2 / (1.0 + x**2) + 0.01 * rng.normal()


def fake_run_mock(spec) -> dict:
    """Deterministic function of (config, params, seed); see the module docstring."""
    knobs = spec.recovery
    if spec.index in knobs.get("die_indices", []):
        os._exit(3)
    if knobs.get("sleep"):
        time.sleep(float(knobs["sleep"]))
    if spec.index in knobs.get("fail_indices", []):
        raise ValueError(f"planned failure of mock {spec.index}")
    grad_z = spec.config.get("galaxy", {}).get("metallicity", {}).get("grad_z", -0.1)
    x = spec.params.get("x_resolution", 2.0)
    out = {
        "grad_z_true": grad_z,
        "grad_z_measured": fake_measurement(grad_z, x, spec.seed),
        "n_params": np.int64(len(spec.params)),
        "label": f"mock-{spec.index}",
        "extra": {"psf_fwhm": spec.config.get("instrument", {}).get("psf", {}).get("fwhm")},
    }
    if spec.index % 2 == 0:
        out["only_even"] = float(spec.index)  # a column that appears later for some rows
    if spec.keep_cube and spec.cube_path:
        with open(spec.cube_path, "w") as fh:
            fh.write(f"cube of mock {spec.index}\n")
    return out


def thread_probe(spec) -> dict:
    """Thread settings a worker sees (imports numba only now, as real work would)."""
    import numba

    return {"numba_threads": numba.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS"),
            "pid": os.getpid()}


def _write_store(db: str, n: int, sleep: float) -> int:
    from mockzgrad.suites.store import ResultsStore

    with ResultsStore(db) as store:
        for i in range(n):
            store.record(i, "ok", {"value": float(i) * 0.5, "text": f"row {i}"}, 0.01, seed=i,
                         params={"i": i})
            time.sleep(sleep)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="_suite_worker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("suite")
    run.add_argument("outdir")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--executor", default="local")
    store = sub.add_parser("write-store")
    store.add_argument("db")
    store.add_argument("n", type=int)
    store.add_argument("sleep", type=float)
    args = parser.parse_args(argv)
    if args.cmd == "write-store":
        return _write_store(args.db, args.n, args.sleep)
    from mockzgrad.suites.suite import load_suite, run_suite

    result = run_suite(load_suite(args.suite), args.outdir, "_suite_worker:fake_run_mock",
                       workers=args.workers, executor=args.executor, progress=False)
    if result.interrupted:
        return 130 if result.interrupted == "SIGINT" else 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
