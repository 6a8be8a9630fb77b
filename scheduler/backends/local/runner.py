"""One attempt of a job as a child process: start it, copy its output into a bounded log file,
end it on a deadline or a stop (TERM, then KILL after a grace period), and report how it ended.

Log lines are stored as `<RFC 3339 time> <line>`, the way the kubelet keeps container logs, so
the logs API can show or strip the times. When the file outgrows its limit the oldest lines go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

READ_CHUNK_BYTES = 64 * 1024
DEFAULT_KILL_GRACE_SECONDS = 30.0
# What the kubelet keeps of a termination message: the last 4 KiB of the file.
RESULT_LIMIT_BYTES = 4096
# Where a job writes its result: a fresh file per attempt.
RESULT_PATH_VARIABLE = "RADIX_RESULT_PATH"


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int | None  # None: it could not be started
    reason: str  # Completed | Error | DeadlineExceeded | Stopped | StartError
    message: str | None = None


class BoundedLog:
    """Appends timestamped lines to a file that never grows much beyond `limit_bytes`."""

    def __init__(self, path: Path, limit_bytes: int) -> None:
        self._path = path
        self._limit = limit_bytes
        self._file = path.open("ab")
        self._size = self._file.tell()
        self._partial = b""

    def write(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if lines:
            stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            prefix = stamp.encode() + b" "
            block = b"".join(prefix + line + b"\n" for line in lines)
            self._file.write(block)
            self._file.flush()
            self._size += len(block)
        if self._size > self._limit:
            self._compact()

    def _compact(self) -> None:
        """Keep the newest three quarters of the limit, from a line boundary on."""
        self._file.close()
        keep = self._limit * 3 // 4
        with self._path.open("rb") as old:
            old.seek(max(0, self._size - keep))
            tail = old.read()
        start = tail.find(b"\n") + 1 if self._size > keep else 0
        tmp = self._path.with_suffix(".tmp")
        tmp.write_bytes(tail[start:])
        tmp.replace(self._path)
        self._file = self._path.open("ab")
        self._size = self._file.tell()

    def close(self) -> None:
        if self._partial:
            self.write(b"\n")
        self._file.close()


class Attempt:
    """A started process; `stop()` ends it early, `wait()` gives how it ended."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
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
        self._ending: str | None = None  # why we ended it: DeadlineExceeded | Stopped
        self._started = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: a stop reaches what the job started too.
                start_new_session=True,
            )
        finally:
            self._started.set()

    async def wait(self) -> Outcome:
        process = self._process
        if process is None:
            return Outcome(None, "StartError", "the process was not started")
        copying = asyncio.create_task(self._copy_output(process))
        try:
            if self._deadline is None:
                code = await process.wait()
            else:
                try:
                    code = await asyncio.wait_for(asyncio.shield(process.wait()), self._deadline)
                except TimeoutError:
                    await self.stop("DeadlineExceeded")
                    code = await process.wait()
            await copying
        finally:
            copying.cancel()
            self._log.close()
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
        """TERM the process group, then KILL it after the grace period."""
        await self._started.wait()
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._ending = self._ending or why
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), self._grace)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)

    async def _copy_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(READ_CHUNK_BYTES):
            self._log.write(chunk)


def read_result(path: Path) -> str | None:
    """The last 4 KiB of what an attempt wrote to its result file; None when it wrote nothing
    (as an empty termination message is none). Bytes that are not UTF-8 become U+FFFD, as in
    the Kubernetes API's JSON."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - RESULT_LIMIT_BYTES))
            data = file.read(RESULT_LIMIT_BYTES)
    except OSError:  # none written (or not a file it can be read from)
        return None
    return data.decode("utf-8", "replace") or None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
