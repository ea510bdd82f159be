"""Benchmark: this checkout against another installed version, in one run.

Times the flagship cube (``examples/flagship_z5.toml``, PSF 0.2", one
thread), ``recover`` on it (lee2026, Method I only) and a small local suite
(the 80-mock quickstart suite on ``--suite-workers`` local workers) in
child processes of two Python interpreters, alternating A B A B so that the
machine's drift hits both alike, and prints each figure's median and the
ratio A/B of the medians and of each pair.

Usage::

    python benchmarks/bench_versions.py --a .venv/bin/python --b /path/to/old/venv/bin/python \
        [--rounds 5] [--repeats 15] [--suite-workers 2] [--suite flagship_suite.toml] [--suite-mocks N]
        [--skip cube,recover,suite]

Each interpreter must have mockzgrad installed (the old one from the
pre-change commit, e.g. ``git worktree add /tmp/base <commit>`` and a venv
with ``pip install /tmp/base``). Only public entry points that exist in
both layouts are used (the cube builder is looked up under its old and new
module names).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, statistics, sys, tempfile, time
from pathlib import Path
for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
root, repeats, n_suite = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])  # n_suite: suite workers
suite_file, suite_mocks, skip = sys.argv[4], int(sys.argv[5]), set(sys.argv[6].split(",")) - {""}
from mockzgrad.config import load_config, load_recipe
try:
    from mockzgrad import observe as build
except ImportError:
    from mockzgrad.cube import build_cube as build
try:
    from mockzgrad.suites.suite import load_suite, run_suite
    job = "mockzgrad.suites.job:run_mock"
except ImportError:
    from mockzgrad.suite import load_suite, run_suite
    job = "mockzgrad.job:run_mock"
from mockzgrad.recovery import recover

cfg = load_config(root / "examples" / "flagship_z5.toml").replace(**{"instrument.psf.fwhm": 0.2})
recipe = load_recipe("lee2026").replace(**{"metallicity.also": []})
cube = build(cfg)
recover(cube, recipe)

def median_time(fn, clock):
    times = []
    for _ in range(repeats):
        t0 = clock(); fn(); times.append(clock() - t0)
    return statistics.median(times)

# CPU time of this (single-threaded) process is less sensitive to a loaded machine than wall time
out = {}
if "cube" not in skip:
    out["cube_s"] = median_time(lambda: build(cfg), time.perf_counter)
    out["cube_cpu_s"] = median_time(lambda: build(cfg), time.process_time)
if "recover" not in skip:
    out["recover_s"] = median_time(lambda: recover(cube, recipe), time.perf_counter)
    out["recover_cpu_s"] = median_time(lambda: recover(cube, recipe), time.process_time)
if "suite" not in skip:
    import dataclasses
    spec = load_suite(root / "examples" / suite_file)
    if suite_mocks > 0:
        spec = dataclasses.replace(spec, n_mocks=suite_mocks)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_suite(spec, Path(tmp) / "run", job, workers=n_suite, progress=False)
        out["suite_s"] = time.perf_counter() - t0
import mockzgrad
out["version_path"] = 0.0 if mockzgrad.__file__.startswith(str(root)) else 1.0  # 0: this checkout's code
print(json.dumps(out))
"""


def _child(python: str, repeats: int, n_suite: int, suite: str = "quickstart_suite.toml", suite_mocks: int = 0,
           skip: str = "") -> dict:
    # run in an empty folder: ``python -c`` puts the current folder first on sys.path, so a child
    # started in this checkout would import this checkout's mockzgrad whatever interpreter it is
    python = os.path.abspath(python) if os.sep in python else python  # not resolve(): a venv's python is a link
    with tempfile.TemporaryDirectory() as cwd:
        res = subprocess.run([python, "-c", CHILD, str(ROOT), str(repeats), str(n_suite), suite, str(suite_mocks),
                              skip], capture_output=True, text=True, check=False, cwd=cwd)
    if res.returncode:
        sys.exit(f"{python}: child failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="Python of the version under test")
    parser.add_argument("--b", required=True, help="Python of the reference version")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--suite-workers", type=int, default=2)
    parser.add_argument("--suite", default="quickstart_suite.toml", help="suite file in examples/")
    parser.add_argument("--suite-mocks", type=int, default=0, help="run only the first N mocks (0: all)")
    parser.add_argument("--skip", default="", help="comma-separated figures to skip: cube, recover, suite")
    args = parser.parse_args(argv)
    runs = {"a": [], "b": []}
    for r in range(args.rounds):
        for key in ("a", "b"):
            runs[key].append(_child(getattr(args, key), args.repeats, args.suite_workers, args.suite,
                                    args.suite_mocks, args.skip))
        print(f"round {r + 1}/{args.rounds}: " + "  ".join(
            f"{k} {runs['a'][-1][k]:.4f}/{runs['b'][-1][k]:.4f}" for k in runs["a"][-1]), flush=True)
    print(f"\n{'figure':<13} {'A median':>10} {'B median':>10} {'A/B':>6}  pairwise A/B min-median-max")
    for k in runs["a"][0]:
        a = [x[k] for x in runs["a"]]
        b = [x[k] for x in runs["b"]]
        pairs = sorted(x / y for x, y in zip(a, b))
        print(f"{k:<13} {statistics.median(a):10.4f} {statistics.median(b):10.4f} "
              f"{statistics.median(a) / statistics.median(b):6.3f}  "
              f"{pairs[0]:.3f}-{statistics.median(pairs):.3f}-{pairs[-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
