"""mockzgrad's own cube layout (written by :meth:`~mockzgrad.products.cube.MockCube.write`).

Extensions: ``DATA`` and ``VAR`` (3D, axes ``(n_chan, ny, nx)``), ``CHANNELS``
(``WAVE_LO``, ``WAVE_HI``, Angstrom: the channels that hold data; gap
channels of the regular WCS grid are NaN), optional ``NOISEFREE``, ``PSF``
(image, ``PSF_PIXS`` arcsec), ``CATALOG``, ``EXPOSURES``, ``SPEC2D*`` (2D spectra of the
pointings, :mod:`mockzgrad.products.spectra2d`), ``CONFIG``, ``TRUTH``.
Cards: ``BUNIT`` of ``DATA`` (any flux density, surface brightness or flux
per channel; missing = erg/s/cm^2 per channel, the layout before issue 22),
``PSF_*`` (the PSF model), ``LSF_SIGMA`` (km/s), ``CDELT2`` (deg).
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from ...errors import DataError
from ..spectra2d import SlitSpectra
from .common import psf_cards
from .units import CHANNEL_FLUX, channel_flux_factor
from .wcs import channel_edges, cube_wcs, spaxel_geometry

__all__ = ["detect", "read"]


def detect(hdul) -> bool:
    """A ``DATA`` and a ``VAR`` extension."""
    names = {h.name for h in hdul}
    return "DATA" in names and "VAR" in names


def _arrays(hdul, path, names):
    try:
        with warnings.catch_warnings():  # astropy's "may have been truncated": the error says it
            warnings.simplefilter("ignore")
            return [np.asarray(hdul[n].data, dtype=np.float64) for n in names]
    except (ValueError, OSError, TypeError) as exc:  # a truncated file cannot be reshaped
        with warnings.catch_warnings():  # closing it warns "may have been truncated" again
            warnings.simplefilter("ignore")
            hdul.close()
        raise DataError(f"cube file {str(path)!r}: {'/'.join(names)} cannot be read, the file is truncated or "
                        f"damaged ({' '.join(str(exc).split())})") from None


def read(hdul, path):
    """The fields of the :class:`~mockzgrad.products.cube.MockCube` in an open mockzgrad cube file.

    Raises
    ------
    DataError
        DATA/VAR unreadable, of different shapes, without spectral WCS, with
        no finite or only zero data.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = [h.name for h in hdul]
    data, var = _arrays(hdul, path, ["DATA", "VAR"])
    if data.ndim != 3 or var.shape != data.shape:
        raise DataError(f"cube file {str(path)!r}: DATA must be 3D and VAR the same shape; "
                        f"got {data.shape} and {var.shape}")
    hdr = hdul["DATA"].header
    wcs = cube_wcs(hdr, path)
    keep = np.isfinite(data).any(axis=(1, 2))
    if not keep.any():
        raise DataError(f"cube file {str(path)!r}: DATA has no finite values")
    lo_all, hi_all = channel_edges(wcs, data.shape[0], path)
    if "CHANNELS" in names:
        tab = hdul["CHANNELS"].data
        lo, hi = np.asarray(tab["WAVE_LO"], float), np.asarray(tab["WAVE_HI"], float)
        keep = _channels_by_wavelength(keep, np.r_[lo_all, hi_all[-1]], lo, hi, path)
    else:
        keep &= ~_zero_channels(data, var)  # gaps filled with 0 instead of NaN
        lo, hi = lo_all[keep], hi_all[keep]
    data, var = data[keep], var[keep]
    if not np.any(np.nan_to_num(data) != 0):
        raise DataError(f"cube file {str(path)!r}: DATA is zero (or NaN) everywhere; nothing to measure")
    if not np.isfinite(float(hdr.get("CDELT2", np.nan))):
        raise DataError(f"cube file {str(path)!r}: no pixel scale (CDELT2)")
    pixel_scale, omega = spaxel_geometry(wcs, hdr, path)
    factor = channel_flux_factor(hdr.get("BUNIT", CHANNEL_FLUX), lo, hi, omega, where="DATA BUNIT")[:, None, None]
    psf = psf_cards(hdr, hdul[0].header)
    lsf = float(hdul[0].header.get("LSF_SIGMA", hdr.get("LSF_SIGMA", np.nan)))
    truth = _read_truth(hdul["TRUTH"], path) if "TRUTH" in names else {}
    config_toml = bytes(hdul["CONFIG"].data).decode() if "CONFIG" in names else ""
    noise_free = None
    if "NOISEFREE" in names:
        noise_free = _arrays(hdul, path, ["NOISEFREE"])[0][keep] * factor
    psf_image = np.asarray(hdul["PSF"].data, dtype=np.float64) if "PSF" in names else None
    psf_image_pixel = float(hdul["PSF"].header["PSF_PIXS"]) if "PSF" in names else None
    catalog = json.loads(bytes(hdul["CATALOG"].data).decode()) if "CATALOG" in names else {}
    exposures = {}
    if "EXPOSURES" in names:  # slit-stepping observing log, one row per pointing
        tab = hdul["EXPOSURES"].data
        exposures = {c.lower(): np.asarray(tab[c]).tolist() for c in tab.columns.names}
    return dict(data=data * factor, variance=var * factor**2, edges_lo=lo, edges_hi=hi,
                pixel_scale=pixel_scale, psf=psf, lsf_sigma=lsf, truth=truth, noise_free=noise_free,
                grid=None, config_toml=config_toml, psf_image=psf_image, psf_image_pixel=psf_image_pixel,
                catalog=catalog, exposures=exposures, spectra=SlitSpectra.from_hdul(hdul, path))


