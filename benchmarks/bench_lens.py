"""Cost of lensing in the cube builder (issue 17 benchmark), as ratios within one run.

Usage::

    python benchmarks/bench_lens.py [--repeats N] [--profile] [--stages] [--lens-cpu] [--only {flagship,map}]

Sections:

1. flagship (``examples/flagship_z5.toml``) unlensed and lensed by an SIE:
   "ring": theta_E 1", q 0.8, source 0.5" from the lens (mu = 2.46 at the
   image of the source centre; the source's light covers the lens centre,
   so the image is an Einstein ring), with
   ``lensing.oversample_near_critical`` 3 and the default; "mu 3": the
   issue's case, one image of mu = 3 (mu_t 3, mu_r 1) at the field centre
   from a cluster-scale SIE (theta_E 10", q 0.8) placed off the field, the
   source put where that image falls, and a given field of mu times the
   unlensed area (the automatic field would reach the counter-image 20"
   away); "mu 3 main_image": the same lens with the automatic field of
   ``lensing.field = "main_image"`` (the counter-image left out); "mu 3
   equal field": the same lens with a given field equal to the unlensed
   automatic one (what lensing itself costs, the field held fixed).
   ``build_cube`` timed alternately (A/B/C/D rounds), median per
   variant and the ratio lensed / unlensed (target < 2); a table gives
   each variant's field, mu, flux and the CPU ratio per field pixel.
2. NIRISS-like deflection-map mock (``examples/lensed_niriss_z3.toml``):
   the example's SIE sampled on a 0.03" grid and written as alpha_x,
   alpha_y FITS maps (``kind = "deflection_fits"``), against the same SIE
   given analytically and the unlensed mock (target < 0.5 s wall).

``--stages`` adds each variant's CPU time per stage (plan, render, PSF,
noise, truth) against the unlensed one's and the field-pixel ratio;
``--lens-cpu`` the CPU time spent evaluating the lens per build (calls,
positions).

One thread (numba, BLAS); one warm-up call per variant; the garbage
collector is off inside a timed call. Absolute times depend on the
machine's load: compare the ratios.
"""

from __future__ import annotations

import os
import sys

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mockzgrad.config import load_config  # noqa: E402
from mockzgrad.observation.ifu import build_cube  # noqa: E402

#: the flagship's lens: SIE, source 0.5" east of the lens centre (mu 2.46 at the image of the source
#: centre; the source's light covers the lens centre: an Einstein ring)
FLAGSHIP_LENS = {"lensing.kind": "sie", "lensing.theta_e": 1.0, "lensing.q": 0.8, "lensing.pa": 20.0,
                 "lensing.z_lens": 0.5, "lensing.source_offset_x": 0.5}

#: a cluster-scale SIE off the field (its centre on the x axis is chosen for mu = 3 at the field centre)
CLUSTER_LENS = {"lensing.kind": "sie", "lensing.theta_e": 10.0, "lensing.q": 0.8, "lensing.pa": 0.0,
                "lensing.z_lens": 0.5, "lensing.oversample_near_critical": 3}


def _build(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_cube(cfg, keep_noise_free=False)


def lens_cpu(variants: dict, repeats: int) -> None:
    """CPU time spent evaluating the lens (``alpha``, ``convergence_shear`` of every lens class, ray shooting
    included) per build, with the number of calls and of positions: the lensing-only work that the plan's
    single evaluation of the spaxel centres (round 5) cut. Medians after one warm-up."""
    from mockzgrad.physics import lensing as pl

    acc = {"t": 0.0, "n": 0, "pts": 0}
    saved = []

    def wrap(cls, name):
        f = cls.__dict__[name]

        def timed(self, x, y):
            c0 = time.process_time()
            try:
                return f(self, x, y)
            finally:
                acc["t"] += time.process_time() - c0
                acc["n"] += 1
                acc["pts"] += int(np.size(x))
        saved.append((cls, name, f))
        setattr(cls, name, timed)

    for cls in (pl.SIELens, pl.DeflectionMapLens, pl.ConstantLens, pl.ExternalShear):
        for name in ("alpha", "convergence_shear"):
            wrap(cls, name)
    try:
        print("  lens evaluation per build: calls, positions, CPU (median)")
        for k, cfg in variants.items():
            ts, tot = [], []
            for i in range(repeats + 1):
                acc.update(t=0.0, n=0, pts=0)
                c0 = time.process_time()
                _build(cfg)
                if i:
                    ts.append(acc["t"])
                    tot.append(time.process_time() - c0)
            print(f"  {k:20s} {acc['n']:4d} calls {acc['pts'] / 1e3:7.1f}k positions {1e3 * statistics.median(ts):6.2f} ms "
                  f"of {1e3 * statistics.median(tot):6.1f} ms")
    finally:
        for cls, name, f in saved:
            setattr(cls, name, f)


def alternate(variants: dict, repeats: int) -> dict:
    """Median wall and CPU (process) time (s) of each variant's build, timed in alternating rounds after one
    warm-up each: ``{name: (wall, cpu)}``. On a shared machine the CPU time is the steadier of the two."""
    for cfg in variants.values():
        _build(cfg)
    wall, cpu = ({k: [] for k in variants} for _ in range(2))
    for _ in range(repeats):
        for k, cfg in variants.items():
            gc.disable()
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                _build(cfg)
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
            finally:
                gc.enable()
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in variants}


