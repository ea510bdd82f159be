"""Physical data and formulas: the lowest layer, importing only :mod:`mockzgrad.errors`,
:mod:`mockzgrad.validate` and the shipped data files.

Modules
-------
lines
    Emission-line catalogue (vacuum wavelengths) and fixed doublet/Balmer ratios.
calibrations
    Strong-line metallicity calibrations: finding, loading and caching the
    calibration files (``calibration_curves/``); re-exports :class:`Diagnostic`.
diagnostic
    One calibration's forward model log R(Z), its inversion and its ratio.
ratios
    Line-ratio definitions evaluated on line fluxes.
dust
    Attenuation laws and the Balmer decrement.
cosmology
    Angular scales and luminosity distances.
units
    Quantities in, floats out.
"""

__all__ = ["lines", "calibrations", "diagnostic", "ratios", "dust", "cosmology", "units"]
