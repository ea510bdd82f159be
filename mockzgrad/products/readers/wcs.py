"""What a cube reader needs from a FITS header's WCS: channel edges, spaxel size and solid angle.

Conventions: channel edges in vacuum wavelength, Angstrom (air wavelengths,
``CTYPE3 = 'AWAV'`` as in MUSE cubes, are converted with the VALD/Piskunov
inverse of Ciddor 1996; Ciddor 1996, Appl. Opt. 35, 1566); pixel scale in
arcsec; solid angle in sr.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ...errors import DataError

__all__ = ["cube_wcs", "channel_edges", "spaxel_geometry", "air_to_vacuum"]


def cube_wcs(header, path):
    """The 3D WCS of a cube header, with a spectral third axis.

    Raises
    ------
    DataError
        Unreadable WCS, or no spectral axis.
    """
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(header)
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds
            raise DataError(f"cube file {str(path)!r}: unreadable WCS ({' '.join(str(exc).split())})") from None
    if wcs.naxis != 3 or not wcs.has_spectral:
        raise DataError(f"cube file {str(path)!r}: no spectral WCS axis (CTYPE3 = "
                        f"{header.get('CTYPE3')!r}; expected WAVE, WAVE-LOG or AWAV)")
    return wcs


def air_to_vacuum(wave_air: np.ndarray) -> np.ndarray:
    """Vacuum wavelength of air wavelengths, Angstrom (VALD/Piskunov fit to Ciddor 1996)."""
    lam = np.asarray(wave_air, float)
    s2 = (1e4 / lam) ** 2
    n = 1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2) + 1.599740894897e-4 / (38.92568793293 - s2)
    return lam * n


def channel_edges(wcs, n_chan: int, path) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of the ``n_chan`` channels, vacuum Angstrom (pixel centre -/+ 0.5)."""
    import astropy.units as u

    spec = wcs.spectral
    edges = np.asarray(spec.pixel_to_world_values(np.arange(n_chan + 1) - 0.5), float)
    unit = u.Unit(spec.wcs.cunit[0] or "m")
    try:
        edges = edges * float(unit.to(u.AA))
    except u.UnitConversionError:
        raise DataError(f"cube file {str(path)!r}: spectral axis in {unit}; expected a wavelength") from None
    if str(spec.wcs.ctype[0]).startswith("AWAV"):
        edges = air_to_vacuum(edges)
    if not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
        raise DataError(f"cube file {str(path)!r}: the spectral WCS does not give increasing wavelengths")
    return edges[:-1], edges[1:]


def spaxel_geometry(wcs, header, path) -> tuple[float, float]:
    """Spaxel side (arcsec) and solid angle (sr); ``PIXAR_SR`` overrides the WCS's area when present.

    Raises
    ------
    DataError
        No celestial axes, or spaxels that are not square to 1 %.
    """
    from astropy.wcs.utils import proj_plane_pixel_scales

    cel = wcs.celestial
    if cel.naxis != 2:
        raise DataError(f"cube file {str(path)!r}: no celestial WCS axes (CTYPE1/2)")
    sx, sy = (abs(float(s)) * 3600.0 for s in proj_plane_pixel_scales(cel))  # deg -> arcsec
    if not (math.isfinite(sx) and sx > 0 and abs(sx / sy - 1.0) < 0.01):
        raise DataError(f"cube file {str(path)!r}: spaxels of {sx:g} x {sy:g} arcsec; recovery needs square "
                        "spaxels (resample the cube first)")
    scale = math.sqrt(sx * sy)
    omega = float(header.get("PIXAR_SR", (scale * math.pi / 180.0 / 3600.0) ** 2))
    if not (math.isfinite(omega) and omega > 0):
        raise DataError(f"cube file {str(path)!r}: PIXAR_SR = {header.get('PIXAR_SR')!r}; allowed: > 0 sr")
    return scale, omega
