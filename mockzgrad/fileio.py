"""Output files: paths checked before any work, files written atomically.

Every output of mockzgrad (cube FITS, recovery JSON, curves ECSV, corrected
tables, figures, exported results) goes through :func:`atomic_write`: the
path is checked first (:func:`check_output_path`), the file is written to a
temporary file in the same folder, flushed to disk (``fsync``) and renamed
over the target with :func:`os.replace`. A process killed during the write
leaves the previous file intact (and at most a hidden ``.<name>.<token>.part``
file, see :func:`part_files`); a full disk leaves the previous file intact and
raises a one-line :class:`~mockzgrad.errors.DataError`. A new file's mode
follows the umask, as for any file the user creates (``0o666 & ~umask``).

Commands that run long work before writing call :func:`check_output_path`
(or :func:`check_output_dir` for an output folder) first, so a bad path fails
in a second, not after the run.

Foundation layer: imports only the standard library and ``mockzgrad.errors``.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Callable

from .errors import DataError

__all__ = ["atomic_write", "check_output_path", "check_output_dir", "part_files", "PART_MARK",
           "OutputExistsError"]

#: Marker in the name of a temporary file being written: ``.<name>.<token>.part<suffix>``.
PART_MARK = ".part"


class OutputExistsError(DataError, FileExistsError):
    """The output file exists and ``overwrite`` was not given (also a :class:`FileExistsError`)."""


def _shown(path) -> str:
    return repr(os.fspath(path))


def _check_folder(folder: Path, what: str) -> None:
    """The folder a file is written into exists, is a folder and is writable."""
    if not folder.exists():
        raise DataError(f"{what}: folder {_shown(folder)} does not exist; create it first")
    if not folder.is_dir():
        raise DataError(f"{what}: {_shown(folder)} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{what}: folder {_shown(folder)} is not writable")


def check_output_path(path, overwrite: bool = False) -> Path:
    """Check that a file can be written at ``path``, before any work is done.

    Parameters
    ----------
    path : str or path-like
        Output file.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The path.

    Raises
    ------
    DataError
        One line naming the path and what is wrong: empty path, an existing
        folder, an existing file without ``overwrite``, an existing entry that
        is not a regular file, a missing, non-folder or unwritable parent.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise DataError("output path is empty; give a file name")
    p = Path(text)
    what = f"output {_shown(text)}"
    if p.is_dir():
        raise DataError(f"{what} is a folder; give a file name")
    if p.exists():
        if not overwrite:
            raise OutputExistsError(f"{what} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if not p.is_file():
            raise DataError(f"{what} exists and is not a regular file; refusing to replace it")
    _check_folder(p.parent, what)
    return p


def check_output_dir(path) -> Path:
    """Check that ``path`` is, or can be created as, a writable output folder.

    Parameters
    ----------
    path : str or path-like
        Output folder; it may exist (a resumed run) or not (created with its
        missing parents).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        One line naming the path: an existing file, a non-folder ancestor, an
        unwritable folder or nearest existing ancestor.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise DataError("output folder is empty; give a folder name")
    p = Path(text)
    what = f"output folder {_shown(text)}"
    if p.exists():
        if not p.is_dir():
            raise DataError(f"{what} is a file; give a folder name")
        if not os.access(p, os.W_OK | os.X_OK):
            raise DataError(f"{what} is not writable")
        return p
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DataError(f"{what}: {_shown(ancestor)} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DataError(f"{what} cannot be created: folder {_shown(ancestor)} is not writable")
    return p


def _open_part(target: Path) -> str:
    """Create an empty temporary file next to ``target``; its mode follows the umask."""
    folder = target.parent
    for _ in range(100):
        name = f".{target.stem[:100]}.{secrets.token_hex(4)}{PART_MARK}{target.suffix[:20]}"
        tmp = os.path.join(folder, name) if str(folder) else name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise DataError(f"output {_shown(target)}: cannot create a temporary file in {_shown(folder)}")  # pragma: no cover


def _fsync(path, directory: bool = False) -> None:
    """Flush a file (or, best effort, a folder's entries) to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:  # folders cannot be opened everywhere (Windows); the rename still happened
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot fsync a folder
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "no space left on the device"
    return exc.strerror or str(exc)


def atomic_write(path, writer: Callable[[str], object], *, overwrite: bool = False) -> Path:
    """Write a file atomically: a temporary file in the same folder, fsync, rename.

    Parameters
    ----------
    path : str or path-like
        Output file, checked with :func:`check_output_path`.
    writer : callable
        ``writer(tmp)`` writes the whole output to the path ``tmp`` (a str in
        the same folder, with the same suffix as ``path``; the file already
        exists, empty, so writers that refuse existing files need their
        ``overwrite=True``).
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DataError
        A bad path (before ``writer`` runs) or an OS error while writing (full
        disk, quota, I/O error): the previous file, if any, is left intact and
        the temporary file removed.
    """
    target = check_output_path(path, overwrite)
    tmp = _open_part(target)
    try:
        writer(tmp)
        _fsync(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        kept = "; the previous file is unchanged" if target.exists() else ""
        raise DataError(f"output {_shown(os.fspath(path))}: cannot write ({_reason(exc)}){kept}") from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync(target.parent if str(target.parent) else ".", directory=True)
    return target


def part_files(folder) -> list[Path]:
    """Temporary files :func:`atomic_write` left in ``folder`` (a killed process), sorted.

    Only files named ``.<stem>.<8 hex digits>.part<suffix>`` are returned;
    deleting them is safe once no writer runs in the folder.
    """
    out = []
    for p in Path(folder).glob(f".*{PART_MARK}*"):
        parts = p.name[1:].split(".")
        if p.is_file() and any(len(t) == 8 and _is_hex(t) and nxt == PART_MARK[1:]
                               for t, nxt in zip(parts, parts[1:])):
            out.append(p)
    return sorted(out)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
