"""The API over an API server that fails, holds a request or is gone, and over a node that is
lost: what the client is told and what is left in the cluster. These are faults of the fake
Kubernetes API server; the local backend has no server or node to lose."""

from __future__ import annotations

import asyncio

from tests.api.calls import (
    SHORT,
    batch_of,
    expect_failure,
    expect_stopped_answer,
    job_statuses,
    post_batch,
    running_job,
    stop,
    wait_for_batch,
)
from tests.backends.kubernetes.test_api_objects import STOPPED_AT, nothing_in, pods_of
from tests.conftest import NAMESPACE, ClientFactory, job_status, wait_for_status, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube
from tests.fakekube.kinds import kind_named
from tests.fakekube.options import DeleteOptions

# -- creating ---------------------------------------------------------------------------------


async def test_a_failure_half_way_through_leaves_nothing_behind(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.faults.fail("POST", r"/secrets$", status=500, times=1)
    response = await scheduler.post("/api/v1/jobs", json={"payload": "p"})
    await expect_failure(response, 503, "ServiceUnavailable", "500")

    async def nothing_left() -> bool:
        return not any(kube.list(kind, NAMESPACE) for kind in ("Job", "Secret", "Service", "Pod"))

    await wait_until(nothing_left)
    assert await (await scheduler.get("/api/v1/jobs")).json() == []


async def test_an_unreachable_api_server_is_503_for_post_not_500(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.faults.down = True
    try:
        response = await scheduler.post("/api/v1/jobs", json={})
        await expect_failure(response, 503, "ServiceUnavailable")
    finally:
        kube.faults.down = False


async def test_a_failed_secret_create_rolls_the_whole_batch_back_and_no_job_ever_runs(
    scheduler: Client, kube: FakeKube
) -> None:
    pods_seen: list[str] = []
    unsubscribe = kube.store.add_listener(
        lambda event: (
            pods_seen.append(event.record.name) if event.record.kind.name == "Pod" else None
        )
    )
    try:
        # Every Job is created; then one of the four payload Secrets fails while the others
        # are written: they all wait until the four are in flight.
        kube.faults.fail("POST", r"/secrets", status=500, times=1)
        held = kube.faults.hold("POST", r"/secrets", times=None)
        body = batch_of(*({"payload": f"p{i}"} for i in range(4)))
        answer = asyncio.ensure_future(scheduler.post("/api/v1/batches", json=body))
        await held.wait_arrived(count=4)
        assert len(kube.list("Job", NAMESPACE)) == 4
        held.release()
        response = await answer
        await expect_failure(response, 503, "ServiceUnavailable", "500")
        await wait_until(nothing_in(kube))
        assert await (await scheduler.get("/api/v1/batches")).json() == []
        assert await (await scheduler.get("/api/v1/jobs")).json() == []
    finally:
        unsubscribe()
    assert pods_seen == []


async def test_a_job_of_a_committed_batch_that_could_not_be_started_is_started_later(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_CREATE_GRACE_SECONDS="1")
    # The batch is committed; starting its first job fails once.
    kube.faults.fail("PATCH", r"/jobs/batch-", status=500, times=1)
    created = await post_batch(client, batch_of(SHORT, SHORT))
    name = created["name"]
    assert len(created["jobStatuses"]) == 2
    # The recovery sweep starts it once its grace time is over.
    done = await wait_for_batch(
        client, name, lambda b: job_statuses(b) == ["Succeeded", "Succeeded"]
    )
    assert done["status"] == "Completed"


async def test_a_job_that_finished_while_its_batch_was_created_stays_finished(
    scheduler: Client, kube: FakeKube
) -> None:
    # One job of the batch is started (and finishes) long before the other (a slow API server).
    held = kube.faults.hold("PATCH", r"/jobs/batch-", times=1)
    answer = asyncio.ensure_future(scheduler.post("/api/v1/batches", json=batch_of(SHORT, SHORT)))
    await held.wait_arrived()

    async def one_succeeded() -> bool:
        batches = await (await scheduler.get("/api/v1/batches")).json()
        return bool(batches) and "Succeeded" in job_statuses(batches[0])

    await wait_until(one_succeeded)
    held.release()
    response = await answer
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]
    done = await wait_for_batch(scheduler, name, lambda b: b["status"] == "Completed")
    assert job_statuses(done) == ["Succeeded", "Succeeded"]


# -- stopping with a pod on a lost node -------------------------------------------------------


def put_pod_on_a_lost_node(kube: FakeKube, name: str) -> str:
    """A running pod of job `name` on a node that no longer answers: deleting it only marks it
    (nobody is there to stop its container), so it stays live until it is force-deleted."""
    pod = pods_of(kube, name)[0]
    metadata = pod["metadata"]
    lost = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{metadata['name']}-lost",
            "namespace": NAMESPACE,
            "labels": metadata["labels"],
            "ownerReferences": metadata["ownerReferences"],
        },
        "spec": {**pod["spec"], "nodeName": "lost-node"},
        "status": pod["status"],
    }
    return str(kube.put(lost)["metadata"]["name"])


