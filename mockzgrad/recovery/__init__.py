"""Recovery: measure a metallicity gradient from an observer product, as observers do.

A front end per product kind (:mod:`.frontend`; IFU cubes today) turns the
product into per-bin line fluxes (:class:`BinFluxes`) and radii; one back end
(:mod:`.backend`: dust -> metallicity -> gradient) measures the gradient;
:func:`recover` runs both by recipe.

Recovery sees only data products (a cube with its variance, sampling and
PSF description); it never imports the galaxy model or reads the truth.
"""

from .backend import GradientMeasurement, measure_gradient  # noqa: F401
from .binning import Binning  # noqa: F401
from .fluxes import BinFluxes  # noqa: F401
from .geometry import Geometry, fit_geometry, inclination_from_axis_ratio  # noqa: F401
from .gradient import GradientFit, fit_gradient  # noqa: F401
from .linefit import LineFitResult, LineModel, default_line_model, fit_lines  # noqa: F401
from .metallicity import MetallicityResult, line_flux_method, method_one, method_two  # noqa: F401
from .pipeline import RecoveryResult, recover  # noqa: F401

__all__ = [
    "recover", "RecoveryResult",
    "measure_gradient", "GradientMeasurement",
    "fit_geometry", "Geometry", "inclination_from_axis_ratio", "Binning",
    "fit_lines", "LineModel", "LineFitResult", "default_line_model",
    "BinFluxes", "MetallicityResult", "method_one", "method_two", "line_flux_method",
    "fit_gradient", "GradientFit",
]
