"""A job's result: the small text its last attempt wrote (Kubernetes' termination message; on the
local backend the file named by `RADIX_RESULT_PATH`), read from the view once the job has ended.
Both backends put it in the attempt's record, so this knows neither."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from scheduler.backends.base import Backend, JobRecord, PodRecord, attempt_ended
from scheduler.domain.batch_status import DONE_JOB_STATUSES
from scheduler.domain.batches import BatchService
from scheduler.domain.status import current_attempts
from scheduler.domain.view import JobView
from scheduler.errors import ConflictError, NotFoundError
from scheduler.models import JobStatus, JobStatusEnum

_EPOCH = datetime.min.replace(tzinfo=UTC)
# The Job's end and its pod's come on two watches: the Job's may be seen first. A result read in
# between waits this long at most for the pod's, rather than answer that there is none.
POD_END_WAIT_SECONDS = 5.0
_POD_END_POLL_SECONDS = 0.05


def latest_attempt(job: JobRecord, pods: Iterable[PodRecord]) -> PodRecord | None:
    """The last attempt of the job's current run (a restart's earlier attempts are history)."""
    current = current_attempts(job, pods)
    return current[-1] if current else None


class Results:
    def __init__(self, view: JobView, batches: BatchService, backend: Backend) -> None:
        self._view = view
        self._batches = batches
        self._backend = backend

    async def job_result(self, name: str) -> bytes:
        """The result of a job (single or of a batch, by its full name)."""
        return await self._result(self._view.require_status(name))

    async def batch_job_result(self, batch: str, job: str) -> bytes:
        """The result of a batch's job, by its full name or the short one after the batch's."""
        return await self._result(self._batches.job(batch, job))

    async def _result(self, status: JobStatus) -> bytes:
        name = status.name
        if status.status not in DONE_JOB_STATUSES:
            raise ConflictError(
                f"job {name} has not ended (its status is {status.status}): its result is "
                "there once it has"
            )
        latest = self._latest(name)
        if status.status != JobStatusEnum.STOPPED:
            waited = 0.0
            while (
                latest is not None and not attempt_ended(latest) and waited < POD_END_WAIT_SECONDS
            ):
                await asyncio.sleep(_POD_END_POLL_SECONDS)
                waited += _POD_END_POLL_SECONDS
                latest = self._latest(name)
        result = latest.result if latest is not None else None
        if latest is not None and result is None and latest.kept is not None:
            # Its pod is gone: its record keeps the result.
            result = await self._backend.attempt_result(name, latest.name)
        if result is None:
            raise NotFoundError(f"job {name} wrote no result")
        return result.encode("utf-8")

    def _latest(self, name: str) -> PodRecord | None:
        record = self._view.job(name)
        return latest_attempt(record, self._view.pods(name)) if record is not None else None
