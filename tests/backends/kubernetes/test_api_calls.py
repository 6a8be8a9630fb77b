"""What the API asks of the API server (the fake's audit log): nothing for a read, which the
scheduler answers from its watch; no write for a request it refuses. The local backend has no API
server to ask: what the API answers is tested on both backends in tests/api."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.api.calls import FAILING, SHORT, batch_of, expect_bad_request, expect_failure, stop
from tests.api.test_batches import UNFIT_BATCHES
from tests.api.test_errors import UNFIT_BODIES
from tests.backends.kubernetes.kept import attempts_kept
from tests.backends.kubernetes.test_api_objects import STOPPED_AT
from tests.conftest import NAMESPACE, ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube

ONE_MIB = 1024 * 1024
WRITES = ("create", "update", "patch", "delete", "deletecollection")


def creations(kube: FakeKube) -> list[Any]:
    return [e for e in kube.audit if e.verb == "create"]


def writes(kube: FakeKube) -> list[Any]:
    return [e for e in kube.audit if e.verb in WRITES]


async def _has_pods(kube: FakeKube, name: str) -> bool:
    return bool(kube.list("Pod", NAMESPACE, f"job-name={name}"))


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


# -- refused jobs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "fragment"), UNFIT_BODIES)
async def test_a_job_body_that_does_not_fit_the_schema_creates_nothing(
    scheduler: Client, kube: FakeKube, body: bytes, fragment: str
) -> None:
    kube.clear_audit()
    response = await scheduler.post("/api/v1/jobs", data=body)
    await expect_failure(response, 422, "Invalid", fragment)
    assert creations(kube) == []


async def test_a_job_payload_over_one_mib_creates_nothing(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.clear_audit()
    body = json.dumps({"payload": "x" * (ONE_MIB + 1)}).encode()
    response = await scheduler.post("/api/v1/jobs", data=io.BytesIO(body))
    await expect_failure(response, 413, "RequestEntityTooLarge", "1048577 bytes")
    assert creations(kube) == []


async def test_a_payload_for_a_job_without_payload_path_creates_nothing(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    etl = await scheduler_factory("etl")
    kube.clear_audit()
    response = await etl.post("/api/v1/jobs", json={"payload": "data"})
    await expect_failure(response, 422, "Invalid", "no payload.path")
    assert creations(kube) == []


@pytest.mark.parametrize(("body", "status"), [(SHORT, "Succeeded"), (FAILING, "Failed")])
async def test_stopping_a_finished_job_writes_nothing(
    scheduler: Client, kube: FakeKube, body: dict[str, Any], status: str
) -> None:
    name = (await post_job(scheduler, body))["name"]
    await wait_for_status(scheduler, name, status)
    await attempts_kept(kube, name)  # written in the background once an attempt ends
    kube.clear_audit()
    await expect_bad_request(await stop(scheduler, name), name, status)
    assert writes(kube) == []
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None and STOPPED_AT not in (job["metadata"].get("annotations") or {})


# -- refused batches --------------------------------------------------------------------------


async def test_an_empty_or_missing_job_list_writes_nothing(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.clear_audit()
    for data in (b"", b"null", json.dumps(batch_of()).encode(), b"{}"):
        response = await scheduler.post("/api/v1/batches", data=data)
        await expect_failure(response, 422, "Invalid", "BatchScheduleDescription is invalid")
    assert writes(kube) == []


@pytest.mark.parametrize(("body", "fragment"), UNFIT_BATCHES)
async def test_a_batch_body_that_does_not_fit_writes_nothing(
    scheduler: Client, kube: FakeKube, body: bytes, fragment: str
) -> None:
    kube.clear_audit()
    response = await scheduler.post("/api/v1/batches", data=body)
    await expect_failure(response, 422, "Invalid", fragment)
    assert writes(kube) == []


async def test_a_batch_payload_over_one_mib_writes_nothing(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.clear_audit()
    body = batch_of({"payload": "small"}, {"payload": "x" * (ONE_MIB + 1)})
    response = await scheduler.post("/api/v1/batches", data=io.BytesIO(json.dumps(body).encode()))
    await expect_failure(
        response, 413, "RequestEntityTooLarge", "jobScheduleDescriptions[1].payload"
    )
    assert writes(kube) == []


async def test_a_batch_over_the_body_limit_writes_nothing(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_MAX_REQUEST_BYTES=str(2 * ONE_MIB))
    kube.clear_audit()
    # Every payload is under 1 MiB; together they are over the 2 MiB limit.
    body = batch_of(*({"payload": "x" * (ONE_MIB - 1024)} for _ in range(3)))
    response = await client.post("/api/v1/batches", data=io.BytesIO(json.dumps(body).encode()))
    await expect_failure(response, 413, "RequestEntityTooLarge")
    assert writes(kube) == []


async def test_a_batch_payload_for_a_job_without_payload_path_writes_nothing(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    etl = await scheduler_factory("etl")
    kube.clear_audit()
    response = await etl.post("/api/v1/batches", json=batch_of({}, {"payload": "data"}))
    await expect_failure(response, 422, "Invalid", "jobScheduleDescriptions[1].payload")
    assert writes(kube) == []
