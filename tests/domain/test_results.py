"""A job's result is its last attempt's: a read that comes between the Job's end and its pod's
(two watches, the Job's seen first) waits for the pod's rather than answer that there is none."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from scheduler.backends.base import Condition, ContainerState, Kind, WatchEvent
from scheduler.domain.results import Results
from scheduler.domain.view import JobView
from scheduler.errors import NotFoundError
from tests.factories import at, job_record, pod_record

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


def view_with(*pods: object) -> JobView:
    view = JobView()
    view.replace(Kind.JOB, [SUCCEEDED_JOB])
    view.replace(Kind.POD, list(pods))  # type: ignore[arg-type]
    return view


class NoBatches:
    def job(self, batch: str, job: str) -> object:
        raise AssertionError("not a batch job")


async def test_the_result_of_an_ended_job_is_its_last_attempts() -> None:
    results = Results(view_with(ENDED_POD), NoBatches())  # type: ignore[arg-type]
    assert await results.job_result(SUCCEEDED_JOB.name) == b"42"


async def test_a_read_between_the_jobs_end_and_its_pods_waits_for_the_pods() -> None:
    view = view_with(RUNNING_POD)
    reading = asyncio.create_task(
        Results(view, NoBatches()).job_result(SUCCEEDED_JOB.name)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.2)
    assert not reading.done()
    view.apply(WatchEvent("MODIFIED", "2", ENDED_POD))
    assert await asyncio.wait_for(reading, 2) == b"42"


async def test_an_ended_attempt_without_a_result_is_404_at_once() -> None:
    silent = dataclasses.replace(ENDED_POD, result=None)
    results = Results(view_with(silent), NoBatches())  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="wrote no result"):
        await asyncio.wait_for(results.job_result(SUCCEEDED_JOB.name), 0.5)
