"""`GET .../usage` on both backends: each attempt's peak memory and CPU seconds next to what the
job asked for, with a hint in words, in the order and under the names of its podStatuses."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

from tests.conftest import ClientFactory, ok_json, post_job, wait_for_status
from tests.factories import Client

MIB = 1024 * 1024
INTERVAL_SECONDS = 0.05
# 3 s on either backend (the fake's clock, the local `sleep` shim): a few looks at it.
RUNS_THREE_SECONDS = ["sh", "-c", "sleep 60"]
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
HINT = re.compile(
    r"^peak [0-9.]+ [KM]iB of a 256 MiB limit; (about )?(under )?[0-9.]+ CPU seconds in "
    r"[0-9.]+ s, (under )?[0-9.]+ CPU on average of a 0\.5 CPU limit"
)


@pytest.fixture
def measuring(backend: str, request: pytest.FixtureRequest) -> ClientFactory:
    """Schedulers on the backend under test that measure every 0.05 s. On the fake cluster the
    metrics API samples each second, and a running pod uses a quarter core and 48 MiB."""
    if backend == "local":
        local: ClientFactory = request.getfixturevalue("local_scheduler_factory")
        return functools.partial(local, options={"usage_interval_seconds": INTERVAL_SECONDS})
    kube = request.getfixturevalue("kube")
    kube.metrics.resolution_seconds = 1.0
    kube.metrics.usage = lambda pod, seconds: (0.25, 48 * MIB)
    factory: ClientFactory = request.getfixturevalue("scheduler_factory")
    return functools.partial(factory, SCHEDULER_USAGE_INTERVAL_SECONDS=str(INTERVAL_SECONDS))


@pytest.fixture
async def client(measuring: ClientFactory) -> Client:
    return await measuring()


async def usage(client: Client, path: str) -> dict[str, Any]:
    return await ok_json(await client.get(f"/api/v1{path}/usage"))


async def test_an_ended_job_s_attempt_shows_what_it_used_next_to_what_it_asked_for(
    client: Client,
) -> None:
    name = (await post_job(client, {"command": RUNS_THREE_SECONDS, "resources": RESOURCES}))["name"]
    status = await wait_for_status(client, name, "Succeeded")
    answer = await usage(client, f"/jobs/{name}")
    assert answer["name"] == name and answer["source"]
    [attempt] = answer["attempts"]
    assert (attempt["podIndex"], attempt["name"]) == (0, status["podStatuses"][0]["name"])
    assert attempt["available"] is True and attempt["reason"] is None
    assert attempt["peakMemoryBytes"] > 0 and attempt["cpuSeconds"] >= 0
    assert attempt["samples"] >= 1
    assert (attempt["requests"], attempt["limits"]) == (RESOURCES["requests"], RESOURCES["limits"])
    assert HINT.match(attempt["hint"]), attempt["hint"]


async def test_each_attempt_of_a_job_that_was_retried_has_its_own_figures(
    client: Client,
) -> None:
    body = {"command": ["sh", "-c", "sleep 60; exit 1"], "backoffLimit": 1}
    name = (await post_job(client, body))["name"]
    status = await wait_for_status(client, name, "Failed", timeout=30)
    attempts = (await usage(client, f"/jobs/{name}"))["attempts"]
    assert [(a["podIndex"], a["name"]) for a in attempts] == [
        (pod["podIndex"], pod["name"]) for pod in status["podStatuses"]
    ]
    assert len(attempts) == 2
    assert all(a["available"] and a["peakMemoryBytes"] > 0 for a in attempts)


async def test_a_batch_job_s_usage_is_found_by_its_short_name_too(client: Client) -> None:
    response = await client.post(
        "/api/v1/batches",
        json={
            "jobScheduleDescriptions": [{}],
            "defaultRadixJobComponentConfig": {"command": ["sh", "-c", "exit 0"]},
        },
    )
    batch = await ok_json(response)
    job = batch["jobStatuses"][0]["name"]
    await wait_for_status(client, job, "Succeeded")
    short = job.removeprefix(f"{batch['name']}-")
    by_short = await usage(client, f"/batches/{batch['name']}/jobs/{short}")
    assert by_short == await usage(client, f"/jobs/{job}")
    assert [a["name"] for a in by_short["attempts"]] == [
        pod["name"]
        for pod in (await ok_json(await client.get(f"/api/v1/jobs/{job}")))["podStatuses"]
    ]


@pytest.mark.parametrize("path", ["/jobs/compute-nosuchjob", "/batches/batch-nosuchbatch/jobs/x"])
async def test_the_usage_of_no_such_job_is_404(client: Client, path: str) -> None:
    response = await client.get(f"/api/v1{path}/usage")
    assert response.status == 404
    assert (await response.json())["reason"] == "NotFound"
