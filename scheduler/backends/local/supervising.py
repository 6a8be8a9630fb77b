"""The attempt supervisor: runs a job the queue hands out as a series of attempts (retries up to
its `backoffLimit` and as its `failurePolicy` rules say, `timeLimitSeconds` over all of them)
until it succeeds, fails, is stopped or the scheduler closes, and writes down how it ended."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from scheduler.backends.base import Waited
from scheduler.backends.local import launching, runner
from scheduler.backends.local.changes import Listing
from scheduler.backends.local.failures import judge
from scheduler.backends.local.launching import Launcher
from scheduler.backends.local.records import pod_name
from scheduler.backends.local.schema import (
    Attempt,
    AttemptReason,
    ConditionType,
    JobChanges,
    JobState,
    StoredJob,
)
from scheduler.backends.local.store import LocalStore
from scheduler.backends.local.usage import UsageSampler
from scheduler.errors import NotFoundError
from scheduler.loops import woken

log = logging.getLogger(__name__)

RETRY_BACKOFF_SECONDS: Final = 1.0
MAX_RETRY_BACKOFF_SECONDS: Final = 60.0
# The API takes any int64 (as Kubernetes does); past a century (and a datetime's range, which
# would end the supervisor) a limit is none.
MAX_TIME_LIMIT_SECONDS: Final = 100 * 365 * 24 * 3600
SHUTDOWN_MESSAGE: Final = "the scheduler was shut down while the job ran"
# Why a job waited for a free slot (its place in line the message), kept with its first attempt.
QUEUED: Final = "Queued"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ending:
    """How a job's run ended: its state, and (unless it was stopped) the condition saying why."""

    state: JobState
    condition: ConditionType | None = None
    reason: str | None = None
    message: str | None = None

    def changes(self, now: datetime) -> JobChanges:
        """The job's columns once it has ended so at `now`."""
        changes: JobChanges = {"state": self.state}
        if self.condition is not None:
            changes["condition_type"] = self.condition
            changes["condition_reason"] = self.reason
            changes["condition_message"] = self.message
            changes["condition_time"] = now
        if self.state == "succeeded":
            changes["completed"] = now
        return changes


def failed(reason: str, message: str | None) -> Ending:
    return Ending(state="failed", condition="Failed", reason=reason, message=message)


SUCCEEDED: Final = Ending(state="succeeded", condition="Complete", reason="Completed")
STOPPED: Final = Ending(state="stopped")
SCHEDULER_STOPPED: Final = failed("SchedulerStopped", SHUTDOWN_MESSAGE)
DEADLINE_EXCEEDED: Final = failed(
    "DeadlineExceeded", "Job was active longer than specified deadline"
)
INTERNAL_ERROR: Final = failed("InternalError", "internal error")


