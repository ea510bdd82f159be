"""IFU observation mode: from a configuration to a :class:`~mockzgrad.products.cube.MockCube`.

Stages (:func:`build_cube`), each a pure function of the config and the seed:

1. resolve the galaxy (cosmology, automatic z0) and solve the generating
   line ratios (:mod:`mockzgrad.source`);
2. choose the sampling (:func:`plan_ifu`): the spectral grid (channels near
   each line), the field of view (so that ``fov_flux_fraction`` of every
   line's PSF-smeared flux is inside), a padding of at least the PSF kernel
   half-width, the oversampling;
3. LSF stage (:func:`mockzgrad.observation.lsf.gaussian_line_sigma`): for the
   Gaussian LSF the exact convolution of the Gaussian line profiles is the
   line width sigma0 (+) lsf_sigma in quadrature, which the scene is
   rendered with;
4. the noise-free, pre-PSF scene (:func:`mockzgrad.source.scene.render_scene`):
   every line on the oversampled padded field, integrated over each channel;
5. PSF stage (:func:`psf_stage`): each channel convolved with the PSF at
   spaxel resolution on the padded field, then cropped. The scene already
   holds pixel-integrated flux, so the kernel must add the PSF's own second
   moment only: a circular Gaussian PSF uses
   :meth:`~mockzgrad.observation.psf.GaussianPSF.separable_taps` (exact at
   any width; the image's effective FWHM is the header's, tested) applied
   as two 1-D passes in float64 that write only the kept field; other PSFs
   are sampled at pixel centres (right when the PSF is well sampled) and
   applied by FFT in float32 (relative error ~1e-7);
6. noise stage: Gaussian noise of constant sigma (absolute, or set by the
   target S/N), and the truth.

Tolerances: flux of every line within 0.5 % of the analytic total (tested);
oversampling 4 converged to < 0.5 % of the peak for the flagship (tested).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.fft

from .. import __version__
from ..config import MockConfig, config_to_dict, dumps_toml, lens_from_config, x_resolution
from ..config.resolution import resolution_truth
from ..errors import ConfigError, FieldOfViewWarning
from ..physics import lensing as lensing_mod
from ..physics.lines import LINES
from ..products.cube import MockCube
from ..products.grids import SpectralGrid, spatial_offsets, spectral_grid
from ..products.lens import lens_truth
from ..source import lineflux
from ..source.galaxy import GalaxyModel, resolve_galaxy
from ..source.continuum import continuum_cube
from ..source.scene import SceneSampling, observed_line_waves, render_scene, spaxel_centres
from . import lsf, noise, psf as psf_mod

__all__ = ["IFUPlan", "IFUSetup", "plan_ifu", "psf_stage", "model_cube", "build_cube"]


@dataclass(frozen=True, eq=False)
class IFUPlan:
    """The sampling the IFU mode chose for a mock.

    Attributes
    ----------
    model : GalaxyModel
    grid : SpectralGrid
        The kept channels.
    psf : mockzgrad.observation.psf.PSF
    kernels : dict
        Observed line wavelength (Angstrom, rounded to 1e-6) -> PSF kernel
        at spaxel resolution, one per line when the PSF varies.
    taps : dict or None
        Same keys -> the 1-D factor of each kernel (circular Gaussian PSF:
        ``kernels[w] = np.outer(taps[w], taps[w])``); None for other PSFs.
    window : float
        Half-width of the channel window kept around each line, km/s.
    line_waves : ndarray, shape (n_lines,)
        Observed line wavelengths at zero velocity, Angstrom.
    sampling : SceneSampling
        What the scene is rendered on (channels, padded field, oversampling,
        line width with the LSF).
    """

    model: GalaxyModel
    grid: SpectralGrid
    psf: psf_mod.PSF
    kernels: dict
    window: float
    line_waves: np.ndarray
    sampling: SceneSampling
    lens: object = None  # mockzgrad.physics.lensing.Lens of cfg.lensing, None when unlensed
    taps: dict | None = None
    trace: object = None  # lensed: the lens evaluated at the padded field's spaxel centres (GridTrace), once


@dataclass(frozen=True, eq=False)
class IFUSetup:
    """What :func:`model_cube` resolved: the galaxy, grids and PSF of a mock, and its ratio draws."""

    model: GalaxyModel
    grid: SpectralGrid
    psf: psf_mod.PSF
    n: int
    window: float
    line_waves: np.ndarray
    ratio_offsets: dict | None
    lens: object = None
    continuum_flux: float = 0.0  # the stellar continuum's flux in the cube (the FoV check counts lines only)
    field_trace: object = None  # lensed: the plan's GridTrace cropped to the kept field (data orientation)


def _lensed_fov(model: GalaxyModel, psf, frac: float, pixel_scale: float, waves, lens,
                field: str = "all_images") -> float:
    """Side (arcsec) of a square field holding the lensed light, as :func:`_auto_fov`: the image-plane radius
    about the field centre holding sqrt(frac) of the lensed flux of every image or of the main one (``field``;
    a ray-shot grid over the image of the source's 0.9999 light radius,
    :func:`~mockzgrad.physics.lensing.lensed_flux_radius`), plus the PSF radius."""
    part = math.sqrt(frac)
    r_all = model.light_radius(0.9999)
    r_src = r_all / model.kpc_per_arcsec + math.hypot(model.x_offset, model.y_offset)
    r_img = lensing_mod.lensed_flux_radius(
        lens, lambda bx, by: model.disk_coords(bx, by)[0] <= r_all,
        lambda bx, by: model.surface_brightness(model.disk_coords(bx, by)[0]), 2.0 * r_src, part, field=field,
        centre=(model.x_offset, model.y_offset))
    r_psf = max(psf.enclosed_radius(part, wavelength=w) for w in waves)
    return 2.0 * (r_img + r_psf) + 2.0 * pixel_scale


def _lensed_model(cfg: MockConfig, model: GalaxyModel):
    """The galaxy moved by ``lensing.source_offset_*`` in the source plane (plus the traced field centre with
    ``lensing.image_at_centre``), and the true lens (None: unlensed)."""
    lcfg = cfg.lensing
    lens = lens_from_config(lcfg, model.redshift, cfg.cosmology.to_astropy())
    if lens is None:
        return model, None
    x0, y0 = model.x_offset + lcfg.source_offset_x, model.y_offset + lcfg.source_offset_y
    if lcfg.image_at_centre:  # the source where the field centre traces to
        bx, by = lens.ray_shoot(np.array(0.0), np.array(0.0))
        x0, y0 = x0 + float(bx), y0 + float(by)
    return dataclasses.replace(model, x_offset=x0, y_offset=y0), lens


def _auto_fov(model: GalaxyModel, psf, frac: float, pixel_scale: float, waves) -> float:
    """Side (arcsec) of a square field holding >= frac of the PSF-smeared flux.

    If the galaxy holds f_g inside radius r_g and the PSF f_p inside r_p,
    the convolved image holds at least f_g f_p inside r_g + r_p; we take
    f_g = f_p = sqrt(frac) (conservative), plus the centre offset.
    """
    part = math.sqrt(frac)
    r_gal = model.light_radius(part) / model.kpc_per_arcsec
    r_psf = max(psf.enclosed_radius(part, wavelength=w) for w in waves)
    r = r_gal + r_psf + math.hypot(model.x_offset, model.y_offset)
    return 2.0 * r + 2.0 * pixel_scale


def _spectral_grid(cfg: MockConfig, model: GalaxyModel, line_waves: np.ndarray,
                   line_sigma: float) -> tuple[SpectralGrid, float]:
    """Channels kept around each line, and the window half-width (km/s)."""
    spec, z = cfg.instrument.spectral, model.redshift
    vmax = float(np.max(model.vrot(np.linspace(0, model.light_radius(0.999), 64))))
    window = spec.window
    if window is None:
        window = 6.0 * line_sigma + vmax * math.sin(math.radians(model.inclination))
    grid = spectral_grid(line_waves, kind=spec.grid, channel_width_kms=spec.channel_width,
                         dispersion=spec.dispersion, window_kms=window, full=spec.full_grid,
                         wave_min=spec.wave_min, wave_max=spec.wave_max,
                         anchor=LINES[cfg.noise.snr_line].wavelength * (1.0 + z))
    if spec.preset is not None:
        outside = [name for name, w in zip(cfg.lines.lines, line_waves)
                   if not spec.wave_min <= w <= spec.wave_max]
        if outside:
            raise ConfigError(f"lines.lines: {', '.join(outside)} at redshift {z} fall outside "
                              f"instrument.spectral.preset = {spec.preset!r} "
                              f"({spec.wave_min:.0f}-{spec.wave_max:.0f} A)")
    return grid, window


def _psf_kernels(psf, pixel_scale: float, line_waves: np.ndarray) -> tuple[dict, dict | None]:
    """PSF kernel for a pixel-integrated scene at each distinct line wavelength (rounded to 1e-6 A),
    and its 1-D taps when it is separable (circular Gaussian; else None): moment-matched taps for a
    circular Gaussian, the PSF sampled at spaxel centres otherwise."""
    waves = np.unique(np.round(line_waves, 6))
    if isinstance(psf, psf_mod.GaussianPSF):
        taps = {w: psf.separable_taps(pixel_scale, wavelength=w if psf.varies else None) for w in waves}
        return {w: np.outer(t, t) for w, t in taps.items()}, taps
    kernels = {w: psf.kernel(pixel_scale, wavelength=w if psf.varies else None, sampling="center") for w in waves}
    return kernels, None


def plan_ifu(cfg: MockConfig) -> IFUPlan:
    """Choose the IFU sampling of a mock: galaxy, channels, PSF kernels, field and padding.

    Parameters
    ----------
    cfg : MockConfig

    Returns
    -------
    IFUPlan

    Raises
    ------
    ConfigError
        A line falls outside a spectral preset's band, or the spectral grid
        or a PSF kernel would be too large.
    """
    inst = cfg.instrument
    model, lens = _lensed_model(cfg, resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology))
    line_waves = observed_line_waves(model, cfg.lines)
    line_sigma = lsf.gaussian_line_sigma(model.sigma0, inst.lsf_sigma)  # the LSF stage
    grid, window = _spectral_grid(cfg, model, line_waves, line_sigma)
    psf = psf_mod.psf_from_config(inst.psf)
    ps = inst.pixel_scale
    # lensed, "main_image": the unlensed floor is centred (the source-plane offset says nothing of where images are)
    main = lens is not None and cfg.lensing.field == "main_image"
    fov = inst.fov or _auto_fov(dataclasses.replace(model, x_offset=0.0, y_offset=0.0) if main else model, psf,
                                inst.fov_flux_fraction, ps, line_waves)
    if lens is not None and not inst.fov:
        fov = max(fov, _lensed_fov(model, psf, inst.fov_flux_fraction, ps, line_waves, lens, cfg.lensing.field))
    n = max(int(math.ceil(fov / ps)), 5)
    kernels, taps = _psf_kernels(psf, ps, line_waves)
    half = max(k.shape[0] for k in kernels.values()) // 2
    # the rendered field is padded by at least the kernel half-width on each
    # side (so the circular FFT wraps nothing into the field) and rounded up
    # to a fast FFT length; the crop keeps the central n x n
    n_ext = scipy.fft.next_fast_len(n + 2 * half, real=True)
    sampling = SceneSampling(edges_lo=grid.edges_lo, edges_hi=grid.edges_hi, pixel_scale=ps, n=n,
                             pad=(n_ext - n) // 2, n_ext=n_ext, line_sigma=line_sigma,
                             oversample=inst.oversample, oversample_outer=inst.oversample_outer,
                             oversample_radius=inst.oversample_radius)
    trace = None
    if lens is not None:  # the spaxel centres traced once, for the scene, the noise stage and the truth
        trace = lensing_mod.trace_grid(lens, *spaxel_centres(sampling))
        lensing_mod.check_field(lens, spatial_offsets(n, ps), trace=trace.crop(sampling.pad, n).mirrored())
    return IFUPlan(model=model, grid=grid, psf=psf, kernels=kernels, window=window,
                   line_waves=line_waves, sampling=sampling, lens=lens, taps=taps, trace=trace)


def psf_stage(cube: np.ndarray, plan: IFUPlan, *, crop: bool = False, use_numba: bool = True) -> np.ndarray:
    """Convolve a padded scene with the PSF.

    Parameters
    ----------
    cube : ndarray, shape (n_chan, n_ext, n_ext)
        The pre-PSF scene on the padded field, flux per spaxel and channel.
    plan : IFUPlan
    crop : bool
        Return only the kept ``n x n`` field. With separable taps (circular
        Gaussian PSF) narrow enough to beat an FFT that field is computed
        directly by two 1-D passes in float64; otherwise (or with
        ``crop=False``) by a periodic FFT of the padded field in float32 (the
        padding absorbs the wrap), then cropped. Both apply the same kernel.
    use_numba : bool
        Use the compiled separable-blur kernel (False: its numpy twin).

    Returns
    -------
    ndarray, shape (n_chan, n_ext, n_ext), or (n_chan, n, n) with ``crop``
        Channels grouped by the line they belong to when the PSF varies with
        wavelength. On the padded field the total flux is conserved to rounding.
    """
    s = plan.sampling
    if crop and plan.taps is not None and _separable_is_cheaper(max(t.size for t in plan.taps.values()) // 2, s):
        return _by_line(cube, plan, (cube.shape[0], s.n, s.n),
                        lambda sub, w: psf_mod.blur_separable(sub, plan.taps[w], s.pad, s.n, use_numba=use_numba))
    out = _by_line(cube, plan, cube.shape,
                   lambda sub, w: psf_mod.convolve_with_kernel(sub, plan.kernels[w], pad=False, single=True))
    return out[:, s.pad:s.pad + s.n, s.pad:s.pad + s.n] if crop else out


def _separable_is_cheaper(h: int, s: SceneSampling) -> bool:
    """Whether two 1-D passes of 2h + 1 symmetric taps over the kept field cost less than a 2-D FFT
    of the padded field: (h + 1) ((n + 2h) n + n^2) multiply-adds against ~4 n_ext^2 log2(n_ext^2)
    (per-unit costs measured on one core with the vectorised passes: the separable stage took 0.2-0.5
    of the FFT's CPU at PSF 0.5-3" on the flagship's fields, where this rule's ratio is 0.4-1.2, so it
    keeps a margin; separable up to ~2.4" PSF, ~150 taps, for the flagship)."""
    n, n_ext = s.n, s.n_ext
    return (h + 1) * ((n + 2 * h) * n + n * n) <= 4.0 * n_ext**2 * math.log2(n_ext**2)


def _by_line(cube: np.ndarray, plan: IFUPlan, shape: tuple, convolve) -> np.ndarray:
    """``convolve(channels, wavelength_key)`` over the channels nearest each line (all at once for a constant PSF)."""
    kernels, psf = plan.kernels, plan.psf
    if len(kernels) == 1 or not psf.varies:
        return convolve(cube, next(iter(kernels)))
    out = np.empty(shape)
    nearest = np.argmin(np.abs(plan.grid.centres[:, None] - plan.line_waves[None, :]), axis=1)
    for j, w in enumerate(plan.line_waves):
        sel = nearest == j
        if sel.any():
            out[sel] = convolve(cube[sel], np.round(w, 6))
    return out


def _scatter_rng(cfg: MockConfig) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[0])


