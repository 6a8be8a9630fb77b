"""The processes a scheduler killed with SIGKILL may leave behind, where no sandbox took them with
it: each attempt it found running is a process group led by the pid it recorded. A restarted
scheduler kills what is left of those groups before it reports their jobs as ended."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.backends.local.store import LocalStore

log = logging.getLogger(__name__)

# /proc gives start times in clock ticks after a boot time in whole seconds.
START_TOLERANCE = timedelta(seconds=2)
GONE_TIMEOUT_SECONDS = 10.0
GONE_POLL_SECONDS = 0.05


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # from the state on: a name may hold anything


def process_start(pid: int) -> datetime | None:
    """When `pid` started; None when there is no such process (or no /proc)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    ticks = int(fields[19])  # field 22 of stat(5), counted from the state (field 3)
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)


def group_members(pgid: int) -> list[int]:
    """The live processes (not zombies) of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def is_ours(pid: int, started: datetime) -> bool:
    """Whether the group `pid` led may still be the attempt's that started at `started`: its
    leader is gone, or has lived since then. (A pid is not reused while its group has members:
    a leader started later is another process, and then our group is empty.)"""
    start = process_start(pid)
    return start is None or start <= started + START_TOLERANCE


async def end_group(pid: int, started: datetime) -> list[int]:
    """Kills what is left of the attempt's process group; the pids still alive after waiting
    for them (none, unless the kernel is slow to end them)."""
    return await asyncio.to_thread(_end_group, pid, started)


def _end_group(pid: int, started: datetime) -> list[int]:
    if not Path("/proc").is_dir() or not is_ours(pid, started):
        return []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + GONE_TIMEOUT_SECONDS
    while (left := group_members(pid)) and time.monotonic() < deadline:
        time.sleep(GONE_POLL_SECONDS)  # a worker thread's: the kernel tells no one of an end
    return left


async def end_leftovers(store: LocalStore) -> None:
    """Kills what attempts the last scheduler left running still have alive (where no sandbox
    took them with it): none runs on while its job is reported as ended."""
    for job in await store.jobs():
        if job.state != "running":
            continue
        for attempt in await store.attempts(job.name):
            if attempt.finished is not None or attempt.pid is None or attempt.started is None:
                continue
            left = await end_group(attempt.pid, attempt.started)
            if left:
                log.error(
                    "job %s: processes %s of its last attempt did not end",
                    job.name,
                    ", ".join(map(str, left)),
                    extra={"job_name": job.name},
                )
