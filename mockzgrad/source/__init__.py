"""The source model: what the galaxy emits, before any instrument.

Modules: :mod:`.galaxy` (light, geometry, rotation, dispersion, Z(r)),
:mod:`.lineflux` (line fluxes from Z(r): reference line x calibrated
ratios, dust), :mod:`.scene` (the noise-free, pre-PSF scene every
observation mode consumes), :mod:`.render` (checked entry points to the
render kernels). The source layer imports nothing from ``observe``,
``products`` or above; import the modules themselves (nothing is loaded
here, so that importing :mod:`.galaxy` does not load the numba kernels).
"""

__all__: list[str] = []
