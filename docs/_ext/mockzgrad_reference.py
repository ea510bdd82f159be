"""Sphinx directives that generate the reference pages from the code.

``.. mockzgrad-config:: mock`` (or ``recipe``) writes one section per TOML
table with every field (name, type, default, unit, allowed values,
description) from :func:`mockzgrad.config.reference.reference_tables`;
``.. mockzgrad-cli::`` writes one section per command of
:func:`mockzgrad.cli.build_parser` with its usage and its arguments;
``.. mockzgrad-recipes::`` lists the shipped recipes. The text is produced
at build time, so the pages always match the code.
"""

from __future__ import annotations

import argparse
import re

from sphinx.util.docutils import SphinxDirective


def _literal(text: str) -> str:
    return f"``{text}``" if text else ""


def _escape_bars(text: str) -> str:
    """Escape ``|`` and ``*`` outside inline literals (``|x|`` would be a substitution reference,
    ``*_s3d`` the start of an emphasis)."""
    parts = re.split(r"(``.*?``)", text)
    return "".join(p if p.startswith("``") else p.replace("|", "\\|").replace("*", "\\*") for p in parts)


def _cell(text: str) -> str:
    """One list-table cell: a single line (empty cells need a placeholder)."""
    text = _escape_bars(" ".join(str(text).split()))
    return text if text else "\\ "


def _list_table(header: list, rows: list, widths: str) -> list:
    out = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        out.append(f"   * - {_cell(row[0])}")
        out.extend(f"     - {_cell(c)}" for c in row[1:])
    out.append("")
    return out


def config_rst(root: str) -> str:
    """The reference of configuration root ``root`` as reStructuredText."""
    from mockzgrad.config.reference import reference_tables

    out = []
    for table in reference_tables(root):
        if not table.fields:
            continue
        title = f"[{table.path}]" if table.path else "top level"
        out += [title, "~" * len(title), "",
                f"{table.summary} (:class:`{table.cls.__module__}.{table.cls.__name__}`)", ""]
        rows = [[_literal(f.name), f.type, _literal(f.default), f.unit, f.allowed, f.description]
                for f in table.fields]
        out += _list_table(["field", "type", "default", "unit", "allowed", "description"], rows,
                           "14 8 12 8 18 40")
    return "\n".join(out)


def _subcommands(parser: argparse.ArgumentParser) -> list:
    """(name, help, subparser) of every subcommand, in the order they were added."""
    out = []
    for action in parser._actions:  # argparse keeps subparsers in a private list; no public accessor
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _argument_rows(parser: argparse.ArgumentParser) -> list:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names = ", ".join(action.option_strings) or action.dest
        if action.choices is not None:
            value = " | ".join(map(str, action.choices))
        elif action.nargs == 0:
            value = ""
        else:
            value = action.metavar or (action.dest.upper() if action.option_strings else "")
        default = "" if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else action.default
        required = "yes" if action.required or not action.option_strings else ""
        rows.append([_literal(names), _literal(str(value)), _literal(str(default)) if default != "" else "",
                     required, action.help or ""])
    return rows


def cli_rst() -> str:
    """Every command of ``mockzgrad`` as reStructuredText."""
    from mockzgrad.cli import build_parser

    parser = build_parser()
    out = [_escape_bars(parser.description or ""), "", ".. code-block:: text", ""]
    out += ["   " + line for line in parser.format_usage().strip().splitlines()] + [""]
    for name, help_, sub in _subcommands(parser):
        title = f"mockzgrad {name}"
        help_ = help_ or ""
        out += [title, "~" * len(title), "", _escape_bars(help_[:1].upper() + help_[1:]), "",
                ".. code-block:: text", ""]
        out += ["   " + line for line in sub.format_usage().strip().splitlines()] + [""]
        rows = _argument_rows(sub)
        if rows:
            out += _list_table(["argument", "value", "default", "required", "meaning"], rows, "22 18 12 8 40")
    return "\n".join(out)


def recipes_rst() -> str:
    """The shipped recipes (name, description, source) as a reStructuredText table."""
    from mockzgrad.config import RecipeInfo, available_recipes, load_recipe

    default, rows = RecipeInfo().name, []
    for name in available_recipes():
        info = load_recipe(name).recipe
        rows.append([_literal(name) + (" (default)" if name == default else ""), info.description, info.source])
    return "\n".join(_list_table(["recipe", "what it does", "source"], rows, "16 50 34"))


class RecipeTable(SphinxDirective):
    """``.. mockzgrad-recipes::``: the shipped recipes."""

    def run(self):
        return self.parse_text_to_nodes(recipes_rst())


class ConfigReference(SphinxDirective):
    """``.. mockzgrad-config:: mock|recipe``: the generated configuration reference."""

    required_arguments = 1

    def run(self):
        return self.parse_text_to_nodes(config_rst(self.arguments[0]), allow_section_headings=True)


class CliReference(SphinxDirective):
    """``.. mockzgrad-cli::``: the generated command-line reference."""

    def run(self):
        return self.parse_text_to_nodes(cli_rst(), allow_section_headings=True)


def setup(app):
    app.add_directive("mockzgrad-config", ConfigReference)
    app.add_directive("mockzgrad-cli", CliReference)
    app.add_directive("mockzgrad-recipes", RecipeTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
