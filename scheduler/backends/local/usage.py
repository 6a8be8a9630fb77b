"""What a local attempt uses: its process tree (its process and all below it), read from /proc in
one pass for all running attempts every `interval_seconds`.

The peak is the most resident memory the tree held at one look, or the kernel's own high-water
mark of any one process in it (`VmHWM`, which catches a spike between two looks), whichever is
more. CPU seconds are the tree's user and system time, with that of the children its processes
have waited for (`cutime` and `cstime`: the sandbox's init waits for the job, the launcher for
the init). The sandbox's own processes (the launcher and its init, both running the launcher's
command line) count only for what they waited for: their Python is not the job's. The last
moments before an attempt ends, after the last look, are not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scheduler.backends.base import Usage
from scheduler.loops import cancelled

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0
PROC = Path("/proc")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """What /proc/<pid>/stat says of one process."""

    pid: int
    ppid: int
    ticks: int  # its own user and system time, in clock ticks
    child_ticks: int  # that of its children it has waited for
    rss_bytes: int


def parse_stat(text: str) -> ProcessStat | None:
    """A /proc/<pid>/stat line; None when it is not one. The command name, in parentheses, may
    hold spaces and parentheses itself: the fields start after the last ")"."""
    head, close, rest = text.rpartition(")")
    fields = rest.split()
    if not close or len(fields) < 22 or "(" not in head:
        return None
    try:
        pid = int(head.split("(", 1)[0])
        # Fields 4, 14-17 and 24 of proc(5), counted from the state (field 3).
        ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
        rss_pages = int(fields[21])
    except ValueError:
        return None
    return ProcessStat(pid, ppid, utime + stime, cutime + cstime, max(rss_pages, 0) * _PAGE_BYTES)


def tree(root: int, processes: Iterable[ProcessStat]) -> list[ProcessStat]:
    """`root` and every process below it, as their parents say."""
    by_pid: dict[int, ProcessStat] = {}
    children: dict[int, list[int]] = {}
    for process in processes:
        by_pid[process.pid] = process
        children.setdefault(process.ppid, []).append(process.pid)
    if root not in by_pid:
        return []
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(by_pid[pid])
        pending.extend(child for child in children.get(pid, ()) if child in by_pid)
    return found


@dataclass(frozen=True, slots=True)
class Look:
    """One look at a tree: resident memory now, the highest high-water mark of one of its
    processes, and its CPU time so far."""

    rss_bytes: int
    high_water_bytes: int
    cpu_ticks: int


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None  # gone meanwhile, or not ours to read


def _processes(proc: Path) -> list[ProcessStat]:
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(proc):
            raw = _read(Path(entry.path, "stat")) if entry.name.isdigit() else None
            if raw is not None and (stat := parse_stat(raw.decode(errors="replace"))):
                found.append(stat)
    return found


def _high_water_bytes(proc: Path, pid: int) -> int:
    raw = _read(proc / str(pid) / "status") or b""
    for line in raw.splitlines():
        if line.startswith(b"VmHWM:"):
            with contextlib.suppress(ValueError, IndexError):
                return int(line.split()[1]) * 1024  # in kB
    return 0


def look(proc: Path, roots: Sequence[tuple[int, tuple[str, ...]]]) -> list[Look | None]:
    """One pass over /proc for each (root pid, launcher command line): how each tree is now;
    None for a root that is gone or no longer our child (its pid reused)."""
    processes = _processes(proc)
    me = os.getpid()
    looks: list[Look | None] = []
    for root, launcher in roots:
        members = tree(root, processes)
        if not members or members[0].ppid != me:
            looks.append(None)
            continue
        rss = high_water = ticks = 0
        wanted = "\0".join(launcher).encode() + b"\0"
        for member in members:
            if _read(proc / str(member.pid) / "cmdline") == wanted:
                ticks += member.child_ticks  # the sandbox: only what it waited for
                continue
            rss += member.rss_bytes
            high_water = max(high_water, _high_water_bytes(proc, member.pid))
            ticks += member.ticks + member.child_ticks
        looks.append(Look(rss, high_water, ticks))
    return looks


@dataclass(slots=True)
class _Meter:
    root: int
    launcher: tuple[str, ...]
    peak_bytes: int = 0
    cpu_ticks: int = 0
    samples: int = 0

    def add(self, seen: Look) -> None:
        self.peak_bytes = max(self.peak_bytes, seen.rss_bytes, seen.high_water_bytes)
        # A process that leaves the tree takes its time along: the most seen is the least used.
        self.cpu_ticks = max(self.cpu_ticks, seen.cpu_ticks)
        self.samples += 1

    def usage(self) -> Usage | None:
        if not self.samples:
            return None
        return Usage(self.peak_bytes, self.cpu_ticks / _TICKS_PER_SECOND, self.samples)


def unavailable_here(proc: Path) -> str | None:
    """Why processes' use cannot be read here, or None."""
    if not (proc / "self" / "stat").is_file():
        return f"this system has no {proc} to read what processes use from"
    return None


class UsageSampler:
    """Looks at the process trees of the attempts it is told of (`track`), by attempt (pod)
    name, until told they ended (`untrack`, which gives their figures)."""

    def __init__(self, interval_seconds: float | None = None, *, proc: Path = PROC) -> None:
        self.interval_seconds = interval_seconds or DEFAULT_INTERVAL_SECONDS
        self._proc = proc
        self.unavailable = unavailable_here(proc)
        self._meters: dict[str, _Meter] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.unavailable is None:
            self._task = asyncio.create_task(self._sampling(), name="local-usage")

    async def close(self) -> None:
        await cancelled(self._task)
        self._task = None

    def track(self, attempt: str, pid: int, launcher: Sequence[str]) -> None:
        """Look at the tree below `pid` from now on; `launcher`: the sandbox's command line."""
        self._meters[attempt] = _Meter(pid, tuple(launcher))
        self._wake.set()

    def untrack(self, attempt: str) -> Usage | None:
        """The attempt has ended: its figures (None when it was never looked at)."""
        meter = self._meters.pop(attempt, None)
        return meter.usage() if meter is not None else None

    def usage(self, attempt: str) -> Usage | None:
        meter = self._meters.get(attempt)
        return meter.usage() if meter is not None else None

    async def _sampling(self) -> None:
        while True:
            if not self._meters:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self.interval_seconds)
            meters = list(self._meters.items())
            if not meters:
                continue
            try:
                looks = await asyncio.to_thread(
                    look, self._proc, [(m.root, m.launcher) for _, m in meters]
                )
            except Exception:
                log.exception("could not read what the running jobs use")
                continue
            for (name, meter), seen in zip(meters, looks, strict=True):
                # Applied here, on the loop: a reader never sees half a look.
                if seen is not None and self._meters.get(name) is meter:
                    meter.add(seen)
