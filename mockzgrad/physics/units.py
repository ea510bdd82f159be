"""Unit handling at the public edge: Quantities in, plain floats out.

Inside mockzgrad every number is a float in a documented unit; these helpers
are the one place where astropy Quantities are converted. A bare number is
never silently given a unit except where the caller says which unit a bare
number means (``default_unit``), as configuration files do.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np

from ..errors import ConfigError
from ..validate import real

__all__ = ["to_float", "to_array"]


def to_float(field: str, value, unit, *, default_unit=None) -> float:
    """Convert ``value`` to a float in ``unit``.

    Parameters
    ----------
    field : str
        Name of the parameter, used in the error message.
    value : `~astropy.units.Quantity` or float
        The value. A bare number is accepted only when ``default_unit`` is
        given, and is then taken to be in ``default_unit``.
    unit : str or `~astropy.units.UnitBase`
        Unit of the returned float.
    default_unit : str or `~astropy.units.UnitBase`, optional
        Unit assumed for a bare number.

    Returns
    -------
    float
    """
    unit = u.Unit(unit)
    if isinstance(value, u.Quantity):
        if not value.unit.is_equivalent(unit):
            raise ConfigError(f"{field} = {value!r}: expected a quantity in {unit}")
        if value.size != 1:
            raise ConfigError(f"{field} = {value!r}: expected a scalar")
        return float(value.to_value(unit))
    if default_unit is None:
        raise ConfigError(f"{field} = {value!r}: expected a Quantity in {unit}")
    return float((real(field, value, f"in {default_unit}") * u.Unit(default_unit)).to_value(unit))


def to_array(field: str, value, unit, *, default_unit=None) -> np.ndarray:
    """Array version of :func:`to_float`."""
    unit = u.Unit(unit)
    if isinstance(value, u.Quantity):
        if not value.unit.is_equivalent(unit):
            raise ConfigError(f"{field}: expected a quantity in {unit}, got {value.unit}")
        return np.asarray(value.to_value(unit), dtype=float)
    if default_unit is None:
        raise ConfigError(f"{field}: expected a Quantity in {unit}")
    return np.asarray(value, dtype=float) * u.Unit(default_unit).to(unit)
