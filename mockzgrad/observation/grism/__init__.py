"""The slitless grism mode.

:mod:`.dispersion` is the trace geometry and sensitivity (the observer's
calibration; recovery may import it); :mod:`.forward` is the forward model
(``MODES["grism"]``; recovery may not import it); :mod:`.presets` reads the
instrument presets in ``mockzgrad/instruments/``. Nothing is imported here,
so that importing :mod:`.dispersion` does not load the forward model.
"""

__all__: list[str] = []
