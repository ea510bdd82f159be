"""Field validators: the one place where a user value is checked.

Every validator takes the field's dotted name (as the user wrote it: a
config path such as ``galaxy.r_eff``, or a parameter name such as
``psf_fwhm``), the value and what is allowed, returns the value as a plain
Python number, and otherwise raises :class:`~mockzgrad.errors.ConfigError`
with a one-line message naming the field, the value and the allowed range::

    galaxy.inclination = 95.0 deg; allowed [0.0, 90.0] deg

Imports nothing of the package but :mod:`mockzgrad.errors`, so every layer
may use it.
"""

from __future__ import annotations

import difflib
import math
import numbers

from .errors import ConfigError

__all__ = ["is_number", "number", "finite", "positive", "integer", "choice", "interval"]


def is_number(value) -> bool:
    """True for a finite real number (bool excluded)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def interval(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> str:
    """The allowed range as text, e.g. ``[0.0, 90.0]`` or ``(0.0, inf)``."""
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _real(field: str, value, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{field} = {value!r}: expected a number{_unit(unit)}")
    return float(value)


def number(field: str, value, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False,
           unit: str = "") -> float:
    """A finite number in ``[lo, hi]`` (ends open where asked; None: unbounded).

    NaN and infinities always fail.
    """
    value = _real(field, value, unit)
    ok = math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        raise ConfigError(f"{field} = {value!r}{_unit(unit)}; allowed {interval(lo, hi, lo_open, hi_open)}{_unit(unit)}")
    return value


def finite(field: str, value, unit: str = "") -> float:
    """Any finite number."""
    value = _real(field, value, unit)
    if not math.isfinite(value):
        raise ConfigError(f"{field} = {value}{_unit(unit)}; allowed: finite")
    return value


def positive(field: str, value, unit: str = "", *, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``)."""
    value = _real(field, value, unit)
    if not (math.isfinite(value) and (value >= 0.0 if allow_zero else value > 0.0)):
        raise ConfigError(f"{field} = {value}{_unit(unit)}; allowed: {'>=' if allow_zero else '>'} 0")
    return value


def integer(field: str, value, lo=None, hi=None) -> int:
    """An integer (bool excluded) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{field} = {value!r}: expected an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{field} = {value!r}; allowed {interval(lo, hi)}")
    return int(value)


def choice(field: str, value, allowed) -> str:
    """One of the strings ``allowed``; a near miss is suggested."""
    if not isinstance(value, str) or value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{field} = {value!r}{hint}; allowed: {', '.join(map(repr, allowed))}")
    return value
