"""Layouts of IFU cube files: :func:`read_cube_fields` detects the layout and reads it.

The public entry point is :func:`mockzgrad.products.cube.read_cube`, which
builds a :class:`~mockzgrad.products.cube.MockCube` from these fields.

Layouts (:data:`LAYOUTS`, tried in this order; see each module for the header
keywords it relies on and the documents they come from):

``"mockzgrad"`` (:mod:`.native`)
    ``DATA`` and ``VAR`` extensions, ``CHANNELS`` table, ``PSF_*`` cards.
``"jwst_s3d"`` (:mod:`.jwst`)
    JWST NIRSpec/MIRI ``*_s3d.fits``: a 3D ``SCI`` extension, ``ERR``, ``DQ``.
``"eso"`` (:mod:`.eso`)
    ESO KMOS/MUSE cubes (and the ESO Phase 3 IFS standard): a 3D ``DATA``
    extension with ``STAT`` (variance) or ``ERR``/``NOISE`` (sigma).

Every reader returns the fields of a :class:`~mockzgrad.products.cube.MockCube` with pixels
in erg/s/cm^2 per spaxel and channel, channel edges in vacuum Angstrom and
masked pixels as NaN, so recovery is the same for every layout.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ...errors import DataError
from . import eso, jwst, native

__all__ = ["LAYOUTS", "cube_layout", "read_cube_fields", "open_cube_file"]

#: Layout name -> module with ``detect(hdul) -> bool`` and ``read(hdul, path) -> dict`` (MockCube fields).
LAYOUTS = {"mockzgrad": native, "jwst_s3d": jwst, "eso": eso}


def open_cube_file(path):
    """The HDU list of a FITS file, or a one-line :class:`DataError`."""
    from astropy.io import fits

    path = Path(path)
    try:
        with warnings.catch_warnings():  # astropy's "may have been truncated": reported if it matters
            warnings.simplefilter("ignore")
            return fits.open(path, memmap=False)
    except FileNotFoundError:
        raise DataError(f"cube file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"cube file {str(path)!r} is not a readable FITS file ({exc})") from None


def cube_layout(hdul) -> str | None:
    """Name of the layout of an open FITS file (a key of :data:`LAYOUTS`), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, module in LAYOUTS.items():
            if module.detect(hdul):
                return name
    return None


def read_cube_fields(path, *, layout: str | None = None) -> dict:
    """Read an IFU cube in any known layout: the keyword arguments of a ``MockCube``.

    Parameters
    ----------
    path : str or path-like
        FITS file.
    layout : str or None
        Force a layout (a key of :data:`LAYOUTS`); None: detect it.

    Returns
    -------
    dict
        ``MockCube`` fields; pixels in erg/s/cm^2 per spaxel and channel; ``psf`` empty when the
        file does not describe its PSF (give one: ``recover --psf-fwhm`` or
        ``--psf-image``).

    Raises
    ------
    DataError
        Missing or unreadable file, unknown layout, or a file its layout's
        reader refuses.
    """
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"cube layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    hdul = open_cube_file(path)
    with hdul:
        name = layout or cube_layout(hdul)
        if name is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                names = [h.name for h in hdul]
            if "DATA" in names:  # mockzgrad or ESO without its errors
                raise DataError(f"cube file {str(path)!r} has no VAR extension (extensions: {names}); recovery "
                                "needs the data and their variance (VAR, or ESO STAT, ERR or NOISE)")
            raise DataError(f"cube file {str(path)!r}: extensions {names} match no cube layout: mockzgrad "
                            "(DATA, VAR), JWST s3d (SCI, ERR, DQ) or ESO KMOS/MUSE (DATA with STAT, ERR or NOISE)")
        fields = LAYOUTS[name].read(hdul, Path(path))
    return fields
