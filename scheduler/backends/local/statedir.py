"""The state dir, claimed and locked: one scheduler uses it at a time, and only a dir that is new,
empty or a scheduler's own becomes ours, since a scheduler removes files there."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Final

from scheduler.backends.local.files import DIR_MODE, open_regular
from scheduler.errors import ConfigError

DB_FILE: Final = "state.sqlite3"
LOCK_FILE: Final = "lock"
MARKER_FILE: Final = "job-scheduler-state"
MARKER_TEXT: Final = (
    b"This directory holds the state of a job-scheduler (Radix job-scheduler API, local backend).\n"
    b"The scheduler removes the files of deleted jobs in payloads/, logs/ and results/.\n"
)


def check_state_dir(state_dir: Path) -> None:
    """At start, before anything else: ConfigError when the state dir cannot be ours (not
    writable, another program's, or in use by another scheduler), so the process stops with
    one line."""
    os.close(lock(state_dir))


def lock(state_dir: Path) -> int:
    """The state dir's lock file, flocked and holding our pid; ConfigError when it cannot be."""
    try:
        state_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if not os.access(state_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        _claim(state_dir)
        # Not inherited by the jobs' processes (PEP 446), so none of them keeps the lock alive.
        fd = open_regular(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise ConfigError(f"state dir {state_dir} cannot be used: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            raise ConfigError(
                f"state dir {state_dir} is in use by another scheduler (pid {holder})"
            ) from exc
        raise ConfigError(f"state dir {state_dir} cannot be locked: {exc.strerror}") from exc
    # One fixed-width write, so a reader never sees the file empty or half-old.
    os.pwrite(fd, f"{os.getpid():<15}\n".encode(), 0)
    os.ftruncate(fd, 16)
    return fd


def _claim(state_dir: Path) -> None:
    """Marks `state_dir` as ours, unless it holds files of another program: the scheduler
    removes files in its state dir, and must never remove theirs. Ours has the marker file (or
    the database, made by a scheduler from before the marker); a new or empty dir becomes ours.
    """
    marker = state_dir / MARKER_FILE
    if not os.path.lexists(marker):
        if not os.path.lexists(state_dir / DB_FILE):
            with os.scandir(state_dir) as entries:
                if next(entries, None) is not None:
                    raise ConfigError(
                        f"state dir {state_dir} is not empty and holds no scheduler state (no "
                        f"{DB_FILE}): give a new or empty one, as a scheduler removes files there"
                    )
        try:
            fd = open_regular(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pass  # a scheduler starting beside us claimed it first (the lock decides which runs)
        else:
            try:
                os.write(fd, MARKER_TEXT)
            finally:
                os.close(fd)
    # Others may not even list what is in it. Files and dirs in it are the owner's alone too,
    # so a dir we may use but not chmod (a volume owned by another user) is still safe to use.
    with contextlib.suppress(PermissionError):
        os.chmod(state_dir, DIR_MODE)
