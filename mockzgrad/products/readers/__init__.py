"""Readers of IFU cube files (mockzgrad, JWST s3d, ESO KMOS/MUSE) behind
:func:`mockzgrad.products.cube.read_cube`.

See :mod:`.core` for the layouts and each layout's module for the header
keywords it relies on; :mod:`.units` converts a file's BUNIT to the flux per
spaxel and channel recovery uses.
"""

from .core import LAYOUTS, cube_layout, read_cube_fields
from .units import CHANNEL_FLUX, CUBE_UNITS, FLAM20, MJY_SR, channel_flux_factor, parse_bunit

__all__ = ["LAYOUTS", "cube_layout", "read_cube_fields", "CHANNEL_FLUX", "CUBE_UNITS", "FLAM20", "MJY_SR",
           "channel_flux_factor", "parse_bunit"]