def mu3_config(base, mu: float = 3.0, area: float | None = None):
    """``base`` lensed by :data:`CLUSTER_LENS` with magnification ``mu`` at the field centre: one image there
    (the counter-image lies ~2 theta_E away), the source at that image's source position, and a given
    square field of ``area`` (default ``mu``) times the unlensed field's area."""
    from scipy.optimize import brentq

    from mockzgrad.config import lens_from_config

    zero = np.array(0.0)

    def lens_at(cx):
        cfg = base.replace(**CLUSTER_LENS, **{"lensing.centre_x": cx})
        return lens_from_config(cfg.lensing, cfg.galaxy.redshift)

    theta_e = CLUSTER_LENS["lensing.theta_e"]  # SIS: mu = d / (d - theta_E), i.e. mu 3 at d = 1.5 theta_E
    cx = brentq(lambda c: float(lens_at(c).magnification(zero, zero)) - mu, -3.0 * theta_e, -1.05 * theta_e)
    bx, by = lens_at(cx).ray_shoot(zero, zero)
    fov = _build(base).truth["fov"] * np.sqrt(mu if area is None else area)
    return base.replace(**CLUSTER_LENS, **{"lensing.centre_x": cx, "lensing.source_offset_x": float(bx),
                                           "lensing.source_offset_y": float(by), "instrument.fov": float(fov)})


def flagship_variants(main_image: bool = True) -> dict:
    """The flagship unlensed, as a ring, and at mu 3 with the given field (and, with ``main_image``, with the
    automatic field of ``lensing.field = "main_image"``, which leaves the counter-image out)."""
    base = load_config(ROOT / "examples" / "flagship_z5.toml")
    lensed = base.replace(**FLAGSHIP_LENS)
    mu3 = mu3_config(base)
    out = {"unlensed": base, "ring os_crit 3": lensed.replace(**{"lensing.oversample_near_critical": 3}),
           "ring (default)": lensed, "mu 3 os_crit 3": mu3, "mu 3 equal field": mu3_config(base, area=1.0)}
    if main_image:
        out["mu 3 main_image"] = mu3.replace(**{"instrument.fov": None, "lensing.field": "main_image"})
    return out


def _stages(cfg) -> dict:
    """CPU time (s) of each stage of one ``build_cube(cfg)``: plan (field, lens, kernels), render (the
    scene), psf, noise (totals, FoV check, noise and variance), truth (lensing truth included)."""
    from mockzgrad.observation import ifu
    from mockzgrad.source import lineflux
    from mockzgrad.source.scene import render_scene

    c, t = time.process_time, {}
    t0 = c()
    plan = ifu.plan_ifu(cfg)
    t1 = c()
    scene = render_scene(plan.model, cfg.lines, plan.sampling, rng=ifu._scatter_rng(cfg), lens=plan.lens,
                         oversample_near_critical=getattr(cfg.lensing, "oversample_near_critical", 1),
                         trace=plan.trace)
    t2 = c()
    cube = ifu.psf_stage(scene.cube, plan, crop=True)
    t3 = c()
    setup = ifu.IFUSetup(model=plan.model, grid=plan.grid, psf=plan.psf, n=plan.sampling.n, window=plan.window,
                         line_waves=plan.line_waves, ratio_offsets=scene.ratio_offsets, lens=plan.lens,
                         field_trace=None if plan.trace is None else plan.trace.crop(plan.sampling.pad, plan.sampling.n))
    totals = lineflux.analytic_line_totals(setup.model, cfg.lines, ratio_offsets=setup.ratio_offsets)
    ifu._check_fov(cfg, cube, totals, setup.n)
    nz = ifu._noise_stage(cfg, cube, setup)
    t4 = c()
    ifu._truth(cfg, setup, cube, totals, nz)
    t5 = c()
    return {"plan": t1 - t0, "render": t2 - t1, "psf": t3 - t2, "noise": t4 - t3, "truth": t5 - t4}


