"""The recovery's dust step: per-bin Balmer-decrement correction of line fluxes.

An observer measures A_V in each bin from the ratio of two Balmer lines
(Halpha/Hbeta, or Hgamma/Hbeta), compares it with the Case-B value and
de-reddens every line with an attenuation law. Input and output are
:class:`~mockzgrad.recovery.fluxes.BinFluxes` tables, so the step sits
between the front end (line fits) and the metallicity methods.

Conventions
-----------
- A_V is the V-band attenuation, mag; ``A_lambda = A_V k(lambda) / R_V``
  with the curves of :mod:`mockzgrad.physics.dust`.
- The corrected flux is ``flux * 10^(0.4 A_V k(lambda) / R_V)``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import validate
from ..errors import ConfigError
from ..physics.dust import DEFAULT_R_V, LAWS, a_v_from_balmer_decrement, k_lambda
from ..physics.lines import BALMER_RATIOS, LINES
from .fluxes import BinFluxes, check_bins

__all__ = ["balmer_decrement_correction"]

_LN10 = math.log(10.0)


def balmer_decrement_correction(bins: BinFluxes, *, law: str = "calzetti2000",
                                r_v: float | None = None, pair=("Ha", "Hb"), law_lines: str | None = None,
                                intrinsic: float | None = None, snr_min: float = 4.0,
                                global_a_v: float | None = None, a_v_error: bool = True):
    """Correct line fluxes for dust with the Balmer decrement of each bin.

    Parameters
    ----------
    bins : BinFluxes
        Observed fluxes; both lines of ``pair`` must be measured.
    law : str, optional
        Attenuation law of :mod:`mockzgrad.physics.dust`, used for A_V from the decrement.
    r_v : float, optional
        R_V; None = the law's default.
    pair : (str, str), optional
        Balmer lines ``(l1, l2)`` whose ratio F(l1)/F(l2) is used:
        ``("Ha", "Hb")`` or ``("Hg", "Hb")``.
    law_lines : str, optional
        Law that de-reddens every line with that A_V (default ``law``). The
        Battisti et al. (2022) curve is known only at Halpha and Hbeta, so
        other lines need a stand-in curve here (e.g. ``"cardelli1989"``).
    intrinsic : float, optional
        Intrinsic F(l1)/F(l2), > 0; default Case B from
        :data:`mockzgrad.physics.lines.BALMER_RATIOS` (2.86 for Ha/Hb, 0.468 for Hg/Hb).
    snr_min : float, optional
        Both lines need flux/err > snr_min for a per-bin A_V.
    global_a_v : float, optional
        A_V (mag) of the integrated spectrum, used where the bin's own
        decrement is not usable (low S/N, or not steeper than the intrinsic
        one, i.e. it would give A_V <= 0); None: no correction there.
    a_v_error : bool, optional
        Propagate the error of the per-bin A_V (first order, through the
        Jacobian of the corrected fluxes with respect to the two Balmer
        fluxes) into the covariance. False: the correction factors are
        treated as exact, ``cov' = G cov G``. ``global_a_v`` is always
        treated as exact.

    Returns
    -------
    corrected : BinFluxes
        ``flux * 10^(0.4 A_V k(lambda) / R_V)`` and its covariance.
    a_v : ndarray, shape (n_bins,)
        A_V applied, mag (0 where none).
    source : tuple of str
        Per bin ``"bin"``, ``"global"`` or ``"none"``.
    """
    bins = check_bins(bins)
    validate.choice("law", law, LAWS)
    l1, l2 = _check_pair(pair)
    i1, i2 = bins.index(l1), bins.index(l2)
    intrinsic = _intrinsic_ratio(intrinsic, pair)
    if global_a_v is not None:
        global_a_v = validate.finite("global_a_v", global_a_v, "mag")
    r_v_eff = DEFAULT_R_V[law] if r_v is None else float(r_v)
    f1, f2 = bins.flux[:, i1], bins.flux[:, i2]
    snr = bins.snr
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = f1 / f2
    av_bin = a_v_from_balmer_decrement(np.where(np.isfinite(ratio) & (ratio > 0), ratio, intrinsic),
                                       intrinsic=intrinsic, lines=(l1, l2), law=law, r_v=r_v)
    # the decrement must be steeper than the intrinsic one (Ha/Hb above 2.86, Hg/Hb below 0.468)
    use = (snr[:, i1] > snr_min) & (snr[:, i2] > snr_min) & np.isfinite(ratio) & (ratio > 0) & \
        (av_bin > 0)
    fallback = 0.0 if global_a_v is None else global_a_v
    a_v = np.where(use, av_bin, fallback)
    source = tuple("bin" if u else ("global" if global_a_v is not None else "none") for u in use)
    kap = _kappa(bins.names, law, r_v, r_v_eff, law_lines)
    gain = 10.0 ** (0.4 * a_v[:, None] * kap[None, :])
    flux = bins.flux * gain
    n, nl = flux.shape
    jac = gain[:, :, None] * np.eye(nl)[None]
    if a_v_error:
        jac = jac + _a_v_jacobian(flux, f1, f2, (i1, i2), (l1, l2), use, kap, law, r_v, r_v_eff)
    cov0 = np.where(np.isfinite(bins.cov), bins.cov, 0.0)
    cov = np.einsum("sij,sjk,slk->sil", jac, cov0, jac)
    cov[~np.isfinite(bins.cov)] = np.nan
    return BinFluxes(bins.names, flux, cov), a_v, source


def _check_pair(pair) -> tuple[str, str]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ConfigError(f"pair = {pair!r}: expected two line ids such as ('Ha', 'Hb')")
    return pair[0], pair[1]


def _intrinsic_ratio(intrinsic, pair) -> float:
    """The intrinsic F(l1)/F(l2): given, or Case B for two Balmer lines."""
    l1, l2 = pair
    if intrinsic is None:
        if l1 not in BALMER_RATIOS or l2 not in BALMER_RATIOS:
            raise ConfigError(f"pair = {pair!r}: give `intrinsic` for non-Balmer lines")
        intrinsic = BALMER_RATIOS[l1] / BALMER_RATIOS[l2]
    return validate.positive("intrinsic", intrinsic)


def _kappa(names, law, r_v, r_v_eff, law_lines) -> np.ndarray:
    """k(lambda) / R_V of every line, the law that de-reddens the lines."""
    wave = np.array([LINES[x].wavelength for x in names])
    if law_lines is None or law_lines == law:
        return k_lambda(wave, law, r_v) / r_v_eff
    validate.choice("law_lines", law_lines, LAWS)
    return k_lambda(wave, law_lines) / DEFAULT_R_V[law_lines]


def _a_v_jacobian(flux, f1, f2, cols, pair, use, kap, law, r_v, r_v_eff) -> np.ndarray:
    """d(corrected flux) / d(observed flux) through the per-bin A_V, shape (n, nl, nl).

    Only the two Balmer columns carry A_V's dependence; bins whose A_V is
    not their own (global or none) get zero.
    """
    i1, i2 = cols
    n, nl = flux.shape
    k1, k2 = k_lambda([LINES[pair[0]].wavelength, LINES[pair[1]].wavelength], law, r_v)
    c = 2.5 * r_v_eff / (k2 - k1) / _LN10  # dA_V/dln(F1/F2), mag
    with np.errstate(divide="ignore", invalid="ignore"):
        dav = np.zeros((n, nl))
        dav[:, i1] = c / f1
        dav[:, i2] = -c / f2
    dav[~use] = 0.0
    dflux = np.where(np.isfinite(flux), flux, 0.0) * 0.4 * _LN10 * kap[None, :]
    return dflux[:, :, None] * dav[:, None, :]
