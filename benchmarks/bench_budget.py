"""Benchmark: the flattening budget of the flagship mock (``mockzgrad budget examples/flagship_z5.toml``).

Times :func:`mockzgrad.budget.flattening_budget` (default 5 noise
realisations, with the method/recipe/gating alternatives) after one warm-up
run (numba compilation), and, alternating in the same process, one
observe + recover of the same mock (the suite path of one mock), printed as
a ratio: the budget costs about that many single mocks. Target: the whole
command under a minute on a 2-core machine.

Run: ``python benchmarks/bench_budget.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--realisations", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    from mockzgrad.budget import flattening_budget
    from mockzgrad.config import load_config, load_recipe
    from mockzgrad.observation import observe
    from mockzgrad.suites.job import measure_mock

    cfg = load_config(ROOT / "examples" / "flagship_z5.toml")
    recipe = load_recipe("lee2026")

    def one_mock():
        measure_mock(observe(cfg, keep_noise_free=False), cfg, recipe)

    def budget():
        flattening_budget(cfg, recipe, realisations=args.realisations)

    one_mock()  # warm-up: numba kernels, calibration caches
    times = {"budget": [], "one mock": []}
    for _ in range(args.repeats):  # A/B alternating
        for name, fn in (("budget", budget), ("one mock", one_mock)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:10s} median {v:8.2f} s over {args.repeats}")
    print(f"budget / one mock = {med['budget'] / med['one mock']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
