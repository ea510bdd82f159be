"""Command-line interface: a thin layer over the Python API.

Every user mistake (a :class:`~mockzgrad.errors.MockzgradError`) is printed
as one line on stderr and the process exits with status 2, without a
traceback. Nothing in the package imports this module.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from . import __version__
from .errors import ConfigError, DataError, MockzgradError, MockzgradWarning
from .fileio import check_output_dir, check_output_path
from .cliargs import Parser as _Parser
from .cliargs import check_suffix as _check_suffix
from .cliargs import degree as _degree
from .cliargs import harden as _harden

__all__ = ["main", "build_parser"]


def _cmd_calibrations(args) -> int:
    from .physics import calibrations

    sets = calibrations.available_sets()
    if args.set:
        unknown = [name for name in args.set if name not in sets]
        if unknown:
            from .errors import CalibrationError

            raise CalibrationError(f"--set {', '.join(map(repr, unknown))}: unknown calibration set; "
                                   f"available: {', '.join(sets)}")
        sets = [name for name in sets if name in args.set]
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
    from .config import config_to_dict, dumps_toml, load_config, read_toml, x_resolution
    from .source.galaxy import resolve_galaxy

    if isinstance(read_toml(args.config, "config file")[0].get("suite"), dict):  # a suite file has [suite]
        return _check_suite(args.config)
    cfg = load_config(args.config)
    model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    plan = _resolve_like_cube(cfg)
    print(f"# {args.config}: valid")
    print(dumps_toml(config_to_dict(cfg)), end="")
    print("\n# resolved")
    print(f"# kpc_per_arcsec = {model.kpc_per_arcsec:.4f}")
    print(f"# r_eff = {model.r_eff:.3f} kpc = {model.r_eff_arcsec:.4f} arcsec")
    slitstep = cfg.instrument.kind == "slitstep"
    print(f"# 2 r_eff / psf_fwhm = {x_resolution(cfg):.3f}" + (" (telescope PSF alone)" if slitstep else ""))
    if slitstep:  # what the cube's truth and curves use: the effective kernel's FWHM along the major axis
        from .observation.slitstep import effective_resolution
        res = effective_resolution(cfg)
        print(f"# 2 r_eff / FWHM of the effective kernel (telescope PSF x shutter x pixels; the cube's "
              f"x_resolution) = {res['x_resolution']:.3f} (FWHM along the major axis {res['psf_fwhm_along']:.3f}\")")
    print(f"# z0 = {model.z0:.4f}{' (automatic)' if model.z0_auto else ''}; "
          f"common validity range {list(model.z_valid_range)}")
    if plan:
        print(f"# {plan}")
    return 0


def _check_suite(path: str) -> int:
    """``check`` of a suite file: every check ``mockzgrad suite`` runs before its first mock."""
    from .config import dumps_toml
    from .suites.recipes import check_recovery
    from .suites.spec import load_suite

    spec = load_suite(path)
    recipe = check_recovery(spec.recovery, spec.base_dir)
    plan = _resolve_like_cube(spec.mock(0).mock_config())
    print(f"# {path}: valid suite")
    try:
        print(dumps_toml(spec.to_dict()), end="")
    except ConfigError:  # arrays of tables (e.g. grism exposures), which the small TOML writer does not write
        print(json.dumps(spec.to_dict(), indent=1))
    print("\n# resolved")
    print(f"# {spec.n_mocks} mocks = {spec.grid_size} grid point(s) x {spec.n_mocks // spec.grid_size} "
          f"replicate(s)")
    print(f"# varied: {', '.join(spec.parameters) or 'nothing'}")
    print(f"# recipe: {recipe.recipe.name}")
    if plan:
        print(f"# mock 0: {plan}")
    return 0


def _resolve_like_cube(cfg) -> str:
    """Run every check ``mockzgrad cube`` runs before rendering, without rendering.

    The observation mode must exist; the generating set must determine every
    rendered line (the source model, shared by all modes); the mode's plan
    (spectral grid, PSF kernels, field) must be possible. Returns a one-line
    summary of the plan, or "" for a mode without a planner.
    """
    from .observation.modes import MODES
    from .source.lineflux import generating_system

    kind = cfg.instrument.kind
    if kind not in MODES:
        raise ConfigError(f"instrument.kind = {kind!r}; allowed: {', '.join(map(repr, MODES))}")
    generating_system(cfg.lines)
    planner = _planner(kind)
    if planner is None:
        return ""
    plan = planner(cfg)
    grid, sampling = getattr(plan, "grid", None), getattr(plan, "sampling", None)
    if grid is None or sampling is None:
        return f"{kind} plan: resolved"
    return (f"{kind} plan: {grid.edges_lo.size} channels, field {sampling.n} x {sampling.n} "
            f"spaxels of {sampling.pixel_scale:g} arcsec")


def _planner(kind: str):
    """The function that plans a mode without rendering it: ``observation.modes.PLANS`` when it exists."""
    from .observation import modes

    plans = getattr(modes, "PLANS", None)
    if plans is not None:
        return plans.get(kind)
    if kind == "ifu":
        from .observation.ifu import plan_ifu

        return plan_ifu
    if kind == "slitstep":
        from .observation.slitstep.plan import plan_slitstep

        return plan_slitstep
    return None


def _cmd_cube(args) -> int:
    from .config import load_config
    from .observation import observe

    check_output_path(args.output, args.overwrite)
    cfg = load_config(args.config)
    if cfg.instrument.kind == "grism":
        from .errors import ConfigError

        raise ConfigError(f"instrument.kind = 'grism' in {args.config}: slitless exposures are not a cube; "
                          "run `mockzgrad grism` (then `mockzgrad extract`)")
    if args.seed is not None:
        cfg = cfg.replace(seed=args.seed)
    if args.noise_free:
        cfg = cfg.replace(**{"noise.enabled": False})
    mock = observe(cfg)
    mock.write(args.output, overwrite=args.overwrite, include_noise_free=args.keep_noise_free,
               compress=args.compress)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB, BUNIT {mock.file_bunit}): "
          f"{mock.file_channels()} channels ({mock.data.shape[0]} with data) x {mock.data.shape[1]} x "
          f"{mock.data.shape[2]} spaxels; 2 r_eff / psf_fwhm = {mock.truth['x_resolution']:.3f}")
    if not args.compress and 2 * mock.data.shape[0] < mock.file_channels():
        print("  most channels are NaN gaps between the line windows: --compress stores them almost free")
    if cfg.lensing is not None:
        _write_lens(cfg, mock, args.output, args.lens_out, args.overwrite)
    return 0


def _write_lens(cfg, mock, output: str, lens_out: str | None, overwrite: bool) -> None:
    """The observer's lens model (``lensing.observer_model``) on the product's grid, beside it."""
    from .products.lens import lens_path_for, observer_lens

    path = lens_out or lens_path_for(output)
    observer_lens(cfg, mock.data.shape[-2:], mock.pixel_scale).write(path, overwrite=overwrite)
    t = mock.truth
    print(f"wrote {path}: observer's lens model ({cfg.lensing.observer_model}); mu = {t.get('mu', float('nan')):.3f} "
          f"(mu_t {t.get('mu_t', float('nan')):.3f}, mu_r {t.get('mu_r', float('nan')):.3f}), "
          f"source-plane 2 r_eff / psf_fwhm = {t.get('x_resolution_source', float('nan')):.3f}")


def _cmd_lens_check(args) -> int:
    import numpy as np

    from .config import load_config, x_resolution
    from .observation.ifu import plan_ifu
    from .physics import lensing as pl
    from .products.grids import spatial_offsets

    cfg = load_config(args.config)
    if cfg.lensing is None:
        raise ConfigError(f"{args.config}: no [lensing] table (or kind = 'none'): the mock is not lensed")
    from .errors import FieldOfViewWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pl.CriticalCurveWarning)
        warnings.simplefilter("always", FieldOfViewWarning)
        plan = plan_ifu(cfg)
    m, s = plan.model, plan.sampling
    t = spatial_offsets(s.n, s.pixel_scale)
    tr = pl.lensing_truth(plan.lens, (m.x_offset, m.y_offset), m.r_eff_arcsec, cfg.instrument.psf.fwhm, t)
    xx, yy = np.meshgrid(t, t)
    mu = np.abs(plan.lens.magnification(xx, yy))
    print(f"lens {cfg.lensing.kind}: field {s.n} x {s.n} spaxels of {s.pixel_scale:g} arcsec "
          f"({s.n * s.pixel_scale:.2f} arcsec on a side"
          f"{'' if cfg.instrument.fov else ', automatic, lensing.field = ' + repr(cfg.lensing.field)})")
    for w in caught:  # the field rule's hint, or the images it leaves out
        if issubclass(w.category, FieldOfViewWarning):
            print(str(w.message))
    n_img = tr["n_images"]
    print(f"{n_img} image{'s' if n_img != 1 else ''} of the source centre in the field; the most magnified at "
          f"({tr['lens_image_x']:+.3f}, {tr['lens_image_y']:+.3f}) arcsec (east, north): mu = {tr['mu']:.3f}, "
          f"stretched mu_t = {tr['mu_t']:.3f} along PA {tr['pa_t']:.1f} deg and "
          f"mu_r = {tr['mu_r']:.3f} along PA {tr['pa_r']:.1f} deg")
    n_sub = cfg.lensing.oversample_near_critical
    crit = (f"critical curves cross the field: {tr['critical_pixels']} spaxels with det A <= 0 (inside a curve)"
            if tr["critical_pixels"] else "no critical curve in the field")
    print(f"{crit}; {int((mu > 20).sum())} spaxels with |mu| > 20, rendered with {n_sub} x {n_sub} sub-pixels")
    print(f"effective 2 r_eff / psf_fwhm: source plane {tr['x_resolution_source']:.3f} "
          f"(tangential {tr['x_resolution_t']:.3f}, radial {tr['x_resolution_r']:.3f}); unlensed "
          f"{x_resolution(cfg):.3f}")
    return 0


def _cmd_grism(args) -> int:
    from .config import load_config
    from .errors import ConfigError
    from .observation import observe

    check_output_path(args.output, args.overwrite)
    cfg = load_config(args.config)
    if cfg.instrument.kind != "grism":
        raise ConfigError(f"{args.config}: instrument.kind = {cfg.instrument.kind!r}; `mockzgrad grism` needs "
                          "'grism' (use `mockzgrad cube` for IFU cubes)")
    if args.seed is not None:
        cfg = cfg.replace(seed=args.seed)
    if args.noise_free:
        cfg = cfg.replace(**{"noise.enabled": False})
    mock = observe(cfg)
    mock.write(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(mock.exposures)} exposures, direct images "
          f"{', '.join(mock.direct) or 'none'} on {mock.n_direct} x {mock.n_direct} pixels of "
          f"{mock.pixel_scale:g} arcsec; 2 r_eff / psf_fwhm = {mock.truth['x_resolution']:.3f}")
    return 0


def _cmd_extract(args) -> int:
    from .products.grism import read_grism
    from .recovery.grism_extract import extract_line_maps, redshift_source

    check_output_path(args.output, args.overwrite)
    mock = read_grism(args.grism)
    z, fit = redshift_source(mock, args.redshift, args.redshift_guess)
    maps = extract_line_maps(mock, z, method=args.method, nii_ha=args.nii_ha, velocities=args.velocities,
                             clean_direct=args.clean_direct, redshift_fit=fit)
    print(f"grism redshift {maps.redshift:.5f} " + (f"(fitted from {z:g})" if fit else "(fixed)"))
    maps.truth = mock.truth  # travels with the product for suites; recovery never reads it
    maps.write(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: line maps {', '.join(maps.names)} ({args.method}) on "
          f"{maps.shape[1]} x {maps.shape[0]} pixels of {maps.pixel_scale:g} arcsec")
    return 0


def _cmd_recover(args) -> int:
    import numpy as np

    from .config import load_recipe
    from .errors import RecoveryError
    from .products.io import read_product
    from .recovery.pipeline import recover

    check_output_path(args.output, args.overwrite)
    if args.plot:
        from .recovery.figures import check_figure_path

        check_figure_path(args.plot)
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
    cube = read_product(args.cube)  # an IFU cube or line maps, by the file's extensions
    if cube.kind == "grism":
        from .errors import DataError

        raise DataError(f"{args.cube} holds grism exposures; extract line maps first (`mockzgrad extract`)")
    if args.psf_fwhm is not None and args.psf_image:
        raise ConfigError(f"--psf-fwhm {args.psf_fwhm} and --psf-image {args.psf_image}: give one PSF, not both")
    if args.psf_fwhm is not None or args.psf_image:
        from .config import PSFConfig
        from .observation.psf import psf_from_config

        # the observer's PSF, for cubes whose header does not describe one
        psf_cfg = PSFConfig(kind="image", file=args.psf_image) if args.psf_image else \
            PSFConfig(kind="gaussian", fwhm=args.psf_fwhm)
        header = psf_from_config(psf_cfg).to_header()
        if cube.kind == "linemaps":
            cube.psfs = {n: dict(header) for n in cube.names}
        else:
            cube.psf, cube.psf_image = header, None
    elif cube.kind == "ifu" and not cube.psf and getattr(cube, "psf_image", None) is None:
        from .errors import DataError

        raise DataError(f"{args.cube}: the file describes no PSF; pass --psf-fwhm ARCSEC (circular Gaussian "
                        "FWHM) or --psf-image FITS (a PSF image)")
    lens = None
    if args.lens:
        from .products.lens import read_lens

        lens = read_lens(args.lens)
    try:
        result = recover(cube, recipe, redshift=args.redshift, rng=np.random.default_rng(args.seed), lens=lens)
    except RecoveryError as exc:
        if args.redshift is None and "estimate the redshift" in str(exc):  # real cubes carry no redshift
            raise RecoveryError(f"{args.cube}: cannot identify the brightest line to estimate the redshift; "
                                "pass --redshift Z (the systemic redshift)") from None
        raise
    result.write_json(args.output, overwrite=args.overwrite)
    if args.plot:
        from .recovery.figures import plot_profile

        plot_profile(result, args.plot, truth=getattr(cube, "truth", None) or None)
    if result.status == "ok":
        print(f"{args.cube}: grad_z = {result.grad_z:+.4f} (+{result.grad_z_hi - result.grad_z:.4f} "
              f"-{result.grad_z - result.grad_z_lo:.4f}) dex/kpc, Method {result.method}, "
              f"{sum(1 for b in result.bins if b.get('valid'))} bins; wrote {args.output}")
        alone = [f"{k[3:]} {g['grad_z']:+.4f} +-{g.get('grad_z_err', float('nan')):.4f}"
                 for k, g in result.gradients.items() if k.startswith("II:") and g.get("grad_z") is not None]
        if alone:  # each diagnostic alone (Method II's inversions), as some papers report them
            print(f"  per diagnostic (dex/kpc): {'; '.join(alone)}")
        sectors = [f"{k[7:]} deg {g['grad_z']:+.4f} ({g.get('n_bins', 0)} bins)"
                   for k, g in result.sector_gradients.items() if g.get("grad_z") is not None]
        if sectors:  # binning.sectors on: the same fit on each azimuth range's bins
            print(f"  per sector (dex/kpc): {'; '.join(sectors)}")
    else:
        print(f"{args.cube}: no gradient ({result.reason}); wrote {args.output}")
    return 0


def _cmd_suite(args) -> int:
    from pathlib import Path

    from .suites.store import ResultsStore
    from .suites.suite import load_suite, run_suite

    _check_suite_outputs(args)
    spec = load_suite(args.suite)
    executor = _suite_executor(args)
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
    _check_suite_failures(spec, run)
    return 0


def _suite_executor(args) -> str:
    """--executor, --dask and --scheduler as one executor; contradictory choices refused."""
    wanted = "dask" if (args.dask or args.scheduler) else None
    if wanted and args.executor not in (None, "dask"):
        given = "--scheduler" if args.scheduler else "--dask"
        raise ConfigError(f"--executor {args.executor} with {given}: a scheduler runs mocks on dask; "
                          "drop one of them (or use --executor dask)")
    return wanted or args.executor or "local"


def _check_suite_failures(spec, run) -> None:
    """A suite whose mocks mostly (> 50 %) failed is an error: count and the first error."""
    n_done = run.n_ok + run.n_failed
    if run.n_failed and 2 * run.n_failed > n_done:
        index, error = run.first_error or (None, "")
        raise DataError(f"suite {spec.name!r}: {run.n_failed} of {n_done} mocks failed; first error "
                        f"(mock {index}): {' '.join(str(error).split())}")


def _check_suite_outputs(args) -> None:
    """The output folder (and its results.sqlite) and the export path, checked before the run."""
    from pathlib import Path

    out = check_output_dir(args.output)
    db = out / "results.sqlite"
    if db.exists() and not db.is_file():
        raise DataError(f"output folder {args.output!r}: {str(db)!r} exists and is not a file; "
                        "move it away or give another folder")
    if args.export:
        from .suites.store import _EXPORT_FORMATS

        ext = Path(args.export).suffix.lower()
        if ext not in _EXPORT_FORMATS:
            raise ConfigError(f"--export {args.export!r}: extension {ext or '(none)'!r}; allowed: "
                              + ", ".join(_EXPORT_FORMATS))
        check_output_path(args.export, overwrite=True)


def _cmd_curves(args) -> int:
    from .corrections.curves import derive_curves, suite_provenance
    from .plots import plot_curves, plot_surface
    from .suites.store import load_results_table

    _check_suffix("-o/--output", args.output, (".ecsv",))
    check_output_path(args.output, args.overwrite)
    if args.plot:
        from .plots import _check_path

        _check_path(args.plot)
    from pathlib import Path

    from .corrections.summary import refusal, summary_lines
    from .corrections.transfer import fit_transfer

    transfer_out = args.transfer or str(Path(args.output).with_name(Path(args.output).stem + "_transfer.json"))
    _check_suffix("--transfer", transfer_out, (".json",))
    check_output_path(transfer_out, args.overwrite)
    table, meta = load_results_table(args.results)
    from .corrections.calibration_range import choose_mocks

    columns = {"x_resolution": args.x_column} if args.x_column else None
    provenance = suite_provenance(meta, args.results)
    # mocks with much line flux from where Z(r) leaves the calibrations' range may measure the range, not the
    # resolution: left out by default (corrections.calibration_range)
    table, left_out, tf = choose_mocks(table, args.max_outside_flux, args.outside_range, columns=columns,
                                       provenance=provenance)
    print(left_out.describe())
    provenance = {**provenance, "calibration_range": left_out.as_dict()}
    curves = derive_curves(table, provenance=provenance, degree=args.degree, columns=columns)
    try:
        tf = fit_transfer(table, provenance=provenance, columns=columns) if tf is None else tf
    except DataError as exc:
        tf = None
        print(f"  no transfer function: {exc}")
    print("\n".join(summary_lines(curves, tf)))
    why = refusal(curves, tf)
    if why and not args.force:
        raise DataError(f"{why}; no correction written (--force writes it anyway)")
    curves.write(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: ratio curves for |grad_z| = "
          f"{', '.join(f'{g:g}' for g in curves.abs_grads(curves.signs[0]))} dex/kpc ({', '.join(curves.signs)})"
          + (" (FORCED)" if why else ""))
    if tf is not None:
        tf.write(transfer_out, overwrite=args.overwrite)
        print(f"wrote {transfer_out}: transfer function {tf.structure.label()}" + (" (FORCED)" if why else ""))
    if args.plot:
        plot_curves(curves, args.plot, table=table)
        print(f"wrote {args.plot}")
        if curves.has_surface:
            p = Path(args.plot)
            surf = p.with_name(p.stem + "_surface" + p.suffix)
            plot_surface(curves, surf)
            print(f"wrote {surf}")
        if tf is not None:
            from .plots import plot_transfer

            tf_plot = Path(args.plot).with_name(Path(args.plot).stem + "_transfer" + Path(args.plot).suffix)
            plot_transfer(tf, tf_plot, table=table, columns=columns)
            print(f"wrote {tf_plot}")
    return 0


def _cmd_correct(args) -> int:
    import numpy as np

    from .corrections.correct import DEFAULT_COLUMNS, correct_table, read_gradient_table, write_table
    from .corrections.curves import CorrectionCurves

    _check_suffix("-o/--output", args.output, (".csv", ".ecsv"))
    check_output_path(args.output, args.overwrite)
    if args.plot:
        from .plots import _check_path

        _check_path(args.plot)
    if not (args.curves or args.transfer):
        raise ConfigError("correct needs --curves (ratio curves ECSV) and/or --transfer (transfer-function JSON)")
    curves = CorrectionCurves.read(args.curves) if args.curves else None
    tf = None
    if args.transfer:
        from .corrections.transfer import TransferFunction

        tf = TransferFunction.read(args.transfer)
    table = read_gradient_table(args.gradients)
    from .corrections.columns import check_recipe

    prov = curves.provenance if curves is not None else tf.provenance
    check_recipe(table, (prov or {}).get("recipe"), force=args.force_recipe,
                 where=f"gradients table {args.gradients!r}")
    columns = dict(DEFAULT_COLUMNS)
    for item in args.column or []:
        if "=" not in item:
            raise ConfigError(f"--column {item!r}: expected ROLE=NAME, roles: {', '.join(DEFAULT_COLUMNS)}")
        role, name = item.split("=", 1)
        columns[role] = name
    out = table
    if curves is not None:
        out = correct_table(out, curves, x=args.x, columns=columns, sign=args.sign,
                            rng=np.random.default_rng(args.seed))
    if tf is not None:
        from .corrections.posterior import correct_with_transfer

        post = correct_with_transfer(table, tf, x=args.x, columns=columns, prior=args.prior,
                                     prior_range=_prior_range(args.prior_range))
        out = post if curves is None else _with_columns(out, post, "grad_post", "mockzgrad_transfer")
    write_table(out, args.output, overwrite=args.overwrite)
    for col, what in (("flag", "ratio-curve"), ("grad_post_flag", "transfer-function")):
        if col in out.colnames:
            n_flag = int(np.sum(np.asarray(out[col]) != "ok"))
            print(f"{what} correction: {n_flag} of {len(out)} rows flagged (column {col!r})")
    if tf is not None:
        print(f"prior on intrinsic gradients: {out.meta['mockzgrad_transfer']['prior']}")
    print(f"wrote {args.output}: {len(out)} gradients corrected")
    if args.plot:
        from .plots import plot_corrections

        plot_corrections(out, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _with_columns(out, other, prefix: str, meta_key: str):
    """``out`` with the columns of ``other`` starting with ``prefix`` and its meta entry ``meta_key``."""
    for name in other.colnames:
        if name.startswith(prefix):
            out[name] = other[name]
    out.meta[meta_key] = other.meta[meta_key]
    return out


def _prior_range(text):
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--prior-range {text!r}; allowed 'lo:hi' in dex/kpc, e.g. -0.3:0.3") from None
    return lo, hi


def _cmd_demo(args) -> int:
    from .demo import run_demo

    check_output_dir(args.outdir)
    paths = run_demo(args.outdir, workers=args.workers, progress=not args.no_progress)
    print("demo finished; outputs:")
    for label, path in paths.items():
        print(f"  {label:<22} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mockzgrad",
        description="Mock IFU, slitless grism and slit-stepping observations of disk galaxies with "
                    "metallicity gradients, their recovery, and beam-smearing corrections.",
    )
    parser.add_argument("--version", action="version", version=f"mockzgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_information_commands(sub)
    _add_observation_commands(sub)
    _add_recovery_commands(sub)
    _add_suite_commands(sub)
    return _harden(parser)


def _add_information_commands(sub) -> None:
    """Commands that read and check inputs."""
    p = sub.add_parser("calibrations", help="list calibration sets, diagnostics, ranges, references")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--set", nargs="*", help="only these sets")
    p.set_defaults(func=_cmd_calibrations)

    p = sub.add_parser("check", help="validate a configuration or suite file and print it resolved")
    p.add_argument("config", help="TOML configuration, or a suite TOML (detected by its [suite] table)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("presets", help="instrument presets: name, kind, status, sources")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_presets)


def _add_observation_commands(sub) -> None:
    """Commands that observe one mock."""
    p = sub.add_parser("cube", help="build one mock cube (IFU or slit-stepped) and write it as FITS")
    p.add_argument("config", help="TOML configuration")
    p.add_argument("-o", "--output", required=True, help="output FITS file")
    p.add_argument("--seed", type=int, help="override the configuration's seed")
    p.add_argument("--noise-free", action="store_true", help="write the cube without noise")
    p.add_argument("--keep-noise-free", action="store_true",
                   help="also store the noise-free cube as an extension")
    p.add_argument("--compress", action="store_true",
                   help="tile-compress the arrays (lossless GZIP; NaN gap channels then cost almost nothing)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--lens-out", help="lensed mocks: the observer's lens model file "
                                      "(default: beside the output, <stem>_lens.fits)")
    p.set_defaults(func=_cmd_cube)

    p = sub.add_parser("lens-check", help="magnification, stretch, critical curves and effective x of a lensed mock")
    p.add_argument("config", help="TOML configuration with a [lensing] table")
    p.set_defaults(func=_cmd_lens_check)

    p = sub.add_parser("grism", help="build one mock slitless grism observation and write it as FITS")
    p.add_argument("config", help="TOML configuration with instrument.kind = 'grism'")
    p.add_argument("-o", "--output", required=True, help="output FITS file")
    p.add_argument("--seed", type=int, help="override the configuration's seed")
    p.add_argument("--noise-free", action="store_true", help="write the exposures without noise")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_grism)

    p = sub.add_parser("extract", help="extract line maps (with variance) from grism exposures")
    p.add_argument("grism", help="FITS file of grism exposures (`mockzgrad grism`)")
    p.add_argument("-o", "--output", required=True, help="output line-map FITS file")
    p.add_argument("--method", choices=["isophote", "joint"], default="joint",
                   help="per-exposure isophote de-blending (Wang et al. 2017) or joint inversion (default)")
    p.add_argument("--redshift", type=float, help="fix the grism redshift (default: fitted, starting from "
                                                  "--redshift-guess or the file's catalogue redshift ZCAT)")
    p.add_argument("--redshift-guess", type=float, help="start of the grism redshift fit")
    p.add_argument("--nii-ha", type=float, default=0.05, help="[NII]6585/Halpha inside the Halpha blend map")
    p.add_argument("--velocities", choices=["none", "rotation"], default=None,
                   help="line-of-sight velocities in the joint model: none (default) or a fitted rotation field "
                        "(~2-3x the time; docs/modes.md)")
    p.add_argument("--clean-direct", type=int, default=0, metavar="N",
                   help="joint method: re-solve N times with continuum templates from the direct images minus the "
                        "line maps (N = 3 keeps line totals within ~1 %% at EW ~100 A; default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_extract)


def _add_recovery_commands(sub) -> None:
    """Commands that measure gradients."""
    p = sub.add_parser("recover", help="measure the metallicity gradient of a cube or line maps, as a recipe does")
    p.add_argument("cube", help="FITS cube (a mockzgrad mock, a JWST NIRSpec/MIRI s3d cube or an ESO KMOS/MUSE "
                                "cube) or line maps (`mockzgrad extract`)")
    p.add_argument("-o", "--output", required=True, help="result JSON")
    p.add_argument("--recipe", default="lee2026", help="shipped recipe name or a recipe TOML file")
    p.add_argument("--method", choices=["I", "II", "flux"], help="override the recipe's method")
    p.add_argument("--binning", choices=["annuli", "fixed_annuli", "grown_annuli", "spaxels", "voronoi"],
                   help="override the recipe's binning")
    p.add_argument("--gradient-fit", choices=["analytic", "emcee"], help="override the gradient fit")
    p.add_argument("--redshift", type=float, help="systemic redshift (default: from the brightest line)")
    p.add_argument("--psf-fwhm", type=float, metavar="ARCSEC",
                   help="circular Gaussian PSF FWHM, arcsec (overrides or supplies the header's PSF)")
    p.add_argument("--psf-image", metavar="FITS",
                   help="PSF image (pixel scale from PIXSCALE or its WCS; overrides or supplies the header's PSF)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samplers (emcee, bootstrap)")
    p.add_argument("--plot", help="radial-profile figure (.png or .pdf)")
    p.add_argument("--lens", metavar="LENS.fits",
                   help="the observer's lens model (LENS file) for a lensed recipe ([lensing] use = true)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result JSON")
    p.set_defaults(func=_cmd_recover)

    p = sub.add_parser("budget", help="flattening budget: the gradient re-measured switching on one effect at a time")
    p.add_argument("config", help="mock configuration TOML")
    p.add_argument("-o", "--output", default="budget", help="output folder (budget.ecsv, budget.png)")
    p.add_argument("--recipe", default="lee2026", help="shipped recipe name or a recipe TOML file")
    p.add_argument("--realisations", type=int, default=5, help="noise realisations of the last step (default 5)")
    p.add_argument("--no-alternatives", action="store_true", help="skip (f) methods, (g) recipes, (h) gating lines")
    p.set_defaults(func=_cmd_budget)


#: The default of ``curves --max-outside-flux`` as its help prints it (= corrections.calibration_range.
#: MAX_OUTSIDE_FLUX, tested; not imported here: the corrections package would slow every command's start by 0.6 s).
_MAX_OUTSIDE_FLUX_HELP = "0.05"


def _add_suite_commands(sub) -> None:
    """Commands that run many mocks and turn them into corrections."""
    p = sub.add_parser("suite", help="run a suite of mocks (resumable) into an output folder")
    p.add_argument("suite", help="suite TOML file")
    p.add_argument("-o", "--output", required=True, help="output folder (results.sqlite, cubes/)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--executor", choices=["local", "dask", "serial"], default=None,
                   help="where mocks run (default: local processes; dask needs the dask extra)")
    p.add_argument("--dask", action="store_true", help="run on a dask LocalCluster (pip install 'mockzgrad[dask]')")
    p.add_argument("--scheduler", help="address of an existing dask scheduler (needs the dask extra)")
    p.add_argument("--new", action="store_true",
                   help="start over in a folder that holds another suite (the old results are kept aside)")
    p.add_argument("--retry-failed", action="store_true", help="run failed mocks again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--export",
                   help="also export the results (.csv, .ecsv; .parquet needs pip install 'mockzgrad[parquet]')")
    p.set_defaults(func=_cmd_suite)

    p = sub.add_parser("curves", help="beam-smearing correction curves from suite results")
    p.add_argument("results", help="suite output folder, results.sqlite, or an exported table")
    p.add_argument("-o", "--output", required=True, help="curves ECSV file")
    p.add_argument("--degree", default="auto", type=_degree, help="polynomial degree or 'auto' (BIC, 1-4)")
    p.add_argument("--x-column", help="results column used as x (default x_resolution; e.g. x_resolution_source "
                                      "for lensed suites, x_resolution_geomean)")
    p.add_argument("--max-outside-flux", type=float, metavar="FRAC",
                   help=f"share of a mock's line flux from where the intrinsic Z(r) leaves the calibrations' range "
                        f"(results column outside_flux_frac) above which --outside-range applies (default "
                        f"{_MAX_OUTSIDE_FLUX_HELP})")
    p.add_argument("--outside-range", choices=("auto", "leave-out", "keep"), default="auto",
                   help="mocks above that share: 'auto' (default) leaves them out (their measured gradient may "
                        "show the calibrations' range, not beam smearing; the correction then holds for the "
                        "|grad_z| of the mocks kept, per sign) unless the others alone cannot be corrected and all "
                        "together can; 'leave-out' always; 'keep' never")
    p.add_argument("--plot", help="figure of the curves (.png or .pdf); also <plot>_transfer.<ext>")
    p.add_argument("--transfer", help="transfer-function JSON (default: <output stem>_transfer.json)")
    p.add_argument("--force", action="store_true",
                   help="write the correction even when neither the ratio nor the transfer model describes the suite")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_curves)

    p = sub.add_parser("correct", help="correct measured gradients with correction curves")
    p.add_argument("gradients", help="CSV/ECSV table of measured gradients")
    p.add_argument("--curves", help="ratio curves ECSV from `mockzgrad curves` (per-|grad_z| correction)")
    p.add_argument("--transfer", help="transfer-function JSON from `mockzgrad curves` (posterior correction)")
    p.add_argument("--sign", default="auto", choices=("auto", "pooled", "positive", "negative"),
                   help="ratio curves used: auto (sign of the measured gradient when per-sign curves exist), "
                        "pooled, positive or negative")
    p.add_argument("--prior", default="uniform", choices=("uniform", "normal"),
                   help="prior on intrinsic gradients of the transfer-function correction (default: flat on "
                        "+- the suite's largest |grad_z|)")
    p.add_argument("--prior-range", help="range of the prior, lo:hi in dex/kpc")
    p.add_argument("-o", "--output", required=True, help="output table (.csv or .ecsv)")
    p.add_argument("--x", help="sample-wide 2 r_eff / PSF FWHM: a value (2.5) or a range (1.2:4.5)")
    p.add_argument("--column", action="append", metavar="ROLE=NAME",
                   help="map an input column, e.g. gradient=grad (roles: gradient, err_minus, err_plus, "
                        "x, r_eff, psf_fwhm, inclination, id)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo error propagation")
    p.add_argument("--plot", help="figure of observed vs corrected gradients")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--force-recipe", action="store_true",
                   help="apply curves made with another recipe than the table declares")
    p.set_defaults(func=_cmd_correct)

    p = sub.add_parser("plan", help="observing-strategy planner: small suites per setup and |grad_z|")
    p.add_argument("target", nargs="?", help="target TOML ([target])")
    p.add_argument("--setups", help="setups TOML ([[setup]] tables)")
    p.add_argument("-o", "--output", help="plan folder (plan.ecsv, plan.csv, plan.png, design_map.png, suites/)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--example", action="store_true", help="run the shipped example (z ~ 2 and z ~ 5 disks, IFU setups)")
    p.add_argument("--no-cache", action="store_true",
                   help="build every mock's noise-free cube anew at each depth (same tables, slower)")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("demo", help="quickstart suite -> curves -> correction of the Lee et al. 2026 table")
    p.add_argument("--outdir", default="mockzgrad-demo", help="output folder (default ./mockzgrad-demo)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_presets(args) -> int:
    from .observation import presets

    return presets.cli(args)


def _cmd_budget(args) -> int:
    from .budget.command import run_command

    return run_command(args)


def _cmd_plan(args) -> int:
    from .corrections import plan

    return plan.cli(args)


def _one_line(exc) -> str:
    """An error message on one line (library messages quoted in it may hold newlines)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


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
        print(f"mockzgrad: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mockzgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        import os

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as exc:
        if getattr(exc, "filename", None) is None:
            raise  # not about a path: a bug, keep the traceback
        print(f"mockzgrad: error: {exc.filename!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
