"""A suite's ``[recovery]`` table for the shipped job: its recipe, resolved, checked and hashed.

The table the shipped :func:`mockzgrad.suites.job.run_mock` reads is::

    [recovery]
    recipe = "lee2026"                      # a shipped name, or a recipe TOML file
    overrides = {"dust.correct" = false}    # dotted recipe field -> value (optional)

* **Resolution.** A shipped recipe name wins unless the value is an explicit
  path (it contains a slash or ends in ``.toml``); an explicit relative path
  is taken relative to the suite file, as ``fixed.base`` is. A shipped name
  is handed to the workers as the path of its shipped file, so a file or
  folder of that name in the working directory cannot hide it.
* **Check.** :func:`check_recovery` refuses unknown keys (with the near
  miss), an unknown recipe and unknown or invalid overrides by building the
  :class:`~mockzgrad.config.Recipe` once, as each mock will.
* **Digest.** :func:`recipe_digest` hashes the recipe's content (the parsed
  TOML, so comments do not count) and the bytes of the calibration files of
  its diagnostics; it is part of the suite fingerprint, so a resume after
  editing either is refused.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import warnings
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, MockzgradError, MockzgradWarning

__all__ = ["RECOVERY_KEYS", "DEFAULT_RECIPE", "is_explicit_path", "resolve_recipe", "run_recovery",
           "check_recovery", "recipe_digest"]

#: Keys of ``[recovery]`` that the shipped job reads.
RECOVERY_KEYS = ("recipe", "overrides")
#: Recipe of a ``[recovery]`` table without ``recipe`` (as in the job).
DEFAULT_RECIPE = "lee2026"


def is_explicit_path(value: str) -> bool:
    """True when a recipe value names a file: it contains a slash or ends in ``.toml``."""
    return "/" in value or "\\" in value or value.endswith(".toml")


@functools.lru_cache(maxsize=64)
def _shipped_file(name: str) -> Path | None:
    """The file of a shipped recipe, or None (unknown name, or not a plain file)."""
    from ..config import available_recipes

    if name not in available_recipes():
        return None
    path = resources.files("mockzgrad.recipes").joinpath(f"{name}.toml")
    return Path(str(path)) if isinstance(path, Path) and path.is_file() else None


def resolve_recipe(value, base_dir=None) -> str | None:
    """The file or shipped name a ``[recovery] recipe`` value stands for.

    Parameters
    ----------
    value : str
        As written in the suite file.
    base_dir : str or os.PathLike or None
        Directory of the suite file; None = the current directory.

    Returns
    -------
    str or None
        An absolute file path (an explicit path, or a shipped recipe's file),
        the shipped name itself when its file is not a plain file, or None
        when ``value`` is neither a shipped name nor an explicit path.
    """
    if not isinstance(value, str) or not value:
        return None
    if is_explicit_path(value):
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or ".") / path
        return str(path.resolve())
    shipped = _shipped_file(value)
    if shipped is not None:
        return str(shipped)
    from ..config import available_recipes

    return value if value in available_recipes() else None


def run_recovery(recovery: dict, base_dir=None) -> dict:
    """The ``[recovery]`` table handed to the workers: ``recipe`` resolved when it can be.

    Other keys are copied untouched (a custom ``run_mock`` may read them).
    """
    out = copy.deepcopy(recovery)
    if "recipe" in out:
        resolved = resolve_recipe(out["recipe"], base_dir)
        if resolved is not None:
            out["recipe"] = resolved
    return out


def check_recovery(recovery: dict, base_dir=None):
    """Check a ``[recovery]`` table as the shipped job will read it.

    Parameters
    ----------
    recovery : dict
        The suite's ``[recovery]`` table, as written.
    base_dir : str or os.PathLike or None
        Directory of the suite file.

    Returns
    -------
    Recipe
        The recipe with the overrides applied.

    Raises
    ------
    ConfigError
        An unknown key (the near miss is suggested), a recipe that is not a
        shipped name or a readable recipe file, or overrides the recipe refuses.
    """
    from ..config import available_recipes, load_recipe

    for key in recovery:
        if key not in RECOVERY_KEYS:
            close = difflib.get_close_matches(key, RECOVERY_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"[recovery] {key!r}: unknown key{hint}; allowed: {', '.join(RECOVERY_KEYS)}")
    value = recovery.get("recipe", DEFAULT_RECIPE)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"[recovery] recipe = {value!r}: expected a shipped recipe name "
                          f"({', '.join(available_recipes())}) or the path of a recipe .toml file")
    resolved = resolve_recipe(value, base_dir)
    try:
        recipe = load_recipe(resolved if resolved is not None else value)
    except MockzgradError as exc:
        said = str(exc) if str(exc).startswith("recipe") else f"recipe = {value!r}: {exc}"
        raise ConfigError(f"[recovery] {said}") from None
    overrides = recovery.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"[recovery] overrides = {overrides!r}: expected a table of dotted recipe "
                          "fields, e.g. {\"dust.correct\" = false}")
    if overrides:
        try:
            recipe = recipe.replace(**overrides)
        except MockzgradError as exc:
            raise ConfigError(f"[recovery] overrides: {exc}") from None
    return recipe


def recipe_digest(recovery: dict, base_dir=None) -> str | None:
    """SHA-256 (hex) of the recipe's content and its calibration files, or None.

    None when the table names no recipe the job could read (a custom
    ``run_mock``'s table); the default recipe counts when ``recipe`` is absent
    but the table is otherwise the job's (only known keys).
    """
    if not isinstance(recovery, dict) or not set(recovery) <= set(RECOVERY_KEYS):
        return None
    value = recovery.get("recipe", DEFAULT_RECIPE)
    resolved = resolve_recipe(value, base_dir)
    if resolved is None:
        return None
    try:
        content = _recipe_content(resolved)
        recipe = check_recovery(recovery, base_dir)
    except MockzgradError:
        return None
    parts = {"recipe": content, "calibrations": _calibration_hashes(recipe)}
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _recipe_content(resolved: str) -> dict:
    """The parsed TOML of a recipe (a file path or a shipped name)."""
    from ..config import read_toml
    from ..config.toml_io import parse_toml

    path = Path(resolved)
    if path.is_absolute():
        return read_toml(path, "recipe file")[0]
    text = resources.files("mockzgrad.recipes").joinpath(f"{resolved}.toml").read_text()
    return parse_toml(text, f"recipe {resolved}")


def _calibration_hashes(recipe) -> dict:
    """Calibration set -> SHA-256 of its file, for the recipe's diagnostics."""
    from ..physics.calibrations import get_diagnostic

    out = {}
    with warnings.catch_warnings():  # an unusable diagnostic warns when the mocks run, not here
        warnings.simplefilter("ignore", MockzgradWarning)
        for key in recipe.metallicity.diagnostics:
            diag = get_diagnostic(key)
            out[diag.set_name] = hashlib.sha256(Path(diag.path).read_bytes()).hexdigest()
    return out
