"""The state dir's files, opened safely: a job writes its result into the state dir, so where a
file is expected it may have left a FIFO, a device or a symlink instead. Those are refused without
blocking on them or following them. What we create is the owner's alone (0600, dirs 0700),
whatever the umask."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
# O_NONBLOCK: opening a FIFO for reading returns at once (for writing it fails, ENXIO) instead
# of waiting for a writer. O_NOCTTY: a terminal left there never becomes ours.
_SAFE_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class NotAFileError(OSError):
    """Something other than a regular file is where one was expected."""


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = FILE_MODE) -> int:
    """A descriptor of `path` when it is a regular file (made with `mode` if `flags` has
    O_CREAT); never through a symlink, and the open never blocks. NotAFileError when something
    else is there, FileNotFoundError when nothing is (without O_CREAT)."""
    try:
        fd = os.open(path, flags | _SAFE_FLAGS, mode)
    except OSError as exc:
        # A symlink (ELOOP), a FIFO with no reader to write to (ENXIO), a directory (EISDIR).
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise NotAFileError(exc.errno, "not a regular file", str(path)) from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAFileError(errno.EINVAL, "not a regular file", str(path))
        # Back to blocking I/O, which on a regular file only ever waits for the disk.
        os.set_blocking(fd, True)
        if flags & os.O_CREAT:
            os.fchmod(fd, mode)  # the umask took its bits off a new file; an old one is ours too
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_tail(path: Path, limit: int) -> bytes | None:
    """The last `limit` bytes of the regular file at `path`; None when there is none there."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        return os.pread(fd, size - start, start)
    finally:
        os.close(fd)


def own_file(path: Path, *, create: bool) -> None:
    """The regular file at `path` (made when `create` and missing) as ours alone: 0600, also
    when an older scheduler made it with a looser mode."""
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT if create else os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """`path` (and its missing parents) as a directory of ours, 0700 even when it was there
    before with a looser mode; OSError when something else (a symlink too) is there."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        pass
    except FileNotFoundError:
        make_dir(path.parent)
        path.mkdir(mode=DIR_MODE, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != DIR_MODE:
            os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)
