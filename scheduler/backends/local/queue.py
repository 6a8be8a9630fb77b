"""The dispatch queue: jobs wait in submission order until one of `max_parallel` slots is free;
the oldest waiting job then starts, and its supervision holds the slot until the job ends. A job
whose start time (`startAfter`) is still to come is held apart until then.

Each waiting job is told why it waits, which its record shows: held until its start time, or its
place in line, with an estimated start from how long recent jobs took. Only the first places are
told exactly, so that a job's start rewrites a bounded number of records.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import functools
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from scheduler.backends.base import JobRecord
from scheduler.backends.local.changes import Listing
from scheduler.backends.local.schema import Attempt, StoredJob
from scheduler.backends.local.store import LocalStore
from scheduler.backends.local.supervising import Supervisor
from scheduler.loops import woken

# Places in line told exactly; a job further back is told that it is.
LINE_SHOWN: Final = 20
# The estimated start is from the durations of this many jobs that ended last.
RECENT_JOBS: Final = 20
# Holding a job for a start time far off, the queue looks at the clock this often anyway.
MAX_SLEEP_SECONDS: Final = 60.0
# The places in line are told at most this often: in a burst, where jobs start many times a
# second, each start would otherwise rewrite the records of every job told its place.
TELL_INTERVAL_SECONDS: Final = 1.0


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def about(seconds: float) -> str:
    """A duration as a person would estimate it: `about 40 s`, `about 3 min`, `about 2.5 h`."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {round(seconds / 3600, 1):g} h"


def duration(job: StoredJob) -> float | None:
    """How long a job that succeeded or failed ran, in seconds; None for any other."""
    ended = job.completed or job.condition_time
    if job.state not in ("succeeded", "failed") or job.started is None or ended is None:
        return None
    return max(0.0, (ended - job.started).total_seconds())


def line_reason(place: int, max_parallel: int, durations: Sequence[float]) -> str:
    """Why the job at `place` in line (1 for the next to start) waits."""
    slots = f"{max_parallel} running at most"
    if place > LINE_SHOWN:
        return f"more than {LINE_SHOWN} in line; {slots}"
    reason = f"{ordinal(place)} in line; {slots}"
    if durations:
        # Each slot frees up about once per typical job: the place-th free slot is this one's.
        estimate = statistics.median(durations) * place / max_parallel
        reason += f"; starts in {about(estimate)}"
    return reason


@dataclasses.dataclass(slots=True)
class _Waiting:
    job: StoredJob  # as last told (`held`, `waiting_reason`)
    attempts: tuple[Attempt, ...]  # a restarted job's earlier ones, which its record shows


