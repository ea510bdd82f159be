"""Configuration dataclasses <-> nested dicts (as read from and written to TOML).

:func:`from_dict` checks each key against the dataclass's fields and each
value's TOML type against the annotation, then lets the dataclass check the
range; :func:`config_to_dict` is its inverse; :func:`set_path` changes one
dotted path of such a dict, as ``replace`` and suites do.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import fields

from .. import validate
from ..errors import ConfigError

__all__ = ["config_to_dict", "from_dict", "set_path"]


def config_to_dict(obj) -> dict:
    """Plain nested dict of a config dataclass, fields in declaration order.

    None values are omitted (TOML has no null); tuples become lists.
    """
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


@functools.lru_cache(maxsize=None)
def _type_hints(cls) -> dict:
    """``typing.get_type_hints`` of a config dataclass, cached (it evaluates every annotation: 1-5 ms a build)."""
    return typing.get_type_hints(cls)


def from_dict(cls, data: dict, path: str = ""):
    """Build and check the dataclass ``cls`` from a nested dict.

    Parameters
    ----------
    cls : type
        A configuration dataclass (``MockConfig``, ``Recipe``, or a part).
    data : dict
        Its fields by name; nested dataclasses as nested dicts.
    path : str
        Dotted TOML path of ``data``, for messages (``""`` at the top level).

    Raises
    ------
    ConfigError
        An unknown key (near misses are suggested), a value of the wrong
        type, or a value the dataclass refuses.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table, got {data!r}")
    hints = _type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"{full}: unknown key{hint}; allowed in [{path or 'top level'}]: {', '.join(names)}"
            )
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, full)
        else:
            kwargs[key] = _coerce(full, value, tp)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"{path}: {exc}") from None


def _coerce(path, value, tp):
    """Check the TOML type against the annotation; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(path, value, non_none[0]) if value is not None else None
    if tp is float:
        return validate.real(path, value)
    if tp is int:
        return validate.integer(path, value)
    if tp is bool:
        return validate.boolean(path, value)
    if tp is str:
        return validate.text(path, value)
    if origin is tuple:
        return validate.strings(path, value)
    return value  # pragma: no cover


def set_path(data: dict, path: str, value) -> None:
    """Set ``data[a][b][c] = value`` for ``path = "a.b.c"``, creating tables on the way.

    None removes the key (the field goes back to its default); tuples are
    stored as lists, as TOML gives them.
    """
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {k} is not a table")
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = list(value) if isinstance(value, tuple) else value
