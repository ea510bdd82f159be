"""Speed of the slit-stepping (MSA-3D-like) forward model (issue 18 target: < 5 s on 2 cores).

Usage::

    python benchmarks/bench_slitstep.py [--repeats N] [--json out.json]

Mock: ``examples/msa3d_z1.toml`` with 5 shutters (63 pointings; Hbeta,
[OIII], Halpha, [NII], [SII] at z = 1; noise at a target S/N). Measured,
median of ``--repeats`` warm calls (one warm-up call first, which also
compiles or loads the numba kernels):

1. the whole ``build_slitstep_cube``;
2. its stages from the same plan: rendering (the source layer's scene),
   PSF (telescope PSF on the fine grid), exposures (shutter mask,
   intra-shutter shift, detector rows, 63 pointings), cube build (the
   MSA-3D combination, noise-free + noisy, with variance), and the rest
   (plan, line totals, noise draw, effective kernel, truth) as the
   difference.

Measured (2026-12-04, 2 cores shared with other jobs, load ~5): median
1.80 s (min 1.76 s); render 0.27 s (15 %), PSF 0.70 s (39 %), exposures
0.61 s (34 %), cube build (two builds) 0.26 s (15 %). Under load ~10: 3.6 s.
The 201-mock ``examples/msa3d_suite.toml`` (3 shutters) ran in 142.5 s with
2 workers (cube 0.91 s, recovery 0.10 s median per mock).

Re-measured after the round-1 merges (2026-12-04 22:40 UTC, load 14-20 on the
2 cores): median 10.5 s (min 7.4 s) wall, 1.65 s CPU (all threads; min
1.39 s); render 0.94 s (9 %), PSF 5.9 s (56 %), exposures 3.4 s (32 %), cube
build 1.2 s (12 %) (stage medians, noisy under that load). The 201-mock suite:
all ok in 689 s (cube 5.6 s, recovery 0.71 s median per mock).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from _timing import time_calls

from mockzgrad.config import load_config
from mockzgrad.errors import FieldOfViewWarning
from mockzgrad.observation.slitstep import _rng, build_slitstep_cube, plan_slitstep
from mockzgrad.observation.slitstep.build import build_msa3d_cube, cube_geometry
from mockzgrad.observation.slitstep.exposures import expose, psf_stage, slit_rows
from mockzgrad.source.scene import render_scene

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "msa3d_z1.toml"




def _stages(cfg) -> dict:
    """Wall time of each stage of one build, s."""
    t = {}
    t0 = time.perf_counter()
    plan = plan_slitstep(cfg)
    t["plan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scene = render_scene(plan.model, cfg.lines, plan.sampling, rng=_rng(cfg, 0))
    t["render"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    conv = psf_stage(scene.cube, plan)
    t["psf"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    exp, a = expose(conv, plan)
    t["exposures"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    geom = cube_geometry(plan.ss, plan.x_steps, plan.y_steps, slit_rows(plan.ss), a)
    build_msa3d_cube(exp, np.ones_like(exp), a, plan.ss, geom)
    build_msa3d_cube(exp, np.ones_like(exp), a, plan.ss, geom)
    t["cube_build"] = time.perf_counter() - t0
    return t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    cfg = load_config(EXAMPLE).replace(**{"instrument.slitstep.n_shutters": 5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FieldOfViewWarning)
        total = time_calls(lambda: build_slitstep_cube(cfg, keep_noise_free=False), args.repeats)
        runs = [_stages(cfg) for _ in range(args.repeats)]
    stages = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    stages["rest"] = max(total["median_s"] - sum(stages.values()), 0.0)
    out = {"mock": "examples/msa3d_z1.toml, 5 shutters, 63 pointings", "total": total,
           "stages_s": stages, "share": {k: v / total["median_s"] for k, v in stages.items()}}
    print(f"build_slitstep_cube: median {total['median_s']:.2f} s (min {total['min_s']:.2f} s, n = {total['n']})")
    for k, v in stages.items():
        print(f"  {k:11s} {v:6.3f} s  {100 * out['share'][k]:5.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
