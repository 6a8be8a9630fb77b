"""The key job scenarios against a real cluster: what a user sees through the API, and what the
cluster holds. Every Kubernetes read goes through the official client, so the same assertions hold
on a real API server and on the fake."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from kubernetes.aio import client as k8s

from tests.e2e.conftest import E2E_MARKS, Client, Cluster, wait_until

pytestmark = E2E_MARKS

JOB_SECONDS = 120.0
GC_SECONDS = 60.0
SELECTOR = "radix-app=myapp,radix-component=compute,radix-job-type=job-scheduler"
FINISHED = {"Succeeded", "Failed", "Stopped"}


def sh(seconds: int, exit_code: int) -> list[str]:
    return ["sh", "-c", f"sleep {seconds}; exit {exit_code}"]


async def post_job(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/jobs", data=json.dumps(body))
    assert response.status == 200, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def list_jobs(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/jobs")
    assert response.status == 200, await response.text()
    jobs: list[dict[str, Any]] = await response.json()
    return jobs


async def follow(
    client: Client, name: str, until: set[str], within_seconds: float = JOB_SECONDS
) -> tuple[dict[str, Any], list[str]]:
    """Poll the job until its status is in `until`; return it and the statuses seen on the way."""
    seen: list[str] = []
    latest: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal latest
        response = await client.get(f"/api/v1/jobs/{name}")
        assert response.status == 200, await response.text()
        latest = await response.json()
        if not seen or seen[-1] != latest["status"]:
            seen.append(latest["status"])
        return latest["status"] in until

    await wait_until(reached, within_seconds, f"job {name} reaching {sorted(until)}")
    return latest, seen


async def exists(read: Awaitable[object]) -> bool:
    try:
        await read
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def wire(model: Any) -> dict[str, Any]:
    """A client model as the API's JSON (camelCase, no unset fields), to assert on by field name."""
    document: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return document


