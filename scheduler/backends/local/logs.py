"""An attempt's log on the local backend: the file the runner writes (`<time> <line>` per line),
its times kept or stripped, the last N lines, and followed until the attempt ends, across the
runner's compactions. Read in blocks off the event loop: a log of any size takes constant memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import BinaryIO

from scheduler.backends.local.files import NotAFileError, open_regular
from scheduler.backends.local.records import pod_name
from scheduler.backends.local.store import LocalStore
from scheduler.errors import NotFoundError

BLOCK_BYTES = 64 * 1024
# How often a followed log looks for new lines: the runner writes the file and signals nobody.
FOLLOW_POLL_SECONDS = 0.1
# A stored time (`2024-05-01T12:00:00.123456Z`) fits with room to spare.
STAMP_BYTES = 64


async def reading(
    store: LocalStore,
    job: str,
    pod: str,
    *,
    follow: bool,
    tail: int | None,
    timestamps: bool,
    finished: Callable[[], bool],
) -> AsyncGenerator[bytes, None]:
    """`finished()`: the attempt has ended, so its file is complete (the runner closes the log
    before the attempt is marked finished)."""
    path = await _log_path(store, job, pod)
    try:
        log = await asyncio.to_thread(LogFile, path)
    except (FileNotFoundError, NotAFileError) as exc:
        raise NotFoundError(f"the log of attempt {pod} of job {job} is gone") from exc
    try:
        if tail is not None:
            await asyncio.to_thread(log.seek_tail, tail)
        unstamper = None if timestamps else Unstamper()
        yield b""
        while True:
            # Sampled before reading: all the file will ever hold is there once it is true.
            ended = not follow or finished()
            block = await asyncio.to_thread(log.read)
            if block:
                text = block if unstamper is None else unstamper.feed(block)
                if text:
                    yield text
                continue
            if follow and await asyncio.to_thread(log.follow_replacement):
                continue
            if ended:
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        log.close()


async def _log_path(store: LocalStore, job: str, pod: str) -> Path:
    for attempt in await store.attempts(job):
        if pod_name(job, attempt.idx) == pod:
            return attempt.log_path
    raise NotFoundError(f"attempt {pod} of job {job} not found")


class LogFile:
    """The log file, read in blocks; blocking calls, for a worker thread. Only a regular file is
    opened, never through a symlink, and never waiting on a FIFO: the runner writes the log, but
    a job could put something else at its path."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: BinaryIO = _open(path)

    def read(self) -> bytes:
        return self._file.read(BLOCK_BYTES)

    def seek_tail(self, lines: int) -> None:
        self._file.seek(tail_start(self._file, lines))

    def follow_replacement(self) -> bool:
        """When the runner has compacted the log (a new, shorter file at the same path): move to
        the new file, at the first line after the last one read here, and say so. Called at the
        end of the current file, whose lines are whole then."""
        try:
            now = os.lstat(self._path)
        except FileNotFoundError:
            return False  # deleted with its job: what is open is all there is
        ours = os.fstat(self._file.fileno())
        position = self._file.tell()
        if (now.st_ino, now.st_dev) == (ours.st_ino, ours.st_dev) and now.st_size >= position:
            return False
        if ours.st_size > position:
            return True  # written to before it was replaced: read that first
        last = last_stamp(self._file)
        try:
            new = _open(self._path)
        except (FileNotFoundError, NotAFileError):
            return False
        new.seek(first_line_after(new, last))
        self._file.close()
        self._file = new
        return True

    def close(self) -> None:
        self._file.close()


def _open(path: Path) -> BinaryIO:
    return open(open_regular(path), "rb")


def tail_start(file: BinaryIO, lines: int) -> int:
    """Where the last `lines` lines of the file begin, found reading backwards in blocks."""
    end = file.seek(0, os.SEEK_END)
    if lines <= 0 or end == 0:
        return end
    file.seek(end - 1)
    # The newline that ends the last line does not start another one.
    stop = end - 1 if file.read(1) == b"\n" else end
    position = stop
    while position > 0:
        size = min(BLOCK_BYTES, position)
        position -= size
        file.seek(position)
        block = file.read(size)
        found = len(block)
        while (found := block.rfind(b"\n", 0, found)) != -1:
            lines -= 1
            if lines == 0:
                return position + found + 1
    return 0


def last_stamp(file: BinaryIO) -> bytes | None:
    """The time of the file's last line."""
    file.seek(tail_start(file, 1))
    head = file.readline(STAMP_BYTES)
    return head.split(b" ", 1)[0] if head else None


def first_line_after(file: BinaryIO, stamp: bytes | None) -> int:
    """Where the first line stamped later than `stamp` begins (the file's end if none is).

    A compacted log starts with the newest lines of the one it replaced: those were read
    already. Times have a fixed width, so bytes compare as times do."""
    if stamp is None:
        return 0
    position = 0
    while True:
        file.seek(position)
        head = file.readline(STAMP_BYTES)
        if not head or head.split(b" ", 1)[0] > stamp:
            return position
        position += len(head)
        while not head.endswith(b"\n"):
            head = file.readline(BLOCK_BYTES)
            if not head:
                return position
            position += len(head)


class Unstamper:
    """Drops the stored time (and the space after it) from each line, across block bounds."""

    def __init__(self) -> None:
        self._in_stamp = True

    def feed(self, block: bytes) -> bytes:
        parts: list[bytes] = []
        start, size = 0, len(block)
        while start < size:
            newline = block.find(b"\n", start)
            if self._in_stamp:
                space = block.find(b" ", start, size if newline == -1 else newline)
                if space != -1:
                    start, self._in_stamp = space + 1, False
                elif newline != -1:
                    parts.append(b"\n")  # a line without text: only its end is kept
                    start = newline + 1
                else:
                    break  # the time goes on in the next block
            elif newline == -1:
                parts.append(block[start:])
                break
            else:
                parts.append(block[start : newline + 1])
                start, self._in_stamp = newline + 1, True
        return b"".join(parts)
