"""The part every reader of an instrument pipeline's cube shares: units, masks, channels, PSF, LSF."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ...errors import DataError
from .units import channel_flux_factor
from .wcs import channel_edges, cube_wcs, spaxel_geometry

__all__ = ["image_3d", "assemble", "psf_cards"]

#: Speed of light, km/s; FWHM = 2 sqrt(2 ln 2) sigma.
_C_KMS, _FWHM_PER_SIGMA = 299792.458, 2.0 * math.sqrt(2.0 * math.log(2.0))


def image_3d(hdul, name: str, path, *, dtype=np.float64) -> np.ndarray:
    """Extension ``name`` as a 3D array (one-line error if unreadable or not 3D)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(hdul[name].data, dtype=dtype)
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(f"cube file {str(path)!r}: extension {name} cannot be read, the file is truncated or "
                        f"damaged ({' '.join(str(exc).split())})") from None
    if arr.ndim != 3:
        raise DataError(f"cube file {str(path)!r}: extension {name} has shape {arr.shape}; expected 3D "
                        "(n_chan, ny, nx)")
    return arr


def psf_cards(header, primary) -> dict:
    """PSF description in a pipeline cube's headers, as mockzgrad ``PSF_*`` cards ({} when none).

    ``PSF_KIND``/``PSF_FWHM`` cards (added by the user) are taken as they are
    (``PSF_FWHM`` alone: a circular Gaussian); else ``SKY_RES``, the ESO Phase 3
    spatial resolution (FWHM, arcsec; ESO Science Data Products Standard,
    GEN-SPE-ESO-33000-5335), as a circular Gaussian.
    """
    for h in (header, primary):
        cards = {k: h[k] for k in h if k.upper().startswith("PSF_")}
        if "PSF_FWHM" in cards and "PSF_KIND" not in cards:
            cards["PSF_KIND"] = "gaussian"
        if "PSF_KIND" in cards:
            return cards
    for h in (header, primary):
        fwhm = h.get("SKY_RES")
        if isinstance(fwhm, (int, float)) and math.isfinite(fwhm) and fwhm > 0:
            return {"PSF_KIND": "gaussian", "PSF_FWHM": float(fwhm)}
    return {}


def _lsf_sigma(header, primary) -> float:
    """LSF sigma, km/s, from the resolving power ``SPEC_RES`` (ESO Phase 3); NaN when absent."""
    for h in (header, primary):
        r = h.get("SPEC_RES")
        if isinstance(r, (int, float)) and math.isfinite(r) and r > 0:
            return _C_KMS / (float(r) * _FWHM_PER_SIGMA)
    return math.nan


def assemble(data, variance, bad, header, primary, path, *, what: str):
    """The fields of a :class:`~mockzgrad.products.cube.MockCube` from a pipeline cube's arrays.

    Parameters
    ----------
    data, variance : ndarray, shape (n_chan, ny, nx)
        Pixels and their variance in the file's unit (``header['BUNIT']``) and its square.
    bad : ndarray of bool or None
        Pixels to mask (NaN in data and variance).
    header, primary : astropy.io.fits.Header
        Header of the science extension (WCS, BUNIT) and the primary header.
    what : str
        Layout name for error messages.

    Raises
    ------
    DataError
        No BUNIT, a unit that is not a flux density or surface brightness,
        shapes that differ, or no finite data left.
    """
    if variance.shape != data.shape or (bad is not None and bad.shape != data.shape):
        raise DataError(f"cube file {str(path)!r} ({what}): data {data.shape}, errors {variance.shape}"
                        f"{'' if bad is None else f', DQ {bad.shape}'} differ in shape")
    if "BUNIT" not in header:
        raise DataError(f"cube file {str(path)!r} ({what}): the data extension has no BUNIT; "
                        "the flux unit is needed to measure line fluxes")
    wcs = cube_wcs(header, path)
    lo, hi = channel_edges(wcs, data.shape[0], path)
    pixel_scale, omega = spaxel_geometry(wcs, header, path)
    data, variance = data.copy(), variance.copy()
    masked = ~np.isfinite(data) | ~np.isfinite(variance) | (variance <= 0)
    if bad is not None:
        masked |= bad
    data[masked], variance[masked] = np.nan, np.nan
    keep = np.isfinite(data).any(axis=(1, 2))
    if not keep.any():
        raise DataError(f"cube file {str(path)!r} ({what}): no finite, unmasked data")
    lo, hi = lo[keep], hi[keep]
    factor = channel_flux_factor(header["BUNIT"], lo, hi, omega, where=f"{what} BUNIT")[:, None, None]
    return dict(data=data[keep] * factor, variance=variance[keep] * factor**2, edges_lo=lo, edges_hi=hi,
                pixel_scale=pixel_scale, psf=psf_cards(header, primary), lsf_sigma=_lsf_sigma(header, primary))
