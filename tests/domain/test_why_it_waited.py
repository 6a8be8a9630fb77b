"""Why each attempt waited, on its status: the last reason its record says it waited for (else,
for a run's first attempt, its job's start time), in the words of its status message, and for
how long: from the run's start or the previous attempt's end to its container's start."""

from __future__ import annotations

import dataclasses
from typing import Any

from scheduler.backends.base import ContainerState, PodRecord, Waited
from scheduler.domain.status import derive_status
from scheduler.models import PodStatus
from tests.factories import at, job_record, pod_record

NO_ROOM = Waited(
    "Unschedulable",
    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod.",
)
IMAGE = "registry.example.com/app:nope"
NO_IMAGE = Waited(
    "ImagePullBackOff",
    f'Back-off pulling image "{IMAGE}": ErrImagePull: rpc error: code = NotFound desc = '
    f'failed to pull and unpack image "{IMAGE}": not found',
)


def ran(name: str, started: int, ended: int | None = None, **changes: Any) -> PodRecord:
    if ended is None:
        state = ContainerState("running", started_at=at(started))
    else:
        state = ContainerState(
            "terminated", reason="Error", exit_code=1, started_at=at(started), finished_at=at(ended)
        )
    return pod_record(name=name, uid=name, created=at(started - 1), container=state, **changes)


def waits(*pods: PodRecord, **job: Any) -> list[dict[str, Any] | None]:
    status = derive_status(job_record(active=1, **job), pods)
    return [
        pod.waited.model_dump(mode="json") if pod.waited else None for pod in status.pod_statuses
    ]


def test_a_first_attempt_tells_what_it_waited_for_last_and_how_long_since_the_job_was_made() -> (
    None
):
    assert waits(ran("p1", 15, waited=NO_ROOM)) == [
        {
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu",
            "seconds": 15,
        }
    ]


def test_an_image_that_could_not_be_pulled_is_told_as_its_status_message_told_it() -> None:
    (waited,) = waits(ran("p1", 8, waited=NO_IMAGE, image=IMAGE))
    assert waited == {
        "reason": "ImagePullBackOff",
        "message": f'image "{IMAGE}" not found',
        "seconds": 8,
    }


def test_an_attempt_still_waiting_tells_why_in_its_status_message_only() -> None:
    unscheduled = pod_record(
        container=ContainerState("unknown"),
        condition_reason=NO_ROOM.reason,
        condition_message=NO_ROOM.message,
        waited=NO_ROOM,
    )
    status = derive_status(job_record(active=1), [unscheduled])
    assert status.pod_statuses[0].waited is None
    assert status.pod_statuses[0].status_message == (
        "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu"
    )


def test_an_attempt_that_waited_for_nothing_worth_telling_tells_nothing() -> None:
    assert waits(ran("p1", 2)) == [None]


def test_a_job_held_for_its_start_time_tells_its_first_attempt_waited_for_it() -> None:
    assert waits(ran("p1", 31), ran("p2", 40), start_after=at(30)) == [
        {"reason": "Held", "message": "starts at 2024-05-01T12:00:30Z", "seconds": 31},
        None,
    ]


def test_what_an_attempt_waited_for_after_its_start_time_is_told_instead() -> None:
    (waited,) = waits(ran("p1", 45, waited=NO_ROOM), start_after=at(30))
    assert waited is not None and waited["reason"] == "Unschedulable"


def test_a_start_time_already_past_when_the_job_was_made_held_nothing() -> None:
    assert waits(ran("p1", 3), start_after=at(-10)) == [None]


def test_a_retry_waited_from_the_end_of_the_attempt_before_it() -> None:
    first = ran("p1", 2, ended=10)
    retry = ran("p2", 25, waited=NO_ROOM)
    assert [w and w["seconds"] for w in waits(first, retry)] == [None, 15]


def test_a_restarted_job_s_first_attempt_waited_from_the_restart() -> None:
    earlier = ran("p1", 2, ended=5, waited=NO_ROOM)
    again = ran("p2", 70, waited=NO_ROOM)
    found = waits(again, restarted=at(60), previous_attempts=(earlier,))
    assert [w and w["seconds"] for w in found] == [2, 10]


def test_why_an_attempt_waited_as_its_record_keeps_it_is_told_of_its_pod_still_there() -> None:
    # A scheduler started after the pod started does not know; the attempt's record does.
    live = ran("p1", 12, ended=20)
    kept = dataclasses.replace(live, waited=NO_ROOM, kept="final")
    (waited,) = waits(live, kept_attempts=(kept,))
    assert waited is not None and waited["seconds"] == 12


def test_the_wire_form_has_waited_only_where_an_attempt_waited() -> None:
    status = derive_status(job_record(active=1), [ran("p1", 15, waited=NO_ROOM), ran("p2", 30)])
    first, second = (pod.model_dump(mode="json", by_alias=True) for pod in status.pod_statuses)
    assert first["waited"]["reason"] == "Unschedulable"
    assert "waited" not in second
    assert "waited" not in PodStatus.model_json_schema(by_alias=True)["properties"]
