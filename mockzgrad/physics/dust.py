"""Dust attenuation curves and Balmer-decrement attenuation.

An attenuation curve is given as :math:`k(\\lambda) = A_\\lambda / E(B-V)`, so
that :math:`A_\\lambda = k(\\lambda)\\, A_V / R_V` with :math:`R_V = k(V)`.
Wavelengths are rest-frame, in Angstrom (vacuum wavelengths are used for the
lines; the curves are smooth enough that air and vacuum differ by < 0.002 in
k). Attenuations are in magnitudes.

Laws
----
``"calzetti2000"``
    Calzetti et al. (2000, ApJ 533, 682), Eq. 4, with :math:`R_V = 4.05`;
    defined on 0.12-2.20 micron. The two published polynomial pieces do not
    meet exactly at 0.63 micron: k jumps by 0.025 there. That jump is part of
    the published curve and is kept.
``"cardelli1989"``
    Cardelli, Clayton & Mathis (1989, ApJ 345, 245), Eqs. 2-5, with
    :math:`R_V = 3.1` by default; defined on x = 1/lambda = 0.3-10 micron^-1.
``"battisti2022"``
    The average nebular attenuation curve of z ~ 1.3 star-forming galaxies of
    Battisti et al. (2022, MNRAS 513, 4431) as quoted by Li et al. (2025,
    MNRAS 544, 4025, Sect. 3.2): only k(Halpha) = 2.46, k(Hbeta) = 3.82 and
    :math:`R_V = k(V) = 3.22` are known, so the curve is defined only at
    Halpha, Hbeta and V (5500 A), each to within
    :data:`BATTISTI_TOLERANCE` Angstrom (air or vacuum wavelengths), and
    any other wavelength raises :class:`~mockzgrad.errors.ConfigError`.

The coefficients were taken from ``shared/reference/constants.json``
("Calzetti2000", "CCM89", "Battisti2022"), where each is checked against at
least two independent implementations.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..validate import choice, positive
from .lines import BALMER_RATIOS, LINES
from .units import to_array

__all__ = [
    "LAWS",
    "DEFAULT_LAW",
    "DEFAULT_R_V",
    "WAVELENGTH_RANGE",
    "V_WAVELENGTH",
    "BATTISTI_TOLERANCE",
    "k_lambda",
    "attenuation",
    "redden",
    "deredden",
    "a_v_from_balmer_decrement",
    "clip_a_v",
]

#: Names of the available attenuation laws.
LAWS = ("calzetti2000", "cardelli1989", "battisti2022")

#: Law used when none is given.
DEFAULT_LAW = "calzetti2000"

#: Default total-to-selective ratio R_V = A_V / E(B-V) of each law.
DEFAULT_R_V = {"calzetti2000": 4.05, "cardelli1989": 3.1, "battisti2022": 3.22}

#: Rest-frame wavelength range (Angstrom, inclusive) where each law is defined.
#: Battisti et al. (2022) is defined only at three wavelengths (see module notes).
WAVELENGTH_RANGE = {
    "calzetti2000": (1200.0, 22000.0),
    "cardelli1989": (1.0e4 / 10.0, 1.0e4 / 0.3),
}

#: Wavelength of the V band where k = R_V, Angstrom (used by ``battisti2022``).
V_WAVELENGTH = 5500.0

#: Largest distance, Angstrom, from Halpha, Hbeta or V accepted by ``battisti2022``.
BATTISTI_TOLERANCE = 2.0

# Battisti et al. (2022) values as quoted by Li et al. (2025).
_BATTISTI_K = {"Ha": 2.46, "Hb": 3.82}


def _check_law(law: str) -> str:
    return choice("law", law, LAWS)


def _resolve_r_v(law: str, r_v: float | None) -> float:
    """R_V of ``law``: the given value, or the law's default."""
    if r_v is None:
        return DEFAULT_R_V[law]
    r_v = positive("r_v", r_v)
    if law == "battisti2022" and abs(r_v - DEFAULT_R_V[law]) > 1e-9:
        raise ConfigError(
            f"r_v = {r_v} for law 'battisti2022'; this curve is known only with its own "
            f"R_V = {DEFAULT_R_V[law]} (pass r_v=None)"
        )
    return r_v


