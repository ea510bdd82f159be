"""Benchmark: issue 23 round-3 and round-3b changes against the code they replaced, alternating in one process.

Whole-program A/B runs between two checkouts spread by +-10 % per child on a
loaded machine, more than these changes are worth; here the old functions
are loaded from a checkout of the base commit (``--base``, e.g. ``git
archive d78155d | tar -x -C /tmp/base``) and swapped in and out of this
process call by call, so both see the same machine state. CPU time
(``time.process_time``) of:

* ``build_cube`` (flagship, PSF 0.2", one thread): new = this checkout;
* ``recover`` as shipped (lee2026: Method I, and Method II, which runs in
  every measurement) of flagship cubes at four PSF widths;
* ``method_two`` alone on those cubes' log ratios.

``--round 3`` (base 38e88e4): old = Gauss-Legendre nodes recomputed in
``outside_flux_share``, the base's separable-blur kernel (no skipping of
all-zero channels) and the base's ``method_ii.py`` (two full-bin Method I
calls for the branch references). ``--round 3b`` (base d78155d, the
default): old = the calibration-directory key resolved with pathlib on
every diagnostic look-up, kpc per arcsec from astropy on every cube and
line groups built afresh in every ``line_factors``.

``--round 4`` (base bfa147c): old = numpy's noise draw (``add_noise``), the
base's separable-blur kernel (indexed row reads, one tap pair per sweep) and
its FFT/separable cost rule, ``find_branches`` (a Python loop over the grid
steps), ``estimate_redshift`` (nansum copies, channel centres per catalogue
line), ``check_cube`` (full passes) and ``line_map`` (masked copies); adds
``build_cube`` at PSF 0.8" (FFT before, separable now) and ``recover`` of
the flagship cube as shipped (PSF 0.2547").

Run: ``python benchmarks/bench_swap.py --base /tmp/base [--round 3b] [--rounds 15] [--repeats 10]``
(numba writes cache files next to the base's kernels under the names they are loaded as here: give a
separate ``NUMBA_CACHE_DIR`` to anything else that imports the base checkout afterwards)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from _timing import median_cpu  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
#: PSF FWHM of the cubes recovered, arcsec (the flagship suite spans 0.1-1.0")
PSF_FWHM = (0.15, 0.3, 0.5, 0.8)


def _load_old(base: Path, rel: str, name: str):
    """Module ``rel`` of the base checkout, loaded under ``name`` (relative imports resolve in this package)."""
    spec = importlib.util.spec_from_file_location(name, base / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _swaps_3(base: Path) -> list:
    """Round 3: (module, attribute, the base's object) for Method II, the blur kernel, leggauss."""
    from mockzgrad.observation.psf import convolve
    from mockzgrad.recovery import metallicity
    from mockzgrad.source import galaxy

    old_m2 = _load_old(base, "mockzgrad/recovery/metallicity/method_ii.py",
                       "mockzgrad.recovery.metallicity._method_ii_base")
    old_blur = _load_old(base, "mockzgrad/kernels/blur.py", "mockzgrad.kernels._blur_base")
    return [(metallicity, "method_two", old_m2.method_two),
            (convolve, "blur_separable_nb", old_blur.blur_separable_nb),
            (galaxy, "_leggauss", np.polynomial.legendre.leggauss)]


def _swaps_3b(base: Path) -> list:
    """Round 3b: the calibration-directory key resolved with pathlib on every call (the base's
    ``_dirs_key``, used by every ``get_diagnostic`` and ``generating_system``), kpc per
    arcsec from astropy on every ``resolve_galaxy``, line groups built on every ``line_factors``."""
    from mockzgrad.physics import calibrations
    from mockzgrad.physics.cosmology import kpc_per_arcsec
    from mockzgrad.source import galaxy, lineflux

    old_cal = _load_old(base, "mockzgrad/physics/calibrations.py", "mockzgrad.physics._calibrations_base")
    return [(calibrations, "_dirs_key", old_cal._dirs_key),
            (galaxy, "_kpc_per_arcsec", lambda z, cosmology: kpc_per_arcsec(z, cosmology.to_astropy())),
            (lineflux, "_line_groups", lineflux.line_groups)]


def _swaps_4(base: Path) -> list:
    """Round 4: the base's noise draw, blur kernel and FFT/separable rule (``build_cube``),
    ``find_branches``, ``estimate_redshift``, ``check_cube`` and ``line_map`` (``recover``)."""
    from mockzgrad.observation import ifu, noise
    from mockzgrad.observation.psf import convolve
    from mockzgrad.recovery import frontend, geometry
    from mockzgrad.recovery.metallicity import branches

    old_fe = _load_old(base, "mockzgrad/recovery/frontend.py", "mockzgrad.recovery._frontend_base")
    old_noise = _load_old(base, "mockzgrad/observation/noise.py", "mockzgrad.observation._noise_base")
    old_geo = _load_old(base, "mockzgrad/recovery/geometry.py", "mockzgrad.recovery._geometry_base")
    old_blur = _load_old(base, "mockzgrad/kernels/blur.py", "mockzgrad.kernels._blur_base")
    old_ifu = _load_old(base, "mockzgrad/observation/ifu.py", "mockzgrad.observation._ifu_base")
    old_br = _load_old(base, "mockzgrad/recovery/metallicity/branches.py",
                       "mockzgrad.recovery.metallicity._branches_base")
    return [(convolve, "blur_separable_nb", old_blur.blur_separable_nb),
            (noise, "add_noise", old_noise.add_noise),
            (ifu, "_separable_is_cheaper", old_ifu._separable_is_cheaper),
            (branches, "find_branches", old_br.find_branches),
            (frontend, "estimate_redshift", old_fe.estimate_redshift),
            (frontend, "check_cube", old_fe.check_cube),
            (geometry, "line_map", old_geo.line_map)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, type=Path, help="checkout of the base commit")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--round", choices=("3", "3b", "4"), default="3b",
                        help="which round's changes to swap (3: base 38e88e4; 3b: base d78155d; 4: base bfa147c)")
    args = parser.parse_args(argv)

    from mockzgrad.config import load_config, load_recipe
    from mockzgrad.observation.ifu import build_cube
    from mockzgrad.recovery import metallicity, pipeline

    new_m2 = metallicity.method_two
    swaps = {"3": _swaps_3, "3b": _swaps_3b, "4": _swaps_4}[args.round](args.base)
    new_attrs = [(mod, name, getattr(mod, name)) for mod, name, _ in swaps]

    def use(old: bool):
        for (mod, name, o), (_, _, n) in zip(swaps, new_attrs):
            setattr(mod, name, o if old else n)

    flagship = load_config(ROOT / "examples" / "flagship_z5.toml")
    cfg = flagship.replace(**{"instrument.psf.fwhm": 0.2})
    recipe = load_recipe("lee2026")
    # recover on cubes across the suite's PSF range: whether R3 has two roots (and Method II
    # needs branch references) depends on the bins' metallicities
    cubes = [build_cube(flagship.replace(**{"instrument.psf.fwhm": f})) for f in PSF_FWHM]
    flag_cube = build_cube(flagship)
    saved = []
    metallicity.method_two = lambda r, **k: saved.append((r, k)) or new_m2(r, **k)
    for c in cubes:
        pipeline.recover(c, recipe)
    metallicity.method_two = new_m2  # stop recording (round 3b swaps nothing there)
    figures = {
        "build_cube": lambda: build_cube(cfg),
        **({"build_cube 0.8\"": lambda: build_cube(flagship.replace(**{"instrument.psf.fwhm": 0.8})),
            "recover flagship": lambda: pipeline.recover(flag_cube, recipe)} if args.round == "4" else {}),
        f"recover x{len(cubes)}": lambda: [pipeline.recover(c, recipe) for c in cubes],
        f"method_two x{len(cubes)}": lambda: [metallicity.method_two(r, **k) for r, k in saved],
    }
    for old in (True, False):  # warm-up: numba compilation, caches
        use(old)
        for fn in figures.values():
            fn()
    res = {k: {"new": [], "old": []} for k in figures}
    for r in range(args.rounds):
        for label in (("new", "old") if r % 2 else ("old", "new")):
            use(label == "old")
            for k, fn in figures.items():
                res[k][label].append(median_cpu(fn, args.repeats, warmup=False))
    use(False)
    print(f"CPU time, median over {args.rounds} rounds of the per-round median of {args.repeats} calls; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'figure':<18} {'new ms':>8} {'old ms':>8} {'new/old':>8}  pairwise min-median-max")
    for k, v in res.items():
        a, b = statistics.median(v["new"]), statistics.median(v["old"])
        pairs = sorted(x / y for x, y in zip(v["new"], v["old"]))
        print(f"{k:<18} {1e3 * a:8.2f} {1e3 * b:8.2f} {a / b:8.3f}  "
              f"{pairs[0]:.3f}-{statistics.median(pairs):.3f}-{pairs[-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
