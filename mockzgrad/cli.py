"""Command-line interface: a thin layer over the Python API.

Every user mistake (a :class:`~mockzgrad.errors.MockzgradError`) is printed
as one line on stderr and the process exits with status 2, without a
traceback. Nothing in the package imports this module.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__
from .errors import MockzgradError, MockzgradWarning

__all__ = ["main", "build_parser"]


def _cmd_calibrations(args) -> int:
    from .physics import calibrations

    sets = calibrations.available_sets()
    if args.json:
        out = {}
        for name in sets:
            cs = calibrations.load_set(name)
            out[name] = {
                "reference": cs.reference,
                "diagnostics": {
                    d.name: {"key": d.key, "valid_range": list(d.valid_range), "status": d.status,
                             "usable": d.usable, "stand_in": d.stand_in, "sigma_ratio": d.sigma_ratio}
                    for d in cs.diagnostics.values()
                },
            }
        print(json.dumps(out, indent=1))
        return 0
    for name in sets:
        cs = calibrations.load_set(name)
        if args.set and name not in args.set:
            continue
        print(f"{name}: {cs.reference}")
        for d in cs.diagnostics.values():
            flags = []
            if d.stand_in:
                flags.append(f"stand-in: uses {d.stand_in.get('uses')} for {d.stand_in.get('for')}")
            if not d.usable:
                flags.append("NOT USABLE")
            if d.needs_logu:
                flags.append("needs log U")
            scatter = f" sigma={d.sigma_ratio:.2f} dex" if d.sigma_ratio else ""
            extra = f"  [{'; '.join(flags)}]" if flags else ""
            print(f"  {d.key:<16} {d.name:<8} Z in [{d.valid_range[0]:.2f}, {d.valid_range[1]:.2f}]"
                  f"  {d.status}{scatter}{extra}")
    print("Add a calibration: drop a JSON file in a directory listed in MOCKZGRAD_CALIBRATION_PATH "
          "(see calibration_curves/README.md).")
    return 0


def _cmd_check(args) -> int:
    from .config import config_to_dict, dumps_toml, load_config, x_resolution
    from .source.galaxy import resolve_galaxy

    cfg = load_config(args.config)
    model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    print(f"# {args.config}: valid")
    print(dumps_toml(config_to_dict(cfg)), end="")
    print("\n# resolved")
    print(f"# kpc_per_arcsec = {model.kpc_per_arcsec:.4f}")
    print(f"# r_eff = {model.r_eff:.3f} kpc = {model.r_eff_arcsec:.4f} arcsec")
    print(f"# 2 r_eff / psf_fwhm = {x_resolution(cfg):.3f}")
    print(f"# z0 = {model.z0:.4f}{' (automatic)' if model.z0_auto else ''}; "
          f"common validity range {list(model.z_valid_range)}")
    return 0


def _cmd_cube(args) -> int:
    from .config import load_config
    from .observation import observe

    cfg = load_config(args.config)
    if args.seed is not None:
        cfg = cfg.replace(seed=args.seed)
    if args.noise_free:
        cfg = cfg.replace(**{"noise.enabled": False})
    mock = observe(cfg)
    mock.write(args.output, overwrite=args.overwrite, include_noise_free=args.keep_noise_free)
    print(f"wrote {args.output}: {mock.data.shape[0]} channels x {mock.data.shape[1]} x "
          f"{mock.data.shape[2]} spaxels; 2 r_eff / psf_fwhm = {mock.truth['x_resolution']:.3f}")
    return 0


def _cmd_recover(args) -> int:
    import numpy as np

    from .config import load_recipe
    from .products.cube import read_cube
    from .recovery.pipeline import recover

    recipe = load_recipe(args.recipe)
    changes = {}
    if args.method:
        changes["metallicity.method"] = args.method
    if args.binning:
        changes["binning.scheme"] = args.binning
    if args.gradient_fit:
        changes["gradient.fit"] = args.gradient_fit
    if changes:
        recipe = recipe.replace(**changes)
    cube = read_cube(args.cube)
    if args.psf_fwhm is not None:
        from .config import PSFConfig
        from .observation.psf import psf_from_config

        # the observer's PSF, for cubes whose header does not describe one
        cube.psf = psf_from_config(PSFConfig(kind="gaussian", fwhm=args.psf_fwhm)).to_header()
    result = recover(cube, recipe, redshift=args.redshift, rng=np.random.default_rng(args.seed))
    result.write_json(args.output)
    if args.plot:
        from .recovery.figures import plot_profile

        plot_profile(result, args.plot)
    if result.status == "ok":
        print(f"{args.cube}: grad_z = {result.grad_z:+.4f} (+{result.grad_z_hi - result.grad_z:.4f} "
              f"-{result.grad_z - result.grad_z_lo:.4f}) dex/kpc, Method {result.method}, "
              f"{sum(1 for b in result.bins if b.get('valid'))} bins; wrote {args.output}")
    else:
        print(f"{args.cube}: no gradient ({result.reason}); wrote {args.output}")
    return 0


def _cmd_suite(args) -> int:
    from pathlib import Path

    from .suites.store import ResultsStore
    from .suites.suite import load_suite, run_suite

    spec = load_suite(args.suite)
    executor = "dask" if (args.dask or args.scheduler) else args.executor
    run = run_suite(spec, args.output, "mockzgrad.suites.job:run_mock", workers=args.workers, executor=executor,
                    scheduler=args.scheduler, progress=not args.no_progress, new=args.new,
                    retry_failed=args.retry_failed)
    print(f"suite {spec.name!r}: {run.n_ok} ok, {run.n_failed} failed, {run.n_skipped} already done, "
          f"{run.n_run} run in {run.elapsed_s:.1f} s; results in {Path(args.output) / 'results.sqlite'}")
    if args.export:
        with ResultsStore(Path(args.output) / "results.sqlite", readonly=True) as store:
            store.export(args.export, overwrite=True)
        print(f"exported {args.export}")
    if run.interrupted:
        print(f"interrupted by {run.interrupted}; re-run the same command to finish", file=sys.stderr)
        return 130 if run.interrupted == "SIGINT" else 143
    return 0


def _cmd_curves(args) -> int:
    from .corrections.curves import derive_curves, suite_provenance
    from .plots import plot_curves, plot_surface
    from .suites.store import load_results_table

    table, meta = load_results_table(args.results)
    degree = args.degree if args.degree == "auto" else int(args.degree)
    curves = derive_curves(table, provenance=suite_provenance(meta, args.results), degree=degree)
    curves.write(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: curves for |grad_z| = "
          f"{', '.join(f'{g:g}' for g in curves.abs_grads())} dex/kpc")
    for name, check in (curves.checks or {}).items():
        if isinstance(check, dict) and "flagged" in check:
            print(f"  check {name}: {'FLAGGED' if check['flagged'] else 'ok'}"
                  f"{' - ' + check['message'] if check.get('message') else ''}")
    if args.plot:
        plot_curves(curves, args.plot, table=table)
        print(f"wrote {args.plot}")
        if curves.has_surface:
            from pathlib import Path

            p = Path(args.plot)
            surf = p.with_name(p.stem + "_surface" + p.suffix)
            plot_surface(curves, surf)
            print(f"wrote {surf}")
    return 0


def _cmd_correct(args) -> int:
    import numpy as np

    from .corrections.correct import DEFAULT_COLUMNS, correct_table, read_gradient_table, write_table
    from .corrections.curves import CorrectionCurves

    curves = CorrectionCurves.read(args.curves)
    table = read_gradient_table(args.gradients)
    columns = dict(DEFAULT_COLUMNS)
    for item in args.column or []:
        if "=" not in item:
            from .errors import ConfigError

            raise ConfigError(f"--column {item!r}: expected ROLE=NAME, roles: {', '.join(DEFAULT_COLUMNS)}")
        role, name = item.split("=", 1)
        columns[role] = name
    out = correct_table(table, curves, x=args.x, columns=columns, rng=np.random.default_rng(args.seed))
    write_table(out, args.output, overwrite=args.overwrite)
    n_flag = int(np.sum(np.asarray(out["flag"]) != "ok")) if "flag" in out.colnames else 0
    print(f"wrote {args.output}: {len(out)} gradients corrected; {n_flag} flagged (see the 'flag' column)")
    if args.plot:
        from .plots import plot_corrections

        plot_corrections(out, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    paths = run_demo(args.outdir, workers=args.workers, progress=not args.no_progress)
    print("demo finished; outputs:")
    for label, path in paths.items():
        print(f"  {label:<22} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockzgrad",
        description="Mock IFU/grism observations of disk galaxies with metallicity gradients, "
                    "and beam-smearing corrections.",
    )
    parser.add_argument("--version", action="version", version=f"mockzgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("calibrations", help="list calibration sets, diagnostics, ranges, references")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--set", nargs="*", help="only these sets")
    p.set_defaults(func=_cmd_calibrations)

    p = sub.add_parser("check", help="validate a configuration file and print it resolved")
    p.add_argument("config", help="TOML configuration")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("cube", help="build one mock IFU cube and write it as FITS")
    p.add_argument("config", help="TOML configuration")
    p.add_argument("-o", "--output", required=True, help="output FITS file")
    p.add_argument("--seed", type=int, help="override the configuration's seed")
    p.add_argument("--noise-free", action="store_true", help="write the cube without noise")
    p.add_argument("--keep-noise-free", action="store_true",
                   help="also store the noise-free cube as an extension")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_cube)

    p = sub.add_parser("recover", help="measure the metallicity gradient of a cube, as a recipe does")
    p.add_argument("cube", help="FITS cube with DATA and VAR extensions")
    p.add_argument("-o", "--output", required=True, help="result JSON")
    p.add_argument("--recipe", default="lee2026", help="shipped recipe name or a recipe TOML file")
    p.add_argument("--method", choices=["I", "II", "flux"], help="override the recipe's method")
    p.add_argument("--binning", choices=["annuli", "fixed_annuli", "grown_annuli", "spaxels", "voronoi"],
                   help="override the recipe's binning")
    p.add_argument("--gradient-fit", choices=["analytic", "emcee"], help="override the gradient fit")
    p.add_argument("--redshift", type=float, help="systemic redshift (default: from the brightest line)")
    p.add_argument("--psf-fwhm", type=float, metavar="ARCSEC",
                   help="circular Gaussian PSF FWHM, arcsec (overrides or supplies the header's PSF)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samplers (emcee, bootstrap)")
    p.add_argument("--plot", help="radial-profile figure (.png or .pdf)")
    p.set_defaults(func=_cmd_recover)

    p = sub.add_parser("suite", help="run a suite of mocks (resumable) into an output folder")
    p.add_argument("suite", help="suite TOML file")
    p.add_argument("-o", "--output", required=True, help="output folder (results.sqlite, cubes/)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--executor", choices=["local", "dask", "serial"], default="local")
    p.add_argument("--dask", action="store_true", help="run on a dask LocalCluster")
    p.add_argument("--scheduler", help="address of an existing dask scheduler")
    p.add_argument("--new", action="store_true",
                   help="start over in a folder that holds another suite (the old results are kept aside)")
    p.add_argument("--retry-failed", action="store_true", help="run failed mocks again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--export", help="also export the results (.csv, .ecsv, .parquet)")
    p.set_defaults(func=_cmd_suite)

    p = sub.add_parser("curves", help="beam-smearing correction curves from suite results")
    p.add_argument("results", help="suite output folder, results.sqlite, or an exported table")
    p.add_argument("-o", "--output", required=True, help="curves ECSV file")
    p.add_argument("--degree", default="auto", help="polynomial degree or 'auto' (BIC, 1-4)")
    p.add_argument("--plot", help="figure of the curves (.png or .pdf)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_curves)

    p = sub.add_parser("correct", help="correct measured gradients with correction curves")
    p.add_argument("gradients", help="CSV/ECSV table of measured gradients")
    p.add_argument("--curves", required=True, help="curves ECSV from `mockzgrad curves`")
    p.add_argument("-o", "--output", required=True, help="output table (.csv or .ecsv)")
    p.add_argument("--x", help="sample-wide 2 r_eff / PSF FWHM: a value (2.5) or a range (1.2:4.5)")
    p.add_argument("--column", action="append", metavar="ROLE=NAME",
                   help="map an input column, e.g. gradient=grad (roles: gradient, err_minus, err_plus, "
                        "x, r_eff, psf_fwhm, inclination, id)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo error propagation")
    p.add_argument("--plot", help="figure of observed vs corrected gradients")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_correct)

    p = sub.add_parser("demo", help="quickstart suite -> curves -> correction of the Lee et al. 2026 table")
    p.add_argument("--outdir", default="mockzgrad-demo", help="output folder (default ./mockzgrad-demo)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def _format_warning(message, category, filename, lineno, line=None):
    return f"mockzgrad: warning: {message}\n"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    warnings.simplefilter("default", MockzgradWarning)
    try:
        return args.func(args) or 0
    except MockzgradError as exc:
        print(f"mockzgrad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mockzgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        import os

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
