"""The configuration reference, generated from the dataclasses.

Every field of a configuration table is described by what its dataclass
already declares: the default, the check attached by the ``*_field``
functions of :mod:`mockzgrad.config._checks` (range, unit, choices), the
type annotation, and the field's entry in the class docstring's
``Parameters`` section. Nothing is repeated here, so the reference cannot
drift from the checks. The documentation builds its configuration pages
from :func:`reference_tables`; ``python -m mockzgrad.config.reference``
prints the same reference as Markdown.

Examples
--------
>>> from mockzgrad.config.reference import reference_tables
>>> galaxy = next(t for t in reference_tables("mock") if t.path == "galaxy")
>>> r_eff = next(f for f in galaxy.fields if f.name == "r_eff")
>>> r_eff.unit, r_eff.allowed
('kpc', '(0.0, 100.0]')
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import re
import sys
import types
import typing
from dataclasses import dataclass

from .. import validate
from ._checks import line_name

__all__ = ["FieldInfo", "TableInfo", "ROOTS", "reference_tables", "field_info", "docstring_parameters",
           "markdown"]


@dataclass(frozen=True)
class FieldInfo:
    """One configuration field as the reference shows it.

    Parameters
    ----------
    name : str
        Field name (the TOML key).
    path : str
        Dotted TOML path (``galaxy.r_eff``).
    type : str
        The value's type (``float``, ``int``, ``str``, ``bool``, ``list of str``, ``table``).
    default : str
        The default as TOML-like text; ``none`` for an optional field without a value.
    unit : str
        Unit of the value ("" for dimensionless or not a number).
    allowed : str
        Allowed values from the field's declared check ("" when the field is
        checked by its dataclass's own rules, described in ``description``).
    description : str
        The field's text in the class docstring.
    """

    name: str
    path: str
    type: str
    default: str
    unit: str
    allowed: str
    description: str


@dataclass(frozen=True)
class TableInfo:
    """One TOML table: its dotted path, its dataclass and its fields.

    Parameters
    ----------
    path : str
        Dotted TOML path of the table (``""`` for the top level).
    cls : type
        The dataclass.
    summary : str
        First line of the dataclass's docstring.
    fields : tuple of FieldInfo
        The fields that are not tables themselves, in declaration order.
    """

    path: str
    cls: type
    summary: str
    fields: tuple


def _roots() -> dict:
    from .mock import MockConfig
    from .recipe import Recipe

    return {"mock": MockConfig, "recipe": Recipe}


#: The documented roots: a mock configuration file and a recipe file.
ROOTS = ("mock", "recipe")


def _dict_tables() -> dict:
    """Dict fields whose values are tables of a dataclass, keyed by (class name, field name)."""
    from .grism import ExposureConfig

    return {("GrismConfig", "exposures"): ("<label>", ExposureConfig)}


def docstring_parameters(doc: str | None) -> dict:
    """The ``Parameters`` section of a numpydoc docstring as ``{name: (type, description)}``.

    A line ``a, b : float`` documents both ``a`` and ``b``.

    Parameters
    ----------
    doc : str or None
        The docstring (as :func:`inspect.getdoc` returns it, dedented).

    Returns
    -------
    dict
        Name -> (type text, description joined into one line).
    """
    lines = (doc or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines[:-1])
                     if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}) + 2
    except StopIteration:
        return {}
    out, names, kind, desc = {}, [], "", []

    def flush():
        for name in names:
            out[name] = (kind, " ".join(desc))

    for i in range(start, len(lines)):
        line = lines[i]
        if line and not line[0].isspace():
            if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                break  # next section
            flush()
            head, _, kind = line.partition(" : ")
            names, kind, desc = [n.strip() for n in head.split(",")], kind.strip(), []
        elif line.strip():
            desc.append(line.strip())
    flush()
    return out


def _dataclass_of(annotation):
    """The dataclass in an annotation (``X``, ``X | None``, ``Optional[X]``), else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        found = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def _type_name(annotation, default) -> str:
    if annotation is typing.Any:
        return "any"
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a, None) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (tuple, list, collections.abc.Sequence):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return "list of " + _type_name(args[0], None) if args else "list"
    if annotation in (tuple, list):
        return "list"
    if annotation is dict or origin is dict:
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    return _toml_text(value)


