"""Synthetic line fluxes with a known metallicity, shared by the recovery back-end tests.

Fluxes are built exactly on the Sanders et al. (2025) curves (R3, O32, Ne3O2)
and the Case-B Balmer ratios, so the true Z (and A_V, after
:func:`mockzgrad.physics.dust.redden`) of every bin is known independently of
the code under test.
"""

import numpy as np

from mockzgrad.physics.calibrations import get_diagnostic
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.fluxes import BinFluxes

KEYS = ["S25_R3", "S25_O32", "S25_Ne3O2"]
NAMES = ("OIII_5008", "Hb", "OII_3727", "OII_3730", "NeIII_3870")
NAMES_BALMER = NAMES + ("Ha", "Hg")
R3, O32, NE3O2 = (get_diagnostic(k) for k in KEYS)
ONE_SIGMA_LO, ONE_SIGMA_HI = 15.865525393145708, 84.13447460685429  # 100 Phi(-+1)


def exact_fluxes(z, balmer=False):
    """Fluxes exactly on the S25 curves: [OIII]5008 = 1, Hb = [OIII]/10^R3,
    [OII] = [OIII]/10^O32 (split 0.4/0.6), [NeIII] = [OII] 10^Ne3O2; Case B Ha, Hg."""
    z = np.asarray(z, dtype=float)
    o3 = np.ones_like(z)
    hb = o3 / 10 ** R3.log_ratio(z)
    o2 = o3 / 10 ** O32.log_ratio(z)
    ne = o2 * 10 ** NE3O2.log_ratio(z)
    cols = [o3, hb, 0.4 * o2, 0.6 * o2, ne]
    if balmer:
        cols += [2.86 * hb, 0.468 * hb]
    return np.stack(cols, axis=1)


def wavelengths(names):
    """Rest vacuum wavelengths of ``names``, Angstrom."""
    return np.array([LINES[n].wavelength for n in names])


def noisy(rng, flux, snr):
    """One Gaussian realisation of ``flux`` at a constant S/N per line."""
    err = np.abs(flux) / snr
    return BinFluxes.from_errors(NAMES_BALMER[: flux.shape[1]], flux + err * rng.standard_normal(flux.shape),
                                 err)


def quantiles_on_grid(x, p):
    """15.87/50/84.13 percentiles of a density tabulated on x (trapezoid CDF)."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    return np.interp(np.array([ONE_SIGMA_LO, 50.0, ONE_SIGMA_HI]) / 100.0, cdf, x)
