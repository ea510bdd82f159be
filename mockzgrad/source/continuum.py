"""A galaxy's stellar continuum: a Sersic image times a smooth spectrum (shared by every mode).

The continuum is separable, ``f_lambda(x, lambda) = I(x) f_lambda,tot(lambda)``,
with ``I`` a Sersic profile of unit total flux (the galaxy's inclination and
PA; its own ``r_eff``, Sersic index and centre offset, by default the
galaxy's) and

    f_lambda,tot(lambda) = F_ref / (EW_rest (1 + z)) x (lambda / lambda_ref)^beta

(erg/s/cm^2/A), where ``F_ref`` is the reference line's total flux,
``lambda_ref`` its observed wavelength and ``EW_rest`` the rest-frame
equivalent width of the reference line over the total continuum; ``beta`` =
0 for a continuum flat in f_lambda. The grism mode
(:mod:`mockzgrad.observation.grism.continuum`, ``instrument.grism.continuum*``)
and the cube modes (:func:`continuum_cube`, ``[continuum]``) both use it.

In the cube modes the continuum is added to the pre-PSF scene: each spaxel
and channel holds ``I`` integrated over the spaxel (the scene's sub-pixels)
times the exact integral of ``f_lambda,tot`` over the channel, so the
continuum then goes through the same PSF, slit stepping and noise as the
lines. Only the channels a mode keeps get continuum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..physics.lines import LINES
from .galaxy import GalaxyModel, sersic_bn

__all__ = ["Continuum", "sersic_image", "continuum_spectrum", "continuum_cube"]


@dataclass(frozen=True, eq=False)
class Continuum:
    """A galaxy's continuum: unit-flux image (pre-PSF) and total spectrum.

    Attributes
    ----------
    image : ndarray, shape (n, n)
        Fraction of the total continuum flux in each pixel (pre-PSF).
    f_ref : float
        Total f_lambda at ``wave_ref``, erg/s/cm^2/A.
    wave_ref : float
        Observed wavelength of the reference line, Angstrom.
    beta : float
        f_lambda ~ lambda^beta.
    """

    image: np.ndarray
    f_ref: float
    wave_ref: float
    beta: float

    def f_lambda(self, wave) -> np.ndarray:
        """Total f_lambda, erg/s/cm^2/A, at ``wave`` (Angstrom)."""
        return self.f_ref * (np.asarray(wave, float) / self.wave_ref) ** self.beta

    def channel_flux(self, lo, hi) -> np.ndarray:
        """Total flux, erg/s/cm^2, in channels ``[lo, hi]`` (Angstrom): the exact integral of f_lambda."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        w0, b = self.wave_ref, self.beta
        if abs(b + 1.0) < 1e-12:
            return self.f_ref * w0 * np.log(hi / lo)
        return self.f_ref * w0 / (b + 1.0) * ((hi / w0) ** (b + 1.0) - (lo / w0) ** (b + 1.0))


def _sersic_flux(model: GalaxyModel, xx, yy, ps_sub: float, r_eff: float, sersic_n: float) -> np.ndarray:
    """Unit-total Sersic flux of sub-pixels of side ``ps_sub`` (arcsec) at sky offsets (xx, yy), arcsec."""
    r_kpc, _ = model.disk_coords(xx, yy)
    b = sersic_bn(sersic_n)
    re = r_eff / model.kpc_per_arcsec
    norm = 2.0 * math.pi * sersic_n * math.exp(b) * math.gamma(2.0 * sersic_n) / b ** (2.0 * sersic_n) * re**2
    norm *= max(model.axis_ratio, 1e-3)
    sb = np.exp(-b * ((r_kpc / model.kpc_per_arcsec / re) ** (1.0 / sersic_n) - 1.0)) / norm
    return sb * ps_sub**2


def sersic_image(model: GalaxyModel, n: int, ps: float, os_k: int, r_eff: float, sersic_n: float) -> np.ndarray:
    """Unit-total Sersic flux per pixel on a centred n x n grid of ``ps`` arcsec (``os_k`` sub-pixels per axis).

    The galaxy's centre, inclination and PA; ``r_eff`` in kpc.
    """
    off = ((np.arange(n * os_k) + 0.5) / os_k - 0.5 - 0.5 * (n - 1)) * ps
    xx, yy = np.meshgrid(-off, off)
    return _sersic_flux(model, xx, yy, ps / os_k, r_eff, sersic_n).reshape(n, os_k, n, os_k).sum(axis=(1, 3))


def continuum_spectrum(ccfg, model: GalaxyModel, lines, f_line: float | None = None) -> tuple[float, float, float]:
    """``(f_ref, wave_ref, beta)`` of a ``[continuum]`` table (:class:`~mockzgrad.config.ContinuumConfig`).

    ``f_line``: the reference line's total flux, erg/s/cm^2 (None: the
    analytic total of the model, without calibration scatter).
    """
    from .lineflux import analytic_line_totals  # same layer

    ref = lines.reference_line
    if f_line is None:
        f_line = analytic_line_totals(model, lines)[ref]
    z = model.redshift
    beta = 0.0 if ccfg.kind == "flat" else ccfg.beta
    return f_line / (ccfg.ew * (1.0 + z)), LINES[ref].wavelength * (1.0 + z), beta


def continuum_cube(ccfg, model: GalaxyModel, lines, sampling, *, lens=None) -> np.ndarray:
    """The pre-PSF continuum on a mode's scene sampling, erg/s/cm^2 per spaxel and channel.

    Parameters
    ----------
    ccfg : mockzgrad.config.ContinuumConfig
        ``[continuum]`` (kind not ``"none"``).
    model : GalaxyModel
        The resolved galaxy (the continuum follows its inclination and PA).
    lines : mockzgrad.config.LinesConfig
        Reference line and its flux.
    sampling : mockzgrad.source.scene.SceneSampling
        Channels and padded field of the scene; ``sampling.oversample``
        sub-pixels per spaxel and axis everywhere.
    lens : mockzgrad.physics.lensing.Lens or None
        Sub-pixels are traced to the source plane (surface brightness conserved).

    Returns
    -------
    ndarray, shape (n_chan, n_ext, n_ext)
        Same axes as :attr:`mockzgrad.source.scene.Scene.cube`.
    """
    s, os_k = sampling, sampling.oversample
    off = s.pixel_offsets(0, s.n_ext, os_k) * s.pixel_scale
    xx, yy = np.meshgrid(-off, off)  # east is -column
    if lens is not None:
        xx, yy = lens.ray_shoot(xx, yy)
    flux = _sersic_flux(model, xx - ccfg.x_offset, yy - ccfg.y_offset, s.pixel_scale / os_k,
                        ccfg.r_eff or model.r_eff, ccfg.sersic_n or model.sersic_n)
    image = flux.reshape(s.n_ext, os_k, s.n_ext, os_k).sum(axis=(1, 3))
    f_ref, wave_ref, beta = continuum_spectrum(ccfg, model, lines)
    cont = Continuum(image=image, f_ref=f_ref, wave_ref=wave_ref, beta=beta)
    return cont.channel_flux(s.edges_lo, s.edges_hi)[:, None, None] * image[None]