def _channels_by_wavelength(keep, edges, lo, hi, path) -> np.ndarray:
    """The channels the CHANNELS table lists, found by wavelength when the gaps are not NaN.

    A cube written by :meth:`MockCube.write` has NaN in its gap channels; when
    a tool replaced them (by 0), the non-NaN channels outnumber the listed
    ones and each listed channel is matched to the WCS channel of its centre.
    """
    if keep.sum() == lo.size:
        return keep
    centres, mid = 0.5 * (edges[:-1] + edges[1:]), 0.5 * (lo + hi)
    idx = np.clip(np.searchsorted(centres, mid), 1, centres.size - 1)
    idx = np.where(np.abs(centres[idx - 1] - mid) <= np.abs(centres[idx] - mid), idx - 1, idx)
    off = np.abs(centres[idx] - mid) > 0.01 * np.abs(hi - lo)
    if off.any() or np.unique(idx).size != idx.size:
        raise DataError(f"cube file {str(path)!r}: {int(keep.sum())} channels hold data but CHANNELS lists "
                        f"{lo.size} that do not fall on the WCS channels; the cube's gaps or its WCS were "
                        "changed after writing")
    out = np.zeros_like(keep)
    out[idx] = True
    return out


def _zero_channels(data, var) -> np.ndarray:
    """Channels that hold only 0 in DATA and 0 or NaN in VAR: gaps written as zeros."""
    zero_data = np.all(np.nan_to_num(data) == 0, axis=(1, 2))
    zero_var = np.all(np.nan_to_num(var) == 0, axis=(1, 2))
    return zero_data & zero_var


def _read_truth(hdu, path) -> dict:
    """The TRUTH extension as a dict; one that is not JSON is ignored with a warning.

    Recovery never reads the truth; suites and curves do, and they find it empty.
    """
    from ...errors import MockzgradWarning

    try:
        truth = json.loads(bytes(hdu.data).decode("utf-8"))
        if isinstance(truth, dict):
            return truth
        problem = f"JSON of type {type(truth).__name__}, not an object"
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        problem = f"not JSON ({type(exc).__name__})"
    warnings.warn(f"cube file {str(path)!r}: TRUTH extension is {problem}; truth ignored",
                  MockzgradWarning, stacklevel=4)
    return {}
