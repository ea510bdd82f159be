"""Read any observer product from FITS: :func:`read_product` decides by the file's extensions.

* ``KIND = 'linemaps'`` in the primary header or ``FLUX_<line>``
  extensions: line maps (:func:`~mockzgrad.products.linemaps.read_linemaps`);
* an IFU cube in any layout :func:`~mockzgrad.products.readers.cube_layout` knows
  (mockzgrad ``DATA``/``VAR``, JWST ``*_s3d.fits``, ESO KMOS/MUSE):
  :func:`~mockzgrad.products.cube.read_cube`;
* ``KIND = 'grism'`` or ``SCI`` extensions: grism exposures
  (``mockzgrad.products.grism.read_grism``, when that module is installed).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import DataError
from .cube import read_cube
from .linemaps import is_linemaps_file, read_linemaps
from .readers import cube_layout

__all__ = ["product_kind", "read_product"]


def _is_grism(hdul) -> bool:
    if str(hdul[0].header.get("KIND", "")).lower() == "grism":
        return True
    return any(h.name == "SCI" or h.name.startswith("SCI_") for h in hdul[1:])


def product_kind(path) -> str:
    """``"linemaps"``, ``"ifu"`` or ``"grism"``: the product a FITS file holds.

    Raises
    ------
    DataError
        Missing or unreadable file, or extensions of no known product.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except FileNotFoundError:
        raise DataError(f"product file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"product file {str(path)!r} is not a readable FITS file ({exc})") from None
    with hdul:
        if is_linemaps_file(hdul):
            return "linemaps"
        if cube_layout(hdul) is not None or "DATA" in [h.name for h in hdul]:
            return "ifu"
        if _is_grism(hdul):
            return "grism"
        names = [h.name for h in hdul]
    raise DataError(f"product file {str(path)!r}: extensions {names} are neither a cube (DATA, VAR), "
                    "line maps (FLUX_<line>, VAR_<line>) nor grism exposures (SCI)")


def read_product(path):
    """The observer product in FITS file ``path`` (a cube, line maps or grism exposures).

    Raises
    ------
    DataError
        As :func:`product_kind`, or as the reader of that product.
    """
    kind = product_kind(path)
    if kind == "linemaps":
        return read_linemaps(path)
    if kind == "ifu":
        return read_cube(path)
    try:
        grism = importlib.import_module("mockzgrad.products.grism")
    except ImportError:
        raise DataError(f"product file {str(path)!r} holds grism exposures, which this installation "
                        "cannot read (no mockzgrad.products.grism)") from None
    return grism.read_grism(path)
