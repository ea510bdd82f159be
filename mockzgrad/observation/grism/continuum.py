"""Optional stellar continuum of a grism mock: its own Sersic image times a smooth spectrum.

The continuum is separable: ``f_lambda(x, lambda) = I(x) f_lambda,tot(lambda)``,
with ``I`` a Sersic profile (``instrument.grism.continuum_r_eff``,
``continuum_sersic_n``; the galaxy's centre, inclination and PA) normalised
to unit total flux, and

    f_lambda,tot(lambda) = F_ref / (EW_rest (1 + z)) x (lambda / lambda_ref)^beta

(erg/s/cm^2/A) where ``F_ref`` is the reference line's total flux,
``lambda_ref`` its observed wavelength, ``EW_rest`` = ``continuum_ew`` and
``beta`` = 0 for ``"flat"``, ``continuum_beta`` for ``"power_law"``. The image
is integrated over each pixel (``instrument.oversample`` sub-pixels per
axis) and convolved with the PSF at the filter's central wavelength, once
per filter (the PSF's change across one filter is neglected). Each
exposure's continuum is dispersed on a linear grid of step ``step`` covering
the filter, each slice holding f_lambda x step.
"""

from __future__ import annotations

import math

import numpy as np

from ...config import MockConfig
from ...physics.lines import LINES
from ...source.continuum import Continuum
from ...source.continuum import sersic_image as _sersic_image
from ...source.galaxy import GalaxyModel
from .. import psf as psf_mod
from .dispersion import GrismDispersion, disperse

__all__ = ["Continuum", "continuum_model", "continuum_rate"]


def continuum_model(cfg: MockConfig, model: GalaxyModel, n: int, totals: dict) -> Continuum | None:
    """The continuum of a grism mock (None for ``continuum = "none"``).

    Parameters
    ----------
    cfg : MockConfig
    model : GalaxyModel
        The resolved galaxy (centre, geometry, redshift).
    n : int
        Side of the direct grid, pixels.
    totals : dict
        Total flux of each line, erg/s/cm^2 (the reference line's sets the level).
    """
    g = cfg.instrument.grism
    if g.continuum == "none":
        return None
    ref = cfg.lines.reference_line
    f_line = float(totals.get(ref, cfg.lines.reference_flux))
    z = model.redshift
    image = _sersic_image(model, n, cfg.instrument.pixel_scale, cfg.instrument.oversample,
                          g.continuum_r_eff or model.r_eff, g.continuum_sersic_n or model.sersic_n)
    return Continuum(image=image, f_ref=f_line / (g.continuum_ew * (1.0 + z)),
                     wave_ref=LINES[ref].wavelength * (1.0 + z),
                     beta=0.0 if g.continuum == "flat" else g.continuum_beta)


def _psf_image(cont: Continuum, psf, ps: float, wave: float) -> np.ndarray:
    kernel = psf.kernel(ps, wavelength=wave if psf.varies else None, sampling="center")
    return psf_mod.convolve_with_kernel(cont.image, kernel, pad=True)


def continuum_slices(cont: Continuum, psf, ps: float, lo: float, hi: float, step: float):
    """PSF-convolved continuum slices covering [lo, hi]: (slices (n_w, n, n) erg/s/cm^2, centres (A))."""
    n_w = max(int(math.ceil((hi - lo) / step)), 1)
    waves = lo + (np.arange(n_w) + 0.5) * step
    image = _psf_image(cont, psf, ps, 0.5 * (lo + hi))
    return (cont.f_lambda(waves) * step)[:, None, None] * image[None], waves


def continuum_rate(cont: Continuum, psf, m: GrismDispersion, step: float, *, use_numba: bool = True) -> np.ndarray:
    """The continuum's count rate on one exposure's frame, e-/s."""
    slices, waves = continuum_slices(cont, psf, m.pixel_scale, m.sens_lo, m.sens_hi, step)
    return disperse(slices, waves, m, use_numba=use_numba)
