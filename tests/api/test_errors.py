"""Every client mistake gets a `Status` body with the right code, and leaves nothing behind."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import NAMESPACE, ClientFactory, wait_until
from tests.fakekube import FakeKube

Client = TestClient[Any, Any]
ONE_MIB = 1024 * 1024


async def expect_status(response: Any, code: int, reason: str, fragment: str = "") -> None:
    assert response.status == code, await response.text()
    body = await response.json()
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert fragment in body["message"]


def creations(kube: FakeKube) -> list[Any]:
    return [e for e in kube.audit if e.verb == "create"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (json.dumps({"payload": 42}).encode(), "payload: Input should be a valid string"),
        (json.dumps({"timeLimitSeconds": 0}).encode(), "timeLimitSeconds"),
        (json.dumps({"backoffLimit": -1}).encode(), "backoffLimit"),
        (json.dumps({"variables": {"A": 1}}).encode(), "variables.A"),
        (
            json.dumps({"failurePolicy": {"rules": [{"action": "Explode"}]}}).encode(),
            "failurePolicy.rules.0.action",
        ),
    ],
)
async def test_a_body_that_does_not_fit_the_schema_is_422_naming_the_field(
    scheduler: Client, kube: FakeKube, body: bytes, fragment: str
) -> None:
    kube.clear_audit()
    response = await scheduler.post("/api/v1/jobs", data=body)
    await expect_status(response, 422, "Invalid", fragment)
    assert creations(kube) == []


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/batches"])
@pytest.mark.parametrize("depth", [200_000, 900])
async def test_deeply_nested_json_is_422_like_any_malformed_body_and_logs_no_error(
    scheduler: Client, path: str, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"payload": ' + b"[" * depth + b"]" * depth + b"}"
    response = await scheduler.post(path, data=body)
    assert response.status == 422, await response.text()
    assert (await response.json())["reason"] == "Invalid"
    if depth == 200_000:
        assert "the body's JSON is nested too deeply" in (await response.json())["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_json_null_and_unknown_fields_are_accepted_like_radix(scheduler: Client) -> None:
    assert (await scheduler.post("/api/v1/jobs", data=b"null")).status == 200
    assert (await scheduler.post("/api/v1/jobs", data=b'{"futureField": 1}')).status == 200


async def test_a_payload_of_exactly_one_mib_is_accepted(scheduler: Client) -> None:
    body = json.dumps({"payload": "é" * (ONE_MIB // 2)}).encode()
    response = await scheduler.post("/api/v1/jobs", data=io.BytesIO(body))
    assert response.status == 200, await response.text()


async def test_a_payload_over_one_mib_is_413_and_nothing_is_created(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.clear_audit()
    body = json.dumps({"payload": "x" * (ONE_MIB + 1)}).encode()
    response = await scheduler.post("/api/v1/jobs", data=io.BytesIO(body))
    await expect_status(response, 413, "RequestEntityTooLarge", "1048577 bytes")
    assert creations(kube) == []


async def test_a_huge_body_is_413_not_a_crash(scheduler: Client) -> None:
    # The default limit of the whole body is 32 MiB (a batch carries many payloads).
    response = await scheduler.post("/api/v1/jobs", data=io.BytesIO(b" " * (33 * ONE_MIB)))
    await expect_status(response, 413, "RequestEntityTooLarge")


async def test_a_payload_for_a_job_without_payload_path_is_422_and_nothing_is_created(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    etl = await scheduler_factory("etl")
    kube.clear_audit()
    response = await etl.post("/api/v1/jobs", json={"payload": "data"})
    await expect_status(response, 422, "Invalid", "no payload.path")
    assert creations(kube) == []


@pytest.mark.parametrize(
    "name",
    ["compute-20240101000000-abcdefgh", "..%2Fx", "x" * 300, "%00", "compute-"],
)
async def test_an_unknown_job_name_is_404_for_get_and_delete(scheduler: Client, name: str) -> None:
    await expect_status(await scheduler.get(f"/api/v1/jobs/{name}"), 404, "NotFound")
    await expect_status(await scheduler.delete(f"/api/v1/jobs/{name}"), 404, "NotFound")


async def test_unknown_routes_and_methods_answer_with_a_status(scheduler: Client) -> None:
    await expect_status(await scheduler.get("/api/v1/nope"), 404, "NotFound")
    await expect_status(await scheduler.put("/api/v1/jobs"), 405, "MethodNotAllowed")


async def test_a_failure_half_way_through_leaves_nothing_behind(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.faults.fail("POST", r"/secrets$", status=500, times=1)
    response = await scheduler.post("/api/v1/jobs", json={"payload": "p"})
    await expect_status(response, 503, "ServiceUnavailable", "500")

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
        await expect_status(response, 503, "ServiceUnavailable")
    finally:
        kube.faults.down = False
