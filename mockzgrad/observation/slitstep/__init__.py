"""Slit-stepping observation mode (NIRSpec MSA, MSA-3D-like): ``instrument.kind = "slitstep"``.

Stages (:func:`build_slitstep_cube`), each a pure function of the config and the seed:

1. plan (:mod:`.plan`): fine sky grid (<= 0.02"), detector channels around
   each line inside the band and outside the gaps, pointings;
2. the source layer's noise-free, pre-PSF scene on the fine grid
   (:func:`mockzgrad.source.scene.render_scene`), with the Gaussian grating
   LSF folded into the line width;
3. telescope PSF per line, then per pointing the shutter mask, the
   intra-shutter wavelength shift and the detector rows (:mod:`.exposures`);
4. noise per exposure (Gaussian, constant sigma per detector pixel: given
   as ``noise.sigma`` or set so the reconstructed cube reaches ``noise.snr``;
   with ``noise.windows`` one sigma per detector channel, each channel taking
   the depth of its nearest line, :func:`channel_sigmas`);
5. the MSA-3D cube build (:mod:`.build`) of the noise-free and the noisy
   exposures, with the variance through the same operator; the noisy 2D
   spectra stay in the product (``store_spectra``) and :func:`rebuild_cube`
   rebuilds the cube from them (:mod:`.rebuild`);
6. the effective kernel (:mod:`.kernel`) in a ``PSF`` image extension, an
   elliptical Gaussian of its FWHMs in the header, the truth, and a
   catalogue-like imaging geometry (true PA and b/a plus
   ``catalog_pa_error``, ``catalog_axis_ratio_error``) for the observer.

Modelled: shutters and walls, steps and dithers, intra-shutter wavelength
shifts, slit (path) losses of the PSF and, optionally
(``pathloss_correct``), the observer's correction for a centred point
source, detector gaps, the median/mean combination. Not modelled: failed or short-circuited shutters, second-order
contamination, detector-level effects (1/f noise, flat field, cosmic
rays), real distortion maps, a path-loss correction for extended sources.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ... import __version__
from ...config import MockConfig, config_to_dict, dumps_toml
from ...errors import FieldOfViewWarning
from ...physics.lines import C_KMS
from ...products.cube import MockCube
from ...products.lens import lens_truth
from ...products.spectra2d import SlitSpectra
from ...source import lineflux
from ...source.continuum import continuum_cube
from ...source.scene import render_scene
from .. import noise
from .build import build_msa3d_cube, cube_geometry
from .exposures import expose, point_transmission, psf_stage, slit_rows
from .kernel import effective_kernel, gaussian_summary
from .plan import SlitstepPlan, plan_slitstep, snr_wavelength
from .rebuild import cube_from_spectra, rebuild_cube

__all__ = ["build_slitstep_cube", "plan_slitstep", "SlitstepPlan", "effective_kernel", "effective_resolution",
           "exposure_log", "channel_sigmas", "cube_from_spectra", "rebuild_cube"]

#: Pixel of the effective-kernel image, in cube pixels.
KERNEL_PIXEL_FRACTION = 0.125


def _rng(cfg: MockConfig, k: int) -> np.random.Generator:
    # child 0 = calibration scatter (as the IFU mode), child 1 = exposure noise
    return np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[k])


def _cube_offsets(geom):
    return np.meshgrid(-geom.x_cube, geom.y_cube)  # east = -x (x runs west along +column)


def _noise_level(cfg: MockConfig, plan: SlitstepPlan, clean: np.ndarray, unit_var: np.ndarray,
                 geom) -> tuple[float, int, np.ndarray]:
    """Per-exposure sigma (erg/s/cm^2 per detector pixel), S/N channel, r_eff mask of the cube."""
    model = plan.model
    xg, yg = _cube_offsets(geom)
    if plan.lens is not None:  # the r_eff ellipse in the source plane
        xg, yg = plan.lens.ray_shoot(xg, yg)
    mask = noise.ellipse_mask(xg, yg, a_arcsec=model.r_eff_arcsec, axis_ratio=model.axis_ratio, pa=model.pa,
                              x_offset=model.x_offset, y_offset=model.y_offset)
    finite = np.nan_to_num(clean)
    chan = noise.peak_channel(finite, plan.grid.centres, snr_wavelength(cfg, model))
    mask &= np.isfinite(clean[chan]) & np.isfinite(unit_var[chan])
    if cfg.noise.snr is None:
        return cfg.noise.sigma, chan, mask
    sigma_cube = noise.sigma_for_snr(finite[chan], mask, cfg.noise.snr)
    return sigma_cube / math.sqrt(float(np.median(unit_var[chan][mask]))), chan, mask


def _covered_lines(cfg: MockConfig, plan: SlitstepPlan) -> tuple[list, list]:
    """Lines whose whole window is in kept channels, and lines with none of it."""
    ss, kept = plan.ss, set(plan.grid.index.tolist())
    full, none = [], []
    for name, w in zip(cfg.lines.lines, plan.line_waves):
        lo = int(math.floor((w * (1.0 - plan.window / C_KMS) - ss.band[0]) / ss.dispersion))
        hi = int(math.ceil((w * (1.0 + plan.window / C_KMS) - ss.band[0]) / ss.dispersion))
        inside = [p in kept for p in range(lo, hi + 1)]
        (full if all(inside) else none if not any(inside) else []).append(name)
    return full, none


def _check_fov(cfg: MockConfig, plan: SlitstepPlan, conv: np.ndarray, geom, totals: dict, full: list) -> None:
    """Warn when the cube's footprint holds less than ``fov_flux_fraction`` of the covered lines' flux."""
    if not totals or len(full) + len(_covered_lines(cfg, plan)[1]) != len(cfg.lines.lines) or not full:
        return
    cp, t = plan.ss.cube_pixel, plan.offsets()  # the fine grid is square: same offsets on both axes
    y0, y1 = np.searchsorted(t, [-geom.y_cube.max() - 0.5 * cp, geom.y_cube.max() + 0.5 * cp])
    x0, x1 = np.searchsorted(t, [-geom.x_cube.max() - 0.5 * cp, geom.x_cube.max() + 0.5 * cp])
    inside = float(conv[:, y0:y1, x0:x1].sum()) / sum(totals[k] for k in full)
    frac = cfg.instrument.fov_flux_fraction
    if inside < frac:
        warnings.warn(f"the slit-stepped field ({geom.x_cube.size * cp:.2f} x {geom.y_cube.size * cp:.2f} arcsec) "
                      f"holds {100 * inside:.2f} % of the line flux; {100 * frac:.1f} % required "
                      "(instrument.fov_flux_fraction)", FieldOfViewWarning, stacklevel=3)


def _catalog(cfg: MockConfig, plan: SlitstepPlan) -> dict:
    ss, m = plan.ss, plan.model
    return {"pa": float(m.pa + ss.catalog_pa_error),
            "axis_ratio": float(min(max(m.axis_ratio + ss.catalog_axis_ratio_error, 0.05), 1.0)),
            "source": "imaging catalogue (mock: true values + instrument.slitstep.catalog_*_error)"}


def exposure_log(plan: SlitstepPlan) -> dict:
    """The observing log of the 63 (steps_disp x steps_cross) pointings, as MSA-3D data carry it.

    Columns, one row per pointing in the order of the exposures (dispersion
    step outer, cross step inner): ``pointing``; ``step_disp``,
    ``step_cross`` (indices); ``x_offset`` (along dispersion) and
    ``y_offset`` (along the slit), the shutter (slitlet) centre's offset
    from the field centre, arcsec; ``n_shutters``; ``shutter_open_disp``,
    ``shutter_open_slit``, arcsec; ``exptime``, s.
    """
    ss = plan.ss
    i, j = np.meshgrid(np.arange(ss.steps_disp), np.arange(ss.steps_cross), indexing="ij")
    i, j = i.ravel(), j.ravel()
    n = i.size
    return {"pointing": np.arange(n).tolist(), "step_disp": i.tolist(), "step_cross": j.tolist(),
            "x_offset": [float(v) for v in plan.x_steps[i]], "y_offset": [float(v) for v in plan.y_steps[j]],
            "n_shutters": [int(ss.n_shutters)] * n, "shutter_open_disp": [float(ss.shutter_open[0])] * n,
            "shutter_open_slit": [float(ss.shutter_open[1])] * n, "exptime": [float(ss.exptime_per_position)] * n}


def build_slitstep_cube(cfg: MockConfig, *, keep_noise_free: bool = True, use_numba: bool = True) -> MockCube:
    """Observe one mock by slit stepping and build its cube (the ``"slitstep"`` observation mode).

    Parameters
    ----------
    cfg : MockConfig
        ``instrument.kind = "slitstep"``; ``cfg.seed`` seeds every random draw.
    keep_noise_free : bool
        Keep the noise-free cube in the result.
    use_numba : bool
        Use the compiled render kernel (False: its numpy twin).

    Returns
    -------
    MockCube
        Cube on ``cube_pixel`` spaxels (axes (n_chan, ny, nx), dispersion
        along x), channels outside gaps only; ``psf_image`` holds the
        effective kernel and ``catalog`` the imaging geometry.
    """
    plan = plan_slitstep(cfg)
    ss = plan.ss
    scene = render_scene(plan.model, cfg.lines, plan.sampling, rng=_rng(cfg, 0), use_numba=use_numba,
                         lens=plan.lens, oversample_near_critical=getattr(cfg.lensing, "oversample_near_critical", 1))
    conv = psf_stage(scene.cube, plan)
    seen = conv
    if cfg.continuum is not None:  # the optional stellar continuum, through the same PSF (lines-only conv kept)
        seen = conv + psf_stage(continuum_cube(cfg.continuum, plan.model, cfg.lines, plan.sampling, lens=plan.lens),
                                plan)
    exposures, open_frac = expose(seen, plan)
    # the observer's point-source path-loss correction, per channel (signal and noise alike)
    corr = np.ones((1, 1, plan.grid.n_chan, 1))
    if ss.pathloss_correct:
        corr = corr / point_transmission(plan)[None, None, :, None]
    geom = cube_geometry(ss, plan.x_steps, plan.y_steps, slit_rows(ss), open_frac)
    clean, unit_var = build_msa3d_cube(exposures * corr, np.broadcast_to(corr**2, exposures.shape), open_frac,
                                       ss, geom)
    lcfg = cfg.lines
    totals = lineflux.analytic_line_totals(plan.model, lcfg, ratio_offsets=scene.ratio_offsets) \
        if lcfg.ratio_scatter in ("none", "per_mock") else {}
    full, not_covered = _covered_lines(cfg, plan)
    _check_fov(cfg, plan, conv, geom, totals, full)
    sigma_e, chan, mask = _noise_level(cfg, plan, clean, unit_var, geom)
    sig = channel_sigmas(cfg, plan, sigma_e)  # sigma_e, or one sigma per detector channel (noise.windows)
    sig4 = sig if np.ndim(sig) == 0 else sig[None, None, :, None]
    noisy = exposures
    if cfg.noise.enabled:
        noisy = exposures + sig4 * _rng(cfg, 1).standard_normal(exposures.shape)
    data, var = build_msa3d_cube(noisy * corr, np.broadcast_to(sig4**2 * corr**2, exposures.shape), open_frac,
                                 ss, geom)
    spectra = _spectra(plan, noisy, sig, open_frac, corr[0, 0, :, 0]) if ss.store_spectra else None
    return _product(cfg, plan, geom, scene, clean, data, var, totals, not_covered, sigma_e, chan, mask,
                    keep_noise_free, spectra)


def channel_sigmas(cfg: MockConfig, plan: SlitstepPlan, sigma_e: float):
    """Noise sigma per detector pixel of each channel under ``noise.windows`` (else ``sigma_e``).

    As in the IFU mode (:func:`mockzgrad.observation.noise.line_scales`): the
    ``snr_line`` keeps ``sigma_e`` (given as ``noise.sigma`` or set by
    ``noise.snr``), a line in a window with ``scale`` s gets ``sigma_e`` x s /
    (the ``snr_line`` scale), a ``sigma`` window its value (erg/s/cm^2 per
    detector pixel, the unit of ``noise.sigma`` in this mode), and every
    channel takes the sigma of its nearest line. The unit normal deviates
    are the same at every depth, so a window's noise is the no-window noise
    scaled.

    Returns
    -------
    float or ndarray, shape (n_chan,)
        ``sigma_e`` without windows, else one sigma per channel of ``plan.grid``.
    """
    if not cfg.noise.windows:
        return sigma_e
    waves = dict(zip(cfg.lines.lines, (float(w) for w in plan.line_waves)))
    sigmas = noise.line_scales(cfg.noise.windows, waves, cfg.noise.snr_line, float(sigma_e))
    return noise.channel_sigma(plan.grid.centres, waves, sigmas)


def _spectra(plan: SlitstepPlan, noisy: np.ndarray, sigma, open_frac: np.ndarray,
             pathloss: np.ndarray) -> SlitSpectra:
    """The uncorrected 2D spectra of the pointings, in the order of :func:`exposure_log`.

    ``sigma``: the noise sigma per detector pixel, a number or one per channel.
    """
    n_disp, n_cross, n_chan, n_rows = noisy.shape
    data = noisy.reshape(n_disp * n_cross, n_chan, n_rows)
    var = np.full(data.shape, float(sigma) ** 2) if np.ndim(sigma) == 0 else \
        np.broadcast_to((np.asarray(sigma, dtype=float) ** 2)[None, :, None], data.shape).copy()
    return SlitSpectra(data=data, variance=var, open_fraction=open_frac,
                       row_lo=float(slit_rows(plan.ss)[0]), row_pixel=plan.ss.detector_pixel,
                       edges_lo=plan.grid.edges_lo, edges_hi=plan.grid.edges_hi, pathloss=np.array(pathloss))


def _product(cfg, plan, geom, scene, clean, data, var, totals, not_covered, sigma_e, chan, mask,
             keep_noise_free, spectra=None) -> MockCube:
    ss = plan.ss
    pixel = KERNEL_PIXEL_FRACTION * ss.cube_pixel
    wave = snr_wavelength(cfg, plan.model)
    kernel = effective_kernel(plan.psf, ss, wave, pixel)
    summary = gaussian_summary(kernel, pixel)
    sigma_cube = math.sqrt(float(np.median(var[chan][mask]))) if mask.any() else float("nan")
    lcfg, r_eff = cfg.lines, plan.model.r_eff_arcsec
    truth = plan.model.truth()
    truth.update({
        "instrument_kind": "slitstep",
        "oversample": 1,
        **lineflux.lines_truth(lcfg, totals, scene.ratio_offsets),
        "noise_sigma": sigma_cube,
        "snr_target": cfg.noise.snr,
        "snr": noise.measured_snr(np.nan_to_num(clean[chan]), mask, sigma_cube) if mask.any() else float("nan"),
        "snr_channel_wave": float(plan.grid.centres[chan]),
        "seed": cfg.seed,
        "mockzgrad_version": __version__,
        **_resolution_truth(summary, plan.model.pa, r_eff),
        "telescope_psf_fwhm": cfg.instrument.psf.fwhm,
        "pixel_scale": ss.cube_pixel,
        "lsf_sigma": ss.lsf_sigma,
        "fov": geom.x_cube.size * ss.cube_pixel,
        "fov_slit": geom.y_cube.size * ss.cube_pixel,
        "noise_sigma_exposure": float(sigma_e),
        "n_pointings": int(ss.steps_disp * ss.steps_cross),
        "exptime_per_position": ss.exptime_per_position,
        "exptime_total": ss.exptime_total,
        "exptime_effective": ss.exptime_effective,
        "pathloss_correct": ss.pathloss_correct,
        "lines_not_covered": list(not_covered),
    })
    if cfg.continuum is not None:
        truth["continuum"] = config_to_dict(cfg.continuum)
    if plan.lens is not None:  # rendered flux over the intrinsic flux when every line is fully covered
        full = _covered_lines(cfg, plan)[0]
        ratio = float(scene.cube.sum()) / sum(totals.values()) if totals and len(full) == len(totals) else math.nan
        truth.update(lens_truth(plan.model, plan.lens, truth["psf_fwhm_along"], (geom.y_cube.size, geom.x_cube.size),
                                ss.cube_pixel, ratio))
    return MockCube(data=data, variance=var, edges_lo=plan.grid.edges_lo, edges_hi=plan.grid.edges_hi,
                    pixel_scale=ss.cube_pixel, psf=summary.to_header(), lsf_sigma=ss.lsf_sigma, truth=truth,
                    noise_free=clean if keep_noise_free else None, grid=plan.grid,
                    config_toml=_config_toml(cfg), psf_image=kernel, psf_image_pixel=pixel,
                    catalog=_catalog(cfg, plan), exposures=exposure_log(plan), spectra=spectra)


def effective_resolution(cfg: MockConfig) -> dict:
    """Resolution keys of a slit-stepping mock's truth without building it (``mockzgrad check``).

    The effective kernel (telescope PSF x shutter boxcar x detector pixel x
    resampling) at ``noise.snr_line``, as the cube's truth records it:
    ``x_resolution`` = 2 r_eff / its FWHM along the galaxy's major axis,
    ``x_resolution_geomean``, ``psf_fwhm_along`` (arcsec) and the rest of
    :func:`_resolution_truth`.
    """
    from ...source.galaxy import resolve_galaxy
    from .. import psf as psf_mod

    ss = cfg.instrument.slitstep
    model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    pixel = KERNEL_PIXEL_FRACTION * ss.cube_pixel
    kernel = effective_kernel(psf_mod.psf_from_config(cfg.instrument.psf), ss, snr_wavelength(cfg, model), pixel)
    return _resolution_truth(gaussian_summary(kernel, pixel), model.pa, model.r_eff_arcsec)


def _resolution_truth(summary, galaxy_pa: float, r_eff: float) -> dict:
    """Resolution keys of the truth for the effective kernel, in the convention of
    :mod:`mockzgrad.config.resolution`: ``x_resolution = 2 r_eff / F_along`` (the
    kernel's FWHM along the galaxy's major axis), ``x_resolution_geomean`` beside it."""
    fa, fb = summary.fwhm_major, summary.fwhm_minor
    d = math.radians(summary.pa - galaxy_pa)
    along = 1.0 / math.sqrt((math.cos(d) / fa) ** 2 + (math.sin(d) / fb) ** 2)
    return {"psf_fwhm": fa, "psf_fwhm_minor": fb, "psf_pa": summary.pa, "psf_fwhm_along": along,
            "x_resolution": 2.0 * r_eff / along, "x_resolution_geomean": 2.0 * r_eff / math.sqrt(fa * fb)}


def _config_toml(cfg: MockConfig) -> str:
    return dumps_toml(config_to_dict(cfg))