async def test_a_job_runs_through_running_to_succeeded_with_its_payload_mounted(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    payload = '{"x": 10, "y": 20}'
    # Long enough to be seen Running even on the fake's compressed clock.
    body = {"payload": payload, "jobId": "e2e-1", "command": sh(30, 0)}
    created = await post_job(scheduler, body)
    name = created["name"]
    assert created["jobId"] == "e2e-1"

    done, seen = await follow(scheduler, name, FINISHED)
    assert "Running" in seen, seen
    assert done["status"] == "Succeeded", done
    assert done["started"] is not None and done["ended"] is not None
    assert done["podStatuses"][0]["exitCode"] == 0

    job = wire(await cluster.batch.read_namespaced_job(name, namespace))
    pods = wire(
        await cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
    )["items"]
    assert pods, "the job's pod is kept after it succeeded"
    for spec in [job["spec"]["template"]["spec"], *(pod["spec"] for pod in pods)]:
        volume = next(v for v in spec["volumes"] if "secret" in v)
        assert volume["secret"]["secretName"] == f"{name}-payload"
        mount = next(
            m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"]
        )
        assert (mount["mountPath"], mount.get("readOnly")) == ("/compute/args", True)
    secret = wire(await cluster.core.read_namespaced_secret(f"{name}-payload", namespace))
    assert base64.b64decode(secret["data"]["payload"]).decode() == payload
    service = wire(await cluster.core.read_namespaced_service(name, namespace))
    assert [p["port"] for p in service["spec"]["ports"]] == [3000]


async def test_a_failing_job_is_failed_with_its_exit_code_in_the_message(
    scheduler: Client,
) -> None:
    name = (await post_job(scheduler, {"command": sh(1, 3)}))["name"]
    failed, _ = await follow(scheduler, name, FINISHED)
    assert failed["status"] == "Failed", failed
    assert "exited with code 3" in failed["message"]
    assert failed["podStatuses"][0]["exitCode"] == 3


async def test_delete_removes_the_job_its_secret_its_service_and_its_anchor(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    name = (await post_job(scheduler, {"payload": "p", "command": sh(60, 0)}))["name"]
    running, _ = await follow(scheduler, name, {"Running", *FINISHED})
    assert running["status"] == "Running", running

    response = await scheduler.delete(f"/api/v1/jobs/{name}")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    assert (await scheduler.get(f"/api/v1/jobs/{name}")).status == 404

    async def all_gone() -> bool:
        reads = (
            cluster.batch.read_namespaced_job(name, namespace),
            cluster.core.read_namespaced_secret(f"{name}-payload", namespace),
            cluster.core.read_namespaced_service(name, namespace),
            cluster.core.read_namespaced_config_map(f"{name}-anchor", namespace),
        )
        return not any(await asyncio.gather(*(exists(read) for read in reads)))

    # The anchor goes with the Job, and Secret and Service with the anchor, through the garbage
    # collector, asynchronously.
    await wait_until(
        all_gone, GC_SECONDS, f"job {name}, its secret, service and anchor deleted", 0.5
    )


async def test_finished_jobs_are_pruned_to_the_history_limit(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    # The scheduler keeps HISTORY_LIMIT (2) succeeded and 2 failed jobs: the latest to end, which
    # may include jobs of the tests before (completion times have a resolution of one second).
    bodies = [{"command": sh(1, 0)}] * 3 + [{"command": sh(1, 1)}] * 3
    await asyncio.gather(*(post_job(scheduler, body) for body in bodies))
    listed: list[dict[str, Any]] = []

    async def pruned() -> bool:
        nonlocal listed
        listed = await list_jobs(scheduler)
        counts = Counter(job["status"] for job in listed)
        return counts == Counter({"Succeeded": 2, "Failed": 2})

    await wait_until(pruned, JOB_SECONDS + GC_SECONDS, "2 succeeded + 2 failed jobs left", 0.25)
    kept = {job["name"] for job in listed}

    async def cluster_matches() -> bool:
        jobs = wire(await cluster.batch.list_namespaced_job(namespace, label_selector=SELECTOR))
        secrets = wire(
            await cluster.core.list_namespaced_secret(namespace, label_selector=SELECTOR)
        )
        job_names = {job["metadata"]["name"] for job in jobs["items"]}
        secret_names = {secret["metadata"]["name"] for secret in secrets["items"]}
        return job_names == kept and secret_names == {f"{name}-payload" for name in kept}

    await wait_until(cluster_matches, GC_SECONDS, "the cluster holding only the kept jobs", 0.5)


async def test_a_stopped_job_is_stopped_its_pods_removed_and_its_job_kept(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    name = (await post_job(scheduler, {"command": sh(300, 0)}))["name"]
    running, _ = await follow(scheduler, name, {"Running", *FINISHED})
    assert running["status"] == "Running", running

    response = await scheduler.post(f"/api/v1/jobs/{name}/stop")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    stopped, _ = await follow(scheduler, name, FINISHED)
    assert stopped["status"] == "Stopped", stopped
    assert stopped["ended"] is not None

    async def pods_gone() -> bool:
        pods = await cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
        return not wire(pods)["items"]

    await wait_until(pods_gone, GC_SECONDS, f"the pods of stopped job {name} deleted", 0.5)
    # The job keeps its record: suspended in the cluster, with its Secret, and Stopped in the API.
    job = wire(await cluster.batch.read_namespaced_job(name, namespace))
    assert job["spec"]["suspend"] is True
    assert await exists(cluster.core.read_namespaced_secret(f"{name}-payload", namespace))
    kept, _ = await follow(scheduler, name, FINISHED)
    assert kept["status"] == "Stopped", kept


def _env(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


async def test_a_batch_with_defaults_completes_and_its_deletion_removes_what_it_owns(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    body = {
        "batchId": "e2e-batch",
        "defaultRadixJobComponentConfig": {
            "command": sh(2, 0),
            "backoffLimit": 0,
            "variables": {"STAGE": "default"},
        },
        "jobScheduleDescriptions": [
            {"jobId": "one", "payload": "1"},
            {"jobId": "two", "payload": "2", "variables": {"STAGE": "own"}},
            {"jobId": "bad", "payload": "3", "command": sh(1, 1)},
        ],
    }
    response = await scheduler.post("/api/v1/batches", data=json.dumps(body))
    assert response.status == 200, await response.text()
    batch = (await response.json())["name"]
    finished: dict[str, Any] = {}

    async def batch_done() -> bool:
        nonlocal finished
        response = await scheduler.get(f"/api/v1/batches/{batch}")
        assert response.status == 200, await response.text()
        finished = await response.json()
        return all(job["status"] in FINISHED for job in finished["jobStatuses"])

    await wait_until(batch_done, JOB_SECONDS, f"the jobs of batch {batch} finished")
    # No batchStatusRules in the radixconfig: a batch whose jobs all ended is Completed.
    assert finished["status"] == "Completed", finished
    assert finished["batchId"] == "e2e-batch"
    by_id = {job["jobId"]: job for job in finished["jobStatuses"]}
    statuses = {job_id: job["status"] for job_id, job in by_id.items()}
    assert statuses == {"one": "Succeeded", "two": "Succeeded", "bad": "Failed"}
    assert "exited with code 1" in by_id["bad"]["message"]

    bad = by_id["bad"]["name"]
    short = bad.removeprefix(f"{batch}-")
    response = await scheduler.get(f"/api/v1/batches/{batch}/jobs/{short}")
    assert response.status == 200, await response.text()
    found = await response.json()
    assert (found["name"], found["jobId"], found["status"]) == (bad, "bad", "Failed")

    # The defaults reached the jobs, and each job's own values won over them.
    jobs = {
        job_id: wire(await cluster.batch.read_namespaced_job(job["name"], namespace))
        for job_id, job in by_id.items()
    }
    assert {job_id: job["spec"]["backoffLimit"] for job_id, job in jobs.items()} == {
        "one": 0,
        "two": 0,
        "bad": 0,
    }
    assert _env(jobs["one"])["STAGE"] == "default" and _env(jobs["two"])["STAGE"] == "own"
    assert jobs["one"]["spec"]["template"]["spec"]["containers"][0]["command"] == sh(2, 0)
    assert await exists(cluster.core.read_namespaced_config_map(batch, namespace))

    response = await scheduler.delete(f"/api/v1/batches/{batch}")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    assert (await scheduler.get(f"/api/v1/batches/{batch}")).status == 404
    members = f"{SELECTOR},radix-batch-name={batch}"

    async def all_gone() -> bool:
        listed = [
            await cluster.batch.list_namespaced_job(namespace, label_selector=members),
            await cluster.core.list_namespaced_secret(namespace, label_selector=members),
            await cluster.core.list_namespaced_service(namespace, label_selector=members),
        ]
        if any(wire(objects)["items"] for objects in listed):
            return False
        return not await exists(cluster.core.read_namespaced_config_map(batch, namespace))

    # The Jobs go with the ConfigMap, their Secrets and Services with them, through the garbage
    # collector.
    await wait_until(all_gone, GC_SECONDS, f"batch {batch} and everything it owns deleted", 0.5)
