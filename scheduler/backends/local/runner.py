"""One attempt of a job as a child process: start it, copy its output into a bounded log file,
end it on a deadline or a stop (TERM, then KILL after a grace period), and report how it ended;
when its first process ends, whatever else is left in its process group is killed.

Log lines are stored as `<RFC 3339 time> <line>`, the way the kubelet keeps container logs, so
the logs API can show or strip the times. When the file outgrows its limit the oldest lines go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scheduler.backends.local.files import FILE_MODE, open_regular, read_tail
from scheduler.clock import now_rfc3339_micro

READ_CHUNK_BYTES = 64 * 1024
# A longer line is stored as several, as container runtimes split long lines (at 16 KiB).
LINE_LIMIT_BYTES = 64 * 1024
# Room for a stored line's time, the space after it and its newline.
LINE_OVERHEAD_BYTES = 64
DEFAULT_KILL_GRACE_SECONDS = 30.0
# What the kubelet keeps of a termination message: the last 4 KiB of the file.
RESULT_LIMIT_BYTES = 4096
# How long output may still come once the job and its process group have ended.
OUTPUT_DRAIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int | None  # None: it could not be started
    reason: str  # Completed | Error | DeadlineExceeded | Stopped | StartError
    message: str | None = None


class BoundedLog:
    """Appends timestamped lines to a file that never grows much beyond `limit_bytes`. A line
    longer than LINE_LIMIT_BYTES (or half the limit) is stored as several, so what is held of an
    unfinished line stays bounded and every stored line fits in a compacted log."""

    def __init__(self, path: Path, limit_bytes: int) -> None:
        self._path = path
        self._limit = limit_bytes
        self._line_limit = max(1, min(LINE_LIMIT_BYTES, limit_bytes // 2))
        # Read and write: compacting reads the tail back through this descriptor, never opening
        # the path again (where a job might have put something else).
        self._file = os.fdopen(open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT), "ab")
        self._size = self._file.tell()
        self._partial = bytearray()  # the unfinished line, at most `_line_limit` bytes

    def write(self, chunk: bytes) -> None:
        *ended, rest = chunk.split(b"\n")
        lines: list[bytes] = []
        for piece in ended:
            self._extend(piece, lines)
            lines.append(bytes(self._partial))
            self._partial.clear()
        self._extend(rest, lines)
        if lines:
            prefix = now_rfc3339_micro().encode() + b" "
            block = b"".join(prefix + line + b"\n" for line in lines)
            self._file.write(block)
            self._file.flush()
            self._size += len(block)
        if self._size > self._limit:
            self._compact()

    def _extend(self, piece: bytes, lines: list[bytes]) -> None:
        """Adds `piece` to the unfinished line; each time that reaches the line limit, it is
        cut off as a line of its own. Each byte is copied a bounded number of times."""
        start, room = 0, self._line_limit - len(self._partial)
        while len(piece) - start > room:
            lines.append(bytes(self._partial) + piece[start : start + room])
            self._partial.clear()
            start, room = start + room, self._line_limit
        self._partial += piece[start:]

    def _compact(self) -> None:
        """Keep the newest three quarters of the limit, from a line boundary on, in a new file
        that replaces the old one (followers notice the new file). When no line starts there,
        the last line is kept whole: at most the line limit and its time, so within the limit."""
        keep = self._limit * 3 // 4
        # One byte more than we keep: a newline just before the cut means a line starts at it.
        window = max(keep, self._line_limit + LINE_OVERHEAD_BYTES) + 1
        start = max(0, self._size - window)
        tail = os.pread(self._file.fileno(), self._size - start, start)
        if start > 0:
            newline = tail.find(b"\n", max(0, len(tail) - keep - 1), len(tail) - 1)
            if newline == -1:
                newline = tail.rfind(b"\n", 0, len(tail) - 1)
            tail = tail[newline + 1 :]
        fd, temp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=self._path.parent)
        new = os.fdopen(fd, "ab")
        try:
            os.fchmod(fd, FILE_MODE)
            new.write(tail)
            new.flush()
            os.replace(temp, self._path)
        except BaseException:
            new.close()
            Path(temp).unlink(missing_ok=True)
            raise
        self._file.close()
        self._file = new
        self._size = len(tail)

    def close(self) -> None:
        if self._partial:
            self.write(b"\n")
        self._file.close()


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Says when the process exits: `Process.wait()` on the stdlib's loop also waits for its
    pipes to close, which a child still holding them would put off for as long as it lives."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class Attempt:
    """A started process; `stop()` ends it early, `wait()` gives how it ended."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        log: BoundedLog,
        deadline_seconds: float | None,
        kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._log = log
        self._deadline = deadline_seconds
        self._grace = kill_grace_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._exited = asyncio.Event()
        self._ending: str | None = None  # why we ended it: DeadlineExceeded | Stopped
        self._started = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        # Spawned by the event loop's thread, the main one: the sandbox launcher ties its end to
        # the thread that started it (PR_SET_PDEATHSIG), and that one lives as long as we do.
        loop = asyncio.get_running_loop()

        def protocol() -> _ExitProtocol:
            made = _ExitProtocol(READ_CHUNK_BYTES, loop)
            self._exited = made.exited
            return made

        try:
            transport, made = await loop.subprocess_exec(
                protocol,
                *self._argv,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: what the job starts can be killed with it.
                start_new_session=True,
            )
            self._transport = transport
            self._process = asyncio.subprocess.Process(transport, made, loop)
        finally:
            self._started.set()

    async def wait(self) -> Outcome:
        process = self._process
        if process is None:
            return Outcome(None, "StartError", "the process was not started")
        copying = asyncio.create_task(self._copy_output(process))
        try:
            try:
                await asyncio.wait_for(self._exited.wait(), self._deadline)
            except TimeoutError:
                await self.stop("DeadlineExceeded")
                await self._exited.wait()
            # The job has ended when its first process has, as a pod's container does: what it
            # left behind goes too, and holds neither its slot nor its log open.
            _signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                # Only a process that left the group (setsid) with our pipe can hold this up.
                await asyncio.wait_for(asyncio.shield(copying), OUTPUT_DRAIN_SECONDS)
        finally:
            copying.cancel()
            self._log.close()
            if self._transport is not None:
                self._transport.close()
        code = process.returncode
        assert code is not None
        killed_by = None
        if code < 0:
            # As a container runtime reports it: 128 + the signal's number.
            killed_by = signal.Signals(-code).name if -code in signal.valid_signals() else None
            code = 128 - code
        if self._ending == "DeadlineExceeded":
            return Outcome(code, "DeadlineExceeded", "the job ran longer than its time limit")
        if self._ending == "Stopped":
            return Outcome(code, "Stopped", "the job was stopped")
        if code == 0:
            return Outcome(0, "Completed")
        if killed_by is not None:
            return Outcome(code, "Error", f"the process was killed by {killed_by}")
        return Outcome(code, "Error")

    async def stop(self, why: str = "Stopped") -> None:
        """TERM the job's first process, as the kubelet does a container's, then KILL the whole
        group once it has ended or after the grace period, whichever comes first."""
        await self._started.wait()
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            self._ending = self._ending or why
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), self._grace)
        _signal_group(process.pid, signal.SIGKILL)

    async def _copy_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(READ_CHUNK_BYTES):
            self._log.write(chunk)


def read_result(path: Path) -> str | None:
    """The last 4 KiB of what an attempt wrote to its result file; None when it wrote nothing
    (as an empty termination message is none). Bytes that are not UTF-8 become U+FFFD, as in
    the Kubernetes API's JSON. Only a regular file is read: the job may have put a FIFO, a
    device or a symlink at the path, and none of those may block us or be followed."""
    data = read_tail(path, RESULT_LIMIT_BYTES)
    return None if data is None else data.decode("utf-8", "replace") or None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
