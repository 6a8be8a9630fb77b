"""A job's result: the small text its last attempt wrote (Kubernetes' termination message; on the
local backend the file named by `RADIX_RESULT_PATH`), read from the view once the job has ended.
Both backends put it in the attempt's record, so this knows neither."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from scheduler.backends.base import JobRecord, PodRecord
from scheduler.domain.batch_status import DONE_JOB_STATUSES
from scheduler.domain.batches import BatchService
from scheduler.domain.view import JobView
from scheduler.errors import ConflictError, NotFoundError
from scheduler.models import JobStatus

_EPOCH = datetime.min.replace(tzinfo=UTC)


def latest_attempt(job: JobRecord, pods: Iterable[PodRecord]) -> PodRecord | None:
    """The last attempt of the job's current run (a restart's earlier attempts are history)."""
    earlier = {pod.name for pod in job.previous_attempts}
    current = [pod for pod in pods if pod.name not in earlier]
    return max(current, key=lambda p: (p.created or _EPOCH, p.name), default=None)


class Results:
    def __init__(self, view: JobView, batches: BatchService) -> None:
        self._view = view
        self._batches = batches

    def job_result(self, name: str) -> bytes:
        """The result of a job (single or of a batch, by its full name)."""
        return self._result(self._view.require_status(name))

    def batch_job_result(self, batch: str, job: str) -> bytes:
        """The result of a batch's job, by its full name or the short one after the batch's."""
        return self._result(self._batches.job(batch, job))

    def _result(self, status: JobStatus) -> bytes:
        name = status.name
        if status.status not in DONE_JOB_STATUSES:
            raise ConflictError(
                f"job {name} has not ended (its status is {status.status}): its result is "
                "there once it has"
            )
        record = self._view.job(name)
        latest = latest_attempt(record, self._view.pods(name)) if record is not None else None
        if latest is None or latest.result is None:
            raise NotFoundError(f"job {name} wrote no result")
        return latest.result.encode("utf-8")
