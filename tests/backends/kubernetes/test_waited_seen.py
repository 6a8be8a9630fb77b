"""The attempt keeper remembers why each pod waited, as the watch shows it, for as long as the pod
is there (a pod's status forgets once its container runs): the pods it hands back, once started,
say so, and its record keeps it (tests/api/test_why_it_waited.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from scheduler.backends.base import ContainerState, Identity, PodRecord, Waited
from scheduler.backends.kubernetes.keeping import AttemptKeeper
from tests.factories import at, job_record, pod_record

IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace="myapp-dev")
MESSAGE = "0/1 nodes are available: 1 Insufficient cpu."
UNSCHEDULED = pod_record(
    container=ContainerState("unknown"),
    condition_reason="Unschedulable",
    condition_message=MESSAGE,
)
CREATING = dataclasses.replace(
    UNSCHEDULED,
    container=ContainerState("waiting", reason="ContainerCreating"),
    condition_reason=None,
    condition_message=None,
)
RUNNING = dataclasses.replace(CREATING, container=ContainerState("running", started_at=at(9)))


def keeper() -> AttemptKeeper:
    # Disabled: it keeps nothing (no API is called), and still remembers what it sees.
    api: Any = None
    return AttemptKeeper(api, IDENTITY, log_bytes=1024, record_bytes=4096, enabled=False)


def seen(keeping: AttemptKeeper, *pods: PodRecord, deleted: bool = False) -> PodRecord:
    for pod in pods:
        last = keeping.pod_seen(pod, deleted=deleted)
    return last


def test_a_pod_that_started_after_waiting_says_what_it_waited_for_last() -> None:
    keeping = keeper()
    started = seen(keeping, UNSCHEDULED, CREATING, RUNNING)
    assert started.waited == Waited("Unschedulable", MESSAGE)


def test_a_pod_that_waited_for_nothing_worth_telling_says_nothing() -> None:
    assert seen(keeper(), CREATING, RUNNING).waited is None


def test_a_pod_still_waiting_is_handed_back_as_it_is() -> None:
    assert seen(keeper(), UNSCHEDULED) == UNSCHEDULED


def test_a_pod_gone_and_made_again_under_its_name_waited_for_nothing() -> None:
    keeping = keeper()
    seen(keeping, UNSCHEDULED, RUNNING)
    seen(keeping, RUNNING, deleted=True)
    assert seen(keeping, CREATING, RUNNING).waited is None


def test_the_pods_of_a_deleted_job_are_forgotten() -> None:
    keeping = keeper()
    seen(keeping, UNSCHEDULED)
    keeping.job_seen(job_record(name=UNSCHEDULED.job_name), deleted=True)
    assert seen(keeping, RUNNING).waited is None


def test_the_pods_of_jobs_no_longer_listed_are_forgotten() -> None:
    keeping = keeper()
    seen(keeping, UNSCHEDULED)
    keeping.jobs_listed([job_record(name="another-job")])
    assert seen(keeping, RUNNING).waited is None
