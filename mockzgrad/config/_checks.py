"""Fields declared once with their check, and the loop that runs the checks.

A configuration dataclass declares each field with its default, allowed
range and unit (``number_field(2.0, 0.0, 100.0, lo_open=True, unit="kpc")``);
its ``__post_init__`` calls :func:`check_fields` with the field's TOML table
(``"galaxy"``), which checks every declared field in declaration order with
:mod:`mockzgrad.validate` and names it by its dotted path. Rules that tie
fields together stay in the ``__post_init__`` beside that call.

A field whose default is None is optional: None is accepted unchecked.
Values are checked, not converted (an int given for a float stays an int),
except lists of strings, which are stored as tuples.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import field, fields

from .. import validate
from ..errors import ConfigError
from ..physics.lines import LINES

__all__ = [
    "number_field",
    "integer_field",
    "choice_field",
    "bool_field",
    "line_field",
    "strings_field",
    "check_fields",
    "line_name",
    "calibration_keys",
]


def _declare(default, check, *, store: bool = False):
    return field(default=default, metadata={"check": check, "store": store})


def number_field(default, lo=None, hi=None, *, lo_open=False, hi_open=False, unit=""):
    """A float field in ``[lo, hi]`` (see :func:`mockzgrad.validate.number`)."""
    check = functools.partial(validate.number, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, unit=unit)
    return _declare(default, check)


def integer_field(default, lo=None, hi=None):
    """An int field in ``[lo, hi]`` (see :func:`mockzgrad.validate.integer`)."""
    return _declare(default, functools.partial(validate.integer, lo=lo, hi=hi))


def choice_field(default, allowed):
    """A string field, one of ``allowed``."""
    return _declare(default, functools.partial(validate.choice, allowed=allowed))


def bool_field(default):
    """A true/false field."""
    return _declare(default, validate.boolean)


def line_field(default):
    """A line name of :data:`mockzgrad.physics.lines.LINES`."""
    return _declare(default, line_name)


def strings_field(default, each=None):
    """A list of strings, stored as a tuple; ``each(path, item)`` checks every item."""
    def check(path, value):
        value = validate.strings(path, value)
        for item in value if each is not None else ():
            each(path, item)
        return value

    return _declare(default, check, store=True)


def check_fields(obj, table: str) -> None:
    """Run the declared check of every field of ``obj``, a dataclass in TOML table ``table``.

    Parameters
    ----------
    obj : dataclass instance
        Fields declared with the ``*_field`` functions of this module are
        checked; others are left to the caller.
    table : str
        Dotted TOML path of ``obj`` (``""`` at the top level).
    """
    for f in fields(obj):
        check = f.metadata.get("check")
        value = getattr(obj, f.name)
        if check is None or (value is None and f.default is None):
            continue
        value = check(f"{table}.{f.name}" if table else f.name, value)
        if f.metadata["store"]:
            object.__setattr__(obj, f.name, value)


def line_name(path: str, name) -> str:
    """A line of :data:`mockzgrad.physics.lines.LINES`; the message suggests near misses."""
    if not isinstance(name, str) or name not in LINES:
        close = difflib.get_close_matches(str(name), LINES, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{path} = {name!r} is not a known line{hint}; allowed: {', '.join(LINES)}")
    return name


def calibration_keys(path: str, keys) -> dict:
    """Check that every key names a known calibration; return the diagnostics by key."""
    from ..physics import calibrations  # loads the calibration files on first use

    known = calibrations.all_diagnostics()
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=4)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{path}: unknown calibration {key!r}{hint}; `mockzgrad calibrations` lists them")
    return known
