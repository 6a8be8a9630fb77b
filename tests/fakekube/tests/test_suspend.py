"""Suspending and resuming Jobs as kube-controller-manager (1.36) does: a suspended Job runs no
pods and says so, a suspension stops running pods gracefully without counting them as failures,
and the active deadline counts only the time a Job is not suspended.

Every assertion about what happened on the way reads a watch from a resourceVersion taken
before, which replays every change since: it cannot miss a state however busy the machine is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes.aio.watch import Watch

from tests.fakekube.testing import Kube, condition, has_condition, job_manifest, running_kube

NS = "default"
JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@pytest.fixture
async def kube(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube
    failures = [
        r
        for r in caplog.records
        if r.name.startswith("tests.fakekube") and r.levelno >= logging.ERROR
    ]
    assert failures == []


def pods_of(kube: Kube, job: str) -> list[JSON]:
    return kube.fake.list("Pod", NS, f"job-name={job}")


def suspended(job: JSON | None) -> bool:
    return has_condition(job, "Suspended")


def finished(job: JSON | None) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


async def suspend(kube: Kube, name: str, value: bool, content_type: str = MERGE_PATCH) -> None:
    await kube.batch.patch_namespaced_job(
        name, NS, {"spec": {"suspend": value}}, _content_type=content_type
    )


async def version(kube: Kube) -> str:
    """The current resourceVersion, to watch from."""
    return str((await kube.core.list_namespaced_pod(NS)).metadata.resource_version)


async def changes(
    list_call: Any, since: str, until: Callable[[str, JSON], bool], **params: Any
) -> list[tuple[str, JSON]]:
    """(type, object) of the watch events from `since` up to the first one `until` accepts."""
    seen: list[tuple[str, JSON]] = []
    async with Watch() as watch:
        async for event in watch.stream(
            list_call, NS, resource_version=since, timeout_seconds=30, **params
        ):
            seen.append((event["type"], event["raw_object"]))
            if until(event["type"], event["raw_object"]):
                watch.stop()
    return seen


async def job_events(kube: Kube, name: str) -> list[str]:
    events = await kube.core.list_namespaced_event(
        NS, field_selector=f"involvedObject.kind=Job,involvedObject.name={name}"
    )
    return [e.reason for e in events.items]


async def running_job(kube: Kube, name: str, **spec: Any) -> JSON:
    """A Job whose pod runs for ten simulated minutes, once it is ready."""
    await kube.batch.create_namespaced_job(NS, job_manifest(name, "sleep 600", **spec))
    job = await kube.fake.wait_for(
        "Job", NS, name, lambda j: (j or {}).get("status", {}).get("ready") == 1
    )
    assert job is not None
    return job


async def test_a_job_created_suspended_creates_no_pods_and_says_it_is_suspended(
    kube: Kube,
) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("later", suspend=True))

    job = await kube.fake.wait_for("Job", NS, "later", suspended)
    await kube.fake.settle()

    assert pods_of(kube, "later") == []
    found = condition(job, "Suspended")
    assert found is not None
    assert (found["status"], found["reason"], found["message"]) == (
        "True",
        "JobSuspended",
        "Job suspended",
    )
    status = job["status"]
    assert "startTime" not in status
    assert "active" not in status
    assert (status["ready"], status["terminating"]) == (0, 0)
    assert await job_events(kube, "later") == ["Suspended"]


async def test_resuming_starts_the_job_then_and_says_it_resumed(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("later", suspend=True))
    before = await kube.fake.wait_for("Job", NS, "later", suspended)
    assert before is not None

    await suspend(kube, "later", False)
    done = await kube.fake.wait_for("Job", NS, "later", finished)

    assert has_condition(done, "Complete")
    assert len(pods_of(kube, "later")) == 1
    resumed = condition(done, "Suspended")
    assert resumed is not None
    assert (resumed["status"], resumed["reason"], resumed["message"]) == (
        "False",
        "JobResumed",
        "Job resumed",
    )
    suspended_at = condition(before, "Suspended")["lastTransitionTime"]  # type: ignore[index]
    assert done["status"]["startTime"] >= resumed["lastTransitionTime"] >= suspended_at
    assert await job_events(kube, "later") == [
        "Suspended",
        "Resumed",
        "SuccessfulCreate",
        "Completed",
    ]


async def test_suspending_a_running_job_stops_its_pod_gracefully(kube: Kube) -> None:
    await running_job(kube, "long")
    [pod] = pods_of(kube, "long")
    name = pod["metadata"]["name"]
    since = await version(kube)

    await suspend(kube, "long", True, STRATEGIC_MERGE_PATCH)

    events = await changes(
        kube.core.list_namespaced_pod,
        since,
        lambda kind, _: kind == "DELETED",
        label_selector="job-name=long",
    )
    assert [kind for kind, _ in events][-1] == "DELETED"
    stopping = [
        obj["metadata"]
        for kind, obj in events
        if kind == "MODIFIED" and obj["metadata"].get("deletionTimestamp")
    ]
    assert stopping, "the pod is deleted gracefully, not at once"
    assert stopping[0]["deletionGracePeriodSeconds"] == 30
    # The controller dropped its tracking finalizer before deleting: the pod is never counted.
    assert "batch.kubernetes.io/job-tracking" not in stopping[0].get("finalizers", [])
    last = events[-1][1]
    assert last["metadata"]["name"] == name
    state = last["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 143  # SIGTERM
    assert pods_of(kube, "long") == []


async def test_a_suspended_job_counts_its_stopping_pod_as_terminating_until_it_is_gone(
    kube: Kube,
) -> None:
    await running_job(kube, "long")
    since = await version(kube)

    await suspend(kube, "long", True)

    def settled(_: str, job: JSON) -> bool:
        return suspended(job) and job["status"].get("terminating") == 0

    statuses = [
        job["status"]
        for _, job in await changes(
            kube.batch.list_namespaced_job, since, settled, field_selector="metadata.name=long"
        )
    ]
    counts = [(s.get("active", 0), s["ready"], s["terminating"]) for s in statuses]
    assert counts[-1] == (0, 0, 0)
    assert (0, 0, 1) in counts, "the pod is terminating after the suspension"
    assert counts.index((0, 0, 1)) < len(counts) - 1
    final = statuses[-1]
    assert "failed" not in final
    assert "startTime" not in final  # cleared by a suspension since Kubernetes 1.36
    assert (condition({"status": final}, "Suspended") or {}).get("reason") == "JobSuspended"


async def test_a_pod_stopped_by_a_suspension_is_not_a_failure(kube: Kube) -> None:
    # With backoffLimit 0, a single counted failure would fail the Job.
    await running_job(kube, "strict", backoffLimit=0)
    await suspend(kube, "strict", True)
    await kube.fake.wait_for(
        "Job", NS, "strict", lambda j: suspended(j) and pods_of(kube, "strict") == []
    )

    await suspend(kube, "strict", False)
    job = await kube.fake.wait_for(
        "Job", NS, "strict", lambda j: (j or {}).get("status", {}).get("ready") == 1
    )

    assert job is not None
    assert "failed" not in job["status"]
    assert not finished(job)
    assert len(pods_of(kube, "strict")) == 1  # a new pod, running


async def test_resuming_a_suspended_running_job_starts_its_clock_again(kube: Kube) -> None:
    started = (await running_job(kube, "long"))["status"]["startTime"]
    await suspend(kube, "long", True)
    paused = await kube.fake.wait_for(
        "Job", NS, "long", lambda j: suspended(j) and pods_of(kube, "long") == []
    )

    await suspend(kube, "long", False)
    running = await kube.fake.wait_for(
        "Job", NS, "long", lambda j: (j or {}).get("status", {}).get("ready") == 1
    )

    assert paused is not None and running is not None
    assert "startTime" not in paused["status"]
    resumed = condition(running, "Suspended")
    assert resumed is not None and resumed["reason"] == "JobResumed"
    assert running["status"]["startTime"] >= resumed["lastTransitionTime"] >= started


async def test_the_active_deadline_does_not_tick_while_suspended(kube: Kube) -> None:
    # A two-second deadline is 0.1 s here; the Job stays suspended for three times that.
    await kube.batch.create_namespaced_job(
        NS, job_manifest("bounded", "sleep 600", suspend=True, activeDeadlineSeconds=2)
    )
    await kube.fake.wait_for("Job", NS, "bounded", suspended)
    await asyncio.sleep(kube.fake.clock.seconds(2) * 3)
    # Any change makes the controller look at the Job again.
    await kube.batch.patch_namespaced_job("bounded", NS, {"metadata": {"labels": {"x": "y"}}})
    await kube.fake.settle()
    waiting = kube.fake.get("Job", NS, "bounded")

    await suspend(kube, "bounded", False)
    failed = await kube.fake.wait_for("Job", NS, "bounded", finished)

    assert waiting is not None and not finished(waiting)
    assert suspended(waiting)
    assert failed is not None
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    # The deadline ran from the resumption: the Job had started its pod, which counts as failed.
    assert failed["status"]["failed"] == 1
    assert "SuccessfulCreate" in await job_events(kube, "bounded")


@pytest.mark.parametrize(("script", "outcome"), [("exit 0", "Complete"), ("exit 1", "Failed")])
async def test_a_finished_job_ignores_suspend(kube: Kube, script: str, outcome: str) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("done", script, backoffLimit=0))
    job = await kube.fake.wait_for("Job", NS, "done", finished)
    assert job is not None

    await suspend(kube, "done", True)
    await kube.fake.settle()

    after = kube.fake.get("Job", NS, "done")
    assert after is not None
    assert after["spec"]["suspend"] is True
    assert has_condition(after, outcome)
    assert condition(after, "Suspended") is None
    assert after["status"] == job["status"]
    assert len(pods_of(kube, "done")) == 1