def _noise_rng(cfg: MockConfig) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[1])


def model_cube(cfg: MockConfig, *, apply_psf: bool = True, use_numba: bool = True):
    """Noise-free model cube of a configuration, and what it resolved.

    Parameters
    ----------
    cfg : MockConfig
    apply_psf : bool
        Convolve with the PSF (False: the scene as rendered, LSF included).
    use_numba : bool
        Use the compiled render kernel (False: its numpy twin).

    Returns
    -------
    cube : ndarray, shape (n_chan, n, n)
        Flux per spaxel and channel, erg/s/cm^2.
    setup : IFUSetup
    """
    plan = plan_ifu(cfg)
    scene = render_scene(plan.model, cfg.lines, plan.sampling, rng=_scatter_rng(cfg), use_numba=use_numba,
                         lens=plan.lens, oversample_near_critical=getattr(cfg.lensing, "oversample_near_critical", 1),
                         trace=plan.trace)
    pre, cont_flux = scene.cube, 0.0
    if cfg.continuum is not None:  # the optional stellar continuum joins the scene before the PSF
        cont = continuum_cube(cfg.continuum, plan.model, cfg.lines, plan.sampling, lens=plan.lens)
        pre = pre + cont
        cont_flux = _flux_in_field(cont, plan) if apply_psf else float(scene.crop(cont).sum())
    cube = psf_stage(pre, plan, crop=True, use_numba=use_numba) if apply_psf else scene.crop(pre)
    setup = IFUSetup(model=plan.model, grid=plan.grid, psf=plan.psf, n=plan.sampling.n, window=plan.window,
                     line_waves=plan.line_waves, ratio_offsets=scene.ratio_offsets, lens=plan.lens,
                     continuum_flux=cont_flux,
                     field_trace=None if plan.trace is None else plan.trace.crop(plan.sampling.pad, plan.sampling.n))
    return cube, setup


