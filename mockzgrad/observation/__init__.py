"""Observation modes: from a mock's configuration to an observer product.

:func:`observe` (:mod:`.modes`) dispatches on ``instrument.kind`` to a mode
(``"ifu"``: :func:`.ifu.build_cube`). The stages modes share live beside
it: :mod:`.psf` (PSF models and spatial convolution), :mod:`.lsf` (the
line-spread function), :mod:`.noise`.

``observe``, ``MODES`` and ``ObservationMode`` are imported on first use
(PEP 562), so that importing :mod:`mockzgrad.observation.psf` (as recovery
does) does not load the modes, the source model and the render kernels.
"""

__all__ = ["observe", "MODES", "ObservationMode"]


def __getattr__(name):
    if name in __all__:
        from . import modes

        return getattr(modes, name)
    raise AttributeError(f"module 'mockzgrad.observation' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
