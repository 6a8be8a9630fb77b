"""The local backend: each job's command as a child process on this machine, state in SQLite.

Jobs wait in the dispatch queue (queue.py) for a free slot, then the supervisor (supervising.py)
runs each as a series of attempts. Every change is listed and watched as Job and Pod records
(changes.py), so the view, statuses and the whole API are the same as on Kubernetes.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path

from scheduler.backends.base import (
    WAITING_TIMEOUT,
    Asked,
    BatchRequest,
    Identity,
    JobRecord,
    JobRequest,
    Kind,
    OpenLog,
    Record,
    UsageReport,
    WatchEvent,
    asked_of,
)
from scheduler.backends.local import launching, logs, orphans, restarting, runner
from scheduler.backends.local.changes import Listing
from scheduler.backends.local.keys import LocalKeys
from scheduler.backends.local.launching import Launcher
from scheduler.backends.local.locks import JobLocks
from scheduler.backends.local.queue import DispatchQueue
from scheduler.backends.local.records import pod_name
from scheduler.backends.local.schema import StoredJob
from scheduler.backends.local.store import LocalStore
from scheduler.backends.local.supervising import RETRY_BACKOFF_SECONDS, Supervisor
from scheduler.backends.local.usage import UsageSampler
from scheduler.clock import utcnow
from scheduler.errors import BadRequestError, ConflictError, InvalidError, NotFoundError

log = logging.getLogger(__name__)


class LocalBackend:
    def __init__(
        self,
        identity: Identity,
        state_dir: Path,
        *,
        max_parallel: int,
        log_limit_bytes: int,
        kill_grace_seconds: float = runner.DEFAULT_KILL_GRACE_SECONDS,
        retry_backoff_seconds: float = RETRY_BACKOFF_SECONDS,
        clock: Callable[[], datetime] = utcnow,
        base_env: Mapping[str, str] | None = None,
        default_run_as_user: int = launching.DEFAULT_RUN_AS_USER,
        switch_user: bool = True,
        usage_interval_seconds: float | None = None,
    ) -> None:
        self.identity = identity
        self._store = LocalStore(state_dir)
        self.keys = LocalKeys(self._store)
        self._clock = clock
        self._listing = Listing(self._store)
        self._usage = UsageSampler(usage_interval_seconds)
        self._launcher = Launcher(
            identity,
            state_dir=state_dir,
            environ=os.environ if base_env is None else base_env,
            default_run_as_user=default_run_as_user,
            switch_user=switch_user,
        )
        self._supervisor = Supervisor(
            self._store,
            listing=self._listing,
            launcher=self._launcher,
            clock=clock,
            log_limit_bytes=log_limit_bytes,
            kill_grace_seconds=kill_grace_seconds,
            retry_backoff_seconds=retry_backoff_seconds,
            usage=self._usage,
        )
        self._queue = DispatchQueue(
            self._store,
            self._supervisor,
            self._listing,
            max_parallel=max_parallel,
            clock=clock,
        )
        self._controlling = JobLocks()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.open()
        # What a killed scheduler left running ends before its job is reported as ended.
        await orphans.end_leftovers(self._store)
        interrupted = await self._store.mark_interrupted(self._clock())
        if interrupted:
            log.warning(
                "%d job(s) were running when the scheduler last stopped; marked Failed: %s",
                len(interrupted),
                ", ".join(interrupted),
            )
        await self._launcher.probe()
        log.info(
            "the local backend runs each job's command as a process on this machine; "
            "container images are not pulled or run"
        )
        await self._listing.load()
        await self._queue.load()
        self._usage.start()
        self._queue.start()

    async def close(self) -> None:
        """Stop running jobs (TERM, then KILL after the grace period) and record why."""
        self._queue.stop_dispatching()
        await self._supervisor.close()
        await self._queue.drain()
        await self._usage.close()
        await self._store.close()

    # -- the port ------------------------------------------------------------------------------

    async def create_job(self, request: JobRequest) -> JobRecord:
        _check_runnable(request)
        stored = await self._store.add_job(request, self._clock())
        # A new job has no attempts: its record comes from the row just written, not a re-read.
        (record,) = self._queue.add([(stored, ())])
        return record

    async def create_batch(self, batch: BatchRequest) -> list[JobRecord]:
        for request in batch.jobs:
            _check_runnable(request)
        stored = await self._store.add_batch(batch, self._clock())
        return self._queue.add([(job, ()) for job in stored])

    async def stop_job(self, name: str, started: datetime | None) -> JobRecord:
        async with self._controlling.holding(name):
            job = await self._get(name)
            now = self._clock()
            # At once, before any other await: a job handed out to run this moment sees it.
            self._supervisor.request_stop(name)
            if job.state == "waiting":
                self._queue.withdraw(name)
                await self._store.update_job(name, state="stopped", stopped_at=now)
            elif job.state == "running" and job.stopped_at is None:
                await self._store.update_job(name, stopped_at=now)
            record = await self._listing.refresh(name)
            assert record is not None
            return record

    async def delete_job(self, name: str, uid: str) -> None:
        async with self._controlling.holding(name):
            job = await self._store.get(name)
            if job is None:
                return  # deleted meanwhile, as asked: the same answer as the delete before
            if job.uid != uid:
                raise NotFoundError(f"job {name} not found")
            await self._end_supervision(name)
            await self._store.delete_job(name)
            self._listing.drop(name)

    async def restart_job(self, name: str, uid: str, now: datetime) -> JobRecord:
        async with self._controlling.holding(name):
            job = await self._get(name)
            if job.uid != uid:
                raise NotFoundError(f"job {name} not found")
            if not restarting.is_restartable(job):
                if job.restarted is not None:
                    raise ConflictError(f"job {name} was restarted meanwhile")
                raise BadRequestError(f"cannot restart the job {name}: it has not ended")
            await self._queue.finished(name)  # it has ended: its supervision is finishing
            # A stop asked of it while it waited found no run to end: it is not for this one.
            self._supervisor.released(name)
            attempts = await self._store.attempts(name)
            job = await self._store.update_job(name, **restarting.restart_changes(attempts, now))
            (record,) = self._queue.add([(job, attempts)])
            return record

    async def delete_batch(self, name: str) -> None:
        for job in self._listing.batch_jobs(name):
            await self._end_supervision(job)
        removed = await self._store.delete_batch(name)
        for job in removed.jobs:
            self._listing.drop(job)

    async def start_held_job(self, name: str, uid: str) -> JobRecord | None:
        # The queue holds such a job until its time, and starts it then on its own.
        self._queue.wake()
        return None

    async def fail_waiting_job(
        self, name: str, uid: str, message: str, now: datetime
    ) -> JobRecord | None:
        async with self._controlling.holding(name):
            job = await self._store.get(name)
            if job is None or job.uid != uid or job.state != "waiting":
                return None
            if not self._queue.withdraw(name):
                return None  # handed out to run this moment
            await self._store.update_job(
                name,
                state="failed",
                condition_type="Failed",
                condition_reason=WAITING_TIMEOUT,
                condition_message=message,
                condition_time=now,
            )
            return await self._listing.refresh(name)

    async def recover(self) -> int:
        # A create is one SQLite transaction: a crash leaves a whole job or none.
        return 0

    async def list_records(self, kind: Kind) -> tuple[list[Record], str]:
        return self._listing.records(kind)

    def watch_records(self, kind: Kind, resource_version: str) -> AsyncIterator[WatchEvent]:
        return self._listing.watch(kind, resource_version)

    async def open_log(
        self, job: str, pod: str, *, follow: bool, tail: int | None, timestamps: bool
    ) -> OpenLog:
        ended = functools.partial(self._listing.attempt_ended, pod)
        chunks = logs.reading(
            self._store, job, pod, follow=follow, tail=tail, timestamps=timestamps, finished=ended
        )
        await anext(chunks)  # opened
        return OpenLog(chunks)

    async def attempt_result(self, job: str, pod: str) -> str | None:
        return None  # an attempt's record here holds its result: no attempt is kept elsewhere

    async def job_usage(self, job: str) -> UsageReport:
        stored = await self._get(job)
        running = [
            pod_name(job, attempt.idx)
            for attempt in await self._store.attempts(job)
            if attempt.finished is None
        ]
        return UsageReport(
            requests=dict(stored.request.requests),
            limits=dict(stored.request.limits),
            live={pod: usage for pod in running if (usage := self._usage.usage(pod)) is not None},
            source=f"its process tree, read from /proc every {self._usage.interval_seconds:g} s "
            "while it runs",
            unavailable=self._usage.unavailable,
        )

    async def asked(self, job: str) -> Asked:
        # The request is stored with the job as it was merged; its payload in a file beside it.
        stored = await self._get(job)
        return asked_of(stored.request, has_payload=stored.payload_file is not None)

    # -- helpers -------------------------------------------------------------------------------

    async def _get(self, name: str) -> StoredJob:
        job = await self._store.get(name)
        if job is None:
            raise NotFoundError(f"job {name} not found")
        return job

    async def _end_supervision(self, name: str) -> None:
        self._supervisor.request_stop(name)
        self._queue.withdraw(name)
        await self._queue.cancel(name)


def _check_runnable(request: JobRequest) -> None:
    if not request.command:
        raise InvalidError(
            f"command: job {request.name} has no command; the local backend runs the job's "
            "command as a process (it does not run container images): set `command` in the "
            "radixconfig or in the request"
        )
