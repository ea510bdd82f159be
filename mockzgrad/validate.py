"""Field validators: the one place where a user value is checked.

Every validator takes the field's dotted name (as the user wrote it: a
config path such as ``galaxy.r_eff``, or a parameter name such as
``psf_fwhm``), the value and what is allowed, returns the value as a plain
Python object, and otherwise raises :class:`~mockzgrad.errors.ConfigError`
with a one-line message naming the field, the value and what is allowed::

    galaxy.inclination = 95.0 deg; allowed [0.0, 90.0] deg

``bool`` is never taken for a number, and NaN or infinities never pass a
range check. Imports nothing of the package but :mod:`mockzgrad.errors`, so
every layer may use it.
"""

from __future__ import annotations

import difflib
import math
import numbers

from .errors import ConfigError

__all__ = [
    "is_number",
    "real",
    "number",
    "finite",
    "positive",
    "integer",
    "choice",
    "boolean",
    "text",
    "strings",
    "interval",
]


def is_number(value) -> bool:
    """True for a finite real number (``bool`` excluded); never raises."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def interval(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> str:
    """The allowed range as text, e.g. ``[0.0, 90.0]`` or ``(0.0, inf)``.

    Parameters
    ----------
    lo, hi : float or None
        Ends of the range; None: unbounded on that side (shown as -inf/inf, open).
    lo_open, hi_open : bool
        Whether the end itself is excluded.
    """
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def real(field: str, value, unit: str = "") -> float:
    """Any real number as a float, NaN and infinities included (``bool`` excluded).

    Checks the type only, for readers (such as the TOML reader) whose range
    check comes later.

    Parameters
    ----------
    field : str
        Dotted name of the field, for the message.
    value : object
        The value given.
    unit : str
        Unit of the field, for the message ("" for dimensionless).

    Returns
    -------
    float
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{field} = {value!r}: expected a number{_unit(unit)}")
    return float(value)


def number(field: str, value, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False,
           unit: str = "") -> float:
    """A finite number in ``[lo, hi]``; NaN and infinities always fail.

    Parameters
    ----------
    field : str
        Dotted name of the field, for the message.
    value : object
        The value given.
    lo, hi : float or None
        Allowed range, in ``unit``; None: unbounded on that side.
    lo_open, hi_open : bool
        Exclude the end itself.
    unit : str
        Unit of the field, for the message.

    Returns
    -------
    float
        ``value`` as a float.
    """
    value = real(field, value, unit)
    ok = math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        raise ConfigError(f"{field} = {value!r}{_unit(unit)}; allowed {interval(lo, hi, lo_open, hi_open)}"
                          f"{_unit(unit)}")
    return value


def finite(field: str, value, unit: str = "") -> float:
    """Any finite number, as a float (parameters as for :func:`number`)."""
    value = real(field, value, unit)
    if not math.isfinite(value):
        raise ConfigError(f"{field} = {value}{_unit(unit)}; allowed: finite")
    return value


def positive(field: str, value, unit: str = "", *, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``), as a float.

    Parameters as for :func:`number`.
    """
    value = real(field, value, unit)
    if not (math.isfinite(value) and (value >= 0.0 if allow_zero else value > 0.0)):
        raise ConfigError(f"{field} = {value}{_unit(unit)}; allowed: {'>=' if allow_zero else '>'} 0")
    return value


def integer(field: str, value, lo=None, hi=None) -> int:
    """An integer (``bool`` and integral floats excluded) in ``[lo, hi]``, as an int.

    Parameters
    ----------
    field : str
        Dotted name of the field, for the message.
    value : object
        The value given.
    lo, hi : int or None
        Allowed range, both ends included; None: unbounded on that side.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{field} = {value!r}: expected an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{field} = {value!r}; allowed {interval(lo, hi)}")
    return int(value)


def choice(field: str, value, allowed) -> str:
    """One of the strings ``allowed``; the message suggests a near miss.

    Parameters
    ----------
    field : str
        Dotted name of the field, for the message.
    value : object
        The value given.
    allowed : iterable of str
        The allowed values (a tuple, or the keys of a mapping).
    """
    if not isinstance(value, str) or value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{field} = {value!r}{hint}; allowed: {', '.join(map(repr, allowed))}")
    return value


def boolean(field: str, value) -> bool:
    """``True`` or ``False``; numbers are not taken for truth values."""
    if not isinstance(value, bool):
        raise ConfigError(f"{field} = {value!r}: expected true or false")
    return value


def text(field: str, value, *, empty: bool = True) -> str:
    """A string; with ``empty=False`` it must not be empty."""
    if not isinstance(value, str):
        raise ConfigError(f"{field} = {value!r}: expected a string")
    if not empty and not value:
        raise ConfigError(f"{field} = {value!r}: expected a non-empty string")
    return value


def strings(field: str, value) -> tuple[str, ...]:
    """A list or tuple of strings, returned as a tuple; a bare string fails."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) for v in value
    ):
        raise ConfigError(f"{field} = {value!r}: expected a list of strings")
    return tuple(value)
