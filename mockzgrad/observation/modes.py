"""The observation entry point: :func:`observe` dispatches on ``instrument.kind``.

Every mode is a function ``mode(cfg, *, keep_noise_free, use_numba)`` that
returns a :class:`~mockzgrad.products.protocol.Product`, registered in
:data:`MODES` under its ``instrument.kind``. Each mode consumes the same
noise-free, pre-PSF scene of the source model
(:func:`mockzgrad.source.scene.render_scene`) on a sampling it chooses.

Adding a mode (grism, slit stepping): write its module in this package,
register its function in :data:`MODES`, and add its kind to
:data:`mockzgrad.config.INSTRUMENT_KINDS`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ..config import MockConfig
from ..errors import ConfigError
from ..products.protocol import Product
from .ifu import build_cube
from .slitstep import build_slitstep_cube
from .grism.forward import build_grism

__all__ = ["ObservationMode", "MODES", "observe"]


class ObservationMode(Protocol):
    """Signature of an observation mode."""

    def __call__(self, cfg: MockConfig, *, keep_noise_free: bool = True, use_numba: bool = True) -> Product:
        ...


#: Observation modes: ``instrument.kind`` -> the function that observes a mock in that mode.
MODES: dict[str, ObservationMode] = {
    "ifu": build_cube,
    "slitstep": build_slitstep_cube,
    "grism": build_grism,
}


def observe(cfg: MockConfig, *, keep_noise_free: bool = True, use_numba: bool = True) -> Product:
    """Observe one mock in the mode its ``instrument.kind`` names.

    Parameters
    ----------
    cfg : MockConfig
        The mock; ``cfg.seed`` seeds every random draw.
    keep_noise_free : bool
        Keep the noise-free data in the product (e.g. ``MockCube.noise_free``).
    use_numba : bool
        Use the compiled render kernel (False: its numpy twin).

    Returns
    -------
    Product
        A :class:`~mockzgrad.products.cube.MockCube` for ``"ifu"``.

    Raises
    ------
    ConfigError
        ``instrument.kind`` names no registered mode.
    """
    kind = cfg.instrument.kind
    mode = MODES.get(kind)
    if mode is None:
        raise ConfigError(f"instrument.kind = {kind!r}; allowed: {', '.join(map(repr, MODES))}")
    product = mode(cfg, keep_noise_free=keep_noise_free, use_numba=use_numba)
    if product.kind == "ifu":  # the pixel unit of the cube file (reading converts back)
        product = dataclasses.replace(product, unit=cfg.instrument.cube_unit)
    return product
