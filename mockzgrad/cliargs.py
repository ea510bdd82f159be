"""Argument parsing of the command line: one-line errors and checked option types.

:class:`Parser` prints an argparse error as one line, ``mockzgrad: error:
<command>: <message>``, and exits with status 2 (argparse's usage block is
left out). :func:`harden` gives every ``--seed``, ``--workers``,
``--redshift`` and ``--psf-fwhm`` of every subcommand a checked type, so a
subcommand added later gets the same checks.
"""

from __future__ import annotations

import argparse

from .errors import ConfigError

__all__ = ["Parser", "degree", "seed", "count", "positive", "harden", "check_suffix", "CHECKED_TYPES"]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``mockzgrad: error: ...``, exit status 2."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{command}: " if command else ""
        hint = f"; see 'mockzgrad {command} --help'" if command else "; see 'mockzgrad --help'"
        self.exit(2, f"mockzgrad: error: {where}{message}{hint}\n")


def degree(text: str):
    """``--degree``: 'auto' or an integer (its range is checked by the curves settings)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'auto' or an integer 0-8") from None


def seed(text: str) -> int:
    """A seed option: an integer >= 0 (what numpy's SeedSequence takes)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return value


def count(text: str) -> int:
    """A count option (``--workers``): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def positive(text: str) -> float:
    """A physical quantity option (``--redshift``, ``--psf-fwhm``): a finite number > 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number > 0")
    return value


#: Option destinations -> the checked type that replaces a bare int/float, in every subcommand.
CHECKED_TYPES = {"seed": seed, "workers": count, "redshift": positive, "psf_fwhm": positive}


def harden(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every ``--seed``, ``--workers``, ``--redshift``, ``--psf-fwhm`` of every subcommand its checked type."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                harden(sub)
        elif action.dest in CHECKED_TYPES and action.type in (int, float):
            action.type = CHECKED_TYPES[action.dest]
    return parser


def check_suffix(option: str, path: str, allowed: tuple) -> None:
    from pathlib import Path

    ext = Path(path).suffix.lower()
    if ext not in allowed:
        raise ConfigError(f"{option} {path!r}: extension {ext or '(none)'!r}; allowed: {', '.join(allowed)}")