class Supervisor:
    def __init__(
        self,
        store: LocalStore,
        *,
        listing: Listing,
        launcher: Launcher,
        clock: Callable[[], datetime],
        log_limit_bytes: int,
        kill_grace_seconds: float,
        retry_backoff_seconds: float,
        usage: UsageSampler,
    ) -> None:
        self._store = store
        self._usage = usage
        self._listing = listing
        self._launcher = launcher
        self._clock = clock
        self._log_limit = log_limit_bytes
        self._grace = kill_grace_seconds
        self._retry_backoff = retry_backoff_seconds
        self._attempts: dict[str, runner.Attempt] = {}  # each job's attempt under way
        self._stops: dict[str, asyncio.Event] = {}
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def supervise(self, job: StoredJob) -> None:
        """Runs `job` to its end; the queue holds its slot meanwhile."""
        try:
            await self._run_attempts(job)
        except NotFoundError:
            pass  # deleted while it ran
        except Exception:
            log.exception("supervising job %s failed", job.name, extra={"job_name": job.name})
            with contextlib.suppress(Exception):
                await self._end(job.name, INTERNAL_ERROR)

    def released(self, name: str) -> None:
        """The job's supervision is over: a stop asked of it from now on is for its next run."""
        self._stops.pop(name, None)

    def request_stop(self, name: str) -> None:
        """Tell the job's supervision to stop; TERM its process now, KILL it after the grace
        period in the background (never inside a request)."""
        self._stops.setdefault(name, asyncio.Event()).set()
        if (attempt := self._attempts.get(name)) is not None:
            self._background(attempt.stop("Stopped"))

    async def close(self) -> None:
        """Every job ends as SchedulerStopped: none starts another attempt, and each running one
        is stopped (TERM, then KILL after the grace period)."""
        self._closing = True
        for stop in self._stops.values():
            stop.set()  # wakes a job waiting to retry: it starts no new attempt
        await asyncio.gather(
            *(attempt.stop("Stopped") for attempt in list(self._attempts.values())),
            return_exceptions=True,
        )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_attempts(self, job: StoredJob) -> None:
        name = job.name
        # Made by a stop that came between handing the job out and this, or made here.
        stop = self._stops.setdefault(name, asyncio.Event())
        started = self._clock()
        await self._store.update_job(name, state="running", started=started)
        await self._listing.refresh(name)
        limit = min(job.request.time_limit_seconds, MAX_TIME_LIMIT_SECONDS)
        ending = await self._until_ended(job, stop, started + timedelta(seconds=limit))
        await self._end(name, ending)

    async def _until_ended(self, job: StoredJob, stop: asyncio.Event, deadline: datetime) -> Ending:
        """Attempts, and a growing pause after each failed one, until one decides the end; the
        failed attempts that count are written down as they come."""
        name = job.name
        failures = job.failed_attempts
        # Its place in line as the queue last told it (a job held for its start time is told
        # none: that wait is the job's own, which its record shows).
        waited = Waited(QUEUED, job.waiting_reason) if job.waiting_reason else None
        while True:
            if self._closing:
                return SCHEDULER_STOPPED
            if stop.is_set():
                return STOPPED
            remaining = (deadline - self._clock()).total_seconds()
            if remaining <= 0:
                await self._store.update_job(name, failed_attempts=failures)
                return DEADLINE_EXCEEDED
            outcome = await self._attempt(job, remaining, waited)
            waited = None  # a retry waits for its back-off only
            if self._closing:
                return SCHEDULER_STOPPED
            if outcome.reason == "Stopped":
                return STOPPED
            if outcome.reason == "Completed":
                return SUCCEEDED
            if outcome.reason == "DeadlineExceeded":
                await self._store.update_job(name, failed_attempts=failures + 1)
                return DEADLINE_EXCEEDED
            verdict = judge(job.request, outcome.exit_code, failures)
            failures = verdict.failures
            await self._store.update_job(name, failed_attempts=failures)
            if verdict.reason is not None:
                return failed(verdict.reason, verdict.message)
            await self._listing.refresh(name)
            delay = min(MAX_RETRY_BACKOFF_SECONDS, self._retry_backoff * 2 ** max(failures - 1, 0))
            await woken(stop, delay)

    async def _end(self, name: str, ending: Ending) -> None:
        await self._store.update_job(name, **ending.changes(self._clock()))
        await self._listing.refresh(name)

    async def _attempt(
        self, job: StoredJob, remaining: float, waited: Waited | None
    ) -> runner.Outcome:
        """One attempt, from its row to its end, written down; `remaining`: its time limit,
        `waited`: why the job waited before it."""
        row = await self._store.start_attempt(job.name, now=self._clock(), pid=None, waited=waited)
        result_path = self._store.result_path(job.name, row.idx)
        launch = self._launcher.prepare(job, result_path)
        paths = [result_path.parent]
        if job.payload_file is not None:
            paths += [job.payload_file.parent, job.payload_file]
        await asyncio.to_thread(launching.hand_over, paths, launch.user)
        log_file = runner.BoundedLog(row.log_path, self._log_limit)
        attempt = runner.Attempt(
            launch.argv,
            launch.env,
            log=log_file,
            deadline_seconds=remaining,
            kill_grace_seconds=self._grace,
        )
        self._attempts[job.name] = attempt
        try:
            outcome = await self._run(row, attempt, log_file, launch.argv)
        finally:
            self._attempts.pop(job.name, None)
            usage = self._usage.untrack(pod_name(job.name, row.idx))
        reason = cast(AttemptReason, "Error" if outcome.reason == "StartError" else outcome.reason)
        result = await asyncio.to_thread(runner.read_result, result_path)
        await self._store.finish_attempt(
            job.name,
            row.idx,
            now=self._clock(),
            exit_code=outcome.exit_code if outcome.exit_code is not None else 128,
            reason=reason,
            # As a termination message on Kubernetes, what the job wrote is the message.
            message=outcome.message if result is None else result,
            result=result,
            usage=usage,
        )
        return outcome

    async def _run(
        self,
        row: Attempt,
        attempt: runner.Attempt,
        log_file: runner.BoundedLog,
        launcher: Sequence[str],
    ) -> runner.Outcome:
        if self._stops[row.job].is_set():
            # The stop came between handing the job out and starting its process.
            log_file.close()
            return runner.Outcome(None, "Stopped", "the job was stopped")
        try:
            await attempt.start()
        except OSError as exc:
            log_file.close()
            return runner.Outcome(None, "StartError", f"the command cannot run: {exc}")
        assert attempt.pid is not None
        self._usage.track(pod_name(row.job, row.idx), attempt.pid, launcher)
        await self._store.record_start(row.job, row.idx, now=self._clock(), pid=attempt.pid)
        await self._listing.refresh(row.job)
        return await attempt.wait()
