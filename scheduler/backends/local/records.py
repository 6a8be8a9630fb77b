"""The local backend's rows as the neutral records: a job as a Job, each attempt as a Pod, with
Kubernetes' conditions and reasons, so statuses are derived by the same code on both backends."""

from __future__ import annotations

from scheduler.backends.base import Condition, ContainerState, JobRecord, PodRecord
from scheduler.backends.local.schema import Attempt, StoredJob


def job_record(job: StoredJob, attempts: list[Attempt]) -> JobRecord:
    running = any(a.started is not None and a.finished is None for a in attempts)
    conditions: tuple[Condition, ...] = ()
    if job.condition_type is not None:
        conditions = (
            Condition(
                type=job.condition_type,
                status=True,
                reason=job.condition_reason,
                message=job.condition_message,
                last_transition=job.condition_time,
            ),
        )
    return JobRecord(
        name=job.name,
        uid=job.uid,
        resource_version=str(job.version),
        job_id=job.job_id,
        created=job.created,
        started=job.started,
        completed=job.completed,
        active=1 if running else 0,
        ready=1 if running else 0,
        succeeded=1 if job.state == "succeeded" else 0,
        failed=job.failed_attempts,
        conditions=conditions,
        batch_name=job.batch_name,
        batch_id=job.batch_id,
        batch_index=job.request.batch_index,
        stopped_at=job.stopped_at,
        schedule=job.request.schedule,
        restarted=job.restarted,
        # A restart's earlier attempts, kept as history (they are published as pods too).
        previous_attempts=tuple(
            pod_record(job, attempt) for attempt in attempts if attempt.idx < job.first_attempt
        ),
        start_after=job.start_after,
        waiting_timeout_seconds=job.request.waiting_timeout_seconds,
        suspended=job.held,
        waiting_reason=job.waiting_reason,
    )


def pod_name(job: str, idx: int) -> str:
    return f"{job}-{idx}"


def pod_record(job: StoredJob, attempt: Attempt) -> PodRecord:
    if attempt.finished is not None:
        succeeded = attempt.exit_code == 0 and attempt.reason == "Completed"
        phase = "Succeeded" if succeeded else "Failed"
        container = ContainerState(
            "terminated",
            reason=attempt.reason,
            message=attempt.message,
            exit_code=attempt.exit_code if attempt.exit_code is not None else 128,
            started_at=attempt.started,
            finished_at=attempt.finished,
        )
    elif attempt.started is not None:
        phase = "Running"
        container = ContainerState("running", started_at=attempt.started)
    else:
        phase = "Pending"
        container = ContainerState("waiting", reason="ContainerCreating")
    return PodRecord(
        name=pod_name(job.name, attempt.idx),
        uid=f"{job.uid}-{attempt.idx}",
        resource_version=str(attempt.version),
        job_name=job.name,
        created=attempt.created,
        phase=phase,
        started=attempt.started,
        container=container,
        ready=phase == "Running",
        usage=attempt.usage,
        image=job.request.image,
        result=attempt.result,
        waited=attempt.waited,
    )
