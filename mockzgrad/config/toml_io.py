"""TOML in and out: the one reader of config, recipe and suite files, and a small writer.

``tomllib`` reads only; :func:`dumps_toml` writes the nested tables of
scalars and lists a configuration holds (TOML has no null, so None values
are left out).
"""

from __future__ import annotations

import math
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..errors import ConfigError

__all__ = ["read_toml", "parse_toml", "dumps_toml"]


def parse_toml(text: str, where: str) -> dict:
    """Parse TOML text; a syntax error names ``where`` (e.g. ``"recipe lee2026"``)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None


def read_toml(path, what: str) -> tuple[dict, str]:
    """Read a TOML file; errors name ``what`` and the path.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages (``"config file"``, ``"suite file"``).

    Returns
    -------
    (dict, str)
        The parsed data and the file's text.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start}); TOML files are UTF-8") from None
    return parse_toml(text, f"{what} {str(path)!r}"), text


def _toml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ConfigError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def dumps_toml(data: dict, *, _prefix: str = "") -> str:
    """Serialise a nested dict of scalars, lists and tables to TOML text.

    Keys keep their order; scalars of a table come before its sub-tables;
    None values are left out.
    """
    lines = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_scalar(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        name = f"{_prefix}.{key}" if _prefix else key
        body = dumps_toml(value, _prefix=name).strip("\n")
        block = f"[{name}]" + (f"\n{body}" if body else "")
        out = f"{out}\n\n{block}" if out else block
    return out.strip("\n") + "\n"
