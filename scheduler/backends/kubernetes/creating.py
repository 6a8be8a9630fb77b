"""Creation as a transaction: a crash at any point leaves a complete job or batch, or objects
marked pending that the recovery sweep removes.

A job that has a payload Secret or a Service is born held (parallelism 0, so it has no pod) and
pending; then its anchor (a ConfigMap it owns), then the Secret (or a large payload's part Secrets)
and the Service the anchor owns; once they exist, one patch commits the Job and lets it start. A
batch is a pending ConfigMap that owns its pending, held Jobs and their Secrets and Services;
clearing the ConfigMap's mark is the single write that commits them all, and only then are the
Jobs started. Whatever a crash leaves hangs from a pending Job or batch record, so the recovery
sweep removes it with that one object.

A job whose `startAfter` is still to come is born suspended as well, and stays so once committed
(and "started"): the starter (`starting.py`) resumes it when its time comes, also after a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from scheduler.backends.base import BatchRequest, Identity, JobRecord, JobRequest
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.manifests import (
    build_anchor,
    build_batch_record,
    build_job,
    build_payload_part,
    build_payload_secret,
    build_service,
    commit_patch,
    configmap_owner,
    has_anchor,
)
from scheduler.backends.kubernetes.payloads import (
    PARTS_IN_FLIGHT,
    Assembly,
    is_split,
    parts,
)
from scheduler.backends.kubernetes.records import job_record
from scheduler.clock import utcnow
from scheduler.errors import (
    BackendError,
    BackendUnavailableError,
    NotFoundError,
    SchedulerError,
)
from scheduler.models import SECRET_CAPACITY_BYTES

log = logging.getLogger(__name__)

# A large batch takes longer to create: each job adds this to the batch's grace time.
GRACE_PER_BATCH_JOB_SECONDS = 0.05
START_RETRY_DELAYS_SECONDS = (0.1, 0.5)


class Creator:
    def __init__(
        self,
        api: KubeApi,
        identity: Identity,
        *,
        grace_seconds: float,
        clock: Callable[[], datetime] = utcnow,
        image: str | None = None,
    ) -> None:
        """`image`: the scheduler's own, which puts a payload in parts together in its pod."""
        self._api = api
        self._identity = identity
        self._grace = grace_seconds
        self._clock = clock
        self._image = image
        self._parts_in_flight = asyncio.Semaphore(PARTS_IN_FLIGHT)

    def _job(self, request: JobRequest, **options: Any) -> dict[str, Any]:
        assembly = None
        if request.payload is not None and is_split(request.payload):
            if self._image is None:
                raise BackendError(
                    f"a payload above {SECRET_CAPACITY_BYTES} bytes needs SCHEDULER_IMAGE, the "
                    "scheduler's own image, which puts it together in the job's pod"
                )
            assembly = Assembly.of(request.payload, self._image)
        return build_job(self._identity, request, now=self._clock(), assembly=assembly, **options)

    def _deadline(self, jobs: int) -> datetime:
        extra = GRACE_PER_BATCH_JOB_SECONDS * jobs if jobs > 1 else 0.0
        return self._clock() + timedelta(seconds=self._grace + extra)

    def _check(self, deadline: datetime, what: str) -> None:
        if self._clock() >= deadline:
            raise BackendUnavailableError(
                f"creating {what} took longer than its grace time; it was abandoned"
            )

    async def create_job(self, request: JobRequest) -> JobRecord:
        if not has_anchor(request):
            # Nothing else to create: the Job alone is complete at once.
            return job_record(await self._api.create(Resource.JOBS, self._job(request)))
        deadline = self._deadline(1)
        created = await self._api.create(Resource.JOBS, self._job(request, deadline=deadline))
        uid = created["metadata"]["uid"]
        try:
            anchor = await self._api.create(
                Resource.CONFIGMAPS, build_anchor(self._identity, request, uid)
            )
            metadata = anchor["metadata"]
            await _all(self._owned(request, configmap_owner(metadata["name"], metadata["uid"])))
            self._check(deadline, f"job {request.name}")
            committed = await self._commit(Resource.JOBS, request.name, commit_patch())
        except BaseException:
            await asyncio.shield(self._roll_back(Resource.JOBS, request.name, uid))
            raise
        return job_record(committed)

    async def create_batch(self, batch: BatchRequest) -> list[JobRecord]:
        deadline = self._deadline(len(batch.jobs))
        record = await self._api.create(
            Resource.CONFIGMAPS, build_batch_record(self._identity, batch, deadline)
        )
        uid = record["metadata"]["uid"]
        owner = configmap_owner(batch.name, uid)
        try:
            created = await _all(
                self._create_pending_job(job, deadline, owner) for job in batch.jobs
            )
            self._check(deadline, f"batch {batch.name}")
            await self._commit(Resource.CONFIGMAPS, batch.name, commit_patch(start=False))
        except BaseException:
            # The jobs are owned by the batch record: deleting it takes everything with it.
            await asyncio.shield(self._roll_back(Resource.CONFIGMAPS, batch.name, uid))
            raise
        return await self._start(created)

    async def _start(self, created: list[dict[str, Any]]) -> list[JobRecord]:
        """Start the jobs of a committed batch. One that cannot be started now still belongs
        to the batch: the recovery sweep starts it."""
        results = await asyncio.gather(
            *(self._start_one(job["metadata"]["name"]) for job in created),
            return_exceptions=True,
        )
        records = []
        for job, result in zip(created, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, SchedulerError):
                    raise result
                log.warning(
                    "could not start a job of a committed batch; it starts after its grace time",
                    extra={"job_name": job["metadata"]["name"], "error": result.message},
                )
                records.append(dataclasses.replace(job_record(job), pending=False))
            else:
                records.append(job_record(result))
        return records

    async def _start_one(self, name: str) -> dict[str, Any]:
        """Until it has started, other replicas do not show the job: try again at once."""
        for delay in START_RETRY_DELAYS_SECONDS:
            try:
                return await self._api.patch(Resource.JOBS, name, commit_patch())
            except BackendUnavailableError:
                await asyncio.sleep(delay)
        return await self._api.patch(Resource.JOBS, name, commit_patch())

    async def _create_pending_job(
        self, request: JobRequest, deadline: datetime, owner: dict[str, Any]
    ) -> dict[str, Any]:
        """A batch's job, its Secret and its Service together, all owned by the batch record
        (a restart replaces the Job and leaves them be); the batch's rollback removes them."""
        job = self._api.create(Resource.JOBS, self._job(request, deadline=deadline, owner=owner))
        created: dict[str, Any]
        created, *_ = await _all([job, *self._owned(request, owner)])
        return created

    def _owned(self, request: JobRequest, owner: dict[str, Any]) -> list[Coroutine[Any, Any, None]]:
        """The creates of the job's payload Secret (or its payload's parts) and Service, if it
        has them; their answers are not read."""
        owned = []
        if (secret := build_payload_secret(self._identity, request, owner)) is not None:
            owned.append(self._api.create_unread(Resource.SECRETS, secret))
        elif request.payload is not None and is_split(request.payload):
            owned.append(self._create_parts(request, request.payload, owner))
        if (service := build_service(self._identity, request, owner)) is not None:
            owned.append(self._api.create_unread(Resource.SERVICES, service))
        return owned

    async def _create_parts(
        self, request: JobRequest, payload: bytes, owner: dict[str, Any]
    ) -> None:
        """The part Secrets of a payload in parts, a few at a time: each is base64 only while
        it is on its way."""

        async def create(index: int, part: memoryview) -> None:
            async with self._parts_in_flight:
                secret = build_payload_part(self._identity, request, owner, index, part)
                await self._api.create_unread(Resource.SECRETS, secret)

        await _all(create(index, part) for index, part in enumerate(parts(payload)))

    async def _commit(self, resource: Resource, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._api.patch(resource, name, patch)
        except NotFoundError as exc:
            # Another scheduler judged it abandoned (past its grace time) and removed it.
            raise BackendUnavailableError(
                f"{name} was removed before it was committed: creating it took too long"
            ) from exc

    async def _roll_back(self, resource: Resource, name: str, uid: str) -> None:
        try:
            await self._api.delete(resource, name, uid=uid)
        except NotFoundError:
            pass
        except SchedulerError as exc:
            log.error(
                "could not roll back a half-made creation; it stays pending and held, and "
                "the recovery sweep removes it after its grace time",
                extra={"job_name": name, "error": exc.message},
            )


async def _all(calls: Any) -> list[Any]:
    """Run the calls together; on the first failure cancel the rest and raise that failure."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as group_error:
        raise _first(group_error) from None
    return [task.result() for task in tasks]


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        return error
    return group
