"""The local backend: each job's command as a child process on this machine, state in SQLite.

Jobs wait in submission order until one of `max_parallel` slots is free; each then runs as a
series of attempts (retries up to `backoffLimit`, `failurePolicy` rules, `timeLimitSeconds` over
all of them, stop). Every change is published as Job and Pod records, so the view, statuses and
the whole API are the same as on Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from scheduler.backends.base import (
    BatchRequest,
    Identity,
    JobRecord,
    JobRequest,
    Kind,
    PodRecord,
    Record,
    WatchEvent,
)
from scheduler.backends.local import launching, logs, orphans, restarting, runner, sandbox
from scheduler.backends.local.changes import Changes
from scheduler.backends.local.failures import Verdict, judge
from scheduler.backends.local.keys import LocalKeys
from scheduler.backends.local.locks import JobLocks
from scheduler.backends.local.records import job_record, pod_record
from scheduler.backends.local.serialize import (
    Attempt,
    AttemptReason,
    ConditionType,
    JobChanges,
    JobState,
    StoredJob,
)
from scheduler.backends.local.store import LocalStore
from scheduler.errors import BadRequestError, ConflictError, InvalidError, NotFoundError

log = logging.getLogger(__name__)

DEFAULT_LOG_LIMIT_BYTES = 10 * 1024 * 1024
RETRY_BACKOFF_SECONDS = 1.0
MAX_RETRY_BACKOFF_SECONDS = 60.0
SHUTDOWN_MESSAGE = "the scheduler was shut down while the job ran"


def _now() -> datetime:
    return datetime.now(UTC)


class LocalBackend:
    def __init__(
        self,
        identity: Identity,
        state_dir: Path,
        max_parallel: int,
        log_limit_bytes: int = DEFAULT_LOG_LIMIT_BYTES,
        kill_grace_seconds: float = runner.DEFAULT_KILL_GRACE_SECONDS,
        retry_backoff_seconds: float = RETRY_BACKOFF_SECONDS,
        clock: Callable[[], datetime] = _now,
        base_env: Mapping[str, str] | None = None,
        default_run_as_user: int = launching.DEFAULT_RUN_AS_USER,
        switch_user: bool = True,
    ) -> None:
        self.identity = identity
        self._store = LocalStore(state_dir)
        self.keys = LocalKeys(self._store)
        self._max_parallel = max_parallel
        self._log_limit = log_limit_bytes
        self._grace = kill_grace_seconds
        self._retry_backoff = retry_backoff_seconds
        self._clock = clock
        # Jobs get a few of the scheduler's variables (PATH, LANG, RADIX_*...), then their own.
        self._environ = dict(os.environ if base_env is None else base_env)
        self._base_env = launching.inherited(self._environ)
        # Under root a job runs as its runAsUser, else as this one (never root unless asked);
        # with `switch_user` False, as root (for tests whose jobs write to private places).
        self._default_run_as_user = default_run_as_user
        self._switch_user = switch_user
        self._changes = Changes()
        self._jobs: dict[str, JobRecord] = {}
        self._pods: dict[str, PodRecord] = {}
        self._supervising: dict[str, asyncio.Task[None]] = {}
        self._attempts: dict[str, runner.Attempt] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._controlling = JobLocks()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._sandbox_problem: str | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.open()
        # What a killed scheduler left running ends before its job is reported as ended.
        await self._end_orphans()
        interrupted = await self._store.mark_interrupted(self._clock())
        if interrupted:
            log.warning(
                "%d job(s) were running when the scheduler last stopped; marked Failed: %s",
                len(interrupted),
                ", ".join(interrupted),
            )
        self._sandbox_problem = await sandbox.probe()
        if self._sandbox_problem is not None:
            log.warning(
                "payloads cannot be mounted at their payload.path here (%s); jobs find their "
                "payload directory in RADIX_PAYLOAD_PATH instead",
                self._sandbox_problem,
            )
        log.info(
            "the local backend runs each job's command as a process on this machine; "
            "container images are not pulled or run"
        )
        for job in await self._store.jobs():
            await self._refresh(job.name, publish=False)
        self._dispatcher = asyncio.create_task(self._dispatching(), name="local-dispatching")
        self._wake.set()

    async def close(self) -> None:
        """Stop running jobs (TERM, then KILL after the grace period) and record why."""
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for stop in self._stops.values():
            stop.set()  # wakes a job waiting to retry: it starts no new attempt
        await asyncio.gather(
            *(attempt.stop("Stopped") for attempt in list(self._attempts.values())),
            return_exceptions=True,
        )
        await asyncio.gather(*self._supervising.values(), return_exceptions=True)
        await self._store.close()

    # -- the port ------------------------------------------------------------------------------

    async def create_job(self, request: JobRequest) -> JobRecord:
        _check_runnable(request)
        stored = await self._store.add_job(request, self._clock())
        # A new job has no attempts: its record comes from the row just written, not a re-read.
        record = self._publish(stored)
        self._wake.set()
        return record

    async def create_batch(self, batch: BatchRequest) -> list[JobRecord]:
        for request in batch.jobs:
            _check_runnable(request)
        stored = await self._store.add_batch(batch, self._clock())
        records = [self._publish(job) for job in stored]
        self._wake.set()
        return records

    async def stop_job(self, name: str, started: datetime | None) -> JobRecord:
        async with self._controlling.holding(name):
            return await self._stop_job(name)

    async def _stop_job(self, name: str) -> JobRecord:
        job = await self._get(name)
        now = self._clock()
        # At once, before any other await: a job handed out to run this moment sees it.
        self._request_stop(name)
        if job.state == "waiting":
            await self._store.update_job(name, state="stopped", stopped_at=now)
        elif job.state == "running" and job.stopped_at is None:
            await self._store.update_job(name, stopped_at=now)
        record = await self._refresh(name)
        assert record is not None
        return record

    async def delete_job(self, name: str, uid: str) -> None:
        async with self._controlling.holding(name):
            await self._delete_job(name, uid)

    async def _delete_job(self, name: str, uid: str) -> None:
        job = await self._store.get(name)
        if job is None:
            return  # deleted meanwhile, as asked: the same answer as the delete before
        if job.uid != uid:
            raise NotFoundError(f"job {name} not found")
        await self._end_process(name)
        await self._store.delete_job(name)
        self._forget(name)

    async def restart_job(self, name: str, uid: str, now: datetime) -> JobRecord:
        async with self._controlling.holding(name):
            return await self._restart_job(name, uid, now)

    async def _restart_job(self, name: str, uid: str, now: datetime) -> JobRecord:
        job = await self._get(name)
        if job.uid != uid:
            raise NotFoundError(f"job {name} not found")
        if not restarting.is_restartable(job):
            if job.restarted is not None:
                raise ConflictError(f"job {name} was restarted meanwhile")
            raise BadRequestError(f"cannot restart the job {name}: it has not ended")
        if (supervising := self._supervising.get(name)) is not None:
            await asyncio.wait({supervising})  # it has ended: its supervision is finishing
        attempts = await self._store.attempts(name)
        await self._store.update_job(name, **restarting.restart_changes(attempts, now))
        record = await self._refresh(name)
        self._wake.set()
        assert record is not None
        return record

    async def delete_batch(self, name: str) -> None:
        names = [n for n, record in self._jobs.items() if record.batch_name == name]
        for job in names:
            await self._end_process(job)
        removed = await self._store.delete_batch(name)
        for job in removed.jobs:
            self._forget(job)

    async def recover(self) -> int:
        # A create is one SQLite transaction: a crash leaves a whole job or none.
        return 0

    async def list_records(self, kind: Kind) -> tuple[list[Record], str]:
        records: list[Record] = list(
            self._jobs.values() if kind is Kind.JOB else self._pods.values()
        )
        return records, str(self._changes.version)

    def watch_records(self, kind: Kind, resource_version: str) -> AsyncIterator[WatchEvent]:
        return self._changes.follow(kind, resource_version)

    def read_log(
        self, job: str, pod: str, *, follow: bool, tail: int | None, timestamps: bool
    ) -> AsyncGenerator[bytes, None]:
        ended = functools.partial(self._attempt_ended, pod)
        return logs.reading(
            self._store, job, pod, follow=follow, tail=tail, timestamps=timestamps, finished=ended
        )

    def _attempt_ended(self, pod: str) -> bool:
        record = self._pods.get(pod)  # gone with its job
        return record is None or record.container.state == "terminated"

    # -- running -------------------------------------------------------------------------------

    async def _dispatching(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            free = self._max_parallel - len(self._supervising)
            if free <= 0:
                continue
            for job in await self._store.waiting(free + len(self._supervising)):
                if job.name in self._supervising or free <= 0:
                    continue
                free -= 1
                task = asyncio.create_task(self._supervise(job), name=f"running-{job.name}")
                self._supervising[job.name] = task
                task.add_done_callback(functools.partial(self._finished_supervising, job.name))

    def _finished_supervising(self, name: str, _: asyncio.Task[None]) -> None:
        self._supervising.pop(name, None)
        self._stops.pop(name, None)
        self._wake.set()

    async def _supervise(self, job: StoredJob) -> None:
        try:
            await self._run_attempts(job)
        except NotFoundError:
            pass  # deleted while it ran
        except Exception:
            log.exception("supervising job %s failed", job.name, extra={"job_name": job.name})
            with contextlib.suppress(Exception):
                await self._finish(job.name, "failed", "Failed", "InternalError", "internal error")

    async def _run_attempts(self, job: StoredJob) -> None:
        name, request = job.name, job.request
        stop = self._stops.setdefault(name, asyncio.Event())
        started = self._clock()
        await self._store.update_job(name, state="running", started=started)
        await self._refresh(name)
        # The API takes any int64 (as Kubernetes does); past a century (and a datetime's range,
        # which would end the supervisor) a limit is none.
        limit = min(request.time_limit_seconds, 100 * 365 * 24 * 3600)
        deadline = started + timedelta(seconds=limit)
        failures = job.failed_attempts
        while True:
            if self._closing:
                await self._finish(name, "failed", "Failed", "SchedulerStopped", SHUTDOWN_MESSAGE)
                return
            if stop.is_set():
                await self._finish(name, "stopped")
                return
            remaining = (deadline - self._clock()).total_seconds()
            if remaining <= 0:
                await self._deadline_exceeded(name, failures)
                return
            outcome = await self._attempt(job, remaining)
            if self._closing:
                await self._finish(name, "failed", "Failed", "SchedulerStopped", SHUTDOWN_MESSAGE)
                return
            if outcome.reason == "Stopped":
                await self._finish(name, "stopped")
                return
            if outcome.reason == "Completed":
                await self._finish(name, "succeeded", "Complete", "Completed", None)
                return
            if outcome.reason == "DeadlineExceeded":
                await self._deadline_exceeded(name, failures + 1)
                return
            verdict: Verdict = judge(request, outcome.exit_code, failures)
            failures = verdict.failures
            if verdict.reason is not None:
                await self._store.update_job(name, failed_attempts=failures)
                await self._finish(name, "failed", "Failed", verdict.reason, verdict.message)
                return
            await self._store.update_job(name, failed_attempts=failures)
            await self._refresh(name)
            delay = min(MAX_RETRY_BACKOFF_SECONDS, self._retry_backoff * 2 ** max(failures - 1, 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _attempt(self, job: StoredJob, remaining: float) -> runner.Outcome:
        name = job.name
        attempt_row = await self._store.start_attempt(name, self._clock(), pid=None)
        result_path = self._store.result_path(name, attempt_row.idx)
        launch = self._launch(job, result_path)
        paths = [result_path.parent]
        if job.payload_file is not None:
            paths += [job.payload_file.parent, job.payload_file]
        await asyncio.to_thread(launching.hand_over, paths, launch.user)
        log_file = runner.BoundedLog(attempt_row.log_path, self._log_limit)
        attempt = runner.Attempt(launch.argv, launch.env, log_file, remaining, self._grace)
        self._attempts[name] = attempt
        try:
            outcome = await self._run(name, attempt_row.idx, attempt, log_file)
        finally:
            self._attempts.pop(name, None)
        reason = cast(AttemptReason, "Error" if outcome.reason == "StartError" else outcome.reason)
        result = await asyncio.to_thread(runner.read_result, result_path)
        await self._store.finish_attempt(
            name,
            attempt_row.idx,
            self._clock(),
            outcome.exit_code if outcome.exit_code is not None else 128,
            reason,
            # As a termination message on Kubernetes, what the job wrote is the message.
            outcome.message if result is None else result,
            result,
        )
        return outcome

    async def _run(
        self, name: str, idx: int, attempt: runner.Attempt, log_file: runner.BoundedLog
    ) -> runner.Outcome:
        if self._stops[name].is_set():
            # The stop came between handing the job out and starting its process.
            log_file.close()
            return runner.Outcome(None, "Stopped", "the job was stopped")
        try:
            await attempt.start()
        except OSError as exc:
            log_file.close()
            return runner.Outcome(None, "StartError", f"the command cannot run: {exc}")
        assert attempt.pid is not None
        await self._store.record_start(name, idx, self._clock(), attempt.pid)
        await self._refresh(name)
        return await attempt.wait()

    def _job_user(self, run_as_user: int | None) -> tuple[int, int] | None:
        if not self._switch_user:
            return None
        return launching.job_user(run_as_user, os.geteuid(), self._default_run_as_user)

    def _launch(self, job: StoredJob, result_path: Path) -> launching.Launch:
        request = job.request
        command = [*(request.command or ()), *(request.args or ())]
        user = self._job_user(request.run_as_user)
        env = {
            **self._base_env,
            "HOME": launching.home_of(user, self._environ),
            **request.env,
            "RADIX_JOB_NAME": job.name,
            "RADIX_APP": self.identity.app,
            "RADIX_ENVIRONMENT": self.identity.environment,
            "RADIX_COMPONENT": self.identity.component,
        }
        payload = None
        if request.payload_path is not None and job.payload_file is not None:
            payload = (job.payload_file.parent, request.payload_path)
        return launching.launch(
            command,
            env,
            user,
            payload=payload,
            state_dir=self._store.state_dir,
            result_path=result_path,
            sandboxed=self._sandbox_problem is None,
        )

    async def _end_orphans(self) -> None:
        """Kills what attempts the last scheduler left running still have alive (where no
        sandbox took them with it): none runs on while its job is reported as ended."""
        for job in await self._store.jobs():
            if job.state != "running":
                continue
            for attempt in await self._store.attempts(job.name):
                if attempt.finished is not None or attempt.pid is None or attempt.started is None:
                    continue
                left = await orphans.end_group(attempt.pid, attempt.started)
                if left:
                    log.error(
                        "job %s: processes %s of its last attempt did not end",
                        job.name,
                        ", ".join(map(str, left)),
                        extra={"job_name": job.name},
                    )

    async def _deadline_exceeded(self, name: str, failures: int) -> None:
        await self._store.update_job(name, failed_attempts=failures)
        await self._finish(
            name,
            "failed",
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )

    async def _finish(
        self,
        name: str,
        state: JobState,
        condition: ConditionType | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        now = self._clock()
        changes: JobChanges = {"state": state}
        if condition is not None:
            changes["condition_type"] = condition
            changes["condition_reason"] = reason
            changes["condition_message"] = message
            changes["condition_time"] = now
        if state == "succeeded":
            changes["completed"] = now
        await self._store.update_job(name, **changes)
        await self._refresh(name)

    def _request_stop(self, name: str) -> None:
        """Tell the job's supervision to stop; TERM its process now, KILL it after the grace
        period in the background (never inside a request)."""
        self._stops.setdefault(name, asyncio.Event()).set()
        if (attempt := self._attempts.get(name)) is not None:
            self._background(attempt.stop("Stopped"))

    async def _end_process(self, name: str) -> None:
        self._request_stop(name)
        task = self._supervising.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- records -------------------------------------------------------------------------------

    async def _get(self, name: str) -> StoredJob:
        job = await self._store.get(name)
        if job is None:
            raise NotFoundError(f"job {name} not found")
        return job

    async def _refresh(self, name: str, publish: bool = True) -> JobRecord | None:
        """Read the job again and publish what changed of its Job and Pod records."""
        job = await self._store.get(name)
        if job is None:
            return None
        return self._publish(job, await self._store.attempts(name), publish)

    def _publish(
        self, job: StoredJob, attempts: list[Attempt] | None = None, publish: bool = True
    ) -> JobRecord:
        attempts = attempts or []
        name = job.name
        record = job_record(job, attempts)
        previous = self._jobs.get(name)
        self._jobs[name] = record
        if publish and previous != record:
            self._changes.publish("ADDED" if previous is None else "MODIFIED", record)
        for attempt in attempts:
            pod = pod_record(job, attempt)
            old = self._pods.get(pod.name)
            self._pods[pod.name] = pod
            if publish and old != pod:
                self._changes.publish("ADDED" if old is None else "MODIFIED", pod)
        return record

    def _forget(self, name: str) -> None:
        for pod_name in [p for p, pod in self._pods.items() if pod.job_name == name]:
            self._changes.publish("DELETED", self._pods.pop(pod_name))
        if (record := self._jobs.pop(name, None)) is not None:
            self._changes.publish("DELETED", record)


def _check_runnable(request: JobRequest) -> None:
    if not request.command:
        raise InvalidError(
            f"command: job {request.name} has no command; the local backend runs the job's "
            "command as a process (it does not run container images): set `command` in the "
            "radixconfig or in the request"
        )