def _flux_in_field(pre: np.ndarray, plan: IFUPlan) -> float:
    """Total flux of a pre-PSF scene inside the kept field after the PSF, erg/s/cm^2.

    The PSF is linear: the channels convolved with one kernel are summed
    first, then convolved once (periodic FFT of the padded field, as
    :func:`psf_stage`).
    """
    s, kernels = plan.sampling, plan.kernels
    if len(kernels) == 1 or not plan.psf.varies:
        groups = [(np.ones(pre.shape[0], bool), next(iter(kernels)))]
    else:
        nearest = np.argmin(np.abs(plan.grid.centres[:, None] - plan.line_waves[None, :]), axis=1)
        groups = [(nearest == j, np.round(w, 6)) for j, w in enumerate(plan.line_waves)]
    total = 0.0
    for sel, key in groups:
        if sel.any():
            img = psf_mod.convolve_with_kernel(pre[sel].sum(axis=0)[None], kernels[key], pad=False)
            total += float(img[0, s.pad:s.pad + s.n, s.pad:s.pad + s.n].sum())
    return total


def _check_fov(cfg: MockConfig, cube: np.ndarray, totals: dict, n: int, continuum_flux: float = 0.0) -> None:
    """Warn when the field holds less than ``fov_flux_fraction`` of the analytic line flux.

    ``continuum_flux`` (the stellar continuum's flux in the field) is taken
    off the cube's total: the rule counts line flux only.
    """
    if not totals:
        return
    inst = cfg.instrument
    # every line's window holds its whole profile, so the cube's line total over
    # the analytic total is the fraction of flux inside the field
    inside = (float(cube.sum()) - continuum_flux) / sum(totals.values())
    if inside < inst.fov_flux_fraction:
        warnings.warn(f"instrument.fov = {n * inst.pixel_scale:.2f} arcsec holds {100 * inside:.2f} % of the "
                      f"line flux; {100 * inst.fov_flux_fraction:.1f} % required "
                      "(instrument.fov_flux_fraction)", FieldOfViewWarning, stacklevel=3)


