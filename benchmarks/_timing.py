"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import gc
import statistics
import time


def time_calls(fn, repeats: int) -> dict:
    """Wall time of ``fn()`` over ``repeats`` calls after one warm-up, garbage collection off while timing.

    Returns
    -------
    dict
        ``median_s``, ``min_s`` (seconds) and ``n``.
    """
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times)}


def median_cpu(fn, repeats: int, *, warmup: bool = True) -> float:
    """Median CPU time (s, this process) of ``fn()`` over ``repeats`` calls, after one warm-up call if asked.

    ``warmup = False`` for A/B loops that alternate two versions call by call (each call is then its own sample).
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)
