"""Speed of the slitless grism forward model (issue 16 targets).

Usage::

    python benchmarks/bench_grism.py [--repeats N] [--json out.json]

Mock: ``examples/niriss_z3.toml`` (NIRISS z = 3.06, GR150R + GR150C x F115W,
F150W, F200W = 6 exposures, 100 x 100 direct pixels of 0.03", noise at a
target S/N). Measured, median of ``--repeats`` warm calls (one warm-up
call first, which also compiles or loads the numba kernels):

1. scene: render + PSF on the fine wavelength grid (``grism_scene``);
2. disperse + noise: every exposure's frame, shift-add and noise, from a
   ready scene (the issue's target: < 2 s on 2 cores);
3. the whole ``build_grism`` (scene, dispersion, noise, direct images, truth);
4. the compiled dispersion kernel against its numpy twin on one exposure.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from _timing import time_calls

from mockzgrad.config import load_config
from mockzgrad.observation.grism import forward
from mockzgrad.observation.grism.dispersion import disperse

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "niriss_z3.toml"




def _disperse_and_noise(cfg, scene):
    """Stage 2 of build_grism: frames, shift-add and noise for every exposure."""
    models = forward.exposure_models(cfg, scene.setup.n)
    _, noise_rngs = forward._rngs(cfg, len(models))
    sigmas = forward._snr_sigmas(cfg, scene, models)
    out = []
    for (_, exptime, m), sigma, rng in zip(models, sigmas, noise_rngs):
        rate = disperse(scene.cube, scene.waves, m)
        out.append(forward._noisy(cfg, rate, sigma, exptime, rng))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write every number to this JSON file")
    args = ap.parse_args(argv)
    cfg = load_config(EXAMPLE)
    scene = forward.grism_scene(cfg)
    models = forward.exposure_models(cfg, scene.setup.n)
    big = max(models, key=lambda t: t[2].shape[0] * t[2].shape[1])[2]
    report = {
        "mock": str(EXAMPLE.name), "n_direct": scene.setup.n, "n_slices": int(scene.waves.size),
        "n_exposures": len(models), "frames": [list(m.shape) for _, _, m in models],
        "scene": time_calls(lambda: forward.grism_scene(cfg), args.repeats),
        "disperse_and_noise": time_calls(lambda: _disperse_and_noise(cfg, scene), args.repeats),
        "build_grism": time_calls(lambda: forward.build_grism(cfg), args.repeats),
        "kernel_nb_one_exposure": time_calls(lambda: disperse(scene.cube, scene.waves, big), args.repeats),
        "kernel_ref_one_exposure": time_calls(lambda: disperse(scene.cube, scene.waves, big, use_numba=False),
                                         max(1, args.repeats // 2)),
    }
    same = np.allclose(disperse(scene.cube, scene.waves, big),
                       disperse(scene.cube, scene.waves, replace(big), use_numba=False), rtol=0, atol=1e-30)
    report["twins_agree"] = bool(same)
    for key in ("scene", "disperse_and_noise", "build_grism", "kernel_nb_one_exposure", "kernel_ref_one_exposure"):
        r = report[key]
        print(f"{key:26s} median {r['median_s']:.3f} s  (min {r['min_s']:.3f} s, {r['n']} runs)")
    print(f"{scene.setup.n} x {scene.setup.n} direct pixels, {scene.waves.size} slices, {len(models)} exposures; "
          f"target disperse + noise < 2 s: {'met' if report['disperse_and_noise']['median_s'] < 2 else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
