"""Sampling of the slit-stepping mode: fine sky grid, detector and fine spectral grids, pointings.

Conventions (all offsets in arcsec from the field centre, the galaxy
model's sky origin): ``x`` runs along dispersion = +column of the scene and
of the cube (west), ``y`` along the slit = +row (north). The scene is
rendered on a fine grid of ``f = detector_pixel / K`` (``K`` the smallest
integer with ``f <= 0.02"``), an even number of pixels so that the field
centre is a pixel corner.

Wavelengths. Detector channel ``p`` has edges ``band[0] + p d`` and
``band[0] + (p + 1) d`` (``d = dispersion``), the wavelength scale of a
source at a shutter's centre. Light from sky offset ``dx`` inside a shutter
lands ``dx / detector_pixel`` pixels further along dispersion (S1 Sect. 2.1;
issue 18, physics 4). On the fine grid this is exact: fine spectral bin
``n`` (width ``d / K``, centred on ``band[0] + n d / K``) from the fine column
whose centre is ``(m + 1/2) f`` from the shutter centre lands in detector
fine bin ``n + m``, and detector channel ``p`` is the sum of fine bins
``K p .. K p + K - 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from ...config import MockConfig, SlitstepConfig
from ...config.continuum import CENTRE_WINDOW_REST
from ...errors import ConfigError
from ...physics import lensing as lensing_mod
from ...physics.lines import C_KMS, LINES
from ...products.grids import SpectralGrid
from ...source.galaxy import GalaxyModel, resolve_galaxy
from ...source.scene import SceneSampling, observed_line_waves
from .. import lsf, psf as psf_mod
from ..ifu import _lensed_model  # the galaxy moved in the source plane and the true lens, as the IFU mode

__all__ = ["MAX_FINE_PIXEL", "SlitstepPlan", "plan_slitstep", "pointings", "detector_channels"]

#: Largest fine sky pixel of the rendered scene, arcsec (issue 18: sub-pixel <= 0.02").
MAX_FINE_PIXEL = 0.02


@dataclass(frozen=True, eq=False)
class SlitstepPlan:
    """What the slit-stepping mode samples.

    Attributes
    ----------
    ss : SlitstepConfig
    model : GalaxyModel
    psf : mockzgrad.observation.psf.PSF
        The telescope PSF.
    kernels : dict
        Observed line wavelength (Angstrom, rounded to 1e-6) -> PSF kernel at the fine pixel.
    line_waves : ndarray
        Observed wavelengths of the lines at zero velocity, Angstrom.
    window : float
        Half-width of the kept window around each line, km/s.
    grid : SpectralGrid
        The kept detector channels (linear, global index from ``band[0]``).
    k_sub : int
        Fine pixels per detector pixel (spatial and spectral).
    fine_index : ndarray of int
        Global fine spectral bins rendered, sorted.
    sampling : SceneSampling
        The fine scene's sampling (pixel ``f = detector_pixel / k_sub``).
    x_steps, y_steps : ndarray
        Shutter-centre offsets of the pointings along dispersion and the
        slitlet-centre offsets along the slit, arcsec.
    """

    ss: SlitstepConfig
    model: GalaxyModel
    psf: psf_mod.PSF
    kernels: dict
    line_waves: np.ndarray
    window: float
    grid: SpectralGrid
    k_sub: int
    fine_index: np.ndarray
    sampling: SceneSampling
    x_steps: np.ndarray
    y_steps: np.ndarray
    lens: object = None  # mockzgrad.physics.lensing.Lens of cfg.lensing, None when unlensed

    @property
    def fine_pixel(self) -> float:
        """Fine sky pixel, arcsec."""
        return self.sampling.pixel_scale

    def offsets(self) -> np.ndarray:
        """Centres of the padded fine grid's pixels, arcsec from the field centre (both axes)."""
        s = self.sampling
        return (np.arange(s.n_ext) - s.pad - 0.5 * (s.n - 1)) * s.pixel_scale


def pointings(ss: SlitstepConfig) -> tuple[np.ndarray, np.ndarray]:
    """Shutter-centre offsets along dispersion and slitlet-centre offsets along the slit, arcsec.

    Both patterns are centred on the field centre: ``(i - (steps - 1) / 2) step``.
    """
    x = (np.arange(ss.steps_disp) - 0.5 * (ss.steps_disp - 1)) * ss.step_disp
    y = (np.arange(ss.steps_cross) - 0.5 * (ss.steps_cross - 1)) * ss.step_cross
    return x, y


def detector_channels(ss: SlitstepConfig, line_waves: np.ndarray, window: float, extra=()) -> np.ndarray:
    """Global detector channels within ``window`` (km/s) of a line, or touching one of the ``extra``
    intervals (observed Angstrom), inside the band and outside every gap."""
    d, b0 = ss.dispersion, ss.band[0]
    n_band = int(math.floor((ss.band[1] - b0) / d))
    keep = np.zeros(n_band, dtype=bool)
    spans = [(w * (1.0 - window / C_KMS), w * (1.0 + window / C_KMS)) for w in line_waves] + list(extra)
    for w_lo, w_hi in spans:
        lo = int(math.floor((w_lo - b0) / d))
        hi = int(math.ceil((w_hi - b0) / d))
        keep[max(lo, 0):max(min(hi + 1, n_band), 0)] = True
    p = np.arange(n_band)
    for g_lo, g_hi in ss.gaps:  # a channel touching a gap is dropped
        keep &= ~((b0 + (p + 1) * d > g_lo) & (b0 + p * d < g_hi))
    return np.flatnonzero(keep)