@dataclass(frozen=True, eq=False)
class _Noise:
    """The noise stage's result: the noisy data, its variance and how sigma was set."""

    data: np.ndarray
    variance: np.ndarray
    sigma: float
    chan: int
    mask: np.ndarray


def _noise_stage(cfg: MockConfig, cube: np.ndarray, setup: IFUSetup, use_numba: bool = True) -> _Noise:
    """Gaussian noise of constant sigma, given or set by the S/N inside the r_eff ellipse."""
    model, grid, ps = setup.model, setup.grid, cfg.instrument.pixel_scale
    xg, yg = np.meshgrid(-spatial_offsets(setup.n, ps), spatial_offsets(setup.n, ps))
    if setup.lens is not None:  # the r_eff ellipse in the source plane
        ft = setup.field_trace
        xg, yg = setup.lens.ray_shoot(xg, yg) if ft is None else (ft.beta_x, ft.beta_y)
    mask = noise.ellipse_mask(xg, yg, a_arcsec=model.r_eff_arcsec, axis_ratio=model.axis_ratio,
                              pa=model.pa, x_offset=model.x_offset, y_offset=model.y_offset)
    snr_wave = LINES[cfg.noise.snr_line].wavelength * (1.0 + model.redshift)
    chan = noise.peak_channel(cube, grid.centres, snr_wave)
    if cfg.noise.snr is not None:
        sigma = noise.sigma_for_snr(cube[chan], mask, cfg.noise.snr)
    else:
        sigma = cfg.noise.sigma
    scale = sigma
    if cfg.noise.windows:  # per-window depth: one sigma per channel (sigma stays the snr_line's)
        waves = dict(zip(cfg.lines.lines, setup.line_waves))
        scale = noise.channel_sigma(grid.centres, waves, noise.line_scales(cfg.noise.windows, waves,
                                                                           cfg.noise.snr_line, sigma))
    data = noise.add_noise(cube, scale, _noise_rng(cfg), use_numba=use_numba) if cfg.noise.enabled else cube.copy()
    variance = np.full_like(cube, sigma**2) if np.ndim(scale) == 0 else \
        np.broadcast_to((scale**2)[:, None, None], cube.shape).astype(cube.dtype)
    return _Noise(data=data, variance=variance, sigma=sigma, chan=chan, mask=mask)


