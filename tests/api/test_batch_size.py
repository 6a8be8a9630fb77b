"""A batch's defaults are repeated in each of its jobs: a small request could expand into
hundreds of MiB. The expanded size is bounded before anything is built, a batch within the
bound is still made whole, and the event loop stays free while it is built. On both backends."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from typing import Any

import pytest

from scheduler.api.keys import BATCHES
from scheduler.domain.batches import JOBS_PER_SLICE
from scheduler.domain.defaults import MAX_EXPANDED_BATCH_BYTES
from scheduler.models import BatchScheduleDescription
from tests.conftest import NAMESPACE, ClientFactory, counting_turns, wait_for_status
from tests.fakekube import FakeKube

MIB = 1024 * 1024
LONG = ["sh", "-c", "sleep 1000; exit 0"]


def batch(variables: dict[str, str], jobs: list[dict[str, Any]], **defaults: Any) -> bytes:
    body = {
        "defaultRadixJobComponentConfig": {"variables": variables, **defaults},
        "jobScheduleDescriptions": jobs,
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def test_a_43_kib_batch_that_expands_past_the_limit_is_413_at_once_in_little_memory(
    start: ClientFactory,
) -> None:
    client = await start("etl")
    # The review's request: 3000 default variables, 500 empty jobs; 1.5 million entries built.
    body = batch({f"VAR{i:04d}": "x" for i in range(3000)}, [{}] * 500)
    assert 42 * 1024 < len(body) < 44 * 1024

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        response = await client.post("/api/v1/batches", data=body)
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()

    assert response.status == 413, await response.text()
    answer = await response.json()
    assert answer["reason"] == "RequestEntityTooLarge"
    assert (
        "its 500 jobs, each merged with defaultRadixJobComponentConfig, come to"
        in (answer["message"])
    )
    assert f"at most {MAX_EXPANDED_BATCH_BYTES} bytes (8 MiB)" in answer["message"]
    # Parsing the request is all it cost (the old code built over 300 MiB before any answer).
    assert grown < 16 * MIB, f"{grown / MIB:.1f} MiB"
    assert await (await client.get("/api/v1/batches")).json() == []


async def test_a_500_job_batch_with_modest_defaults_is_made_with_the_defaults_in_each_job(
    backend: str, start: ClientFactory, request: pytest.FixtureRequest
) -> None:
    client = await start("etl", SCHEDULER_MAX_PARALLEL="1")
    defaults = {f"DEFAULT_{i:02d}": f"value {i}" for i in range(20)}
    jobs: list[dict[str, Any]] = [{} for _ in range(500)]
    script = 'echo "$DEFAULT_00 $DEFAULT_19 $OWN"; sleep 1000; exit 0'
    jobs[0] = {"variables": {"DEFAULT_19": "the job's own", "OWN": "own"}}
    response = await client.post(
        "/api/v1/batches", data=batch(defaults, jobs, command=["sh", "-c", script])
    )
    assert response.status == 200, await response.text()
    created = await response.json()
    assert len(created["jobStatuses"]) == 500
    first, last = (created["jobStatuses"][i]["name"] for i in (0, -1))
    if backend == "kubernetes":
        kube: FakeKube = request.getfixturevalue("kube")
        expected = {"DEFAULT_00": "value 0", "DEFAULT_19": "the job's own", "OWN": "own"}
        assert env_of(kube, first).items() >= expected.items()
        assert env_of(kube, last).items() >= defaults.items() and "OWN" not in env_of(kube, last)
    else:
        await wait_for_status(client, first, "Running")
        logs = await client.get(f"/api/v1/jobs/{first}/logs", params={"follow": "true"})
        assert await logs.content.readline() == b"value 0 the job's own own\n"
        logs.close()
    assert (await client.post(f"/api/v1/batches/{created['name']}/stop")).status == 200


def env_of(kube: FakeKube, job: str) -> dict[str, str]:
    (container,) = kube.get("Job", NAMESPACE, job)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


async def test_healthz_answers_while_a_large_allowed_batch_is_built(
    local_scheduler_factory: ClientFactory,
) -> None:
    # On the local backend: with the fake API server in this process, its own controllers
    # would hold the loop (its job controller takes ~0.6 s for 500 Jobs). The building itself,
    # shared by both backends, is checked below.
    client = await local_scheduler_factory("etl", SCHEDULER_MAX_PARALLEL="1")
    # About 6 MiB once expanded: 300 default variables in each of 500 jobs.
    body = batch({f"VAR_{i:04d}": "v" * 8 for i in range(300)}, [{}] * 500, command=LONG)
    longest, blocked = 0.0, 0.0

    async def probing() -> None:
        nonlocal longest
        while True:
            started = time.perf_counter()
            assert (await client.get("/healthz")).status == 200
            longest = max(longest, time.perf_counter() - started)
            await asyncio.sleep(0.01)

    async def ticking() -> None:
        # The longest the loop ran something else before a 10 ms timer could fire.
        nonlocal blocked
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            blocked = max(blocked, time.perf_counter() - started - 0.01)

    watchers = [asyncio.create_task(probing()), asyncio.create_task(ticking())]
    try:
        response = await client.post("/api/v1/batches", data=body)
    finally:
        for watcher in watchers:
            watcher.cancel()
    assert response.status == 200, await response.text()
    assert blocked < 0.5 and longest < 1.0, f"/healthz {longest:.2f} s, blocked {blocked:.2f} s"
    assert (await client.post(f"/api/v1/batches/{(await response.json())['name']}/stop")).status


async def test_a_batch_is_built_a_slice_of_jobs_at_a_time_letting_others_run(
    scheduler_factory: ClientFactory,
) -> None:
    client = await scheduler_factory("etl")
    description = BatchScheduleDescription.model_validate_json(
        batch({"A": "1"}, [{}] * 500, command=LONG)
    )
    async with counting_turns() as turns:
        request = await client.app[BATCHES]._request(description, "etl-batch")
    assert len(request.jobs) == 500
    assert turns() >= 500 // JOBS_PER_SLICE - 1
    # Jobs without variables of their own share one environment map, not 500 copies.
    assert len({id(job.env) for job in request.jobs}) == 1
