"""Slitless grism observation mode: from a configuration to a :class:`~mockzgrad.products.grism.GrismMock`.

Stages (:func:`build_grism`), each a pure function of the config and the seed:

1. check that every line falls inside the filter of at least one exposure;
2. the scene: the IFU sampling (:func:`mockzgrad.observation.ifu.model_cube`)
   on a linear wavelength grid of step ``min(dispersion) / wave_oversample``
   (A per map pixel), channels kept within the usual window around each
   line (the rest of the grid is empty without a continuum), with
   ``lsf_sigma = 0``: slitless resolution comes from source size x PSF and
   the kinematics stay in the render. The PSF is applied per line
   wavelength, as in the IFU mode;
3. per exposure (grism, filter, position angle): the trace geometry
   (:mod:`.dispersion`, :mod:`.presets`), a wavelength zero-point error drawn
   from ``N(0, wave_offset_sigma)`` (recorded in the truth; the header keeps
   the nominal calibration), and the shift-add of every wavelength slice
   along the trace (:func:`.dispersion.disperse`): counts = F_lambda
   S(lambda) dlambda split linearly between the two nearest pixels along and
   across the trace;
4. noise per exposure (``instrument.grism.noise_model``): ``"snr"``, Gaussian
   noise of constant sigma set by the target S/N (``noise.snr``) of the
   ``noise.snr_line`` map inside the r_eff ellipse, or ``"detector"``,
   Poisson source + background and Gaussian read noise from ``exptime``;
5. direct images in ``direct_filters`` (the PSF-convolved scene, and
   continuum, through each filter's normalised throughput shape) and the truth.

Optional continuum (:mod:`.continuum`): its own Sersic image x a flat or
power-law f_lambda, normalised by the reference line's equivalent width,
dispersed on the same fine step over each filter. Modelled: first order
only, one galaxy (no neighbours or contamination), noise uncorrelated between map pixels (drizzled data have
correlated noise; the VAR extension holds the per-pixel variance only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ... import __version__
from ...config import MockConfig, config_to_dict, dumps_toml, x_resolution
from ...errors import ConfigError
from ...physics.lines import LINES
from ...products.grids import spatial_offsets
from ...products.grism import GrismExposure, GrismMock
from ...products.lens import lens_truth
from ...source import lineflux
from .. import noise
from ..ifu import model_cube
from .continuum import continuum_model, continuum_rate, continuum_slices
from .dispersion import GrismDispersion, disperse, make_frame
from .presets import exposure_dispersion, filter_range

__all__ = ["GrismScene", "grism_scene", "exposure_models", "build_grism", "catalogue_redshift"]

#: Decimals of the catalogue redshift written with a mock (``GrismMock.catalogue_redshift``).
CATALOGUE_DECIMALS = 2


@dataclass(frozen=True, eq=False)
class GrismScene:
    """The PSF-convolved, noise-free scene a grism mock disperses.

    Attributes
    ----------
    cube : ndarray, shape (n_w, n, n)
        Flux per map pixel and wavelength slice, erg/s/cm^2.
    waves : ndarray, shape (n_w,)
        Slice centres, Angstrom (a slice's flux is dispersed at its centre).
    step : float
        Slice width, Angstrom.
    setup : mockzgrad.observation.ifu.IFUSetup
        Galaxy, grid, PSF and the drawn ratio offsets.
    """

    cube: np.ndarray
    waves: np.ndarray
    step: float
    setup: object


def _check_coverage(cfg: MockConfig) -> None:
    """Every line must fall inside the filter of at least one exposure."""
    g, z = cfg.instrument.grism, cfg.galaxy.redshift
    filters = list(dict.fromkeys(e.filter for _, e in g.exposure_list()))
    ranges = {f: filter_range(g, f) for f in filters}
    for name in cfg.lines.lines:
        w = LINES[name].wavelength * (1.0 + z)
        if not any(lo <= w <= hi for lo, hi in ranges.values()):
            shown = ", ".join(f"{f} {lo:.0f}-{hi:.0f} A" for f, (lo, hi) in ranges.items())
            raise ConfigError(f"lines.lines: {name} at observed {w:.0f} A (redshift {z}) falls outside every "
                              f"exposure's filter ({shown}); drop the line or add an exposure that covers it")


def exposure_models(cfg: MockConfig, n: int) -> list[tuple[str, float, GrismDispersion]]:
    """``(label, exptime, nominal model with its frame)`` of every exposure of a mock.

    Parameters
    ----------
    cfg : MockConfig
        A grism mock.
    n : int
        Side of the direct grid, pixels.
    """
    g, ps = cfg.instrument.grism, cfg.instrument.pixel_scale
    out = []
    for label, exp in g.exposure_list():
        m = exposure_dispersion(g, exp, ps)
        margin = 2 + int(math.ceil(5.0 * g.wave_offset_sigma / m.dispersion))
        out.append((label, float(exp.exptime), make_frame(m, n, ps, m.sens_lo, m.sens_hi, margin=margin)))
    return out


def grism_scene(cfg: MockConfig, *, use_numba: bool = True) -> GrismScene:
    """Render and PSF-convolve the scene of a grism mock on its fine linear wavelength grid.

    Parameters
    ----------
    cfg : MockConfig
        ``instrument.kind = "grism"``.
    use_numba : bool
        Compiled render kernel (False: its numpy twin).

    Raises
    ------
    ConfigError
        A line falls outside every exposure's filter, or the grid would be too fine.
    """
    g, ps = cfg.instrument.grism, cfg.instrument.pixel_scale
    _check_coverage(cfg)
    disp = min(exposure_dispersion(g, e, ps).dispersion for _, e in g.exposure_list())
    step = disp / g.wave_oversample
    rcfg = cfg.replace(**{
        "instrument.kind": "ifu", "instrument.grism": None, "instrument.lsf_sigma": 0.0,
        "instrument.spectral.grid": "linear", "instrument.spectral.dispersion": step,
        "instrument.spectral.preset": None, "instrument.spectral.full_grid": False,
        "instrument.spectral.wave_min": None, "instrument.spectral.wave_max": None})
    cube, setup = model_cube(rcfg, use_numba=use_numba)
    return GrismScene(cube=cube, waves=setup.grid.centres, step=step, setup=setup)


def _line_map(scene: GrismScene, lines, line: str) -> np.ndarray:
    """Flux map of one line: the slices nearest to it (erg/s/cm^2 per pixel)."""
    lw = scene.setup.line_waves
    nearest = np.argmin(np.abs(scene.waves[:, None] - lw[None, :]), axis=1)
    return scene.cube[nearest == list(lines).index(line)].sum(axis=0)


def _snr_mask(cfg: MockConfig, scene: GrismScene) -> np.ndarray:
    model, n, ps = scene.setup.model, scene.setup.n, cfg.instrument.pixel_scale
    xg, yg = np.meshgrid(-spatial_offsets(n, ps), spatial_offsets(n, ps))
    return noise.ellipse_mask(xg, yg, a_arcsec=model.r_eff_arcsec, axis_ratio=model.axis_ratio, pa=model.pa,
                              x_offset=model.x_offset, y_offset=model.y_offset)


def _snr_sigmas(cfg: MockConfig, scene: GrismScene, models) -> list[float]:
    """Gaussian sigma (e-/s) per exposure for the target S/N of ``noise.snr_line`` (``noise_model = "snr"``)."""
    if cfg.noise.snr is None:
        raise ConfigError("instrument.grism.noise_model = 'snr' needs noise.snr (target S/N); noise.sigma is "
                          "for IFU cubes; use noise_model = 'detector' for noise from exposure times")
    line = cfg.noise.snr_line
    wave = LINES[line].wavelength * (1.0 + scene.setup.model.redshift)
    lmap, mask = _line_map(scene, cfg.lines.lines, line), _snr_mask(cfg, scene)
    sig = [noise.sigma_for_snr(lmap * float(m.sensitivity(wave)), mask, cfg.noise.snr) if m.covers(wave) else None
           for _, _, m in models]
    rates = [s * math.sqrt(t) for s, (_, t, _) in zip(sig, models) if s is not None]
    if not rates:
        raise ConfigError(f"noise.snr_line = {line!r} at observed {wave:.0f} A is covered by no exposure; "
                          "choose a line an exposure's filter covers")
    rate = float(np.mean(rates))
    out = [s if s is not None else rate / math.sqrt(t) for s, (_, t, _) in zip(sig, models)]
    if cfg.noise.windows:  # per-window depth (planner; config.noise): exposures without snr_line scale by window
        out = [s if covers else s * _window_scale(cfg, m, scene.setup.model.redshift, line, wave)
               for s, covers, (_, _, m) in zip(out, [v is not None for v in sig], models)]
    return out


def _window_scale(cfg: MockConfig, m, redshift: float, snr_line: str, snr_wave: float) -> float:
    """Noise factor of an exposure that misses ``snr_line``: scale of the ``noise.windows`` entry of the
    first line its filter covers over the ``snr_line`` scale (1 outside windows; ``scale`` only)."""
    windows = cfg.noise.windows

    def scale(line, wave):
        name = noise.line_window(windows, line, wave)
        if name is not None and windows[name].get("scale") is None:
            raise ConfigError(f"noise.windows.{name}.sigma: a grism exposure's noise is in e-/s per pixel; "
                              "give scale (relative depth) for grism mocks")
        return 1.0 if name is None else float(windows[name]["scale"])

    waves = {n: LINES[n].wavelength * (1.0 + redshift) for n in cfg.lines.lines}
    first = next((n for n in cfg.lines.lines if m.covers(waves[n])), None)
    return 1.0 if first is None else scale(first, waves[first]) / scale(snr_line, snr_wave)


def _noisy(cfg: MockConfig, rate: np.ndarray, sigma, exptime: float, rng: np.random.Generator):
    """Noisy count rate and its variance, (e-/s) and (e-/s)^2."""
    g = cfg.instrument.grism
    if g.noise_model == "snr":
        var = np.full_like(rate, sigma**2)
        data = rate + sigma * rng.standard_normal(rate.shape) if cfg.noise.enabled else rate.copy()
        return data, var
    expected = (np.clip(rate, 0.0, None) + g.background) * exptime
    var = (expected + g.read_noise**2) / exptime**2
    if not cfg.noise.enabled:
        return rate.copy(), var
    counts = rng.poisson(expected).astype(np.float64) + g.read_noise * rng.standard_normal(rate.shape)
    return counts / exptime - g.background, var


def _rngs(cfg: MockConfig, n: int):
    """Independent generators: wavelength offsets, then the noise of each exposure."""
    offsets = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(3,)))
    noises = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed, spawn_key=(2,)).spawn(n)]
    return offsets, noises


def _direct_images(cfg: MockConfig, scene: GrismScene, cont) -> dict:
    """Direct image per filter: the scene (and continuum) through the filter's normalised throughput shape."""
    g, out = cfg.instrument.grism, {}
    table = g.preset_table()["filters"]
    for name in g.direct_filters:
        lo, hi = filter_range(g, name)
        shape = GrismDispersion(grism="direct", filter=name, pa=0.0, pa_disp=0.0, dispersion=1.0, wave_ref=lo,
                                tilt=0.0, sens_peak=1.0, sens_lo=lo, sens_hi=hi,
                                sens_taper=min(float(table[name].get("taper", 0.0)), 0.5 * (hi - lo)))
        out[name] = np.tensordot(shape.sensitivity(scene.waves), scene.cube, axes=1)
        if cont is not None:
            slices, waves = continuum_slices(cont, scene.setup.psf, cfg.instrument.pixel_scale, lo, hi, scene.step)
            out[name] += np.tensordot(shape.sensitivity(waves), slices, axes=1)
    return out


def _truth(cfg: MockConfig, scene: GrismScene, offsets, sigmas, totals) -> dict:
    inst, lcfg, setup = cfg.instrument, cfg.lines, scene.setup
    truth = setup.model.truth()
    truth.update({
        "psf_fwhm": inst.psf.fwhm, "x_resolution": x_resolution(cfg), "pixel_scale": inst.pixel_scale,
        "oversample": inst.oversample, "fov": setup.n * inst.pixel_scale,
        "reference_line": lcfg.reference_line, "generating_set": list(lcfg.generating_set),
        "line_totals": totals, "wave_step": scene.step,
        "wave_offsets": {label: float(o) for label, o in offsets.items()},
        "noise_sigma": {label: (None if s is None else float(s)) for label, s in sigmas.items()},
        "noise_model": inst.grism.noise_model, "snr_target": cfg.noise.snr,
        # the S/N of noise.snr_line in the r_eff ellipse per exposure: the target by construction (noise_model "snr")
        "snr": cfg.noise.snr if inst.grism.noise_model == "snr" and cfg.noise.enabled else None,
        "continuum": inst.grism.continuum, "continuum_ew": inst.grism.continuum_ew if inst.grism.continuum != "none"
        else None,
        "seed": cfg.seed, "mockzgrad_version": __version__,
    })
    if setup.lens is not None:  # lensed (the IFU scene is): the same keys as the IFU mode's truth
        ratio = float(scene.cube.sum()) / sum(totals.values()) if totals else math.nan
        truth.update(lens_truth(setup.model, setup.lens, inst.psf.fwhm, setup.n, inst.pixel_scale, ratio,
                                trace=setup.field_trace))
    return truth


def build_grism(cfg: MockConfig, *, keep_noise_free: bool = True, use_numba: bool = True) -> GrismMock:
    """Build one slitless grism mock (the ``"grism"`` observation mode).

    Parameters
    ----------
    cfg : MockConfig
        ``instrument.kind = "grism"``; ``cfg.seed`` seeds every random draw.
    keep_noise_free : bool
        Keep each exposure's noise-free count rate (NOISEFREE).
    use_numba : bool
        Compiled render and dispersion kernels (False: their numpy twins).

    Returns
    -------
    GrismMock
    """
    g = cfg.instrument.grism
    if g.noise_model == "detector" and g.sensitivity_peak is None:
        raise ConfigError("instrument.grism.noise_model = 'detector' needs instrument.grism.sensitivity_peak "
                          "((e-/s) per erg/s/cm^2, from the instrument's documentation)")
    scene = grism_scene(cfg, use_numba=use_numba)
    models = exposure_models(cfg, scene.setup.n)
    off_rng, noise_rngs = _rngs(cfg, len(models))
    sigmas = _snr_sigmas(cfg, scene, models) if g.noise_model == "snr" else [None] * len(models)
    lcfg = cfg.lines
    totals = lineflux.analytic_line_totals(scene.setup.model, lcfg, ratio_offsets=scene.setup.ratio_offsets) \
        if lcfg.ratio_scatter in ("none", "per_mock") else {}
    cont = continuum_model(cfg, scene.setup.model, scene.setup.n, totals)
    exposures, offsets = [], {}
    for (label, exptime, nominal), sigma, rng in zip(models, sigmas, noise_rngs):
        offsets[label] = off_rng.normal(0.0, g.wave_offset_sigma) if g.wave_offset_sigma > 0 else 0.0
        true_model = replace(nominal, wave_offset=offsets[label])
        rate = disperse(scene.cube, scene.waves, true_model, use_numba=use_numba)
        if cont is not None:
            rate += continuum_rate(cont, scene.setup.psf, true_model, scene.step, use_numba=use_numba)
        data, var = _noisy(cfg, rate, sigma, exptime, rng)
        exposures.append(GrismExposure(name=label, sci=data, var=var, header=nominal.to_header(), exptime=exptime,
                                       noise_free=rate if keep_noise_free else None))
    truth = _truth(cfg, scene, offsets, dict(zip(offsets, sigmas)), totals)
    return GrismMock(exposures=exposures, direct=_direct_images(cfg, scene, cont), pixel_scale=cfg.instrument.pixel_scale,
                     psf=scene.setup.psf.to_header(), truth=truth, config_toml=dumps_toml(config_to_dict(cfg)),
                     catalogue_redshift=catalogue_redshift(cfg.galaxy.redshift))


def catalogue_redshift(redshift: float) -> float:
    """The catalogue redshift the mock hands the observer: the source's redshift to
    CATALOGUE_DECIMALS decimals (|error| <= 0.005, about half a pixel of trace shift at R ~ 150; the
    grism fit starts here and searches +-3 pixels)."""
    return round(float(redshift), CATALOGUE_DECIMALS)
