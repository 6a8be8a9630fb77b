"""The state dir's files, opened safely: a job writes its result into the state dir, so where a
file is expected it may have left a FIFO, a device or a symlink instead. Those are refused without
blocking on them or following them. What we create is the owner's alone (0600, dirs 0700),
whatever the umask; a payload appears whole or not at all; only names a job's files can have are
taken as theirs."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from scheduler.errors import InvalidError

log = logging.getLogger(__name__)

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
# Readable by its owner alone: the job runs as that owner (the scheduler's user, or the user the
# job's files are handed to when it runs as another).
PAYLOAD_MODE: Final = 0o400
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


def write_payload(directory: Path, payload: bytes) -> None:
    """`<directory>/payload`, read-only, appearing whole or not at all (temp file + rename)."""
    make_dir(directory)
    temp = directory / ".payload.tmp"
    temp.unlink(missing_ok=True)
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(payload)
        # No fsync: the database commits with synchronous=NORMAL, which a power cut may undo
        # too; the rename alone keeps the file whole across a crash of the process.
        os.fchmod(file.fileno(), PAYLOAD_MODE)
    os.replace(temp, directory / "payload")


def remove_paths(paths: Sequence[Path]) -> list[Path]:
    """Remove files and dirs; returns those that were there. A failure is logged, not raised:
    the rows are gone, and the next `open()` sweeps what is left."""
    removed: list[Path] = []
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc)
            continue
        removed.append(path)
    return removed


# A job's name as the scheduler makes them (a DNS label): only entries of this shape in the
# state dir's payloads/, logs/ and results/ can be a job's files.
_JOB_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_job_name(name: str) -> bool:
    return _JOB_NAME.fullmatch(name) is not None


def is_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\0")


def check_name(name: str) -> None:
    if not is_file_name(name) or name.startswith("."):
        raise InvalidError(f"{name!r} cannot name a job's files")
