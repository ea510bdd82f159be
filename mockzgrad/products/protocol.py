"""What every observer product offers: the :class:`Product` protocol.

An observation mode (:func:`mockzgrad.observation.observe`) returns a product:
an IFU cube (:class:`~mockzgrad.products.cube.MockCube`) today, grism line
maps and slit-stepped cubes later. Recovery's front end turns a product
into per-bin line fluxes using only what is listed here plus the data of
its kind; suites read the truth and write the product.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Product"]


@runtime_checkable
class Product(Protocol):
    """An observer product of one mock.

    Attributes
    ----------
    kind : str
        The observation mode that made it, one of
        :data:`mockzgrad.config.INSTRUMENT_KINDS` (``"ifu"`` for a cube).
    pixel_scale : float
        Spatial pixel size, arcsec.
    psf : dict
        PSF description as FITS keywords (``PSF_KIND``, ``PSF_FWHM`` in
        arcsec, ...; see :meth:`mockzgrad.observation.psf.PSF.to_header`), what
        an observer knows of the PSF.
    truth : dict
        The mock's true parameters, for suites and curves; recovery never
        reads it.
    """

    kind: str
    pixel_scale: float
    psf: dict
    truth: dict

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` pixel-centre offsets from the field centre, arcsec (east, north), 1-D each."""
        ...

    def write(self, path: Any, *, overwrite: bool = False) -> None:
        """Write the product as FITS (refuse to replace ``path`` unless ``overwrite``)."""
        ...
