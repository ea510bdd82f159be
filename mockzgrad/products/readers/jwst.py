"""JWST NIRSpec/MIRI IFU cubes, ``*_s3d.fits`` (stage 3 ``cube_build`` products).

Keywords and extensions relied on (JWST Science Calibration Pipeline
documentation, ``cube_build`` step and the ``IFUCubeModel`` data model,
jwst-pipeline.readthedocs.io; JDox "Understanding JWST Data Files"):

``SCI`` (3D, ``(n_wave, ny, nx)``)
    Surface brightness, ``BUNIT = 'MJy/sr'`` (``cube_build`` works in
    surface brightness; point-source calibrated data are divided by the pixel
    area first). Any BUNIT astropy reads as a flux density or surface
    brightness is converted.
``ERR``
    Uncertainty, one sigma, same unit as ``SCI``.
``DQ`` (optional)
    Bit mask; pixels with ``DO_NOT_USE`` (bit 0, value 1) set are masked
    (``cube_build`` sets it, with ``NON_SCIENCE``, for spaxels without data).
WCS of ``SCI``
    ``CTYPE1/2 = 'RA---TAN'/'DEC--TAN'``, ``CDELT1/2`` (deg), ``CTYPE3 =
    'WAVE'``, ``CUNIT3 = 'um'``, ``CRVAL3``, ``CDELT3`` (vacuum wavelength).
``PIXAR_SR`` (``SCI``, optional)
    Spaxel solid angle, sr; else ``|CDELT1 x CDELT2|``.
Primary: ``TELESCOP = 'JWST'`` (not required). No PSF or redshift cards: give
``recover --psf-fwhm``/``--psf-image`` and, if the brightest line cannot be
identified, ``--redshift``.
"""

from __future__ import annotations

import numpy as np

from .common import assemble, image_3d

__all__ = ["detect", "read", "DO_NOT_USE"]

#: JWST DQ bit for pixels not to be used (``dqflags.pixel['DO_NOT_USE']``).
DO_NOT_USE = 1


def detect(hdul) -> bool:
    """A 3D ``SCI`` extension (mockzgrad's grism files hold 2D ``SCI_*`` exposures)."""
    names = {h.name for h in hdul}
    return "SCI" in names and hdul["SCI"].header.get("NAXIS") == 3


def read(hdul, path):
    """The ``MockCube`` keywords of an open ``*_s3d.fits`` file (pixels in erg/s/cm^2 per spaxel and channel)."""
    from ...errors import DataError

    names = {h.name for h in hdul}
    if "ERR" not in names:
        raise DataError(f"cube file {str(path)!r} (JWST s3d): no ERR extension; recovery needs the "
                        "uncertainties")
    sci = image_3d(hdul, "SCI", path)
    err = image_3d(hdul, "ERR", path)
    bad = None
    if "DQ" in names:
        bad = (image_3d(hdul, "DQ", path, dtype=np.int64) & DO_NOT_USE) != 0
    return assemble(sci, err**2, bad, hdul["SCI"].header, hdul[0].header, path, what="JWST s3d")