def _fine_index(channels: np.ndarray, k_sub: int, m_lo: int, m_hi: int) -> np.ndarray:
    """Fine spectral bins n = q - m feeding detector fine bins q of the kept channels, m in [m_lo, m_hi]."""
    if channels.size == 0:
        return np.zeros(0, dtype=np.int64)
    q = (channels[:, None] * k_sub + np.arange(k_sub)[None, :]).ravel()
    return np.unique((q[:, None] - np.arange(m_lo, m_hi + 1)[None, :]).ravel())


def shift_range(ss: SlitstepConfig, f: float) -> tuple[int, int]:
    """Smallest and largest fine-bin shift ``floor(dx / f)`` of a column centre inside an open shutter."""
    half = 0.5 * ss.shutter_open[0]
    return int(math.floor(-half / f)) - 1, int(math.floor(half / f)) + 1


def _kernels(psf, f: float, line_waves: np.ndarray) -> dict:
    return {w: psf.kernel(f, wavelength=w if psf.varies else None, sampling="integrate")
            for w in np.unique(np.round(line_waves, 6))}


def plan_slitstep(cfg: MockConfig) -> SlitstepPlan:
    """Choose the fine scene, the detector channels and the pointings of a slit-stepping mock.

    Parameters
    ----------
    cfg : MockConfig
        ``instrument.kind = "slitstep"``; ``instrument.slitstep`` holds the
        set-up, ``instrument.psf`` the telescope PSF. The fine pixel (<= 0.02")
        is itself the sub-pixel: ``instrument.oversample`` is not used.

    Returns
    -------
    SlitstepPlan
    """
    inst, ss = cfg.instrument, cfg.instrument.slitstep
    model, lens = _lensed_model(cfg, resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology))
    line_waves = observed_line_waves(model, cfg.lines)
    # the grating LSF is Gaussian: folded into the rendered line width (exact,
    # and it commutes with the intra-shutter shift); see observation.lsf
    line_sigma = lsf.gaussian_line_sigma(model.sigma0, ss.lsf_sigma)
    vmax = float(np.max(model.vrot(np.linspace(0, model.light_radius(0.999), 64))))
    window = inst.spectral.window or 6.0 * line_sigma + vmax * math.sin(math.radians(model.inclination))
    k_sub = int(math.ceil(ss.detector_pixel / MAX_FINE_PIXEL - 1e-9))
    f = ss.detector_pixel / k_sub
    # with a continuum, also the rest-frame window whose continuum peak sets the centre (S1 Sect. 3.2)
    extra = [tuple(w * (1.0 + model.redshift) for w in CENTRE_WINDOW_REST)] if cfg.continuum is not None else []
    channels = detector_channels(ss, line_waves, window, extra)
    if detector_channels(ss, line_waves, window).size == 0:
        raise ConfigError(f"lines.lines: {', '.join(cfg.lines.lines)} at redshift {model.redshift} all fall outside "
                          f"instrument.slitstep.band = {list(ss.band)} A or in its gaps {[list(g) for g in ss.gaps]}")
    m_lo, m_hi = shift_range(ss, f)
    fine_index = _fine_index(channels, k_sub, m_lo, m_hi)
    x_steps, y_steps = pointings(ss)
    half = max(abs(x_steps).max() + 0.5 * ss.shutter_open[0] + f,
               abs(y_steps).max() + 0.5 * ss.slit_length + f)
    n = 2 * int(math.ceil(half / f))
    psf = psf_mod.psf_from_config(inst.psf)
    kernels = _kernels(psf, f, line_waves)
    pad_k = max(k.shape[0] for k in kernels.values()) // 2
    n_ext = scipy.fft.next_fast_len(n + 2 * pad_k, real=True)
    n_ext += (n_ext - n) % 2
    d_fine = ss.dispersion / k_sub
    edges_lo = ss.band[0] + (fine_index - 0.5) * d_fine
    edges_hi = ss.band[0] + (fine_index + 0.5) * d_fine  # equals the next channel's edges_lo exactly
    sampling = SceneSampling(edges_lo=edges_lo, edges_hi=edges_hi, pixel_scale=f, n=n,
                             pad=(n_ext - n) // 2, n_ext=n_ext, line_sigma=line_sigma,
                             oversample=1, oversample_outer=1,
                             oversample_radius=inst.oversample_radius)
    grid = SpectralGrid(kind="linear", start=ss.band[0], step=ss.dispersion, index=channels)
    if lens is not None:  # maps must cover the rendered fine grid; warn on critical curves
        lensing_mod.check_field(lens, (np.arange(n_ext) - (n_ext - n) // 2 - 0.5 * (n - 1)) * f)
    return SlitstepPlan(ss=ss, model=model, psf=psf, kernels=kernels, line_waves=line_waves, window=window,
                        grid=grid, k_sub=k_sub, fine_index=fine_index, sampling=sampling,
                        x_steps=x_steps, y_steps=y_steps, lens=lens)


def snr_wavelength(cfg: MockConfig, model: GalaxyModel) -> float:
    """Observed wavelength of ``noise.snr_line``, Angstrom."""
    return LINES[cfg.noise.snr_line].wavelength * (1.0 + model.redshift)