def _wavelength_array(wavelength) -> np.ndarray:
    wave = to_array("wavelength", wavelength, "Angstrom", default_unit="Angstrom")
    return np.asarray(wave, dtype=np.float64)


def _check_range(wave: np.ndarray, law: str) -> None:
    lo, hi = WAVELENGTH_RANGE[law]
    ok = (wave >= lo) & (wave <= hi)  # NaN fails too
    if not np.all(ok):
        bad = wave[~ok].ravel()[0]
        raise ConfigError(
            f"wavelength = {bad} Angstrom (rest frame) is outside the {law} curve; "
            f"allowed [{lo:g}, {hi:g}] Angstrom"
        )


def _k_calzetti2000(wave: np.ndarray, r_v: float) -> np.ndarray:
    """Calzetti et al. (2000) Eq. 4; ``wave`` in Angstrom, inside 0.12-2.20 micron."""
    lam = wave * 1e-4  # micron
    blue = 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + r_v
    red = 2.659 * (-1.857 + 1.040 / lam) + r_v
    return np.where(lam < 0.63, blue, red)


def _ab_cardelli1989(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a(x), b(x) of Cardelli, Clayton & Mathis (1989), x in micron^-1, 0.3 <= x <= 10."""
    a = np.empty_like(x)
    b = np.empty_like(x)

    ir = x < 1.1
    xi = x[ir]
    a[ir] = 0.574 * xi**1.61
    b[ir] = -0.527 * xi**1.61

    opt = (x >= 1.1) & (x < 3.3)
    y = x[opt] - 1.82
    a[opt] = np.polynomial.polynomial.polyval(
        y, [1.0, 0.17699, -0.50447, -0.02427, 0.72085, 0.01979, -0.77530, 0.32999]
    )
    b[opt] = np.polynomial.polynomial.polyval(
        y, [0.0, 1.41338, 2.28305, 1.07233, -5.38434, -0.62251, 5.30260, -2.09002]
    )

    uv = (x >= 3.3) & (x < 8.0)
    xu = x[uv]
    dy = np.where(xu >= 5.9, xu - 5.9, 0.0)
    f_a = -0.04473 * dy**2 - 0.009779 * dy**3
    f_b = 0.2130 * dy**2 + 0.1207 * dy**3
    a[uv] = 1.752 - 0.316 * xu - 0.104 / ((xu - 4.67) ** 2 + 0.341) + f_a
    b[uv] = -3.090 + 1.825 * xu + 1.206 / ((xu - 4.62) ** 2 + 0.263) + f_b

    fuv = x >= 8.0
    y = x[fuv] - 8.0
    a[fuv] = np.polynomial.polynomial.polyval(y, [-1.073, -0.628, 0.137, -0.070])
    b[fuv] = np.polynomial.polynomial.polyval(y, [13.670, 4.257, -0.420, 0.374])
    return a, b


def _k_cardelli1989(wave: np.ndarray, r_v: float) -> np.ndarray:
    """k = R_V A(lambda)/A(V) = a(x) R_V + b(x), Cardelli et al. (1989)."""
    a, b = _ab_cardelli1989(1.0e4 / wave)
    return a * r_v + b


def _k_battisti2022(wave: np.ndarray) -> np.ndarray:
    points = {
        "Ha": (LINES["Ha"].wavelength, _BATTISTI_K["Ha"]),
        "Hb": (LINES["Hb"].wavelength, _BATTISTI_K["Hb"]),
        "V": (V_WAVELENGTH, DEFAULT_R_V["battisti2022"]),
    }
    k = np.full(wave.shape, np.nan)
    for lam0, k0 in points.values():
        k[np.abs(wave - lam0) <= BATTISTI_TOLERANCE] = k0
    if np.any(np.isnan(k)):
        bad = wave[np.isnan(k)].ravel()[0]
        allowed = ", ".join(f"{name} {lam0:.2f}" for name, (lam0, _) in points.items())
        raise ConfigError(
            f"wavelength = {bad} Angstrom: the battisti2022 curve is known only at "
            f"{allowed} Angstrom (+-{BATTISTI_TOLERANCE:g} A); use calzetti2000 or "
            "cardelli1989 elsewhere"
        )
    return k


def k_lambda(wavelength, law: str = DEFAULT_LAW, r_v: float | None = None) -> np.ndarray:
    """Attenuation curve k(lambda) = A_lambda / E(B-V).

    Parameters
    ----------
    wavelength : float, array_like or `~astropy.units.Quantity`
        Rest-frame wavelength, Angstrom (a bare number is taken as Angstrom);
        inside ``WAVELENGTH_RANGE[law]`` (1200-22000 A for ``calzetti2000``,
        1000-33333 A for ``cardelli1989``; only Halpha, Hbeta and 5500 A for
        ``battisti2022``).
    law : {"calzetti2000", "cardelli1989", "battisti2022"}
        Attenuation law (see the module notes for the references).
    r_v : float or None
        R_V = A_V / E(B-V); > 0. None uses the law's default
        (:data:`DEFAULT_R_V`: 4.05, 3.1, 3.22). ``battisti2022`` accepts only
        its own value.

    Returns
    -------
    numpy.ndarray
        k(lambda), dimensionless, same shape as ``wavelength``.

    Raises
    ------
    ConfigError
        Unknown law, invalid R_V, or a wavelength outside the law's domain
        (the message gives the allowed range).
    """
    _check_law(law)
    r_v = _resolve_r_v(law, r_v)
    wave = _wavelength_array(wavelength)
    if law == "battisti2022":
        return _k_battisti2022(wave)
    _check_range(wave, law)
    if law == "calzetti2000":
        return _k_calzetti2000(wave, r_v)
    return _k_cardelli1989(wave, r_v)


def attenuation(wavelength, a_v, law: str = DEFAULT_LAW, r_v: float | None = None) -> np.ndarray:
    """Attenuation A_lambda = A_V k(lambda) / R_V, magnitudes.

    Parameters
    ----------
    wavelength : float or array_like
        Rest-frame wavelength, Angstrom (see :func:`k_lambda` for the domain).
    a_v : float or array_like
        V-band attenuation, mag; broadcast against ``wavelength`` with the
        usual numpy rules.
    law : str
        One of :data:`LAWS`.
    r_v : float or None
        R_V; None = the law's default.

    Returns
    -------
    numpy.ndarray
        A_lambda, mag.
    """
    _check_law(law)
    r_v = _resolve_r_v(law, r_v)
    k = k_lambda(wavelength, law, r_v)
    return np.asarray(a_v, dtype=np.float64) * k / r_v


def redden(flux, wavelength, a_v, law: str = DEFAULT_LAW, r_v: float | None = None) -> np.ndarray:
    """Apply dust attenuation: flux * 10**(-0.4 A_lambda).

    Parameters
    ----------
    flux : array_like
        Intrinsic flux, any unit (returned in the same unit).
    wavelength : float or array_like
        Rest-frame wavelength, Angstrom; broadcast against ``flux`` and
        ``a_v`` (for a cube ``(n_chan, ny, nx)`` pass ``wave[:, None, None]``).
    a_v : float or array_like
        V-band attenuation, mag.
    law, r_v
        As in :func:`attenuation`.

    Returns
    -------
    numpy.ndarray
        Attenuated flux.
    """
    a_lam = attenuation(wavelength, a_v, law, r_v)
    return np.asarray(flux, dtype=np.float64) * 10.0 ** (-0.4 * a_lam)


def deredden(flux, wavelength, a_v, law: str = DEFAULT_LAW, r_v: float | None = None) -> np.ndarray:
    """Remove dust attenuation: flux * 10**(+0.4 A_lambda); inverse of :func:`redden`.

    Parameters are those of :func:`redden`; ``flux`` is the observed flux.
    """
    a_lam = attenuation(wavelength, a_v, law, r_v)
    return np.asarray(flux, dtype=np.float64) * 10.0 ** (0.4 * a_lam)


def a_v_from_balmer_decrement(
    ratio_obs,
    *,
    intrinsic: float | None = None,
    lines: tuple[str, str] = ("Ha", "Hb"),
    law: str = DEFAULT_LAW,
    r_v: float | None = None,
) -> np.ndarray:
    """V-band attenuation from an observed ratio of two Balmer lines.

    With ``lines = (l1, l2)`` and the observed ratio F(l1)/F(l2),

    .. math::

        A_V = \\frac{2.5\\,R_V}{k(l_2) - k(l_1)}
              \\log_{10}\\frac{(F_{l1}/F_{l2})_{\\rm obs}}{(F_{l1}/F_{l2})_{\\rm int}},

    which for (Halpha, Hbeta) is the usual
    :math:`A_V = 2.5 R_V/(k_{H\\beta}-k_{H\\alpha}) \\log_{10}[(H\\alpha/H\\beta)/2.86]`.
    Negative values (an observed ratio below the intrinsic one, e.g. from
    noise) are returned as computed; :func:`clip_a_v` sets them to zero.

    Parameters
    ----------
    ratio_obs : float or array_like
        Observed flux ratio F(lines[0]) / F(lines[1]), dimensionless. Entries
        that are not finite and > 0 give NaN.
    intrinsic : float or None
        Intrinsic (dust-free) ratio; > 0. None = the Case-B value from
        :data:`mockzgrad.physics.lines.BALMER_RATIOS` (2.86 for Halpha/Hbeta), which
        requires both lines to be Balmer lines.
    lines : tuple of two str
        Line identifiers from :data:`mockzgrad.physics.lines.LINES`, e.g.
        ``("Ha", "Hb")`` or ``("Hg", "Hb")``; their vacuum rest wavelengths
        are used.
    law : str
        One of :data:`LAWS`.
    r_v : float or None
        R_V; None = the law's default.

    Returns
    -------
    numpy.ndarray
        A_V, mag, same shape as ``ratio_obs``.
    """
    _check_law(law)
    r_v = _resolve_r_v(law, r_v)
    l1, l2, intrinsic = _line_pair(lines, intrinsic)
    k1, k2 = k_lambda([LINES[l1].wavelength, LINES[l2].wavelength], law, r_v)
    ratio = np.asarray(ratio_obs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = np.isfinite(ratio) & (ratio > 0.0)
        log_term = np.log10(np.where(good, ratio, 1.0) / intrinsic)
    return np.where(good, 2.5 * r_v / (k2 - k1) * log_term, np.nan)


def _line_pair(lines, intrinsic):
    """The two line names, checked, and the intrinsic ratio (Case B unless given)."""
    if not (isinstance(lines, (tuple, list)) and len(lines) == 2):
        raise ConfigError(f"lines = {lines!r}: expected a pair of line names such as ('Ha', 'Hb')")
    l1, l2 = lines
    for name in (l1, l2):
        if name not in LINES:
            raise ConfigError(f"lines: {name!r} is not in the catalogue; allowed: {', '.join(LINES)}")
    if l1 == l2:
        raise ConfigError(f"lines = {lines!r}: the two lines must differ")
    if intrinsic is None:
        if l1 not in BALMER_RATIOS or l2 not in BALMER_RATIOS:
            raise ConfigError(
                f"lines = {lines!r}: no Case-B intrinsic ratio known; give `intrinsic` or use "
                f"two of {', '.join(BALMER_RATIOS)}"
            )
        intrinsic = BALMER_RATIOS[l1] / BALMER_RATIOS[l2]
    return l1, l2, positive("intrinsic", intrinsic)


def clip_a_v(a_v) -> np.ndarray:
    """A_V with negative values set to 0 (NaN kept).

    Parameters
    ----------
    a_v : float or array_like
        V-band attenuation, mag.

    Returns
    -------
    numpy.ndarray
        ``max(a_v, 0)`` element-wise, NaN where ``a_v`` is NaN.
    """
    a_v = np.asarray(a_v, dtype=np.float64)
    return np.where(a_v < 0.0, 0.0, a_v)
