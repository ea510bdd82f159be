"""FITS conventions shared by every observer product.

Header cards from the truth (``HIERARCH`` for names over 8 characters), the
celestial WCS of a product's pixel grid (x towards east = -column, RA
increasing to the left) and byte extensions holding JSON or TOML text.
"""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["CRVAL_RA", "CRVAL_DEC", "set_header", "flat_truth", "celestial_header", "text_hdu", "json_hdu"]

#: Sky position of the field centre written to the WCS (arbitrary, deg).
CRVAL_RA, CRVAL_DEC = 150.0, 2.0


def set_header(h, key: str, value) -> None:
    """Set one scalar card; lists, dicts and None are skipped, long strings cut to 60 characters."""
    if value is None or isinstance(value, (list, tuple, dict)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    if isinstance(value, str) and len(value) > 60:
        value = value[:60]
    h[key if (len(key) <= 8 and key.isupper()) else f"HIERARCH {key}"] = value


def flat_truth(truth: dict) -> dict:
    """One level of nesting flattened: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for k, v in truth.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def celestial_header(shape, pixel_scale: float, *, naxis: int = 2):
    """Celestial TAN WCS of a ``(ny, nx)`` grid of ``pixel_scale`` arcsec pixels centred on the field."""
    from astropy.io import fits

    ny, nx = shape
    h = fits.Header()
    h["WCSAXES"] = naxis
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["CRPIX1"], h["CRPIX2"] = 0.5 * (nx + 1), 0.5 * (ny + 1)
    h["CRVAL1"], h["CRVAL2"] = CRVAL_RA, CRVAL_DEC
    h["CDELT1"], h["CDELT2"] = -pixel_scale / 3600.0, pixel_scale / 3600.0
    return h


def text_hdu(name: str, text: str):
    """An image extension holding ``text`` as UTF-8 bytes (CONFIG)."""
    from astropy.io import fits

    return fits.ImageHDU(np.frombuffer(text.encode(), dtype=np.uint8), name=name)


def json_hdu(name: str, obj):
    """An image extension holding ``obj`` as JSON bytes (TRUTH, PROVENANCE)."""
    return text_hdu(name, json.dumps(obj))
