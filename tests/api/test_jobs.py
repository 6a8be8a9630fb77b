"""`/api/v1/jobs` end to end: the scheduler app, the real kubernetes.aio client, the fake API."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import (
    NAMESPACE,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.fakekube import FakeKube

Client = TestClient[Any, Any]


async def test_post_with_an_empty_body_creates_a_waiting_job_visible_to_the_next_get(
    scheduler: Client,
) -> None:
    created = await post_job(scheduler)
    assert re.fullmatch(r"compute-\d{14}-[a-z]{8}", created["name"])
    assert created["status"] == "Waiting"
    assert created["created"] is not None and created["ended"] is None
    listed = await (await scheduler.get("/api/v1/jobs")).json()
    assert [job["name"] for job in listed] == [created["name"]]
    assert (await job_status(scheduler, created["name"]))["name"] == created["name"]


async def test_get_jobs_is_an_empty_list_not_null(scheduler: Client) -> None:
    for path in ("/api/v1/jobs", "/api/v1/jobs/"):
        response = await scheduler.get(path)
        assert response.status == 200
        assert await response.text() == "[]"


async def test_the_payload_is_stored_in_a_secret_mounted_as_the_payload_file(
    scheduler: Client, kube: FakeKube
) -> None:
    payload = '{"x": 10, "y": 20}'
    created = await post_job(scheduler, {"payload": payload, "jobId": "job1"})
    name = created["name"]
    assert created["jobId"] == "job1"
    job = kube.get("Job", NAMESPACE, name)
    secret = kube.get("Secret", NAMESPACE, f"{name}-payload")
    assert job is not None and secret is not None
    assert base64.b64decode(secret["data"]["payload"]).decode() == payload
    # Owned by the job's anchor, which its Job owns: deleting the Job deletes the payload.
    anchor = kube.get("ConfigMap", NAMESPACE, f"{name}-anchor")
    assert anchor is not None
    assert anchor["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == anchor["metadata"]["uid"]
    pod_spec = job["spec"]["template"]["spec"]
    volume = next(v for v in pod_spec["volumes"] if v["name"] == "job-payload")
    assert volume["secret"]["secretName"] == f"{name}-payload"
    mount = pod_spec["containers"][0]["volumeMounts"][0]
    assert (mount["mountPath"], mount["readOnly"]) == ("/compute/args", True)
    env = {e["name"]: e.get("value") for e in pod_spec["containers"][0]["env"]}
    assert env["RADIX_JOB_NAME"] == name and env["MODE"] == "test"
    service = kube.get("Service", NAMESPACE, name)
    assert service is not None and service["spec"]["ports"][0]["port"] == 3000


async def test_no_payload_gives_an_empty_payload_file(scheduler: Client, kube: FakeKube) -> None:
    name = (await post_job(scheduler, {}))["name"]
    secret = kube.get("Secret", NAMESPACE, f"{name}-payload")
    assert secret is not None
    assert base64.b64decode(secret["data"].get("payload", "")) == b""


async def test_a_job_runs_through_running_to_succeeded(scheduler: Client) -> None:
    name = (await post_job(scheduler))["name"]
    done = await wait_for_status(scheduler, name, "Succeeded")
    assert done["started"] is not None and done["ended"] is not None
    assert done["ended"] >= done["started"]
    assert done["podStatuses"][0]["replicaStatus"]["status"] == "Succeeded"
    assert done["podStatuses"][0]["exitCode"] == 0


async def test_a_running_job_is_reported_running(scheduler: Client) -> None:
    name = (await post_job(scheduler, {"command": ["sh", "-c", "sleep 100; exit 0"]}))["name"]
    running = await wait_for_status(scheduler, name, "Running")
    assert running["podStatuses"][0]["replicaStatus"]["status"] == "Running"


async def test_a_failing_job_is_failed_with_its_exit_code_in_the_message(scheduler: Client) -> None:
    name = (await post_job(scheduler, {"command": ["sh", "-c", "sleep 1; exit 3"]}))["name"]
    failed: dict[str, Any] = {}

    async def failed_with_its_pod_ended() -> bool:
        # Job and Pod events come on two watches: the Job may fail before its pod's end is in.
        nonlocal failed
        failed = await wait_for_status(scheduler, name, "Failed")
        return failed["podStatuses"][0]["replicaStatus"]["status"] == "Failed"

    await wait_until(failed_with_its_pod_ended)
    assert "backoff limit" in failed["message"]
    assert "exited with code 3" in failed["message"]
    assert failed["failed"] == 1
    assert failed["podStatuses"][0]["exitCode"] == 3


async def test_a_job_over_its_time_limit_fails_with_deadline_exceeded(scheduler: Client) -> None:
    body = {"command": ["sh", "-c", "sleep 1000; exit 0"], "timeLimitSeconds": 1}
    name = (await post_job(scheduler, body))["name"]
    failed = await wait_for_status(scheduler, name, "Failed")
    assert "deadline" in failed["message"]


async def test_delete_removes_the_job_its_secret_and_its_service(
    scheduler: Client, kube: FakeKube
) -> None:
    name = (await post_job(scheduler, {"payload": "p"}))["name"]
    response = await scheduler.delete(f"/api/v1/jobs/{name}")
    assert response.status == 200
    assert await response.json() == {
        "status": "Success",
        "message": f"job {name} successfully deleted",
        "code": 200,
    }
    assert (await scheduler.get(f"/api/v1/jobs/{name}")).status == 404

    async def all_gone() -> bool:
        return not any(
            kube.get(kind, NAMESPACE, n)
            for kind, n in (("Job", name), ("Secret", f"{name}-payload"), ("Service", name))
        ) and not kube.list("Pod", NAMESPACE, f"job-name={name}")

    await wait_until(all_gone)


async def test_get_requests_are_answered_without_asking_the_api_server(
    scheduler: Client, kube: FakeKube
) -> None:
    name = (await post_job(scheduler))["name"]
    await wait_until(lambda: _has_pods(kube, name))
    kube.clear_audit()
    for _ in range(20):
        assert (await scheduler.get("/api/v1/jobs")).status == 200
        assert (await scheduler.get(f"/api/v1/jobs/{name}")).status == 200
    assert [e for e in kube.audit if e.verb not in ("watch",)] == []


async def _has_pods(kube: FakeKube, name: str) -> bool:
    return bool(kube.list("Pod", NAMESPACE, f"job-name={name}"))


async def test_a_restarted_scheduler_sees_the_same_jobs(
    scheduler_factory: ClientFactory,
) -> None:
    first = await scheduler_factory()
    name = (await post_job(first, {"jobId": "keep-me"}))["name"]
    await first.close()
    second = await scheduler_factory()
    found = await job_status(second, name)
    assert found["jobId"] == "keep-me"


async def test_a_second_replica_sees_jobs_created_by_the_first(
    scheduler_factory: ClientFactory,
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    name = (await post_job(one))["name"]
    await wait_for_status(two, name, "Succeeded")
    assert (await two.delete(f"/api/v1/jobs/{name}")).status == 200

    async def gone_from_one() -> bool:
        return (await one.get(f"/api/v1/jobs/{name}")).status == 404

    await wait_until(gone_from_one)


async def test_jobs_of_another_scheduler_in_the_namespace_are_invisible_and_untouched(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    compute, etl = await scheduler_factory("compute"), await scheduler_factory("etl")
    theirs = (await post_job(etl))["name"]
    ours = (await post_job(compute))["name"]
    assert [j["name"] for j in await (await compute.get("/api/v1/jobs")).json()] == [ours]
    assert (await compute.get(f"/api/v1/jobs/{theirs}")).status == 404
    response = await compute.delete(f"/api/v1/jobs/{theirs}")
    assert response.status == 404
    assert (await response.json())["reason"] == "NotFound"
    assert kube.get("Job", NAMESPACE, theirs) is not None


def test_body_is_json_of_the_status_shape() -> None:
    assert json.loads('{"status":"Failure"}')["status"] == "Failure"