class DispatchQueue:
    def __init__(
        self,
        store: LocalStore,
        supervisor: Supervisor,
        listing: Listing,
        *,
        max_parallel: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._supervisor = supervisor
        self._listing = listing
        self._max_parallel = max_parallel
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}  # each slot's supervision
        self._line: dict[str, _Waiting] = {}
        self._order: list[tuple[int, str]] = []  # (seq, name) of those in line, in order
        self._durations: deque[float] = deque(maxlen=RECENT_JOBS)
        self._ended: list[str] = []  # jobs whose supervision ended since the last look
        self._told_at = -TELL_INTERVAL_SECONDS  # the event loop's time of the last telling
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """The stored jobs that wait, and the durations of those that ended last."""
        jobs = await self._store.jobs()
        for job in jobs:
            if job.state == "waiting":
                attempts = await self._store.attempts(job.name) if job.first_attempt else []
                self._enter(job, attempts)
        ended = sorted(
            (job for job in jobs if duration(job) is not None),
            key=lambda job: job.completed or job.condition_time or job.created,
        )
        self._durations.extend(d for job in ended if (d := duration(job)) is not None)

    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatching(), name="local-dispatching")
        self.wake()

    def wake(self) -> None:
        """A job may be waiting, or a slot free: look again."""
        self._wake.set()

    def add(self, jobs: Sequence[tuple[StoredJob, Sequence[Attempt]]]) -> list[JobRecord]:
        """Put jobs in line (new ones, or one restarted, with its attempts so far); their
        records, saying why they wait."""
        for job, attempts in jobs:
            self._enter(job, attempts)
        told = self._tell(force={job.name for job, _ in jobs})
        self.wake()
        return [told[job.name] for job, _ in jobs]

    def withdraw(self, name: str) -> bool:
        """Take the job out of line (stopped, deleted, given up on); False when it is not in
        line (it was handed out to run, or never was)."""
        if self._leave(name) is None:
            return False
        self.wake()  # the places behind it move up
        return True

    async def finished(self, name: str) -> None:
        """Returns once the job's supervision (if it has one) is over."""
        if (running := self._running.get(name)) is not None:
            await asyncio.wait({running})

    async def cancel(self, name: str) -> None:
        """Ends the job's supervision where it is, freeing its slot."""
        running = self._running.get(name)
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running

    def stop_dispatching(self) -> None:
        """No job starts from now on; those running go on."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()

    async def drain(self) -> None:
        """Returns once the dispatcher and every supervision have ended."""
        if self._dispatcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    # -- internals ---------------------------------------------------------------------------

    def _enter(self, job: StoredJob, attempts: Sequence[Attempt]) -> None:
        self._leave(job.name)
        self._line[job.name] = _Waiting(job, tuple(attempts))
        bisect.insort(self._order, (job.seq, job.name))

    def _leave(self, name: str) -> _Waiting | None:
        waiting = self._line.pop(name, None)
        if waiting is not None:
            self._order.pop(bisect.bisect_left(self._order, (waiting.job.seq, name)))
        return waiting

    def _is_held(self, job: StoredJob, now: datetime) -> bool:
        return job.start_after is not None and job.start_after > now

    async def _dispatching(self) -> None:
        loop = asyncio.get_running_loop()
        untold = False
        while True:
            wait = self._until_next_start()
            if untold:
                wait = min(wait, self._told_at + TELL_INTERVAL_SECONDS - loop.time())
            await woken(self._wake, wait)
            self._wake.clear()
            await self._take_durations()
            self._dispatch()
            untold = loop.time() < self._told_at + TELL_INTERVAL_SECONDS
            if not untold:
                self._tell()

    def _until_next_start(self) -> float:
        now = self._clock()
        starts = [w.job.start_after for w in self._line.values() if self._is_held(w.job, now)]
        wait = min(((s - now).total_seconds() for s in starts if s is not None), default=None)
        return MAX_SLEEP_SECONDS if wait is None else min(wait, MAX_SLEEP_SECONDS)

    def _dispatch(self) -> None:
        now = self._clock()
        free = self._max_parallel - len(self._running)
        for _, name in list(self._order):
            if free <= 0:
                return
            job = self._line[name].job
            if self._is_held(job, now):
                continue
            self._leave(name)
            free -= 1
            task = asyncio.create_task(self._supervisor.supervise(job), name=f"running-{name}")
            self._running[name] = task
            task.add_done_callback(functools.partial(self._released, name))

    def _tell(self, force: set[str] | frozenset[str] = frozenset()) -> dict[str, JobRecord]:
        """Give each job in line whose reason to wait changed (and those `force` names) its
        record saying so; those records."""
        now = self._clock()
        self._told_at = asyncio.get_running_loop().time()
        free = max(self._max_parallel - len(self._running), 0)
        ahead = 0
        told: dict[str, JobRecord] = {}
        for _, name in self._order:
            waiting = self._line[name]
            held, reason = True, None
            if not self._is_held(waiting.job, now):
                ahead += 1
                place = ahead - free  # those before it take the free slots first
                held = False
                if place > 0:
                    reason = line_reason(place, self._max_parallel, self._durations)
            job = waiting.job
            if (job.held, job.waiting_reason) != (held, reason) or name in force:
                waiting.job = dataclasses.replace(job, held=held, waiting_reason=reason)
                told[name] = self._listing.put(waiting.job, waiting.attempts)
        return told

    async def _take_durations(self) -> None:
        ended, self._ended = self._ended, []
        for name in ended:
            job = await self._store.get(name)
            if job is not None and (seconds := duration(job)) is not None:
                self._durations.append(seconds)

    def _released(self, name: str, _: asyncio.Task[None]) -> None:
        self._running.pop(name, None)
        self._supervisor.released(name)
        self._ended.append(name)
        self.wake()
