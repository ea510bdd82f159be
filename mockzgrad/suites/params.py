"""Parameters a suite may set or vary, and the dotted-name tables that hold them.

A suite parameter is either a dotted path of the mock configuration
(:class:`mockzgrad.config.MockConfig`, e.g. ``galaxy.metallicity.grad_z``;
:func:`parameter_paths` lists them) or a derived parameter
(:data:`DERIVED_PARAMETERS`) that sets a configuration field from others.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import typing

from ..config import MockConfig
from ..errors import ConfigError
from ..validate import positive

__all__ = [
    "DERIVED_PARAMETERS",
    "parameter_paths",
    "check_parameter",
    "check_derived_value",
    "flatten_table",
    "deep_merge",
]

#: Derived parameters a suite may vary, and the config field each one sets.
DERIVED_PARAMETERS = {"x_resolution": "instrument.psf.fwhm"}
# (with an elliptical Gaussian PSF x_resolution also scales instrument.psf.fwhm_minor, keeping the PSF's
# axis ratio: suites.expand.coupled_values; the convention is in mockzgrad.config.resolution)

_SEED_MESSAGE = "the mock seed is derived from [suite] seed and the mock index"


@functools.lru_cache(maxsize=1)
def parameter_paths() -> tuple[str, ...]:
    """Dotted names of every mock-configuration field a suite may set or vary.

    Returns
    -------
    tuple of str
        Leaves of the :class:`~mockzgrad.config.MockConfig` dataclass tree,
        e.g. ``"galaxy.metallicity.grad_z"``; ``seed`` is excluded (it is
        derived per mock).
    """
    out = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            name = f"{prefix}{f.name}"
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                walk(tp, name + ".")
            elif name != "seed":
                out.append(name)

    walk(MockConfig, "")
    return tuple(out)


def check_parameter(table: str, name: str) -> None:
    """Refuse a name that is neither a configuration path nor a derived parameter.

    Parameters
    ----------
    table : str
        Suite table the name was found in (``"grid"``, ``"sample"``), for the message.
    name : str
        Dotted parameter name.

    Raises
    ------
    ConfigError
        ``name`` is ``seed`` or unknown; near misses (also a bare leaf such as
        ``r_eff`` for ``galaxy.r_eff``) are suggested.
    """
    if name in DERIVED_PARAMETERS or name in parameter_paths():
        return
    if name == "seed":
        raise ConfigError(f"[{table}] seed: {_SEED_MESSAGE}; it cannot be set or varied")
    allowed = list(parameter_paths()) + list(DERIVED_PARAMETERS)
    close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
    leaf = name.rsplit(".", 1)[-1]
    close += [p for p in allowed if p.rsplit(".", 1)[-1] == leaf and p not in close]
    hint = f" (did you mean {', '.join(repr(c) for c in close[:4])}?)" if close else ""
    raise ConfigError(
        f"[{table}] {name!r} is not a mock parameter{hint}; parameters are dotted config paths "
        f"such as 'galaxy.r_eff' or derived names ({', '.join(DERIVED_PARAMETERS)})"
    )


def check_derived_value(where: str, name: str, value) -> float:
    """A value of a derived parameter, checked as the derivation checks it.

    ``x_resolution`` must be a number > 0 (the check of
    :func:`mockzgrad.config.psf_fwhm_for_x`); ``where`` (e.g. ``"[grid] "``)
    is put before the message.
    """
    try:
        return positive(name, value)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def flatten_table(table: str, data, is_leaf) -> dict:
    """One suite table keyed by dotted names.

    ``{"galaxy": {"r_eff": v}}`` and ``{"galaxy.r_eff": v}`` both give
    ``{"galaxy.r_eff": v}``.

    Parameters
    ----------
    table : str
        Name of the table, for messages.
    data : dict
        The table as read from TOML.
    is_leaf : callable
        ``is_leaf(d)`` is True for a dict that is a value (e.g. a
        distribution ``{dist = ...}``), not a nested table.

    Raises
    ------
    ConfigError
        ``data`` is not a table, or a name is given twice.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"[{table}]: expected a table, got {data!r}")
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and not is_leaf(value):
                walk(value, name + ".")
            else:
                if name in out:
                    raise ConfigError(f"[{table}] {name!r} is given twice")
                out[name] = value

    walk(data, "")
    return out


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` applied on a copy of ``base``, table by table (neither is changed).

    A key of ``over`` replaces the same key of ``base`` unless both values
    are tables, which are merged in turn.
    """
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
