"""Control of a running suite: stop on a signal, one run per folder, progress bar."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import ConfigError

__all__ = ["StopOnSignal", "FolderLock", "progress_bar"]


class StopOnSignal:
    """SIGINT/SIGTERM -> a flag the run loop polls; a second signal raises KeyboardInterrupt.

    A context manager; handlers are installed only in the main thread and
    the previous ones are put back on exit.

    Attributes
    ----------
    signame : str or None
        Name of the first signal received (``"SIGINT"``, ``"SIGTERM"``), or None.
    """

    def __init__(self):
        self.signame = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.signame is not None:
            raise KeyboardInterrupt
        self.signame = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        return False


class FolderLock:
    """Exclusive advisory lock on ``<outdir>/.lock``: one run per folder.

    Parameters
    ----------
    outdir : pathlib.Path
        The run's output folder (exists). The lock file holds the pid of
        the process that holds the lock.

    Raises
    ------
    ConfigError
        On entry, when another process holds the lock.
    """

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / ".lock"
        self.fh = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "?"
            self.fh.close()
            self.fh = None
            raise ConfigError(f"outdir {str(self.path.parent)!r} is in use by another suite run "
                              f"(pid {holder}); wait for it or use another folder") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()  # releases the flock
            self.fh = None
        return False


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (rate and ETA); off when not ``enabled`` or stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="mock", file=sys.stderr, dynamic_ncols=True,
                disable=None if enabled else True, smoothing=0.05)
