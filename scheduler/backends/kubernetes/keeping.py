"""Keeping each attempt of a job after its pod is gone (`attempts.py` holds what is kept).

The keeper watches what the backend's watch sees. An attempt is kept when it ends (its
container terminated), when its pod starts being deleted by anyone, and, if nothing was kept
before, when its pod is gone (then its status only: its log went with it). The scheduler's own
ends of a running attempt, a stop and a restart, keep it first, then end it.

Every replica keeps what it sees; each write is conditional on the object being as read (its
resourceVersion), and merges with what is kept already, so two replicas never undo each other
and a crash anywhere is made good by whoever sees the pod next (the watch's first list too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from scheduler.backends.base import (
    Identity,
    JobRecord,
    Kept,
    OpenLog,
    PodRecord,
    Usage,
    Waited,
    attempt_ended,
    attempt_started,
    waiting_for,
)
from scheduler.backends.kubernetes import attempts
from scheduler.backends.kubernetes.attempts import KeptLog
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.manifests import (
    CONTAINER_NAME_FALLBACK,
    LABEL_PENDING,
    job_owner,
    job_pods_selector,
)
from scheduler.backends.kubernetes.records import pod_record
from scheduler.backends.kubernetes.recovering import list_all
from scheduler.clock import utcnow
from scheduler.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidError,
    NotFoundError,
    SchedulerError,
)
from scheduler.loops import cancelled

log = logging.getLogger(__name__)

# Attempts kept at once (each reads a log and writes twice).
KEEPERS = 8
# A conditional write is tried this many times while its object keeps changing (the Job
# controller writes a running Job's status).
WRITE_ATTEMPTS = 5
# A log's tail is read this many lines at first, then more while that is less than is kept.
FIRST_TAIL_LINES = 4096
MAX_TAIL_LINES = 1 << 22


@dataclass(slots=True)
class _Due:
    """A pod to keep, as last seen, and whether it is gone."""

    job: str
    pod: PodRecord
    gone: bool


@dataclass(slots=True)
class _Job:
    kept: dict[str, Kept | None]  # by pod name: how much its record keeps
    previous: frozenset[str]  # the pods of its runs before a restart: history, not kept here


class AttemptKeeper:
    def __init__(
        self,
        api: KubeApi,
        identity: Identity,
        *,
        log_bytes: int,
        record_bytes: int,
        enabled: bool,
        clock: Callable[[], datetime] = utcnow,
        usage_of: Callable[[str], Usage | None] = lambda pod: None,
    ) -> None:
        self._api = api
        self._usage_of = usage_of  # what an attempt used, by pod name, as sampled so far
        self._clock = clock
        self._identity = identity
        self._container = identity.component or CONTAINER_NAME_FALLBACK
        self._log_bytes = log_bytes
        self._record_bytes = record_bytes
        self.enabled = enabled
        # What the watch says the records keep, to leave alone what is kept already.
        self._jobs: dict[str, _Job] = {}
        self._due: dict[str, _Due] = {}
        # By pod name: its job, and why it waited last before its container started, as seen;
        # held while the pod is there (its summary keeps it from the time it is kept).
        self._waited: dict[str, tuple[str, Waited]] = {}
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._jobs_listed = asyncio.Event()
        self._slots = asyncio.Semaphore(KEEPERS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.enabled and self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="attempt-keeper")

    async def close(self) -> None:
        await cancelled(*self._tasks, self._runner)
        self._runner = None

    # -- what the watch sees ----------------------------------------------------------------

    def jobs_listed(self, records: Iterable[JobRecord]) -> None:
        self._jobs = {}
        listed = set()
        for record in records:
            listed.add(record.name)
            self.job_seen(record, deleted=False)
        # Pods whose deletion a reconnecting watch did not see: their jobs are gone too.
        self._waited = {pod: seen for pod, seen in self._waited.items() if seen[0] in listed}
        self._jobs_listed.set()

    def job_seen(self, record: JobRecord, *, deleted: bool) -> None:
        if deleted:
            gone = [pod for pod, (job, _) in self._waited.items() if job == record.name]
            for pod in gone:
                del self._waited[pod]
        if not self.enabled:
            return  # nothing is kept: nothing to know of what is
        if deleted:
            self._jobs.pop(record.name, None)
            return
        self._jobs[record.name] = _Job(
            {attempt.name: attempt.kept for attempt in record.kept_attempts},
            frozenset(attempt.name for attempt in record.previous_attempts),
        )

    def pod_seen(self, pod: PodRecord, *, deleted: bool) -> PodRecord:
        """Note the pod as the watch sees it; return it as the view should hold it: once its
        container has started, with why it waited before, as seen (a pod's status forgets)."""
        pod = self._waiting_seen(pod, deleted=deleted)
        if not self.enabled or not pod.job_name or not attempt_started(pod):
            return pod  # a pod that never ran is no attempt to keep
        job = self._jobs.get(pod.job_name)
        if job is not None and pod.name in job.previous:
            return pod
        kept = job.kept.get(pod.name) if job is not None else None
        if kept == "final":
            return pod
        # A pod's last state (that of its deletion too) may say how it ended, if nothing did.
        if attempt_ended(pod) or (kept is None and (deleted or pod.deleting)):
            self._due[pod.name] = _Due(pod.job_name, pod, gone=deleted)
            self._wake.set()
        return pod

    def _waiting_seen(self, pod: PodRecord, *, deleted: bool) -> PodRecord:
        if not attempt_started(pod):
            if (waiting := waiting_for(pod)) is not None:
                self._waited[pod.name] = (pod.job_name, waiting)
        else:
            pod = self.with_waited(pod)
        if deleted:
            self._waited.pop(pod.name, None)
        return pod

    def with_waited(self, pod: PodRecord) -> PodRecord:
        """`pod` with why it waited before its container started, as seen, if it says nothing."""
        seen = self._waited.get(pod.name)
        if seen is None or pod.waited is not None or not attempt_started(pod):
            return pod
        return replace(pod, waited=seen[1])

    async def _run(self) -> None:
        await self._jobs_listed.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            for name in [name for name in self._due if name not in self._busy]:
                due = self._due.pop(name)
                self._busy.add(name)
                task = asyncio.create_task(self._keep_due(due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _keep_due(self, due: _Due) -> None:
        try:
            async with self._slots:
                await self.keep(due.job, due.pod, gone=due.gone)
        except SchedulerError as exc:
            # The next sight of the pod (or the next start's list) tries again.
            log.warning(
                "could not keep an attempt: %s",
                exc.message,
                extra={"job_name": due.job, "pod": due.pod.name},
            )
        finally:
            self._busy.discard(due.pod.name)
            if due.pod.name in self._due:
                self._wake.set()

    # -- the scheduler's own ends of an attempt ----------------------------------------------

    async def keep_before_stop(self, job: str, now: datetime) -> None:
        """Keep the job's attempts, the running ones as Stopped at `now`, before a stop ends
        them (its pods are deleted, their logs with them)."""
        if not self.enabled:
            return
        pods = [pod_record(pod) async for pod in self._pods(job)]
        await asyncio.gather(*(self.keep(job, pod, gone=False, stopped_at=now) for pod in pods))

    async def keep_all(self, job: str, pods: Iterable[dict[str, Any]]) -> None:
        """Keep these pods' attempts before a restart deletes them."""
        if not self.enabled:
            return
        await asyncio.gather(*(self.keep(job, pod_record(pod), gone=False) for pod in pods))

    async def hand_over(self, job: str, uid: str) -> None:
        """A restart's new Job `uid` owns the record from now on (so it goes with that one)."""
        owner = {"metadata": {"ownerReferences": [job_owner(job, uid)]}}
        with contextlib.suppress(NotFoundError):  # nothing kept yet
            await self._api.patch(Resource.CONFIGMAPS, attempts.record_name(job), owner)

    # -- keeping one attempt -----------------------------------------------------------------

    async def keep(
        self, job_name: str, pod: PodRecord, *, gone: bool, stopped_at: datetime | None = None
    ) -> None:
        """Keep `pod`'s attempt of `job_name` as well as can be now: its log (unless `gone`),
        its result and its status. `stopped_at`: a stop ends it now."""
        if not attempt_started(pod):
            return  # never ran: no attempt to keep
        pod = self.with_waited(pod)  # read off the API (a stop, a restart), not from the watch
        # A pod being deleted may be gone in a moment, its log with it: its log is read at once,
        # alongside the Job. Any other is read once the Job says it is not kept yet.
        early = not gone and (pod.deleting or stopped_at is not None)
        reading = asyncio.ensure_future(self._tail_if_there(pod.name)) if early else None
        try:
            job = await self._api.find(Resource.JOBS, job_name)
            if job is None or (job["metadata"].get("labels") or {}).get(LABEL_PENDING) == "true":
                return  # deleted, or nobody's job yet
            if pod.name in attempts.previous_on(job):
                return  # history of a run before a restart
            known = attempts.kept_on(job).get(pod.name)
            if known is not None and known.kept == "final":
                self._learned(job_name, pod.name, "final")
                return
            if reading is not None:
                log_text, truncated = await reading
            elif not gone:
                log_text, truncated = await self._tail_if_there(pod.name)
            else:
                log_text, truncated = None, False
        finally:
            if reading is not None:
                reading.cancel()
        final = attempt_ended(pod) and log_text is not None
        kept: Kept = "final" if final else "partial" if log_text is not None else "status"
        if log_text is not None or pod.result is not None:
            uid = job["metadata"]["uid"]
            await self._store(
                job_name,
                uid,
                KeptLog(
                    pod=pod.name,
                    created=pod.created,
                    log=log_text,
                    truncated=truncated,
                    final=final,
                    result=pod.result,
                ),
                first=not attempts.kept_on(job),
            )
        await self._keep_status(job, pod, kept, known, stopped_at)
        self._learned(job_name, pod.name, kept)

    def _learned(self, job_name: str, pod: str, kept: Kept) -> None:
        """What was just kept, before the watch brings the Job that says so: later sights of the
        pod meanwhile need no second look."""
        job = self._jobs.get(job_name)
        if job is not None and attempts.rank(kept) > attempts.rank(job.kept.get(pod)):
            job.kept[pod] = kept

    async def _keep_status(
        self,
        job: dict[str, Any],
        pod: PodRecord,
        kept: Kept,
        known: PodRecord | None,
        stopped_at: datetime | None,
    ) -> None:
        name = job["metadata"]["name"]
        for _ in range(WRITE_ATTEMPTS):
            summary = attempts.kept_summary(
                pod,
                kept,
                known=known,
                stopped_at=stopped_at,
                now=self._clock(),
                usage=self._usage_of(pod.name),
            )
            patch = attempts.annotation_patch(job, pod.name, summary)
            if patch is None:
                return
            try:
                await self._api.patch(Resource.JOBS, name, patch)
                return
            except ConflictError:
                found = await self._api.find(Resource.JOBS, name)
                if found is None or found["metadata"].get("uid") != job["metadata"].get("uid"):
                    return  # deleted or replaced meanwhile: nothing to keep it on
                job = found
                known = attempts.kept_on(job).get(pod.name)
        raise BackendUnavailableError(f"job {name} kept changing while its attempt was kept")

    async def _store(self, job: str, uid: str, kept: KeptLog, *, first: bool) -> None:
        """Keep `kept` in the job's ConfigMap. `first`: the Job keeps no attempt yet, so there
        is likely no ConfigMap either: it is created without reading first."""
        name = attempts.record_name(job)
        record: dict[str, Any] | None = None
        for _ in range(WRITE_ATTEMPTS):
            if not first:
                try:
                    record = await self._api.get(Resource.CONFIGMAPS, name)
                except NotFoundError:
                    record = None
            first = False
            if record is None:
                try:
                    await self._api.create(Resource.CONFIGMAPS, self._new_record(job, uid, kept))
                    return
                except ConflictError:
                    continue  # made meanwhile by another replica (or an attempt before)
            patch = attempts.record_patch(record, kept, record_bytes=self._record_bytes)
            if patch is None:
                return
            try:
                await self._api.patch(Resource.CONFIGMAPS, name, patch)
                return
            except (ConflictError, NotFoundError):
                continue  # changed or gone meanwhile: look again
        raise BackendUnavailableError(f"the record of job {job} kept changing while it was kept")

    def _new_record(self, job: str, uid: str, kept: KeptLog) -> dict[str, Any]:
        record = attempts.new_record(self._identity, job, uid)
        patch = attempts.record_patch(record, kept, record_bytes=self._record_bytes)
        assert patch is not None, "a new record keeps nothing yet"
        record["data"] = patch["data"]
        record["binaryData"] = {key: value for key, value in patch["binaryData"].items() if value}
        return record

    async def _tail_if_there(self, pod: str) -> tuple[bytes | None, bool]:
        try:
            return await self._tail(pod)
        except (NotFoundError, InvalidError):
            return None, False  # gone meanwhile, or never ran

    async def _tail(self, pod: str) -> tuple[bytes, bool]:
        """The tail of the pod's log that is kept, with timestamps, and whether it was cut."""
        lines = FIRST_TAIL_LINES
        while True:
            chunks = self._api.pod_log(
                pod, self._container, follow=False, tail_lines=lines, timestamps=True
            )
            text = b"".join([chunk async for chunk in chunks])
            tail, cut = attempts.log_tail(text, self._log_bytes)
            count = text.count(b"\n")
            if cut or count < lines or lines >= MAX_TAIL_LINES:
                return tail, cut or count >= lines
            # As many lines as asked for, and fewer bytes than are kept: ask for more.
            lines = min(lines * 8, MAX_TAIL_LINES)

    def _pods(self, job: str) -> AsyncIterator[dict[str, Any]]:
        return list_all(self._api, Resource.PODS, job_pods_selector(self._identity, job))

    # -- reading what is kept ----------------------------------------------------------------

    async def _kept(self, job: str, pod: str) -> KeptLog | None:
        record = await self._api.find(Resource.CONFIGMAPS, attempts.record_name(job))
        return attempts.read_kept(record, pod) if record is not None else None

    async def open_kept_log(
        self, job: str, pod: str, *, tail: int | None, timestamps: bool, gone: NotFoundError
    ) -> OpenLog:
        """The kept log of `pod`'s attempt, whose pod is gone (`gone` says so); NotFoundError,
        saying why, when its record keeps none."""
        kept = await self._kept(job, pod)
        if kept is None or kept.log is None:
            raise NotFoundError(_why_no_log(job, pod, kept, self._record_bytes)) from gone
        text = attempts.served(kept.log, tail=tail, timestamps=timestamps)
        # A tail within what is kept is whole.
        truncated = kept.truncated and (tail is None or tail > kept.log.count(b"\n"))

        async def chunks() -> AsyncGenerator[bytes, None]:
            yield text

        return OpenLog(chunks(), kept=True, truncated=truncated)

    async def kept_result(self, job: str, pod: str) -> str | None:
        kept = await self._kept(job, pod)
        return kept.result if kept is not None else None


def _why_no_log(job: str, pod: str, kept: KeptLog | None, record_bytes: int) -> str:
    if kept is not None and kept.dropped:
        return (
            f"the log of pod {pod} of job {job} was dropped from the job's record, which keeps "
            f"at most {record_bytes // 1024} KiB of logs (the latest attempts' first)"
        )
    return (
        f"the log of pod {pod} of job {job} is gone with its pod, and was not kept: the pod was "
        "deleted before the scheduler could read its log"
    )
