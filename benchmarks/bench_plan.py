"""Speed of ``mockzgrad plan --example`` (issue 19 targets: < 3 min cold, < 10 s warm on 2 cores).

Usage::

    python benchmarks/bench_plan.py [--repeats N] [--workers W] [--json out.json]

Each repeat runs, in new processes (imports and the numba kernel cache count):

1. cold: ``mockzgrad plan --example -o NEW_DIR`` (every suite computed; the
   z ~ 2 plan: NIRSpec G235M vs KMOS, 2 depths x 2 |grad_z| x 6 mocks; the
   z ~ 5 plan: NIRSpec G395M, 2 depths x 2 |grad_z| x 6 mocks plus the
   exposure solver's suites for sigma_target = 0.05 dex/kpc);
2. warm: the same command on the same folder (every suite resumes with
   nothing to compute: tables and figures only);
3. cold without the noise-free cache (``--no-cache``, a new folder): the
   ratio to 1. is what re-noising one noise-free cube per mock saves.

Cold and warm alternate within one run, so load changes hit both; the
report gives medians, the warm/cold ratio, and the CPU time of the children
(less sensitive to other jobs on a shared machine than the wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _mockzgrad() -> list[str]:
    exe = Path(sys.executable).with_name("mockzgrad")
    return [str(exe)] if exe.is_file() else [sys.executable, "-c", "from mockzgrad.cli import main; main()"]


def _run(out: Path, workers: int, extra=()) -> tuple[float, float]:
    """Wall time and children's CPU time (s) of one ``plan --example``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([*_mockzgrad(), "plan", "--example", "-o", str(out), "--workers", str(workers), *extra],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    cold, warm, cold_cpu, warm_cpu, nocache, nocache_cpu = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            out = Path(tmp) / f"run{k}"
            w, c = _run(out, args.workers)
            cold.append(w)
            cold_cpu.append(c)
            w, c = _run(out, args.workers)
            warm.append(w)
            warm_cpu.append(c)
            shutil.rmtree(out)
            w, c = _run(Path(tmp) / f"nocache{k}", args.workers, ("--no-cache",))
            nocache.append(w)
            nocache_cpu.append(c)
            shutil.rmtree(Path(tmp) / f"nocache{k}")
    res = {"cold_median_s": statistics.median(cold), "warm_median_s": statistics.median(warm),
           "cold_cpu_median_s": statistics.median(cold_cpu), "warm_cpu_median_s": statistics.median(warm_cpu),
           "warm_over_cold": statistics.median(warm) / statistics.median(cold),
           "nocache_median_s": statistics.median(nocache), "nocache_cpu_median_s": statistics.median(nocache_cpu),
           "nocache_over_cold_cpu": statistics.median(nocache_cpu) / statistics.median(cold_cpu),
           "repeats": args.repeats, "workers": args.workers, "load": os.getloadavg()[0]}
    print(f"plan --example, {args.workers} workers, {args.repeats} repeats (load {res['load']:.1f}):")
    print(f"  cold {res['cold_median_s']:.1f} s wall ({res['cold_cpu_median_s']:.1f} s CPU); "
          f"warm {res['warm_median_s']:.1f} s wall ({res['warm_cpu_median_s']:.1f} s CPU); "
          f"warm/cold {res['warm_over_cold']:.2f}")
    print(f"  cold --no-cache {res['nocache_median_s']:.1f} s wall ({res['nocache_cpu_median_s']:.1f} s CPU); "
          f"CPU no-cache/cache {res['nocache_over_cold_cpu']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
