"""Benchmark: recovering the flagship cube (annuli + Method I + analytic gradient).

Reports the median wall time of :func:`mockzgrad.recovery.pipeline.recover`
over repeated runs on one thread, the share of each stage, and, in the same
process, the same line fits done one bin at a time with
``scipy.optimize.curve_fit`` (what a typical observer script does), printed
as a ratio. Target: under 50 ms per cube on one core.

Run: ``python benchmarks/bench_recover.py [--repeats 20]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    from mockzgrad.config import load_config, load_recipe
    from mockzgrad.observation.ifu import build_cube
    from mockzgrad.recovery import binning, geometry, gradient, linefit, metallicity, pipeline, spectra

    cfg = load_config(ROOT / "examples" / "flagship_z5.toml")
    cube = build_cube(cfg)
    recipe = load_recipe("lee2026").replace(**{"metallicity.also": []})
    pipeline.recover(cube, recipe)  # warm-up (numba, caches)

    # --- stage shares: wrap the stage functions the pipeline calls ----------
    spent = defaultdict(float)
    stages = {
        "line maps": (geometry, "line_map"),
        "geometry fit": (geometry, "fit_geometry"),
        "binning": (binning, "elliptical_annuli"),
        "spectra": (spectra, "sum_spectra"),
        "line fits": (linefit, "fit_lines"),
        "log ratios": (metallicity, "log_ratios"),
        "Method I": (metallicity, "method_one"),
        "gradient fit": (gradient, "fit_gradient"),
    }
    originals = {}
    for label, (mod, name) in stages.items():
        fn = getattr(mod, name)
        originals[label] = (mod, name, fn)

        def timed(*a, _fn=fn, _label=label, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_label] += time.perf_counter() - t

        setattr(mod, name, timed)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        result = pipeline.recover(cube, recipe)
        times.append(time.perf_counter() - t)
    for mod, name, fn in originals.values():
        setattr(mod, name, fn)
    median = statistics.median(times)
    total = sum(times)
    print(f"flagship cube {cube.shape}, recipe lee2026 (annuli, Method I, analytic gradient), 1 thread")
    print(f"  recover(): median {1e3 * median:.1f} ms over {args.repeats} runs "
          f"(min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f}); target < 50 ms")
    print(f"  grad_z = {result.grad_z:+.4f} dex/kpc from {sum(1 for b in result.bins if b.get('valid'))} annuli")
    print("  share of each stage:")
    for label in stages:
        print(f"    {label:<14} {100 * spent[label] / total:5.1f} %  ({1e3 * spent[label] / args.repeats:.2f} ms)")
    other = total - sum(spent.values())
    print(f"    {'other':<14} {100 * other / total:5.1f} %  ({1e3 * other / args.repeats:.2f} ms)")

    # --- line fits: vectorised vs one bin at a time with curve_fit -----------
    captured = {}

    def capture(*a, **k):
        captured["args"], captured["kwargs"] = a, k
        return originals["line fits"][2](*a, **k)

    linefit.fit_lines = capture
    pipeline.recover(cube, recipe)
    linefit.fit_lines = originals["line fits"][2]
    a, k = captured["args"], captured["kwargs"]
    n_bins = a[0].shape[0]
    t_vec = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        linefit.fit_lines(*a, **k)
        t_vec.append(time.perf_counter() - t)
    t = time.perf_counter()
    ref = linefit.fit_lines_curve_fit(*a, **{kk: v for kk, v in k.items() if kk != "n_grid"})
    t_cf = time.perf_counter() - t
    vec = linefit.fit_lines(*a, **k)
    ok = vec.success & ref.success
    rel = np.nanmax(np.abs(vec.flux[ok] - ref.flux[ok]) / vec.flux_err[ok]) if ok.any() else float("nan")
    print(f"  line fits of {n_bins} bins: vectorised median {1e3 * statistics.median(t_vec):.2f} ms, "
          f"curve_fit loop {1e3 * t_cf:.1f} ms -> ratio {t_cf / statistics.median(t_vec):.0f}x; "
          f"max |flux difference| = {rel:.2e} of the flux error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
