"""A suite's output folder: its results store, checked against the suite, or moved aside.

``<outdir>/results.sqlite`` (:class:`~mockzgrad.suites.store.ResultsStore`)
records the suite's fingerprint when the first run starts; a later run
resumes only the same suite (``n_mocks`` may grow), and ``new=True`` moves
the old store and its ``cubes/`` aside under a UTC time stamp.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

from ..errors import ConfigError, MockzgradWarning
from .spec import canonical_json

__all__ = ["RESULTS_FILENAME", "prepare_store", "move_aside", "remove_parts"]

#: Name of the results database inside a suite's output folder.
RESULTS_FILENAME = "results.sqlite"


def prepare_store(store, spec, outdir: Path) -> None:
    """Record a new suite in ``store``, or check that it holds this suite.

    Parameters
    ----------
    store : ResultsStore
        The folder's results store, open for writing.
    spec : SuiteSpec
    outdir : pathlib.Path
        The folder, for messages.

    Raises
    ------
    ConfigError
        The store holds mocks of no or another suite (fingerprint), or a
        mock index >= ``spec.n_mocks``.

    Warns
    -----
    MockzgradWarning
        The store was written by another mockzgrad version (attributed to
        the caller of ``run_suite``).
    """
    from .. import __version__
    from .store import utc_now

    fp = spec.fingerprint()
    stored = store.get_meta("fingerprint")
    if stored is None:
        _start(store, spec, outdir, fp, __version__)
        return
    if stored != fp:
        raise _changed(store, spec, outdir)
    top = store.max_index()
    if top is not None and top >= spec.n_mocks:
        raise ConfigError(
            f"suite.n_mocks = {spec.n_mocks}, but outdir {str(outdir)!r} already holds mock {top}; "
            f"n_mocks may grow in an existing folder, not shrink (use >= {top + 1}, or a new folder)"
        )
    old_version = store.get_meta("mockzgrad_version")
    if old_version and old_version != __version__:
        warnings.warn(f"resuming suite {spec.name!r} made with mockzgrad {old_version} under "
                      f"mockzgrad {__version__}; finished mocks are not re-run",
                      MockzgradWarning, stacklevel=3)
    store.update_meta({"n_mocks": str(spec.n_mocks), "updated_utc": utc_now(), "suite_toml": _suite_text(spec)})


def _suite_text(spec) -> str:
    return spec.source if spec.source is not None else canonical_json(spec.to_dict())


def _start(store, spec, outdir: Path, fp: str, version: str) -> None:
    from .store import utc_now

    if store.count():
        raise ConfigError(f"outdir {str(outdir)!r} holds a results store with mocks but no suite "
                          "fingerprint; use a new folder or new=True to start over")
    store.update_meta({
        "fingerprint": fp,
        "suite_name": spec.name,
        "suite_spec": canonical_json(spec.canonical()),
        "suite_toml": _suite_text(spec),
        "n_mocks": str(spec.n_mocks),
        "mockzgrad_version": version,
        "updated_utc": utc_now(),
    })


def _changed(store, spec, outdir: Path) -> ConfigError:
    """The error for a store that holds another suite, naming what changed."""
    try:
        old = json.loads(store.get_meta("suite_spec", "{}"))
    except ValueError:  # pragma: no cover
        old = {}
    changed = _diff(old, json.loads(canonical_json(spec.canonical()))) or ["(unknown)"]
    shown = ", ".join(changed[:6]) + (f", ... ({len(changed)} in all)" if len(changed) > 6 else "")
    return ConfigError(
        f"outdir {str(outdir)!r} holds suite {store.get_meta('suite_name', '?')!r} with a different "
        f"specification (changed: {shown}); use a new folder or new=True to start over"
    )


def _diff(old, new, prefix="") -> list[str]:
    """Dotted names of the leaves that differ between two JSON-like trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            p = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(p)
            else:
                out += _diff(old[k], new[k], p)
        return out
    return [] if canonical_json(old) == canonical_json(new) else [prefix or "(all)"]


def remove_parts(outdir: Path) -> int:
    """Delete the temporary files of kept cubes in ``<outdir>/cubes`` (a killed writer's).

    Call only while this run holds the folder lock and no worker writes:
    ``.<name>.<token>.part.fits`` files of :func:`mockzgrad.fileio.atomic_write`
    and the ``tmp*.fits.part`` files of earlier versions. Returns how many
    were removed.
    """
    from ..fileio import part_files

    cubes = Path(outdir) / "cubes"
    if not cubes.is_dir():
        return 0
    stale = part_files(cubes) + sorted(p for p in cubes.glob("tmp*.fits.part") if p.is_file())
    n = 0
    for p in stale:
        try:
            p.unlink()
            n += 1
        except OSError:  # pragma: no cover - vanished or not ours to delete
            pass
    return n


def _timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def move_aside(outdir: Path) -> Path | None:
    """Rename results.sqlite (with its WAL files) and cubes/ to ``*.<UTC timestamp>*``.

    Returns
    -------
    pathlib.Path or None
        The renamed database, or None when there was none. Nothing is deleted.
    """
    from .store import ResultsStore

    db = outdir / RESULTS_FILENAME
    if not db.exists():
        return None
    with ResultsStore(db) as store:  # fold the WAL into the main file
        store.checkpoint()
    stamp = _timestamp()
    n = 0
    while True:
        tag = stamp if n == 0 else f"{stamp}-{n}"
        aside = outdir / f"results.{tag}.sqlite"
        if not aside.exists() and not (outdir / f"cubes.{tag}").exists():
            break
        n += 1
    for suffix in ("-wal", "-shm"):
        extra = Path(str(db) + suffix)
        if extra.exists():
            os.replace(extra, Path(str(aside) + suffix))
    os.replace(db, aside)
    cubes = outdir / "cubes"
    if cubes.exists():
        shutil.move(str(cubes), str(outdir / f"cubes.{tag}"))
    return aside
