"""Pixel units of a cube file and their conversion to the flux recovery uses.

Inside mockzgrad a cube pixel holds the flux in one spaxel and one channel,
erg/s/cm^2 (:data:`CHANNEL_FLUX`). Files hold what instruments deliver: a
flux density per unit wavelength (ESO cubes: ``10**(-20)*erg/s/cm**2/Angstrom``)
or per unit frequency, or a surface brightness (JWST ``*_s3d.fits``:
``MJy/sr``). :func:`channel_flux_factor` gives, per channel, the factor that
turns a file's pixel into erg/s/cm^2 per spaxel and channel:

* per Angstrom: times the channel width ``lambda_hi - lambda_lo`` (Angstrom);
* per Hz: times the channel width in frequency, ``c / lambda_lo - c / lambda_hi`` (Hz);
* per steradian (or per arcsec^2): also times the spaxel solid angle (sr).

Foundation-like helpers of the products layer: numpy and astropy only.
"""

from __future__ import annotations

import re

import numpy as np

from ...errors import DataError

__all__ = ["CHANNEL_FLUX", "FLAM20", "MJY_SR", "CUBE_UNITS", "parse_bunit", "squared_unit_string",
           "channel_flux_factor"]

#: Unit of a cube pixel in memory: flux per spaxel and channel.
CHANNEL_FLUX = "erg/(s cm2)"
#: Flux density in units of 1e-20 erg/s/cm^2/Angstrom (ESO KMOS/MUSE cubes), FITS spelling.
FLAM20 = "10**-20 erg.s**-1.cm**-2.Angstrom**-1"
#: Surface brightness (JWST NIRSpec/MIRI ``*_s3d.fits``).
MJY_SR = "MJy/sr"
#: Units a mock cube file can be written in (``instrument.cube_unit`` names).
CUBE_UNITS = {"flam": FLAM20, "MJy/sr": MJY_SR}

_C_ANGSTROM_S = 2.99792458e18  # speed of light, Angstrom/s


def parse_bunit(text: str, *, where: str = "BUNIT"):
    """The astropy unit of a BUNIT string (FITS, generic or CDS spelling).

    Raises
    ------
    DataError
        The text is no unit astropy can parse.
    """
    import warnings

    import astropy.units as u

    s = str(text).strip()
    for fmt in ("fits", None, "cds", "ogip"):
        try:
            with warnings.catch_warnings():  # "multiple slashes" (MUSE's spelling) is not an error
                warnings.simplefilter("ignore")
                return u.Unit(s, format=fmt)
        except (ValueError, TypeError):
            continue
    raise DataError(f"{where} = {text!r}: not a unit astropy can read; expected e.g. "
                    f"'{FLAM20}' or '{MJY_SR}'")


def squared_unit_string(text: str) -> str:
    """The FITS spelling of ``text`` squared (the BUNIT of a variance extension)."""
    return (parse_bunit(text) ** 2).to_string("fits")


def _strip_square(text: str) -> str:
    """``'(unit)**2'`` -> ``'unit'`` (ESO STAT extensions); anything else unchanged."""
    m = re.fullmatch(r"\s*\((.*)\)\s*\*\*\s*2\s*", str(text))
    return m.group(1) if m else str(text)


def channel_flux_factor(bunit: str, edges_lo, edges_hi, omega_sr: float, *, where: str = "BUNIT") -> np.ndarray:
    """Per-channel factor from a file's pixel unit to erg/s/cm^2 per spaxel and channel.

    Parameters
    ----------
    bunit : str
        The file's BUNIT (of the data; a variance's ``(unit)**2`` is accepted too).
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Channel edges, vacuum wavelength, Angstrom.
    omega_sr : float
        Spaxel solid angle, sr (used for surface-brightness units); > 0.
    where : str
        Name of the card, for the error message.

    Returns
    -------
    ndarray, shape (n_chan,)
        Multiply a pixel by it for erg/s/cm^2; divide to go back.

    Raises
    ------
    DataError
        A unit that is neither a flux, a flux density (per wavelength or
        frequency) nor either of them per solid angle.
    """
    import astropy.units as u

    unit = parse_bunit(_strip_square(bunit), where=where)
    lo, hi = np.asarray(edges_lo, float), np.asarray(edges_hi, float)
    widths = {"per_A": hi - lo, "per_Hz": _C_ANGSTROM_S / lo - _C_ANGSTROM_S / hi, "none": np.ones_like(lo)}
    flux = u.erg / u.s / u.cm**2
    for per, den in (("per_A", u.AA), ("per_Hz", u.Hz), ("none", u.dimensionless_unscaled)):
        for area, solid in ((1.0, u.dimensionless_unscaled), (omega_sr, u.sr)):
            target = flux / den / solid
            if unit.is_equivalent(target):
                return float(unit.to(target)) * widths[per] * area
    raise DataError(f"{where} = {bunit!r}: not a flux density (per Angstrom or Hz), a surface brightness "
                    "(e.g. MJy/sr) or a flux per channel; cannot convert it to erg/s/cm2")