def _truth(cfg: MockConfig, setup: IFUSetup, cube: np.ndarray, totals: dict, nz: _Noise) -> dict:
    """The mock's true parameters (galaxy, instrument, lines, noise) for the TRUTH extension."""
    inst, lcfg = cfg.instrument, cfg.lines
    truth = setup.model.truth()
    truth.update({
        "psf_fwhm": inst.psf.fwhm,
        "x_resolution": x_resolution(cfg),
        "pixel_scale": inst.pixel_scale,
        "lsf_sigma": inst.lsf_sigma,
        "oversample": inst.oversample,
        "fov": setup.n * inst.pixel_scale,
        **lineflux.lines_truth(lcfg, totals, setup.ratio_offsets),
        "noise_sigma": float(nz.sigma),
        "snr_target": cfg.noise.snr,
        "snr": noise.measured_snr(cube[nz.chan], nz.mask, nz.sigma),
        "snr_channel_wave": float(setup.grid.centres[nz.chan]),
        "seed": cfg.seed,
        "mockzgrad_version": __version__,
    })
    if cfg.continuum is not None:  # kind, EW, slope and shape, as the slit-stepping truth records them
        truth["continuum"] = config_to_dict(cfg.continuum)
    truth.update(resolution_truth(cfg))  # elliptical PSF: x_resolution_geomean, ... (config.resolution)
    if setup.lens is not None:
        ratio = (float(cube.sum()) - setup.continuum_flux) / sum(totals.values()) if totals else math.nan
        truth.update(lens_truth(setup.model, setup.lens, inst.psf.fwhm, setup.n, inst.pixel_scale, ratio,
                                trace=setup.field_trace))
    return truth


