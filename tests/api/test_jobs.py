"""`/api/v1/jobs` end to end, on both backends: the scheduler app over the fake Kubernetes API
server (through the real kubernetes.aio client) and over the local backend's processes. What a
job is in the cluster, and what several schedulers in one namespace see, is in
tests/backends/kubernetes."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.conftest import (
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client


async def test_post_with_an_empty_body_creates_a_waiting_job_visible_to_the_next_get(
    client: Client,
) -> None:
    created = await post_job(client)
    assert re.fullmatch(r"compute-\d{14}-[a-z]{8}", created["name"])
    assert created["status"] == "Waiting"
    assert created["created"] is not None and created["ended"] is None
    listed = await (await client.get("/api/v1/jobs")).json()
    assert [job["name"] for job in listed] == [created["name"]]
    assert (await job_status(client, created["name"]))["name"] == created["name"]


async def test_get_jobs_is_an_empty_list_not_null(client: Client) -> None:
    for path in ("/api/v1/jobs", "/api/v1/jobs/"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.text() == "[]"


async def test_a_job_runs_through_running_to_succeeded(client: Client) -> None:
    name = (await post_job(client))["name"]
    done = await wait_for_status(client, name, "Succeeded")
    assert done["started"] is not None and done["ended"] is not None
    assert done["ended"] >= done["started"]
    assert done["podStatuses"][0]["replicaStatus"]["status"] == "Succeeded"
    assert done["podStatuses"][0]["exitCode"] == 0


async def test_a_running_job_is_reported_running(client: Client) -> None:
    name = (await post_job(client, {"command": ["sh", "-c", "sleep 100; exit 0"]}))["name"]
    running = await wait_for_status(client, name, "Running")
    assert running["podStatuses"][0]["replicaStatus"]["status"] == "Running"


async def test_a_failing_job_is_failed_with_its_exit_code_in_the_message(client: Client) -> None:
    name = (await post_job(client, {"command": ["sh", "-c", "sleep 1; exit 3"]}))["name"]
    failed: dict[str, Any] = {}

    async def failed_with_its_pod_ended() -> bool:
        # Job and Pod events come on two watches: the Job may fail before its pod's end is in.
        nonlocal failed
        failed = await wait_for_status(client, name, "Failed")
        return bool(failed["podStatuses"][0]["replicaStatus"]["status"] == "Failed")

    await wait_until(failed_with_its_pod_ended)
    assert "backoff limit" in failed["message"]
    assert "exited with code 3" in failed["message"]
    assert failed["failed"] == 1
    assert failed["podStatuses"][0]["exitCode"] == 3


async def test_a_job_over_its_time_limit_fails_with_deadline_exceeded(client: Client) -> None:
    body = {"command": ["sh", "-c", "sleep 1000; exit 0"], "timeLimitSeconds": 1}
    name = (await post_job(client, body))["name"]
    failed = await wait_for_status(client, name, "Failed")
    assert "deadline" in failed["message"]


async def test_delete_answers_success_and_the_job_is_gone(client: Client) -> None:
    name = (await post_job(client, {"payload": "p"}))["name"]
    response = await client.delete(f"/api/v1/jobs/{name}")
    assert response.status == 200
    assert await response.json() == {
        "status": "Success",
        "message": f"job {name} successfully deleted",
        "code": 200,
    }
    assert (await client.get(f"/api/v1/jobs/{name}")).status == 404


async def test_a_restarted_scheduler_sees_the_same_jobs(start: ClientFactory) -> None:
    first = await start()
    name = (await post_job(first, {"jobId": "keep-me"}))["name"]
    await first.close()
    second = await start()
    found = await job_status(second, name)
    assert found["jobId"] == "keep-me"


def test_body_is_json_of_the_status_shape() -> None:
    assert json.loads('{"status":"Failure"}')["status"] == "Failure"
