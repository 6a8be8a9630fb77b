"""The Kubernetes backend: each job a batch/v1 Job, with its payload Secret and Service owned by
its anchor, a ConfigMap the Job owns; each batch a ConfigMap that owns its Jobs, Secrets and
Services; a stop a suspended Job that keeps its record."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from scheduler.backends.base import (
    Asked,
    BatchRequest,
    Identity,
    JobRecord,
    JobRequest,
    Kind,
    OpenLog,
    PodRecord,
    Record,
    UsageReport,
    WatchEvent,
)
from scheduler.backends.kubernetes import logs
from scheduler.backends.kubernetes.asked import asked_of_job, job_container
from scheduler.backends.kubernetes.client import KubeApi, Resource, error_for
from scheduler.backends.kubernetes.creating import Creator
from scheduler.backends.kubernetes.keeping import AttemptKeeper
from scheduler.backends.kubernetes.keys import KubernetesKeys
from scheduler.backends.kubernetes.manifests import identity_labels, label_selector, stop_patch
from scheduler.backends.kubernetes.metrics import UsageSampler
from scheduler.backends.kubernetes.records import job_record, pod_record
from scheduler.backends.kubernetes.recovering import LIST_PAGE_SIZE, sweep
from scheduler.backends.kubernetes.restarting import (
    Restart,
    Restarter,
    is_being_replaced,
    record_name,
)
from scheduler.backends.kubernetes.starting import Starting
from scheduler.clock import utcnow
from scheduler.errors import BackendError, BackendUnavailableError, ConflictError, NotFoundError

# A delete is conditional on the Job not having changed since it was read (a restart may take
# hold of it in between); it is tried this many times while the Job's status keeps changing.
DELETE_ATTEMPTS = 5
_RESOURCE_OF = {Kind.JOB: Resource.JOBS, Kind.POD: Resource.PODS}


class KubernetesBackend:
    """The `Backend` port over one namespace of a Kubernetes API server.

    `create_grace_seconds` is how long a creation may take before the recovery sweep (of any
    replica) settles what it left half-made; `keep_attempts`: whether each job's record keeps
    its attempts (`keeping.py`), `attempt_log_bytes` of each one's log and `attempt_record_bytes`
    in all; `configuration` (a client configuration) stands in
    for `kubeconfig` or the pod's service account; `image`: the scheduler's own, which puts a
    payload above one Secret's capacity together in its job's pod (`payloads.py`).
    """

    def __init__(
        self,
        identity: Identity,
        *,
        create_grace_seconds: float,
        keep_attempts: bool,
        attempt_log_bytes: int,
        attempt_record_bytes: int,
        kubeconfig: Path | None = None,
        configuration: Any = None,
        clock: Callable[[], datetime] = utcnow,
        usage_interval_seconds: float | None = None,
        image: str | None = None,
    ) -> None:
        self.identity = identity
        self._api = KubeApi(identity.namespace, kubeconfig, configuration)
        self._usage = UsageSampler(self._api, identity, interval_seconds=usage_interval_seconds)
        self._keeper = AttemptKeeper(
            self._api,
            identity,
            log_bytes=attempt_log_bytes,
            record_bytes=attempt_record_bytes,
            enabled=keep_attempts,
            clock=clock,
            usage_of=self._usage.usage,
        )
        self._selector = label_selector(identity)
        self._clock = clock
        self._creator = Creator(
            self._api, identity, grace_seconds=create_grace_seconds, clock=clock, image=image
        )
        self.keys = KubernetesKeys(self._api, identity)
        self._restarter = Restarter(
            self._api, identity, self._keeper, grace_seconds=create_grace_seconds, clock=clock
        )
        self._starting = Starting(self._api, clock)

    async def start(self) -> None:
        await self._api.start()
        self._keeper.start()
        self._usage.start()

    async def close(self) -> None:
        await self._usage.close()
        await self._keeper.close()
        await self._api.close()

    async def create_job(self, request: JobRequest) -> JobRecord:
        return await self._creator.create_job(request)

    async def create_batch(self, batch: BatchRequest) -> list[JobRecord]:
        return await self._creator.create_batch(batch)

    async def stop_job(self, name: str, started: datetime | None) -> JobRecord:
        now = self._clock()
        # Its running attempts end with their pods, which the Job controller deletes.
        await self._keeper.keep_before_stop(name, now)
        patch = stop_patch(now, started)
        return job_record(await self._api.patch(Resource.JOBS, name, patch))

    async def delete_job(self, name: str, uid: str) -> None:
        """Delete the job whose Job has `uid`, unless a restart has it (409). Deleted
        meanwhile is deleted, as asked: the same answer as the delete that came first."""
        for _ in range(DELETE_ATTEMPTS):
            job = await self._api.find(Resource.JOBS, name)
            if job is None:
                if await self._api.find(Resource.CONFIGMAPS, record_name(name)) is not None:
                    # Between a restart's old Job and its new one.
                    raise ConflictError(f"a restart of job {name} is under way")
                return
            metadata = job["metadata"]
            # Never delete a namesake that is not the job we know.
            if metadata.get("uid") != uid:
                raise ConflictError(f"job {name} was restarted meanwhile")
            if is_being_replaced(job):
                raise ConflictError(f"a restart of job {name} is under way")
            if metadata.get("deletionTimestamp"):
                return
            try:
                # Only the Job as read: a restart that marked it since wins (see restarting.py).
                await self._api.delete(
                    Resource.JOBS, name, uid=uid, resource_version=metadata["resourceVersion"]
                )
                return
            except NotFoundError:
                continue  # changed or gone meanwhile: look again
        raise BackendUnavailableError(f"job {name} kept changing while it was deleted; try again")

    async def delete_batch(self, name: str) -> None:
        try:
            await self._api.delete(Resource.CONFIGMAPS, name)
        except NotFoundError as exc:
            raise NotFoundError(f"batch {name} not found") from exc

    async def start_held_job(self, name: str, uid: str) -> JobRecord | None:
        return await self._starting.start(name, uid)

    async def fail_waiting_job(
        self, name: str, uid: str, message: str, now: datetime
    ) -> JobRecord | None:
        return await self._starting.give_up(name, uid, message, now)

    async def open_log(
        self, job: str, pod: str, *, follow: bool, tail: int | None, timestamps: bool
    ) -> OpenLog:
        chunks = logs.reading(
            self._api, self.identity, job, pod, follow=follow, tail=tail, timestamps=timestamps
        )
        try:
            await anext(chunks)  # opened
        except NotFoundError as gone:
            # Its pod is gone: what its attempt's record keeps.
            return await self._keeper.open_kept_log(
                job, pod, tail=tail, timestamps=timestamps, gone=gone
            )
        return OpenLog(chunks)

    async def attempt_result(self, job: str, pod: str) -> str | None:
        return await self._keeper.kept_result(job, pod)

    async def job_usage(self, job: str) -> UsageReport:
        await self._usage.discover()
        try:
            spec = (await self._api.get(Resource.JOBS, job))["spec"]["template"]["spec"]
        except NotFoundError:
            spec = {}  # deleted meanwhile: its attempts' records are all there is
        resources = job_container(spec, self.identity.component).get("resources") or {}
        return UsageReport(
            requests={k: str(v) for k, v in (resources.get("requests") or {}).items()},
            limits={k: str(v) for k, v in (resources.get("limits") or {}).items()},
            live=self._usage.job_usage(job),
            source=self._usage.source,
            unavailable=self._usage.unavailable,
        )

    async def asked(self, job: str) -> Asked:
        # Read off the Job when asked, not kept in the view: it would cost every job memory.
        found = await self._api.find(Resource.JOBS, job)
        if found is None:
            # Between a restart's old Job and its new one, the restart's record holds the new.
            restart = await self._api.find(Resource.CONFIGMAPS, record_name(job))
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found = Restart.of_record(restart).job if restart is not None else None
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if found is None or identity_labels(self.identity).items() - labels.items():
            raise NotFoundError(f"job {job} not found")
        return asked_of_job(found, self.identity.component)

    async def restart_job(self, name: str, uid: str, now: datetime) -> JobRecord:
        return await self._restarter.restart(name, uid, now)

    async def recover(self) -> int:
        return await sweep(
            self._api, self.identity, now=self._clock(), finish_restart=self._restarter.settle
        )

    @staticmethod
    def _record(kind: Kind, obj: dict[str, Any]) -> Record:
        return job_record(obj) if kind is Kind.JOB else pod_record(obj)

    async def list_records(self, kind: Kind) -> tuple[list[Record], str]:
        records: list[Record] = []
        token: str | None = None
        while True:
            page = await self._api.list(
                _RESOURCE_OF[kind], self._selector, limit=LIST_PAGE_SIZE, token=token
            )
            records.extend(self._record(kind, item) for item in page.get("items") or ())
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                self._seen(kind, records)
                return records, str(metadata.get("resourceVersion", ""))

    def _seen(self, kind: Kind, records: list[Record]) -> None:
        """A fresh list, told to the keeper: what the Jobs' records keep, and pods to keep."""
        if kind is Kind.JOB:
            self._keeper.jobs_listed(r for r in records if isinstance(r, JobRecord))
            return
        # The pods as the keeper hands them back: with why they waited, as it saw them wait.
        for index, record in enumerate(records):
            if isinstance(record, PodRecord):
                records[index] = self._keeper.pod_seen(record, deleted=False)
        self._usage.pods_listed([r for r in records if isinstance(r, PodRecord)])

    async def watch_records(self, kind: Kind, resource_version: str) -> AsyncIterator[WatchEvent]:
        async for event in self._api.watch(_RESOURCE_OF[kind], self._selector, resource_version):
            if event is None:
                yield WatchEvent("OPENED", resource_version, None)
            else:
                yield self._event(kind, event)

    def _event(self, kind: Kind, event: dict[str, Any]) -> WatchEvent:
        kind_of_event = event.get("type")
        obj = event.get("object") or {}
        if kind_of_event == "ERROR":
            raise error_for(int(obj.get("code") or 500), json.dumps(obj).encode())
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if kind_of_event == "BOOKMARK":
            return WatchEvent("BOOKMARK", version, None)
        if kind_of_event not in ("ADDED", "MODIFIED", "DELETED"):
            raise BackendError(f"unexpected watch event type {kind_of_event!r}")
        if kind is Kind.JOB and kind_of_event == "DELETED" and is_being_replaced(obj):
            # The deletion of a Job a restart replaces: the job lives on in its replacement
            # (same name), which no replica's view may lose in between; only the version counts.
            return WatchEvent("BOOKMARK", version, None)
        record = self._record(kind, obj)
        if isinstance(record, JobRecord):
            self._keeper.job_seen(record, deleted=kind_of_event == "DELETED")
            if kind_of_event == "DELETED":
                self._usage.job_gone(record.name)
        else:
            record = self._keeper.pod_seen(record, deleted=kind_of_event == "DELETED")
            self._usage.pod_seen(record, deleted=kind_of_event == "DELETED")
        return WatchEvent(kind_of_event, version, record)
