"""ESO VLT IFU cubes: MUSE and KMOS pipeline products and the ESO Phase 3 IFS standard.

Keywords and extensions relied on:

``DATA`` (3D, ``(n_wave, ny, nx)``; KMOS: ``<IFU>.DATA``, the first with data)
    Flux density, ``BUNIT`` e.g. ``'10**(-20)*erg/s/cm**2/Angstrom'`` (MUSE
    Pipeline User Manual, VLT-MAN-ESO-14670-6186, DATACUBE_FINAL format);
    any BUNIT astropy reads as a flux density or surface brightness.
``STAT``
    Variance, ``(BUNIT)**2`` (MUSE ``DATACUBE_FINAL``).
``ERR`` or ``NOISE``
    One sigma (ESO Phase 3 ``ERR`` with ``HDUCLAS3 = 'RMSE'``; KMOS pipeline
    ``<IFU>.NOISE``, KMOS Pipeline User Manual, VLT-MAN-ESO-19500-4428).
    ``HDUCLAS3 = 'MSE'`` marks a variance, ``'RMSE'`` a sigma, whatever the
    name (ESO Science Data Products Standard, GEN-SPE-ESO-33000-5335, 3D cubes).
    ``ERRDATA`` in the data header names the error extension when given.
``DQ`` (optional)
    Non-zero = bad (Euro3D / Phase 3 ``QUALDATA``): masked.
WCS of ``DATA``
    ``CTYPE1/2``, ``CD1_1..CD2_2`` or ``CDELT1/2`` (deg), ``CTYPE3 = 'AWAV'``
    (MUSE: air wavelength, converted to vacuum) or ``'WAVE'`` (KMOS),
    ``CUNIT3`` (``'Angstrom'``, ``'um'``), ``CRVAL3``, ``CD3_3``/``CDELT3``.
``SKY_RES`` (optional)
    Phase 3 spatial resolution, FWHM arcsec: the PSF (circular Gaussian).
``SPEC_RES`` (optional)
    Phase 3 resolving power: the LSF.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from .common import assemble, image_3d

__all__ = ["detect", "read"]

_ERROR_NAMES = ("STAT", "ERR", "NOISE")


def _pair(hdul):
    """(data extension, error extension) names, or None."""
    names = [h.name for h in hdul]
    for name in names:
        if name == "DATA" or name.endswith(".DATA"):
            if hdul[name].header.get("NAXIS") != 3:
                continue
            prefix = name[:-4]
            given = hdul[name].header.get("ERRDATA")
            candidates = ([str(given).upper()] if given else []) + [prefix + e for e in _ERROR_NAMES]
            for err in candidates:
                if err in names:
                    return name, err
    return None


def detect(hdul) -> bool:
    """A 3D ``DATA`` (or ``<IFU>.DATA``) extension with ``STAT``, ``ERR`` or ``NOISE`` beside it."""
    return _pair(hdul) is not None


def _is_variance(hdu, name: str) -> bool:
    cls3 = str(hdu.header.get("HDUCLAS3", "")).strip().upper()
    if cls3 in ("MSE", "RMSE"):
        return cls3 == "MSE"
    return name.endswith("STAT")


def read(hdul, path):
    """The ``MockCube`` keywords of an open ESO cube file (pixels in erg/s/cm^2 per spaxel and channel)."""
    pair = _pair(hdul)
    if pair is None:
        raise DataError(f"cube file {str(path)!r} (ESO): no 3D DATA extension with STAT, ERR or "
                        "NOISE")
    data_name, err_name = pair
    data = image_3d(hdul, data_name, path)
    err = image_3d(hdul, err_name, path)
    variance = err if _is_variance(hdul[err_name], err_name) else err**2
    bad = None
    dq_name = data_name[:-4] + "DQ"
    if dq_name in {h.name for h in hdul}:
        bad = image_3d(hdul, dq_name, path, dtype=np.int64) != 0
    return assemble(data, variance, bad, hdul[data_name].header, hdul[0].header, path, what="ESO")
