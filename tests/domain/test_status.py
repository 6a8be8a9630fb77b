"""How a job's status, times and message are derived from its Job and Pods."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from scheduler.backends.base import Condition, ContainerState, PodRecord
from scheduler.domain.status import derive_status
from scheduler.models import JobStatusEnum, ReplicaStatusEnum
from tests.factories import T0, at, job_record, pod_record


def pod(state: ContainerState, name: str = "p1", created: int = 1, **changes: Any) -> PodRecord:
    return pod_record(
        name=name, uid=name, created=at(created), started=at(created), container=state, **changes
    )


def condition(kind: str, seconds: int, reason: str = "", message: str = "") -> Condition:
    return Condition(kind, True, reason, message, at(seconds))


RUNNING = ContainerState("running", started_at=at(3))
CREATING = ContainerState("waiting", reason="ContainerCreating")


def test_a_new_job_without_pods_is_waiting() -> None:
    status = derive_status(job_record(), [])
    assert status.status is JobStatusEnum.WAITING
    assert (status.created, status.started, status.ended) == (T0, None, None)
    assert status.pod_statuses == [] and status.message is None


def test_a_created_but_not_ready_pod_makes_the_job_active() -> None:
    status = derive_status(job_record(active=1, started=at(1)), [pod(CREATING)])
    assert status.status is JobStatusEnum.ACTIVE
    assert status.pod_statuses[0].replica_status.status is ReplicaStatusEnum.PENDING
    assert status.message is None


def test_a_ready_pod_makes_the_job_running() -> None:
    status = derive_status(job_record(active=1, ready=1, started=at(1)), [pod(RUNNING, ready=True)])
    assert status.status is JobStatusEnum.RUNNING
    assert status.started == at(1)
    assert status.pod_statuses[0].container_started == at(3)


def test_a_complete_job_succeeded_and_ended_at_its_completion_time() -> None:
    done = ContainerState(
        "terminated", reason="Completed", exit_code=0, started_at=at(3), finished_at=at(9)
    )
    record = job_record(
        succeeded=1,
        started=at(1),
        completed=at(10),
        conditions=(condition("SuccessCriteriaMet", 10), condition("Complete", 10)),
    )
    status = derive_status(record, [pod(done, phase="Succeeded")])
    assert status.status is JobStatusEnum.SUCCEEDED
    assert status.ended == at(10)
    assert status.updated == at(10)
    assert status.pod_statuses[0].replica_status.status is ReplicaStatusEnum.SUCCEEDED
    assert status.pod_statuses[0].end_time == at(9)


@pytest.mark.parametrize(
    ("reason", "message", "container", "expected"),
    [
        (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            ContainerState("terminated", reason="Error", exit_code=3, finished_at=at(5)),
            "Job has reached the specified backoff limit: the container exited with code 3",
        ),
        (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            ContainerState("terminated", reason="OOMKilled", exit_code=137, finished_at=at(5)),
            "Job has reached the specified backoff limit: Out of memory. The container was OOMKilled (exit code 137)",
        ),
        (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            ContainerState(
                "waiting", reason="ImagePullBackOff", message='Back-off pulling image "nope"'
            ),
            'Job was active longer than specified deadline: ImagePullBackOff: Back-off pulling image "nope"',
        ),
        (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            ContainerState("running", started_at=at(3)),
            "Job was active longer than specified deadline",
        ),
    ],
)
def test_a_failed_job_says_why(
    reason: str, message: str, container: ContainerState, expected: str
) -> None:
    record = job_record(failed=1, conditions=(condition("Failed", 20, reason, message),))
    status = derive_status(record, [pod(container, phase="Failed")])
    assert status.status is JobStatusEnum.FAILED
    assert status.message == expected
    assert status.ended == at(20)
    assert status.failed == 1


def test_an_image_pull_problem_is_reported_while_the_job_is_still_active() -> None:
    pulling = ContainerState("waiting", reason="ErrImagePull", message="not found")
    status = derive_status(job_record(active=1), [pod(pulling)])
    assert status.status is JobStatusEnum.ACTIVE
    assert status.message == "ErrImagePull: not found"
    assert status.pod_statuses[0].status_message == "ErrImagePull: not found"


def test_an_unschedulable_pod_says_why_without_the_schedulers_note_on_preemption() -> None:
    unscheduled = pod(
        ContainerState("unknown"),
        condition_reason="Unschedulable",
        condition_message="0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 "
        "nodes are available: 3 No preemption victims found for incoming pod.",
    )
    status = derive_status(job_record(active=1), [unscheduled])
    assert status.message == "Unschedulable: 0/3 nodes are available: 3 Insufficient memory"


IMAGE = "registry.example.com/app:nope"
NOT_FOUND = (
    f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": failed to '
    f'resolve reference "{IMAGE}": {IMAGE}: not found'
)


@pytest.mark.parametrize(
    ("reason", "message", "expected"),
    [
        ("ErrImagePull", NOT_FOUND, f'ErrImagePull: image "{IMAGE}" not found'),
        (
            "ImagePullBackOff",
            f'Back-off pulling image "{IMAGE}": ErrImagePull: {NOT_FOUND}',
            f'ImagePullBackOff: image "{IMAGE}" not found',
        ),
        (
            "ImagePullBackOff",
            f'Back-off pulling image "{IMAGE}"',  # before Kubernetes 1.32: no cause given
            f'ImagePullBackOff: Back-off pulling image "{IMAGE}"',
        ),
        (
            "ErrImagePull",
            f'rpc error: code = Unknown desc = failed to pull and unpack image "{IMAGE}": failed '
            "to authorize: failed to fetch anonymous token: 401 Unauthorized",
            f'ErrImagePull: image "{IMAGE}" cannot be pulled: access denied',
        ),
        (
            "ErrImagePull",
            "rpc error: code = Unavailable desc = connection refused",
            "ErrImagePull: connection refused",
        ),
        (
            "CreateContainerConfigError",
            'secret "app-secrets" not found',
            'CreateContainerConfigError: secret "app-secrets" not found',
        ),
    ],
)
def test_a_container_that_cannot_be_created_says_why_in_a_sentence(
    reason: str, message: str, expected: str
) -> None:
    waiting = ContainerState("waiting", reason=reason, message=message)
    status = derive_status(job_record(active=1), [pod(waiting, image=IMAGE)])
    assert status.status is JobStatusEnum.ACTIVE
    assert status.message == expected
    assert status.pod_statuses[0].status_message == expected


def test_a_job_held_until_its_start_time_waits_saying_when_to_the_second_rounded_up() -> None:
    held = job_record(suspended=True, start_after=at(60) + timedelta(milliseconds=1))
    status = derive_status(held, [])
    assert status.status is JobStatusEnum.WAITING
    assert status.message == "starts at 2024-05-01T12:01:01Z"


def test_a_job_held_and_stopped_is_stopped_and_says_no_start_time() -> None:
    held = job_record(suspended=True, start_after=at(60), stopped_at=at(5))
    status = derive_status(held, [])
    assert status.status is JobStatusEnum.STOPPED and status.message is None


def test_a_job_waiting_in_a_backends_queue_says_its_place() -> None:
    queued = job_record(waiting_reason="2nd in line; 4 running at most")
    status = derive_status(queued, [])
    assert (status.status, status.message) == (
        JobStatusEnum.WAITING,
        "2nd in line; 4 running at most",
    )


def test_a_job_given_up_on_for_waiting_failed_then_with_only_that_message() -> None:
    message = 'did not start within 600 s: ImagePullBackOff: image "x" not found'
    gave_up = condition("Failed", 600, "WaitingTimeout", message)
    pulling = ContainerState("waiting", reason="ImagePullBackOff", message="not found")
    status = derive_status(job_record(conditions=(gave_up,), suspended=True), [pod(pulling)])
    assert status.status is JobStatusEnum.FAILED
    assert status.message == message
    assert status.ended == at(600)


def test_retries_are_listed_in_creation_order_with_their_index_and_exit_codes() -> None:
    first = pod(ContainerState("terminated", reason="Error", exit_code=1), name="b", created=1)
    second = pod(RUNNING, name="a", created=5, ready=True)
    status = derive_status(job_record(active=1, ready=1, failed=1), [second, first])
    assert [(p.name, p.pod_index, p.exit_code) for p in status.pod_statuses] == [
        ("b", 0, 1),
        ("a", 1, 0),
    ]
    assert status.status is JobStatusEnum.RUNNING
    assert status.failed == 1


def test_the_wire_form_has_null_times_and_rfc3339_utc() -> None:
    status = derive_status(job_record(job_id="job1", started=at(1)), [])
    wire = status.model_dump(by_alias=True, mode="json")
    assert wire["created"] == "2024-05-01T12:00:00Z"
    assert wire["started"] == "2024-05-01T12:00:01Z"
    assert wire["ended"] is None
    assert wire["jobId"] == "job1"
    assert "message" not in wire and "batchName" not in wire


def test_of_two_attempts_created_in_the_same_second_the_one_that_ended_comes_first() -> None:
    # Kubernetes times a pod's creation to the second; a quick retry shares its predecessor's.
    ended = pod_record(
        name="job-zzzzz",
        created=at(1),
        phase="Failed",
        container=ContainerState(
            "terminated", reason="Error", exit_code=1, started_at=at(1), finished_at=at(1)
        ),
    )
    retry = pod_record(
        name="job-aaaaa",
        created=at(1),
        phase="Running",
        container=ContainerState("running", started_at=at(1)),
    )
    status = derive_status(job_record(active=1, failed=1), [retry, ended])
    assert [pod.name for pod in status.pod_statuses or []] == ["job-zzzzz", "job-aaaaa"]