def build_cube(cfg: MockConfig, *, keep_noise_free: bool = True, use_numba: bool = True,
               model: tuple | None = None) -> MockCube:
    """Build one mock IFU cube from a configuration (the ``"ifu"`` observation mode).

    Parameters
    ----------
    cfg : MockConfig
        The mock; ``cfg.seed`` seeds every random draw.
    keep_noise_free : bool
        Keep the noise-free cube in the result.
    use_numba : bool
        Use the compiled render kernel (False: its numpy twin).
    model : tuple or None
        ``(cube, setup)`` of :func:`model_cube` for a configuration that
        differs from ``cfg`` in ``noise.snr`` / ``noise.sigma`` /
        ``noise.windows`` only (a noise-free cube reused across depths,
        :mod:`mockzgrad.corrections.plan_cache`); None: built here.

    Returns
    -------
    MockCube
    """
    inst, lcfg = cfg.instrument, cfg.lines
    cube, setup = model if model is not None else model_cube(cfg, use_numba=use_numba)
    totals = lineflux.analytic_line_totals(setup.model, lcfg, ratio_offsets=setup.ratio_offsets) \
        if lcfg.ratio_scatter in ("none", "per_mock") else {}
    _check_fov(cfg, cube, totals, setup.n, setup.continuum_flux)
    nz = _noise_stage(cfg, cube, setup, use_numba)
    grid = setup.grid
    return MockCube(data=nz.data, variance=nz.variance, edges_lo=grid.edges_lo, edges_hi=grid.edges_hi,
                    pixel_scale=inst.pixel_scale, psf=setup.psf.to_header(), lsf_sigma=inst.lsf_sigma,
                    truth=_truth(cfg, setup, cube, totals, nz),
                    noise_free=cube if keep_noise_free else None, grid=grid,
                    config_toml=dumps_toml(config_to_dict(cfg)))
