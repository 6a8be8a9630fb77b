"""The domain of batches: create one whole (each job merged with the batch's defaults), read,
stop and delete them. A batch's status is derived from its jobs'."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from scheduler.backends.base import Backend, BatchRequest
from scheduler.domain.batch_status import derive_batch_status
from scheduler.domain.defaults import (
    MAX_EXPANDED_BATCH_BYTES,
    expanded_size,
    layered,
    merge_defaults,
)
from scheduler.domain.jobs import build_request
from scheduler.domain.payloads import PayloadRules
from scheduler.domain.stopping import Stopper, is_stoppable
from scheduler.domain.view import JobView
from scheduler.errors import (
    BadRequestError,
    ConflictError,
    InvalidError,
    NotFoundError,
    PayloadTooLargeError,
)
from scheduler.models import BatchScheduleDescription, BatchStatus, JobStatus, Status, success
from scheduler.names import new_batch_job_names, new_batch_name
from scheduler.radixconfig import JobDefinition

log = logging.getLogger(__name__)

_NAME_ATTEMPTS = 3
EMPTY_BATCH = "BatchScheduleDescription is invalid: empty job description list"
# A large batch is built a slice at a time, and other requests (and /healthz) run in between.
JOBS_PER_SLICE = 50
_MIB = 1024 * 1024


class BatchService:
    def __init__(
        self,
        definition: JobDefinition,
        backend: Backend,
        view: JobView,
        *,
        payloads: PayloadRules | None = None,
        name_factory: Callable[[str], str] = new_batch_name,
        creating: Callable[[str], AbstractContextManager[None]] = lambda name: nullcontext(),
    ) -> None:
        self.definition = definition
        self.payloads = payloads or PayloadRules.of(definition)
        self._creating = creating
        self._backend = backend
        self._view = view
        self._new_name = name_factory
        self._stopper = Stopper(backend, view)

    def _check(self, description: BatchScheduleDescription) -> None:
        """Every mistake is found before anything is created."""
        jobs = description.job_schedule_descriptions
        if not jobs:
            raise InvalidError(EMPTY_BATCH)
        size = expanded_size(description.default_radix_job_component_config, jobs)
        if size > MAX_EXPANDED_BATCH_BYTES:
            # 413, as for a payload: the request is valid, only too big to build; the remedy is
            # a smaller one (fewer jobs, fewer defaults), not a corrected field.
            raise PayloadTooLargeError(
                f"BatchScheduleDescription is too large: its {len(jobs)} jobs, each merged with "
                f"defaultRadixJobComponentConfig, come to {size} bytes ({size / _MIB:.1f} MiB); "
                f"at most {MAX_EXPANDED_BATCH_BYTES} bytes ({MAX_EXPANDED_BATCH_BYTES // _MIB} "
                "MiB). Send fewer jobs per batch or fewer default variables, or put variables "
                "every job needs in the radixconfig"
            )
        self.payloads.check(
            (f"jobScheduleDescriptions[{index}].payload", job.payload)
            for index, job in enumerate(jobs)
        )

    async def _request(self, description: BatchScheduleDescription, name: str) -> BatchRequest:
        jobs = description.job_schedule_descriptions
        definition, defaults = layered(
            self.definition, description.default_radix_job_component_config
        )
        names = new_batch_job_names(name, len(jobs))
        requests = []
        for index, (job, job_name) in enumerate(zip(jobs, names, strict=True)):
            if index and index % JOBS_PER_SLICE == 0:
                await asyncio.sleep(0)
            requests.append(
                build_request(
                    definition,
                    merge_defaults(defaults, job),
                    job_name,
                    batch_name=name,
                    batch_id=description.batch_id,
                    batch_index=index,
                    start_after=description.start_after,
                    waiting_timeout_seconds=description.waiting_timeout_seconds,
                )
            )
        return BatchRequest(name=name, batch_id=description.batch_id, jobs=tuple(requests))

    async def create(
        self, description: BatchScheduleDescription, fixed_name: str | None = None
    ) -> BatchStatus:
        """With `fixed_name` (an Idempotency-Key's claim) a batch of that name that exists
        already is a ConflictError: no other name is drawn."""
        self._check(description)
        attempts = 1 if fixed_name is not None else _NAME_ATTEMPTS
        for attempt in range(1, attempts + 1):
            name = fixed_name or self._new_name(self.definition.name)
            try:
                with self._creating(name):
                    request = await self._request(description, name)
                    records = await self._backend.create_batch(request)
                    for record in records:
                        self._view.upsert_job(record)
                break
            except ConflictError:
                # The random suffix collided with an existing batch: draw another name.
                if attempt == attempts:
                    raise
        log.info("created batch %s of %d jobs", name, len(records), extra={"job_name": name})
        return self.status(name)

    def status(self, name: str) -> BatchStatus:
        jobs = self._view.batch_statuses(name)
        if jobs is None:
            self._view.require_synced()
            raise NotFoundError(f"batch {name} not found")
        return self._compose(name, jobs)

    def find(self, name: str) -> BatchStatus | None:
        jobs = self._view.batch_statuses(name)
        return self._compose(name, jobs) if jobs is not None else None

    def _compose(self, name: str, jobs: list[JobStatus]) -> BatchStatus:
        batch_id = next((job.batch_id for job in jobs if job.batch_id is not None), None)
        return derive_batch_status(
            name, batch_id=batch_id, jobs=jobs, rules=self.definition.batch_status_rules
        )

    def statuses(self) -> list[BatchStatus]:
        self._view.require_synced()
        return [self.status(name) for name in self._view.batch_names()]

    def job(self, batch: str, job: str) -> JobStatus:
        """A batch's job by its full name or by the short suffix after the batch's name."""
        jobs = self._view.batch_statuses(batch)
        if jobs is None:
            self._view.require_synced()
            raise NotFoundError(f"batch {batch} not found")
        wanted = {job, f"{batch}-{job}"}
        found = next((status for status in jobs if status.name in wanted), None)
        if found is None:
            raise NotFoundError(f"job {job} not found in batch {batch}")
        return found

    async def delete(self, name: str) -> Status:
        self.status(name)  # 404 when unknown
        try:
            await self._backend.delete_batch(name)
        except NotFoundError:
            self._view.forget_batch(name)
            raise
        self._view.forget_batch(name)
        log.info("deleted batch %s", name, extra={"job_name": name})
        return success(f"batch {name} successfully deleted")

    async def stop(self, name: str) -> Status:
        batch = self.status(name)
        jobs = batch.job_statuses or []
        if not any(is_stoppable(job) for job in jobs):
            raise BadRequestError(f"cannot stop the batch {name} with the status {batch.status}")
        await self._stopper.stop_all(jobs)
        return success(f"batch {name} was successfully stopped")

    async def stop_all(self) -> Status:
        self._view.require_synced()
        for name in self._view.batch_names():
            await self._stopper.stop_all(self._view.batch_statuses(name) or [])
        return success("all batches were successfully stopped")

    async def stop_job(self, batch: str, job: str) -> Status:
        status = self.job(batch, job)
        await self._stopper.stop(status)
        return success(f"job {status.name} in batch {batch} was successfully stopped")
