"""A job's result is its last attempt's. The Job's end and its pod's come on two watches, the
Job's may be seen first: a job shows Succeeded only once its pod has ended too, and a read of a
failed job's result in between waits for the pod's rather than answer that there is none."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from scheduler.backends.base import Condition, ContainerState, JobRecord, Kind, WatchEvent
from scheduler.domain.results import Results
from scheduler.domain.view import JobView
from scheduler.errors import ConflictError, NotFoundError
from scheduler.models import JobStatusEnum
from tests.factories import at, job_record, pod_record

FAILED_JOB = job_record(
    started=at(1),
    failed=1,
    conditions=(Condition("Failed", True, "BackoffLimitExceeded", None, at(10)),),
)
SUCCEEDED_JOB = job_record(
    started=at(1),
    completed=at(10),
    succeeded=1,
    conditions=(Condition("Complete", True, None, None, at(10)),),
)
RUNNING_POD = pod_record(phase="Running", container=ContainerState("running", started_at=at(2)))
ENDED_POD = pod_record(
    resource_version="2",
    phase="Succeeded",
    container=ContainerState(
        "terminated", reason="Completed", exit_code=0, started_at=at(2), finished_at=at(9)
    ),
    result="42",
)


def view_with(*pods: object, job: JobRecord = SUCCEEDED_JOB) -> JobView:
    view = JobView()
    view.replace(Kind.JOB, [job])
    view.replace(Kind.POD, list(pods))  # type: ignore[arg-type]
    return view


class NoBatches:
    def job(self, batch: str, job: str) -> object:
        raise AssertionError("not a batch job")


class NothingKept:
    """A backend whose records keep no result of an attempt beyond the view's."""

    async def attempt_result(self, job: str, pod: str) -> str | None:
        return None


def results_of(view: JobView) -> Results:
    return Results(view, NoBatches(), NothingKept())  # type: ignore[arg-type]


async def test_the_result_of_an_ended_job_is_its_last_attempts() -> None:
    assert await results_of(view_with(ENDED_POD)).job_result(SUCCEEDED_JOB.name) == b"42"


async def test_a_job_shows_succeeded_once_its_pod_has_ended_and_its_result_is_there() -> None:
    view = view_with(RUNNING_POD)
    status = view.status(SUCCEEDED_JOB.name)
    assert status is not None and status.status == JobStatusEnum.ACTIVE  # still running
    with pytest.raises(ConflictError, match="has not ended"):
        await results_of(view).job_result(SUCCEEDED_JOB.name)
    view.apply(WatchEvent("MODIFIED", "2", ENDED_POD))
    status = view.status(SUCCEEDED_JOB.name)
    assert status is not None and status.status == JobStatusEnum.SUCCEEDED
    assert await results_of(view).job_result(SUCCEEDED_JOB.name) == b"42"


async def test_a_read_between_a_failed_jobs_end_and_its_pods_waits_for_the_pods() -> None:
    view = view_with(RUNNING_POD, job=FAILED_JOB)
    failed = dataclasses.replace(ENDED_POD, phase="Failed")
    failed = dataclasses.replace(
        failed, container=dataclasses.replace(failed.container, exit_code=1, reason="Error")
    )
    reading = asyncio.create_task(results_of(view).job_result(FAILED_JOB.name))
    await asyncio.sleep(0.2)
    assert not reading.done()
    view.apply(WatchEvent("MODIFIED", "2", failed))
    assert await asyncio.wait_for(reading, 2) == b"42"


async def test_an_ended_attempt_without_a_result_is_404_at_once() -> None:
    silent = dataclasses.replace(ENDED_POD, result=None)
    results = results_of(view_with(silent))
    with pytest.raises(NotFoundError, match="wrote no result"):
        await asyncio.wait_for(results.job_result(SUCCEEDED_JOB.name), 0.5)
