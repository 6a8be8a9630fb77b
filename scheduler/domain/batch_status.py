"""A batch's status from its jobs' statuses and the job component's `batchStatusRules`, as Radix
derives it (radix-notes §1.7, §1.8); pure, so it is table-tested."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.models import BatchStatus, BatchType, JobStatus, JobStatusEnum
from scheduler.radixconfig import BatchStatusRule

DONE_JOB_STATUSES = frozenset(
    {JobStatusEnum.SUCCEEDED, JobStatusEnum.FAILED, JobStatusEnum.STOPPED}
)
# Radix's history counts a stopped job as a success: nothing went wrong with it.
_SUCCESSFUL = frozenset({JobStatusEnum.SUCCEEDED, JobStatusEnum.STOPPED})


def _matches(rule: BatchStatusRule, jobs: Sequence[JobStatus]) -> bool:
    def satisfies(job: JobStatus) -> bool:
        listed = job.status.value in rule.job_statuses
        return listed if rule.operator == "In" else not listed

    return all(map(satisfies, jobs)) if rule.condition == "All" else any(map(satisfies, jobs))


def _condition(jobs: Sequence[JobStatus]) -> JobStatusEnum:
    if all(job.status is JobStatusEnum.WAITING for job in jobs):
        return JobStatusEnum.WAITING
    if all(job.status in DONE_JOB_STATUSES for job in jobs):
        return JobStatusEnum.COMPLETED
    return JobStatusEnum.ACTIVE


def _status(jobs: Sequence[JobStatus], rules: Sequence[BatchStatusRule]) -> JobStatusEnum:
    # No rule judges a batch without jobs: `All` would hold for it vacuously.
    if jobs:
        for rule in rules:
            if _matches(rule, jobs):
                return JobStatusEnum(rule.batch_status)
    return _condition(jobs)


def derive_batch_status(
    name: str,
    *,
    batch_id: str | None,
    jobs: Sequence[JobStatus],
    rules: Sequence[BatchStatusRule],
) -> BatchStatus:
    """The status of batch `name` whose jobs have `jobs` statuses (kept in the order given)."""
    created = [job.created for job in jobs if job.created is not None]
    started = [job.started for job in jobs if job.started is not None]
    ended = [job.ended for job in jobs if job.ended is not None]
    updated = [job.updated for job in jobs if job.updated is not None]
    all_done = bool(jobs) and all(job.status in DONE_JOB_STATUSES for job in jobs)
    return BatchStatus(
        name=name,
        batch_id=batch_id,
        batch_type=BatchType.BATCH,
        status=_status(jobs, rules),
        created=min(created, default=None),
        started=min(started, default=None),
        # A batch has ended when its last job has, not when its first one did.
        ended=max(ended, default=None) if all_done else None,
        updated=max(updated, default=None),
        failed=sum(job.failed for job in jobs),
        job_statuses=list(jobs),
    )


def _statuses(status: BatchStatus) -> list[JobStatusEnum]:
    # A batch status without its jobs (a single job's, an event's) speaks for itself.
    return [job.status for job in status.job_statuses or []] or [status.status]


def is_batch_done(status: BatchStatus) -> bool:
    """Every job has finished (a rule may call the batch Failed while other jobs still run)."""
    return all(s in DONE_JOB_STATUSES or s is JobStatusEnum.COMPLETED for s in _statuses(status))


def is_batch_succeeded(status: BatchStatus) -> bool:
    """Done, and every job Succeeded or Stopped: what Radix's history keeps as succeeded."""
    return is_batch_done(status) and all(s in _SUCCESSFUL for s in _statuses(status))