def force_delete_pod(kube: FakeKube, name: str) -> None:
    kube.registry.delete(kind_named("Pod"), NAMESPACE, name, DeleteOptions(grace_period_seconds=0))


async def stopping_with_a_lost_pod(client: Client, kube: FakeKube) -> tuple[str, str]:
    """A job stopped while one of its pods is on a lost node: its other pod is gone (its
    record keeps its attempt), and the scheduler shows it Stopping with the lost pod live."""
    name = await running_job(client)
    first = pods_of(kube, name)[0]["metadata"]["name"]
    lost = put_pod_on_a_lost_node(kube, name)
    await expect_stopped_answer(await stop(client, name), name)

    async def only_the_lost_pod_left() -> bool:
        found = await job_status(client, name)
        pods = [pod["name"] for pod in found["podStatuses"]]
        gone = kube.get("Pod", NAMESPACE, first) is None
        return found["status"] == "Stopping" and gone and pods == [first, lost]

    await wait_until(only_the_lost_pod_left)
    return name, lost


async def test_a_job_is_stopping_while_a_pod_is_still_live_and_a_second_stop_is_accepted(
    scheduler: Client, kube: FakeKube
) -> None:
    name, lost = await stopping_with_a_lost_pod(scheduler, kube)
    stopping = await job_status(scheduler, name)
    assert stopping["ended"] is None
    # A pod that had not finished when the stop came is Stopped, not Running.
    assert [pod["replicaStatus"]["status"] for pod in stopping["podStatuses"]] == ["Stopped"] * 2
    # Stopping a job already on its way to Stopped is no mistake.
    await expect_stopped_answer(await stop(scheduler, name), name)
    assert (await job_status(scheduler, name))["status"] == "Stopping"

    force_delete_pod(kube, lost)
    stopped = await wait_for_status(scheduler, name, "Stopped")
    assert stopped["ended"] is not None


async def test_a_pod_killed_by_the_stop_is_reported_stopped_not_failed(
    scheduler: Client, kube: FakeKube
) -> None:
    name, lost = await stopping_with_a_lost_pod(scheduler, kube)
    # The node comes back and reports what the stop did: SIGTERM, exit 143. The pod object
    # stays until it is deleted (on a real cluster also while Job's tracking finalizer holds).
    pod, job = kube.get("Pod", NAMESPACE, lost), kube.get("Job", NAMESPACE, name)
    assert pod is not None and job is not None
    state = pod["status"]["containerStatuses"][0]
    terminated = {
        "exitCode": 143,
        "reason": "Error",
        "startedAt": state["state"]["running"]["startedAt"],
        "finishedAt": job["metadata"]["annotations"][STOPPED_AT],
    }
    state.update(state={"terminated": terminated}, ready=False, started=False)
    pod["status"]["phase"] = "Failed"
    kube.put(pod)

    stopped = await wait_for_status(scheduler, name, "Stopped")
    assert [p["replicaStatus"]["status"] for p in stopped["podStatuses"]] == ["Stopped"] * 2
