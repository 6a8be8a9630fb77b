"""Stopping jobs: `POST /api/v1/jobs/{jobName}/stop` and `POST /api/v1/jobs/stop`, end to end on
both backends. A stopped job keeps its record, read as Stopped. What a stop leaves in the
cluster, and what a second scheduler sees of it, is in tests/backends/kubernetes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.calls import (
    FAILING,
    LONG,
    SHORT,
    expect_bad_request,
    expect_stopped_answer,
    running_job,
    stop,
    stop_while_waiting_for_a_retry,
)
from tests.conftest import (
    AiohttpClient,
    ClientFactory,
    job_status,
    make_app,
    make_settings,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client
from tests.fakekube import FakeKube


async def test_stopping_a_running_job_ends_it_stopped_and_keeps_its_record(client: Client) -> None:
    name = await running_job(client)
    await expect_stopped_answer(await stop(client, name), name)
    assert (await job_status(client, name))["status"] in ("Stopping", "Stopped")

    stopped = await wait_for_status(client, name, "Stopped")
    assert stopped["started"] is not None
    assert stopped["ended"] is not None and stopped["ended"] >= stopped["started"]
    # The record outlives the job's process: it is still listed and read as Stopped.
    listed = await (await client.get("/api/v1/jobs")).json()
    assert [(j["name"], j["status"]) for j in listed] == [(name, "Stopped")]
    assert (await job_status(client, name))["ended"] == stopped["ended"]


@pytest.fixture
def start_retrying_slowly(
    backend: str, request: pytest.FixtureRequest, aiohttp_client: AiohttpClient, tmp_path: Path
) -> Callable[[], Awaitable[Client]]:
    """Starts a scheduler whose failed jobs wait long for their retry."""
    if backend == "kubernetes":
        slow_kube: FakeKube = request.getfixturevalue("slow_kube")
        return lambda: aiohttp_client(make_app(slow_kube, make_settings(tmp_path)))
    local: ClientFactory = request.getfixturevalue("local_scheduler_factory")
    return functools.partial(local, options={"retry_backoff_seconds": 1000.0})


async def test_stopping_a_waiting_job_ends_it_stopped(
    start_retrying_slowly: Callable[[], Awaitable[Client]],
) -> None:
    client = await start_retrying_slowly()
    # Its first attempt fails at once; it waits for its retry, which is far off.
    name = await stop_while_waiting_for_a_retry(client)
    stopped = await job_status(client, name)
    assert stopped["ended"] is not None


@pytest.mark.parametrize(("body", "status"), [(SHORT, "Succeeded"), (FAILING, "Failed")])
async def test_stopping_a_finished_job_is_400_and_changes_nothing(
    client: Client, body: dict[str, Any], status: str
) -> None:
    name = (await post_job(client, body))["name"]
    before = await wait_for_status(client, name, status)
    await expect_bad_request(await stop(client, name), name, status)
    assert await job_status(client, name) == before


async def test_stopping_a_stopped_job_is_400(client: Client) -> None:
    name = await running_job(client)
    await expect_stopped_answer(await stop(client, name), name)
    await wait_for_status(client, name, "Stopped")
    await expect_bad_request(await stop(client, name), name, "Stopped")


@pytest.mark.parametrize("name", ["compute-20240101000000-abcdefgh", "nope", "x" * 300])
async def test_stopping_an_unknown_job_is_404(client: Client, name: str) -> None:
    response = await stop(client, name)
    assert response.status == 404, await response.text()
    body = await response.json()
    assert (body["status"], body["reason"], body["code"]) == ("Failure", "NotFound", 404)
    assert name in body["message"]


async def test_stop_all_stops_every_running_single_job_and_nothing_else(client: Client) -> None:
    finished = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, finished, "Succeeded")
    running = [await running_job(client), await running_job(client)]
    batch = await client.post("/api/v1/batches", json={"jobScheduleDescriptions": [LONG]})
    assert batch.status == 200, await batch.text()
    batch_job = (await batch.json())["jobStatuses"][0]["name"]
    await wait_for_status(client, batch_job, "Running")

    response = await client.post("/api/v1/jobs/stop")
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "status": "Success",
        "message": "all jobs were successfully stopped",
        "code": 200,
    }
    for name in running:
        await wait_for_status(client, name, "Stopped")
    assert (await job_status(client, finished))["status"] == "Succeeded"
    # A batch's jobs are stopped through the batch API only.
    assert (await job_status(client, batch_job))["status"] == "Running"


async def test_stop_all_with_nothing_to_stop_is_200(client: Client) -> None:
    for _ in range(2):  # with no job at all, then with only a finished one
        response = await client.post("/api/v1/jobs/stop")
        assert response.status == 200, await response.text()
        assert (await response.json())["message"] == "all jobs were successfully stopped"
        name = (await post_job(client, SHORT))["name"]
        await wait_for_status(client, name, "Succeeded")


async def test_a_stopped_job_counts_with_the_succeeded_ones_in_the_history(
    start: ClientFactory,
) -> None:
    client = await start(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
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