def stage_table(variants: dict, repeats: int, ref: str = "unlensed") -> None:
    """Median CPU time of each stage (alternating rounds after one warm-up each), and each stage's ratio to
    ``ref``'s with the field-pixel ratio for comparison."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cfg in variants.values():
            _stages(cfg)
        runs = {k: [] for k in variants}
        for _ in range(repeats):
            for k, cfg in variants.items():
                gc.disable()
                try:
                    runs[k].append(_stages(cfg))
                finally:
                    gc.enable()
        fields = {k: _build(cfg).data.shape[1] for k, cfg in variants.items()}
    names = ("plan", "render", "psf", "noise", "truth")
    med = {k: {x: statistics.median(r[x] for r in rs) for x in names} for k, rs in runs.items()}
    print("  stages, CPU ms (ratio to " + ref + "); field pixels ratio")
    print(f"  {'':20s} " + " ".join(f"{x:>14s}" for x in names) + f" {'pixels':>7s}")
    for k, m in med.items():
        cells = " ".join(f"{1e3 * m[x]:6.1f} (x{m[x] / med[ref][x]:4.1f})" for x in names)
        print(f"  {k:20s} {cells} x{(fields[k] / fields[ref]) ** 2:5.2f}")


def describe(variants: dict, med: dict, ref: str = "unlensed") -> None:
    """Field, mu at the image of the source centre, flux and CPU time per field pixel, relative to ``ref``."""
    cubes = {k: _build(cfg) for k, cfg in variants.items()}
    n0, f0 = cubes[ref].data.shape[1] * cubes[ref].data.shape[2], float(np.nansum(cubes[ref].data))
    print(f"  {'':20s} {'field':>9s} {'mu':>5s} {'mu_t':>5s} {'mu_r':>5s} {'area':>5s} {'flux':>5s} "
          f"{'CPU/pixel':>9s}")
    for k, c in cubes.items():
        n = c.data.shape[1] * c.data.shape[2]
        t = c.truth
        mu = [t.get(q, 1.0) for q in ("mu", "mu_t", "mu_r")]
        print(f"  {k:20s} {c.data.shape[2]:4d}^2 px {mu[0]:5.2f} {mu[1]:5.2f} {mu[2]:5.2f} x{n / n0:4.2f} "
              f"x{float(np.nansum(c.data)) / f0:4.2f} x{(med[k][1] / n) / (med[ref][1] / n0):8.2f}")


def _write_map(path, data, pixel_scale, n):
    from astropy.io import fits

    hdr = fits.Header()
    hdr["CRPIX1"] = hdr["CRPIX2"] = (n + 1) / 2.0
    hdr["CRVAL1"] = hdr["CRVAL2"] = 0.0
    hdr["CDELT1"] = hdr["CDELT2"] = pixel_scale / 3600.0
    fits.PrimaryHDU(data, hdr).writeto(path, overwrite=True)


def map_variants(tmp: Path) -> dict:
    from mockzgrad.physics.lensing import SIELens

    cfg = load_config(ROOT / "examples" / "lensed_niriss_z3.toml")
    lc = cfg.lensing
    sie = SIELens(lc.theta_e, lc.q, lc.pa, lc.centre_x, lc.centre_y)
    ps, n = 0.03, 301  # 9" x 9" maps on 0.03" pixels, north up, columns east
    t = (np.arange(n) - (n - 1) / 2.0) * ps
    ax, ay = sie.alpha(*np.meshgrid(t, t))
    _write_map(tmp / "ax.fits", ax, ps, n)
    _write_map(tmp / "ay.fits", ay, ps, n)
    maps = cfg.replace(**{"lensing.kind": "deflection_fits", "lensing.alpha_x_file": str(tmp / "ax.fits"),
                          "lensing.alpha_y_file": str(tmp / "ay.fits"), "lensing.alpha_redshift": cfg.galaxy.redshift,
                          "lensing.z_lens": None})
    return {"unlensed": cfg.replace(**{"lensing.kind": "none"}), "SIE": cfg, "deflection maps": maps}


def _report(title, med, ref="unlensed"):
    print(title)
    print(f"  {'':20s} {'wall':>9s} {'ratio':>6s} {'CPU':>9s} {'ratio':>6s}")
    for k, (w, c) in med.items():
        print(f"  {k:20s} {1e3 * w:6.1f} ms x{w / med[ref][0]:5.2f} {1e3 * c:6.1f} ms x{c / med[ref][1]:5.2f}")


def _profile(cfg, n=5):
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        _build(cfg)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(30)
    print(s.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--only", choices=("flagship", "map"))
    ap.add_argument("--stages", action="store_true", help="also time each stage (plan, render, psf, noise, truth)")
    ap.add_argument("--lens-cpu", action="store_true", help="also time the lens evaluations per build")
    args = ap.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.only in (None, "flagship"):
        v = flagship_variants()
        med = alternate(v, args.repeats)
        _report("1. flagship cube (target: lensed < 2x unlensed)", med)
        describe(v, med)
        if args.stages:
            stage_table(v, args.repeats)
        if args.lens_cpu:
            lens_cpu({k: c for k, c in v.items() if k != "unlensed"}, args.repeats)
        if args.profile:
            _profile(v["mu 3 os_crit 3"])
    if args.only in (None, "map"):
        with tempfile.TemporaryDirectory() as d:
            v = map_variants(Path(d))
            _report("2. NIRISS-like mock, 0.03\" deflection maps (target < 0.5 s)", alternate(v, args.repeats))
            if args.stages:
                stage_table(v, args.repeats)
            if args.lens_cpu:
                lens_cpu({k: c for k, c in v.items() if k != "unlensed"}, args.repeats)
            if args.profile:
                _profile(v["deflection maps"])
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
