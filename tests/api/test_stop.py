"""Stopping jobs: `POST /api/v1/jobs/{jobName}/stop` and `POST /api/v1/jobs/stop`, end to end on
the fake API server. A stopped job keeps its Job (suspended) and its record; its pods go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import (
    NAMESPACE,
    AiohttpClient,
    ClientFactory,
    job_status,
    make_app,
    make_settings,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.fakekube import FakeKube
from tests.fakekube.kinds import kind_named
from tests.fakekube.options import DeleteOptions

Client = TestClient[Any, Any]
LONG = {"command": ["sh", "-c", "sleep 1000; exit 0"]}
SHORT = {"command": ["sh", "-c", "sleep 1; exit 0"]}
FAILING = {"command": ["sh", "-c", "sleep 1; exit 3"]}
STOPPED_AT = "radix.equinor.com/stopped-at"


async def stop(client: Client, name: str) -> Any:
    return await client.post(f"/api/v1/jobs/{name}/stop")


async def expect_stopped_answer(response: Any, name: str) -> None:
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "status": "Success",
        "message": f"job {name} was successfully stopped",
        "code": 200,
    }


async def expect_bad_request(response: Any, name: str, status: str) -> None:
    assert response.status == 400, await response.text()
    assert await response.json() == {
        "status": "Failure",
        "message": f"cannot stop the job {name} with the status {status}",
        "reason": "BadRequest",
        "code": 400,
    }


def pods_of(kube: FakeKube, name: str) -> list[dict[str, Any]]:
    return kube.list("Pod", NAMESPACE, f"job-name={name}")


async def running_job(client: Client, body: dict[str, Any] | None = None) -> str:
    name: str = (await post_job(client, body or LONG))["name"]
    await wait_for_status(client, name, "Running")
    return name


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


async def test_stopping_a_running_job_ends_it_stopped_and_keeps_the_job_suspended(
    scheduler: Client, kube: FakeKube
) -> None:
    name = await running_job(scheduler)
    await expect_stopped_answer(await stop(scheduler, name), name)
    assert (await job_status(scheduler, name))["status"] in ("Stopping", "Stopped")

    stopped = await wait_for_status(scheduler, name, "Stopped")
    assert stopped["started"] is not None
    assert stopped["ended"] is not None and stopped["ended"] >= stopped["started"]

    async def pods_gone() -> bool:
        return not pods_of(kube, name)

    await wait_until(pods_gone)
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None
    assert job["spec"]["suspend"] is True
    assert STOPPED_AT in job["metadata"]["annotations"]
    # The record outlives the pods: it is still listed and read as Stopped.
    listed = await (await scheduler.get("/api/v1/jobs")).json()
    assert [(j["name"], j["status"]) for j in listed] == [(name, "Stopped")]
    assert (await job_status(scheduler, name))["ended"] == stopped["ended"]


async def stopping_with_a_lost_pod(client: Client, kube: FakeKube) -> tuple[str, str]:
    """A job stopped while one of its pods is on a lost node: its other pods are gone, and
    the scheduler shows it Stopping with just the lost pod."""
    name = await running_job(client)
    lost = put_pod_on_a_lost_node(kube, name)
    await expect_stopped_answer(await stop(client, name), name)

    async def only_the_lost_pod_left() -> bool:
        found = await job_status(client, name)
        pods = [pod["name"] for pod in found["podStatuses"]]
        return found["status"] == "Stopping" and pods == [lost]

    await wait_until(only_the_lost_pod_left)
    return name, lost


async def test_a_job_is_stopping_while_a_pod_is_still_live_and_a_second_stop_is_accepted(
    scheduler: Client, kube: FakeKube
) -> None:
    name, lost = await stopping_with_a_lost_pod(scheduler, kube)
    stopping = await job_status(scheduler, name)
    assert stopping["ended"] is None
    # A pod that had not finished when the stop came is Stopped, not Running.
    assert [pod["replicaStatus"]["status"] for pod in stopping["podStatuses"]] == ["Stopped"]
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
    assert [p["replicaStatus"]["status"] for p in stopped["podStatuses"]] == ["Stopped"]


@pytest.fixture
async def slow_kube() -> AsyncIterator[FakeKube]:
    # Simulated time 20 times slower than real: a pod's retry back-off (10 s) lasts 200 s.
    async with FakeKube(time_scale=20, pending_seconds=0.02) as fake:
        yield fake


async def test_stopping_a_waiting_job_ends_it_stopped(
    slow_kube: FakeKube, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(make_app(slow_kube, make_settings(tmp_path)))
    # Its first pod fails at once; it waits with no pod for its retry, which is far off.
    body = {"command": ["sh", "-c", "exit 1"], "backoffLimit": 1}
    name = (await post_job(client, body))["name"]

    async def waiting_for_a_retry() -> bool:
        response = await client.get(f"/api/v1/jobs/{name}")
        found = await response.json() if response.status == 200 else {}
        return found.get("status") == "Waiting" and found.get("failed") == 1

    await wait_until(waiting_for_a_retry)
    await expect_stopped_answer(await stop(client, name), name)
    stopped = await wait_for_status(client, name, "Stopped")
    assert stopped["ended"] is not None
    job = slow_kube.get("Job", NAMESPACE, name)
    assert job is not None and job["spec"]["suspend"] is True


@pytest.mark.parametrize(("body", "status"), [(SHORT, "Succeeded"), (FAILING, "Failed")])
async def test_stopping_a_finished_job_is_400_and_changes_nothing(
    scheduler: Client, kube: FakeKube, body: dict[str, Any], status: str
) -> None:
    name = (await post_job(scheduler, body))["name"]
    before = await wait_for_status(scheduler, name, status)
    kube.clear_audit()
    await expect_bad_request(await stop(scheduler, name), name, status)
    assert [e for e in kube.audit if e.verb not in ("watch", "list")] == []
    assert await job_status(scheduler, name) == before
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None and STOPPED_AT not in (job["metadata"].get("annotations") or {})


async def test_stopping_a_stopped_job_is_400(scheduler: Client) -> None:
    name = await running_job(scheduler)
    await expect_stopped_answer(await stop(scheduler, name), name)
    await wait_for_status(scheduler, name, "Stopped")
    await expect_bad_request(await stop(scheduler, name), name, "Stopped")


@pytest.mark.parametrize("name", ["compute-20240101000000-abcdefgh", "nope", "x" * 300])
async def test_stopping_an_unknown_job_is_404(scheduler: Client, name: str) -> None:
    response = await stop(scheduler, name)
    assert response.status == 404, await response.text()
    body = await response.json()
    assert (body["status"], body["reason"], body["code"]) == ("Failure", "NotFound", 404)
    assert name in body["message"]


async def test_stop_all_stops_every_running_single_job_and_nothing_else(
    scheduler: Client, kube: FakeKube
) -> None:
    finished = (await post_job(scheduler, SHORT))["name"]
    await wait_for_status(scheduler, finished, "Succeeded")
    running = [await running_job(scheduler), await running_job(scheduler)]
    batch = await scheduler.post("/api/v1/batches", json={"jobScheduleDescriptions": [LONG]})
    assert batch.status == 200, await batch.text()
    batch_job = (await batch.json())["jobStatuses"][0]["name"]
    await wait_for_status(scheduler, batch_job, "Running")

    response = await scheduler.post("/api/v1/jobs/stop")
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "status": "Success",
        "message": "all jobs were successfully stopped",
        "code": 200,
    }
    for name in running:
        await wait_for_status(scheduler, name, "Stopped")
    assert (await job_status(scheduler, finished))["status"] == "Succeeded"
    # A batch's jobs are stopped through the batch API only.
    assert (await job_status(scheduler, batch_job))["status"] == "Running"
    assert pods_of(kube, batch_job)


async def test_stop_all_with_nothing_to_stop_is_200(scheduler: Client) -> None:
    for _ in range(2):  # with no job at all, then with only a finished one
        response = await scheduler.post("/api/v1/jobs/stop")
        assert response.status == 200, await response.text()
        assert (await response.json())["message"] == "all jobs were successfully stopped"
        name = (await post_job(scheduler, SHORT))["name"]
        await wait_for_status(scheduler, name, "Succeeded")


async def test_a_second_scheduler_shows_the_same_stopped_job(
    scheduler_factory: ClientFactory,
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    name = await running_job(one)
    await expect_stopped_answer(await stop(one, name), name)
    seen_by_one = await wait_for_status(one, name, "Stopped")
    seen_by_two = await wait_for_status(two, name, "Stopped")
    assert seen_by_two["ended"] == seen_by_one["ended"]
    # The second one knows it is stopped: it refuses to stop it again.
    await expect_bad_request(await stop(two, name), name, "Stopped")


async def test_a_stopped_job_counts_with_the_succeeded_ones_in_the_history(
    scheduler_factory: ClientFactory,
) -> None:
    client = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    succeeded = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, succeeded, "Succeeded")
    failed = (await post_job(client, FAILING))["name"]
    await wait_for_status(client, failed, "Failed")
    stopped = await running_job(client)
    await expect_stopped_answer(await stop(client, stopped), stopped)

    # Succeeded and Stopped share one bucket of one: one of the two goes (which one depends on
    # their end times, whole seconds that may be equal). Failed has a bucket of its own.
    kept: list[tuple[str, str]] = []

    async def pruned() -> bool:
        jobs = await (await client.get("/api/v1/jobs")).json()
        kept[:] = sorted((j["name"], j["status"]) for j in jobs)
        return len(kept) == 2

    await wait_until(pruned)
    assert (failed, "Failed") in kept
    assert len({(succeeded, "Succeeded"), (stopped, "Stopped")} & set(kept)) == 1
