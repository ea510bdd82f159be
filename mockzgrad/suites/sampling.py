"""Distributions of a suite's ``[sample]`` table: their checks and their draws.

Each sampled parameter is a table ``{dist = ..., ...}``:

* ``uniform``: ``low``, ``high``; uniform on [low, high).
* ``loguniform``: ``low``, ``high``; uniform in log on [low, high), 0 < low.
* ``choice``: ``values``; one of the values, equal weights.
"""

from __future__ import annotations

import copy
import math

from ..errors import ConfigError
from ..validate import choice, finite, positive
from .params import DERIVED_PARAMETERS, check_derived_value

__all__ = ["DISTRIBUTIONS", "SAMPLE_KEYS", "is_distribution", "check_distribution", "draw"]

#: Sampling distributions of ``[sample]``.
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
#: Keys each distribution takes besides ``dist``.
SAMPLE_KEYS = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "choice": ("values",)}


def is_distribution(table: dict) -> bool:
    """True for a table that describes a distribution rather than nesting names."""
    return bool({"dist", "low", "high", "values"} & set(table))


def check_distribution(name: str, spec) -> dict:
    """A checked, normalised copy of the distribution of parameter ``name``.

    Parameters
    ----------
    name : str
        Dotted parameter name (already checked).
    spec : dict
        ``{"dist": "uniform" | "loguniform", "low": ..., "high": ...}`` or
        ``{"dist": "choice", "values": [...]}``; ``low`` and ``high`` in the
        parameter's unit.

    Returns
    -------
    dict
        ``low``/``high`` as floats, or a copy of ``values``.

    Raises
    ------
    ConfigError
        Unknown ``dist``, missing or unknown keys, ``low >= high``, a
        loguniform ``low <= 0``, an empty ``values``, or values a derived
        parameter cannot take.
    """
    where = f"[sample] {name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} = {spec!r}: expected a table such as "
                          "{dist = \"uniform\", low = 0.0, high = 1.0}")
    if "dist" not in spec:
        raise ConfigError(f"{where}: no dist given; allowed: {', '.join(map(repr, DISTRIBUTIONS))}")
    dist = choice(f"{where}: dist", spec["dist"], DISTRIBUTIONS)
    _check_keys(where, dist, spec)
    if dist == "choice":
        return {"dist": dist, "values": _check_values(where, name, spec["values"])}
    low = finite(f"{where}: low", spec["low"])
    high = finite(f"{where}: high", spec["high"])
    if not low < high:
        raise ConfigError(f"{where}: low = {spec['low']} >= high = {spec['high']}; need low < high")
    if dist == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: low = {spec['low']}; loguniform needs 0 < low < high")
    if name in DERIVED_PARAMETERS:
        positive(f"{where}: low", low)
    return {"dist": dist, "low": low, "high": high}


def _check_keys(where: str, dist: str, spec: dict) -> None:
    keys = SAMPLE_KEYS[dist]
    extra = sorted(set(spec) - {"dist", *keys})
    missing = [k for k in keys if k not in spec]
    if extra or missing:
        raise ConfigError(
            f"{where}: dist = {dist!r} takes {', '.join(keys)}"
            + (f"; unknown: {', '.join(extra)}" if extra else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )


def _check_values(where: str, name: str, values) -> list:
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise ConfigError(f"{where}: values = {values!r}: expected a non-empty list")
    if name in DERIVED_PARAMETERS:
        for v in values:
            check_derived_value("[sample] ", name, v)
    return [copy.deepcopy(v) for v in values]


def draw(rng, spec: dict):
    """One draw from a checked distribution.

    Parameters
    ----------
    rng : numpy.random.Generator
        Consumes one uniform (``uniform``, ``loguniform``) or one integer
        (``choice``) draw.
    spec : dict
        As returned by :func:`check_distribution`.
    """
    import numpy as np

    dist = spec["dist"]
    if dist == "uniform":
        return float(rng.uniform(spec["low"], spec["high"]))
    if dist == "loguniform":
        return float(np.exp(rng.uniform(math.log(spec["low"]), math.log(spec["high"]))))
    return copy.deepcopy(spec["values"][int(rng.integers(len(spec["values"])))])