def _toml_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else "{" + ", ".join(f"{k} = {_toml_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _describe_check(check) -> tuple[str, str]:
    """(allowed, unit) of a declared check (a :mod:`mockzgrad.validate` function, maybe partially applied)."""
    if check is None:
        return "", ""
    if isinstance(check, functools.partial):
        func, kw = check.func, check.keywords
        if func is validate.number:
            return validate.interval(kw.get("lo"), kw.get("hi"), kw.get("lo_open", False),
                                     kw.get("hi_open", False)), kw.get("unit", "")
        if func is validate.integer:
            return "integer in " + validate.interval(kw.get("lo"), kw.get("hi")), ""
        if func is validate.choice:
            return "one of " + ", ".join(f'"{a}"' for a in kw["allowed"]), ""
    if check is validate.boolean:
        return "true or false", ""
    if check is line_name:
        return "a line name (`mockzgrad.physics.lines.LINES`)", ""
    each = inspect.getclosurevars(check).nonlocals.get("each", False) if inspect.isfunction(check) else False
    if each is not False:  # strings_field
        if each is None:
            return "list of strings", ""
        item, _ = _describe_check(each)
        return f"list, each {item}", ""
    doc = inspect.getdoc(check)
    return (doc.splitlines()[0].rstrip(".") if doc else ""), ""


_PLAIN_TYPES = ("str", "float", "int", "bool", "dict", "list", "tuple")


def field_info(f: dataclasses.Field, annotation, table: str, doc: dict) -> FieldInfo:
    """The :class:`FieldInfo` of dataclass field ``f`` in TOML table ``table``.

    Parameters
    ----------
    f : dataclasses.Field
        The field.
    annotation : object
        Its resolved type annotation.
    table : str
        Dotted path of its table.
    doc : dict
        The class docstring's parameters (:func:`docstring_parameters`).

    Returns
    -------
    FieldInfo
    """
    allowed, unit = _describe_check(f.metadata.get("check"))
    doc_type, desc = doc.get(f.name, ("", ""))
    if not allowed and doc_type.startswith("{"):
        allowed = "one of " + doc_type.strip("{}")  # choices declared in the docstring only
    elif not desc and doc_type and not doc_type.startswith("{") and doc_type.split()[0] not in _PLAIN_TYPES:
        desc = f"values: {doc_type}"
    default = f.default if f.default is not dataclasses.MISSING else None
    return FieldInfo(name=f.name, path=f"{table}.{f.name}" if table else f.name,
                     type=_type_name(annotation, default), default=_default_text(f), unit=unit,
                     allowed=allowed, description=desc)


def _tables(cls, path: str) -> list:
    hints = typing.get_type_hints(cls)
    doc = docstring_parameters(inspect.getdoc(cls))
    own, nested = [], []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        sub = _dataclass_of(hints.get(f.name))
        child = f"{path}.{f.name}" if path else f.name
        dict_table = _dict_tables().get((cls.__name__, f.name))
        if sub is not None:
            nested.extend(_tables(sub, child))
        else:
            own.append(field_info(f, hints.get(f.name), path, doc))
        if dict_table is not None:
            key, item_cls = dict_table
            nested.extend(_tables(item_cls, f"{child}.{key}"))
    summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    return [TableInfo(path=path, cls=cls, summary=summary, fields=tuple(own)), *nested]


def reference_tables(root: str = "mock") -> list:
    """Every table of a configuration file, depth first, with its fields.

    Parameters
    ----------
    root : {"mock", "recipe"}
        A mock configuration (:class:`~mockzgrad.config.MockConfig`) or a
        recovery recipe (:class:`~mockzgrad.config.Recipe`).

    Returns
    -------
    list of TableInfo
        The top level first (path ``""``), then each table in declaration order.
    """
    validate.choice("root", root, ROOTS)
    return _tables(_roots()[root], "")


def markdown(root: str = "mock") -> str:
    """The reference of one root as Markdown: a heading and a table per TOML table.

    Parameters
    ----------
    root : {"mock", "recipe"}
        See :func:`reference_tables`.

    Returns
    -------
    str
    """
    out = []
    for table in reference_tables(root):
        if not table.fields:
            continue
        out.append(f"### `[{table.path}]`" if table.path else "### top level")
        out.append(f"\n{table.summary} (`{table.cls.__module__}.{table.cls.__name__}`)\n")
        out.append("| field | type | default | unit | allowed | description |")
        out.append("|---|---|---|---|---|---|")
        for f in table.fields:
            cells = [f"`{f.name}`", f.type, f"`{f.default}`", f.unit, f.allowed, f.description]
            out.append("| " + " | ".join(re.sub(r"\|", r"\\|", c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover - python -m mockzgrad.config.reference [mock|recipe]
    for name in sys.argv[1:] or ROOTS:
        print(f"## {name}\n\n{markdown(name)}")
