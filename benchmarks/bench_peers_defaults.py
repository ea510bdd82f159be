"""Benchmark: peers at their defaults and mockzgrad at equal accuracy, CPU time, alternating.

Builds the single-line cube of :mod:`_peers` with mockzgrad (oversample 4
and 1), DysmalPy (oversample 1, its default) and KinMS (1e5 clouds) in
turn, ``--rounds`` times, and prints each one's median CPU time
(``time.process_time``) and its max voxel error against mockzgrad at
oversample 16 over the full field.

Run: ``python benchmarks/bench_peers_defaults.py [--rounds 5]`` (needs ``pip install ".[peers]"``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _peers  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    pb = _peers.PROBLEM
    run, to_cube = _peers.make_mockzgrad(pb, oversample=16, full_field=True)
    ref = to_cube(run())
    cands = {f"mockzgrad os{pb.oversample}": _peers.make_mockzgrad(pb),
             "mockzgrad os1": _peers.make_mockzgrad(pb, oversample=1),
             "DysmalPy os1": _peers.make_dysmalpy(pb, oversample=1),
             "KinMS 1e5": _peers.make_kinms(pb, n_samps=100_000)}
    times = {k: [] for k in cands}
    for run, _ in cands.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for k, (run, _) in cands.items():
            c = time.process_time()
            run()
            times[k].append(time.process_time() - c)
    for k, (run, to_cube) in cands.items():
        v = _peers.voxel_errors(to_cube(run()), ref)
        print(f"{k:<16} CPU median {1e3 * statistics.median(times[k]):8.1f} ms  max voxel error "
              f"{100 * v['max_dev']:.3f} %  rms {100 * v['rms_dev']:.4f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
