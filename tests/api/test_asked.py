"""`GET /jobs/{jobName}/request` on both backends: what was asked of a job, merged with the
radixconfig, with its variables' names but never their values, and never its payload."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from scheduler.api.keys import SCHEDULES
from tests.conftest import TEST_CONFIG, ClientFactory, ok_json, post_job
from tests.factories import Client

# Far ahead: the job waits for it all through the test, on either backend.
LATER = "2099-12-07T03:00:00Z"
SECRET_VALUE = "hunter2-do-not-show"
SECRET_PAYLOAD = '{"password": "payload-do-not-show"}'
RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
# The radixconfig's job `compute`, as the tests serve it.
COMPUTE_COMMAND = ["sh", "-c", "sleep 2; exit 0"]


async def asked(client: Client, name: str) -> dict[str, Any]:
    return await ok_json(await client.get(f"/api/v1/jobs/{name}/request"))


async def test_a_job_answers_exactly_the_options_it_was_created_with(client: Client) -> None:
    body = {
        "jobId": "run-1",
        "imageTagName": "1.37",
        "resources": RESOURCES,
        "node": {"gpu": "nvidia-v100", "gpuCount": "2"},
        "timeLimitSeconds": 600,
        "backoffLimit": 2,
        "startAfter": LATER,
        "waitingTimeoutSeconds": 60,
        "variables": {"TOKEN": SECRET_VALUE},
        "payload": SECRET_PAYLOAD,
    }
    name = (await post_job(client, body))["name"]
    response = await client.get(f"/api/v1/jobs/{name}/request")
    text = await response.text()
    assert response.status == 200, text
    assert await response.json() == {
        "image": "busybox:1.37",
        "command": COMPUTE_COMMAND,
        "args": None,
        "resources": RESOURCES,
        "node": {"gpu": "nvidia-v100", "gpuCount": "2"},
        "runtime": None,
        "timeLimitSeconds": 600,
        "backoffLimit": 2,
        "startAfter": LATER,
        "waitingTimeoutSeconds": 60,
        "schedule": None,
        "variableNames": ["MODE", "TOKEN"],  # the radixconfig's and the request's
        "hasPayload": True,
        "batchName": None,
        "jobId": "run-1",
    }
    assert SECRET_VALUE not in text and "payload-do-not-show" not in text
    assert '"test"' not in text  # the value of the radixconfig's MODE


async def test_a_job_asked_for_nothing_answers_the_radixconfig_s_options(client: Client) -> None:
    name = (await post_job(client, {"startAfter": LATER}))["name"]
    answer = await asked(client, name)
    assert answer["image"] == "busybox:1.36" and answer["command"] == COMPUTE_COMMAND
    assert answer["resources"] == {"requests": {}, "limits": {}}
    assert (answer["node"], answer["runtime"]) == (None, None)
    assert (answer["timeLimitSeconds"], answer["backoffLimit"]) == (43200, 0)
    assert (answer["waitingTimeoutSeconds"], answer["jobId"]) == (None, None)
    assert answer["variableNames"] == ["MODE"]


async def test_a_batch_job_answers_by_its_full_name_with_its_batch_and_defaults(
    client: Client,
) -> None:
    response = await client.post(
        "/api/v1/batches",
        json={
            "startAfter": LATER,
            "defaultRadixJobComponentConfig": {
                "runtime": {"architecture": "arm64", "nodeType": "highmem"},
                "command": ["sh", "-c"],
                "args": ["exit 0"],
                "variables": {"LEVEL": "high"},
            },
            "jobScheduleDescriptions": [{"jobId": "part-1", "backoffLimit": 3}],
        },
    )
    batch = await ok_json(response)
    job = batch["jobStatuses"][0]["name"]
    answer = await asked(client, job)
    assert answer["batchName"] == batch["name"] and answer["jobId"] == "part-1"
    assert answer["runtime"] == {"architecture": "arm64", "nodeType": "highmem"}
    assert (answer["command"], answer["args"]) == (["sh", "-c"], ["exit 0"])
    assert (answer["backoffLimit"], answer["startAfter"]) == (3, LATER)
    assert answer["variableNames"] == ["LEVEL", "MODE"]
    assert answer["hasPayload"] is True  # the job has a payload.path: an empty file


async def test_a_job_of_a_job_without_payload_path_has_no_payload(start: ClientFactory) -> None:
    client = await start("etl")
    name = (await post_job(client, {"startAfter": LATER}))["name"]
    answer = await asked(client, name)
    assert answer["hasPayload"] is False and answer["variableNames"] == []


async def test_a_run_of_a_schedule_names_its_schedule(start: ClientFactory, tmp_path: Path) -> None:
    config = yaml.safe_load(TEST_CONFIG.read_text())
    for job in config["spec"]["jobs"]:
        if job["name"] == "etl":
            job["schedules"] = [{"name": "yearly", "cron": "@yearly"}]
    path = tmp_path / "scheduled-radixconfig.yaml"
    path.write_text(yaml.safe_dump(config))
    client = await start("etl", RADIX_CONFIG_FILE=str(path))
    run = await client.app[SCHEDULES].fire("yearly", datetime(2030, 1, 1, tzinfo=UTC))
    assert run is not None
    answer = await asked(client, run)
    assert (answer["schedule"], answer["jobId"]) == ("yearly", "schedule:yearly")


async def test_an_unknown_job_is_404(client: Client) -> None:
    response = await client.get("/api/v1/jobs/compute-20990101000000-nosuchjb/request")
    assert response.status == 404
    assert (await response.json())["reason"] == "NotFound"


async def test_the_answer_is_the_same_after_a_scheduler_restart(start: ClientFactory) -> None:
    first = await start()
    body = {"startAfter": LATER, "resources": RESOURCES, "variables": {"TOKEN": SECRET_VALUE}}
    name = (await post_job(first, body))["name"]
    before = await asked(first, name)
    await first.close()
    second = await start()
    assert await asked(second, name) == before
