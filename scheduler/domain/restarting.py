"""Restarting ended jobs: which statuses can be restarted, and the restart itself. A restarted job
runs again under its name with the same request and payload, its status back at Waiting; its
earlier attempts stay in its `podStatuses` and `restart` says when it was restarted.

A batch restart restarts each of its ended jobs, and is refused (400) only when none has ended:
as a batch stop stops what still runs, so a batch restart reruns what has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from scheduler.backends.base import Backend
from scheduler.clock import utcnow
from scheduler.domain.batch_status import DONE_JOB_STATUSES
from scheduler.domain.batches import BatchService
from scheduler.domain.view import JobView
from scheduler.errors import BadRequestError, NotFoundError
from scheduler.models import JobStatus, Status, success

log = logging.getLogger(__name__)

RESTARTABLE = DONE_JOB_STATUSES


def is_restartable(status: JobStatus) -> bool:
    return status.status in RESTARTABLE


def check_restartable(status: JobStatus) -> None:
    """400 while the job has not ended (waiting, running or stopping)."""
    if not is_restartable(status):
        raise BadRequestError(
            f"cannot restart the job {status.name} with the status {status.status}"
        )


class Restarter:
    def __init__(
        self,
        backend: Backend,
        view: JobView,
        batches: BatchService,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._backend = backend
        self._view = view
        self._batches = batches
        self._clock = clock

    async def restart_job(self, name: str) -> Status:
        """A job (single or of a batch) by its full name."""
        status = self._view.require_status(name)
        check_restartable(status)
        await self._restart(status)
        return success(f"job {name} was successfully restarted")

    async def restart_batch_job(self, batch: str, job: str) -> Status:
        status = self._batches.job(batch, job)
        check_restartable(status)
        await self._restart(status)
        return success(f"job {status.name} in batch {batch} was successfully restarted")

    async def restart_batch(self, name: str) -> Status:
        batch = self._batches.status(name)
        jobs = [job for job in batch.job_statuses or [] if is_restartable(job)]
        if not jobs:
            raise BadRequestError(f"cannot restart the batch {name} with the status {batch.status}")
        await self._restart_all(jobs)
        return success(f"batch {name} was successfully restarted")

    async def _restart_all(self, statuses: Iterable[JobStatus]) -> None:
        results = await asyncio.gather(
            *(self._restart(status) for status in statuses), return_exceptions=True
        )
        for result in results:
            if isinstance(result, NotFoundError):
                continue  # deleted meanwhile: nothing left to restart
            if isinstance(result, BaseException):
                raise result

    async def _restart(self, status: JobStatus) -> None:
        name = status.name
        record = self._view.job(name)
        if record is None:
            raise NotFoundError(f"job {name} not found")
        try:
            restarted = await self._backend.restart_job(name, record.uid, self._clock())
        except NotFoundError:
            # Not forgotten here: the watch removes a job that is really gone.
            raise NotFoundError(f"job {name} not found") from None
        self._view.upsert_job(restarted)
        log.info("restarted job %s", name, extra={"job_name": name})
