"""A small JSON-schema validator: the subset ``calibration_curves/schema.json`` uses.

Keywords understood: ``$ref`` (local), ``oneOf``, ``type``, ``enum``,
``minLength``, ``pattern``, ``minimum``, ``required``, ``minProperties``,
``properties``, ``additionalProperties``, ``minItems``, ``maxItems``,
``items``. A problem is reported at the deepest location that explains it,
so a calibration-file error names the field.
"""

from __future__ import annotations

import json
import re

__all__ = ["SchemaProblem", "validate_json"]


class SchemaProblem(Exception):
    """``value`` at location ``loc`` (e.g. ``diagnostics[3] (S25_R3).form``) breaks the schema."""

    def __init__(self, loc, problem):
        super().__init__(f"{loc}: {problem}")
        self.loc, self.problem = loc, problem


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value, name) -> bool:
    t = _json_type(value)
    return t == name or (name == "number" and t == "integer")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_json(value, schema: dict, loc: str = "", root: dict | None = None) -> None:
    """Check ``value`` (parsed JSON) against ``schema``; raise :class:`SchemaProblem` if it fails.

    Parameters
    ----------
    value : object
        Parsed JSON.
    schema : dict
        The (sub)schema to check against.
    loc : str
        Location of ``value`` in the document, for messages ("" at the top).
    root : dict or None
        The whole schema, against which ``$ref`` resolves (None: ``schema``).
    """
    root = schema if root is None else root
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return validate_json(value, node, loc, root)
    if "oneOf" in schema:
        _one_of(value, schema["oneOf"], loc, root)
    _scalar(value, schema, loc)
    if isinstance(value, dict):
        _object(value, schema, loc, root)
    if isinstance(value, list):
        _array(value, schema, loc, root)
    return None


def _one_of(value, alternatives, loc, root):
    problems, n_ok = [], 0
    for sub in alternatives:
        try:
            validate_json(value, sub, loc, root)
            n_ok += 1
        except SchemaProblem as exc:
            problems.append(exc)
    if n_ok == 0:
        raise max(problems, key=lambda e: len(e.loc))
    if n_ok > 1:
        raise SchemaProblem(loc, "matches more than one alternative")


def _scalar(value, schema, loc):
    """``type``, ``enum``, and the string and number keywords."""
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_is_type(value, t) for t in types):
            raise SchemaProblem(
                loc, f"expected {' or '.join(types)}, got {_json_type(value)} {_short(value)}"
            )
    if "enum" in schema and not any(
        value == e and _json_type(value) == _json_type(e) for e in schema["enum"]
    ):
        raise SchemaProblem(loc, f"= {_short(value)}; allowed: "
                                 f"{', '.join(json.dumps(e) for e in schema['enum'])}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise SchemaProblem(loc, "must not be empty")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaProblem(loc, f"= {value!r} does not match {schema['pattern']}")
    if _json_type(value) in ("integer", "number") and "minimum" in schema:
        if value < schema["minimum"]:
            raise SchemaProblem(loc, f"= {value}; must be >= {schema['minimum']}")


def _object(value: dict, schema, loc, root):
    for k in schema.get("required", ()):
        if k not in value:
            raise SchemaProblem(f"{loc}.{k}" if loc else k, "required field missing")
    if len(value) < schema.get("minProperties", 0):
        raise SchemaProblem(loc, "must not be empty")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for k, v in value.items():
        sub_loc = f"{loc}.{k}" if loc else k
        if k in props:
            validate_json(v, props[k], sub_loc, root)
        elif extra is False:
            allowed = ", ".join(props)
            raise SchemaProblem(sub_loc, f"unknown field; allowed: {allowed}")
        elif isinstance(extra, dict):
            validate_json(v, extra, sub_loc, root)


def _array(value: list, schema, loc, root):
    if len(value) < schema.get("minItems", 0):
        raise SchemaProblem(loc, f"needs at least {schema['minItems']} item(s), "
                                 f"got {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SchemaProblem(loc, f"allows at most {schema['maxItems']} items, "
                                 f"got {len(value)}")
    if "items" in schema:
        for i, v in enumerate(value):
            # name an entry by its key, so the message points at the diagnostic
            tag = f" ({v['key']})" if isinstance(v, dict) and isinstance(v.get("key"), str) else ""
            validate_json(v, schema["items"], f"{loc}[{i}]{tag}", root)
