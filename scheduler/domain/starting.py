"""Jobs that have not started yet: one held until its `startAfter` is started when that time comes,
and one not started within its `waitingTimeoutSeconds` of when it could is failed, its message
naming why it was still waiting.

Every replica does both, from its own view (no listing): a job's next moment is worked out when
its status changes, and kept in a heap. The backend's writes are conditional, so of two replicas
that act on the same job one does and the other finds it done.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from scheduler.backends.base import Backend, JobRecord, PodRecord
from scheduler.clock import utcnow
from scheduler.domain.status import current_attempts
from scheduler.domain.view import JobView
from scheduler.errors import SchedulerError
from scheduler.loops import forever, woken
from scheduler.models import JobStatus, JobStatusEnum

log = logging.getLogger(__name__)

# With nothing due for long, look again this often anyway: a wall clock that jumped is caught up.
MAX_SLEEP_SECONDS = 60.0
# A start or a give-up that did nothing (the view was behind) or failed is tried again this much
# later, if the view still says it is due.
RETRY_SECONDS = 2.0
# Jobs started or given up on at once (a batch's jobs share their start time).
CONCURRENT_ACTIONS = 16
# A job whose container has not run: waiting, or with a pod that is not running yet (Active).
_NOT_STARTED = frozenset({JobStatusEnum.WAITING, JobStatusEnum.ACTIVE})

Action = Literal["start", "give up"]


@dataclass(frozen=True, slots=True)
class Due:
    at: datetime
    action: Action


def has_run(attempts: Iterable[PodRecord]) -> bool:
    """Whether a container of these attempts has ever run."""
    return any(
        pod.container.state in ("running", "terminated")
        or pod.last_termination is not None
        or pod.restart_count > 0
        for pod in attempts
    )


def could_start(job: JobRecord) -> datetime | None:
    """Since when the job could have started: its creation, its last restart, its
    `startAfter`, or when it was let go (`started`: a held job that a scheduler that was down
    started late has all its waiting time from then on)."""
    moments = [m for m in (job.created, job.restarted, job.start_after, job.started) if m]
    return max(moments) if moments else None


def next_due(job: JobRecord, pods: Iterable[PodRecord], status: JobStatus) -> Due | None:
    """What is to be done to a job that has not started, and when; None for any other job."""
    if job.stopped_at is not None or job.pending or job.deleting:
        return None
    if status.status not in _NOT_STARTED:
        return None
    if job.suspended and job.start_after is not None:
        return Due(job.start_after, "start")
    since = could_start(job)
    if job.waiting_timeout_seconds is None or since is None:
        return None
    if has_run(current_attempts(job, pods)):
        return None  # a retry waits: it started once, and its time limit rules now
    try:
        return Due(since + timedelta(seconds=job.waiting_timeout_seconds), "give up")
    except OverflowError:
        return None  # past the year 9999: never


def waiting_timeout_message(seconds: int, status: JobStatus) -> str:
    """A job given up on: how long it waited, and the last reason it was waiting."""
    waited = f"did not start within {seconds} s"
    return f"{waited}: {status.message}" if status.message else waited


class Starter:
    """Starts held jobs on time and gives up on those that wait too long, for one view."""

    def __init__(
        self, backend: Backend, view: JobView, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._backend = backend
        self._view = view
        self._clock = clock
        self._heap: list[tuple[datetime, str]] = []
        self._scheduled: dict[str, datetime] = {}  # each job's moment in the heap (others stale)
        self._wake = asyncio.Event()
        view.subscribe(self._on_change)

    def _on_change(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        self.consider(name)

    def consider(self, name: str) -> None:
        """Work out the job's next moment again from the view."""
        due = self._due(name)
        if due is None:
            self._scheduled.pop(name, None)
        else:
            self._schedule(name, due.at)

    def next_moment(self) -> datetime | None:
        """The earliest moment something may be due."""
        while self._heap and self._scheduled.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale
        return self._heap[0][0] if self._heap else None

    async def starting(self) -> None:
        """Run forever, once the view has read every job and pod (a give-up must know that no
        pod of the job runs)."""
        await self._view.wait_synced()
        await forever("starting and giving up on waiting jobs", self._step, log=log)

    async def _step(self) -> None:
        moment = self.next_moment()
        wait = MAX_SLEEP_SECONDS
        if moment is not None:
            wait = min(wait, (moment - self._clock()).total_seconds())
        if wait > 0:
            await woken(self._wake, wait)
        self._wake.clear()
        await self.run_due()

    async def run_due(self) -> int:
        """Act on every job whose moment has come (a few at a time: a batch's jobs share their
        start time); how many the backend changed."""
        now = self._clock()
        acting: list[tuple[str, Due]] = []
        while (moment := self.next_moment()) is not None and moment <= now:
            _, name = heapq.heappop(self._heap)
            del self._scheduled[name]
            due = self._due(name)
            if due is None:
                continue
            if due.at > now:
                self._schedule(name, due.at)
                continue
            # Looked at again later unless what is done now changes its status: done by
            # another replica, changed meanwhile (the view is behind), or the API failed.
            self._schedule(name, now + timedelta(seconds=RETRY_SECONDS))
            acting.append((name, due))
        room = asyncio.Semaphore(CONCURRENT_ACTIONS)
        records = await asyncio.gather(*(self._act(name, due, room) for name, due in acting))
        for record in records:
            if record is not None:
                self._view.upsert_job(record)
        return sum(record is not None for record in records)

    async def _act(self, name: str, due: Due, room: asyncio.Semaphore) -> JobRecord | None:
        job, status = self._view.job(name), self._view.status(name)
        assert job is not None and status is not None, "a due job is in the view"
        async with room:
            try:
                if due.action == "start":
                    record = await self._backend.start_held_job(name, job.uid)
                else:
                    record = await self._give_up(job, status)
            except SchedulerError as exc:
                log.warning(
                    "could not %s job %s: %s",
                    due.action,
                    name,
                    exc.message,
                    extra={"job_name": name},
                )
                return None
        if record is not None and due.action == "start":
            log.info("started job %s, held until now", name, extra={"job_name": name})
        return record

    async def _give_up(self, job: JobRecord, status: JobStatus) -> JobRecord | None:
        assert job.waiting_timeout_seconds is not None, "a job given up on has a timeout"
        message = waiting_timeout_message(job.waiting_timeout_seconds, status)
        record = await self._backend.fail_waiting_job(job.name, job.uid, message, self._clock())
        if record is not None:
            log.warning("gave up on job %s: %s", job.name, message, extra={"job_name": job.name})
        return record

    def _due(self, name: str) -> Due | None:
        job, status = self._view.job(name), self._view.status(name)
        if job is None or status is None:
            return None
        return next_due(job, self._view.pods(name), status)

    def _schedule(self, name: str, at: datetime) -> None:
        if self._scheduled.get(name) == at:
            return
        self._scheduled[name] = at
        heapq.heappush(self._heap, (at, name))
        if self._heap[0] == (at, name):
            self._wake.set()  # sooner than what the loop sleeps for
