"""Observer products and their FITS I/O.

Every product follows :class:`~mockzgrad.products.protocol.Product`; the
IFU cube is :class:`~mockzgrad.products.cube.MockCube`, read from mockzgrad,
JWST ``*_s3d.fits`` or ESO KMOS/MUSE files by
:func:`~mockzgrad.products.cube.read_cube` (layouts in ``readers``). ``grids`` holds the
spectral and spatial sampling shared by products and observation modes.
"""

from .cube import MockCube, read_cube
from .protocol import Product

__all__ = ["Product", "MockCube", "read_cube"]
