"""Every client mistake gets a `Status` body with the right code and creates no job, on both
backends. That a refused request makes no write to the API server, and what a failing API
server answers, is in tests/backends/kubernetes."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tests.api.calls import expect_failure, listed
from tests.conftest import ClientFactory
from tests.factories import Client

ONE_MIB = 1024 * 1024

# Job bodies that do not fit the schema, each with what its 422 names.
UNFIT_BODIES = [
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
]


@pytest.mark.parametrize(("body", "fragment"), UNFIT_BODIES)
async def test_a_body_that_does_not_fit_the_schema_is_422_naming_the_field(
    client: Client, body: bytes, fragment: str
) -> None:
    response = await client.post("/api/v1/jobs", data=body)
    await expect_failure(response, 422, "Invalid", fragment)
    assert await listed(client, "/api/v1/jobs") == []


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/batches"])
@pytest.mark.parametrize("depth", [200_000, 900])
async def test_deeply_nested_json_is_422_like_any_malformed_body_and_logs_no_error(
    client: Client, path: str, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"payload": ' + b"[" * depth + b"]" * depth + b"}"
    response = await client.post(path, data=body)
    assert response.status == 422, await response.text()
    assert (await response.json())["reason"] == "Invalid"
    if depth == 200_000:
        assert "the body's JSON is nested too deeply" in (await response.json())["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_json_null_and_unknown_fields_are_accepted_like_radix(client: Client) -> None:
    assert (await client.post("/api/v1/jobs", data=b"null")).status == 200
    assert (await client.post("/api/v1/jobs", data=b'{"futureField": 1}')).status == 200


async def test_a_payload_of_exactly_one_mib_is_accepted(client: Client) -> None:
    body = json.dumps({"payload": "é" * (ONE_MIB // 2)}).encode()
    response = await client.post("/api/v1/jobs", data=io.BytesIO(body))
    assert response.status == 200, await response.text()


async def test_a_payload_over_one_mib_is_413_and_nothing_is_created(client: Client) -> None:
    body = json.dumps({"payload": "x" * (ONE_MIB + 1)}).encode()
    response = await client.post("/api/v1/jobs", data=io.BytesIO(body))
    await expect_failure(response, 413, "RequestEntityTooLarge", "1048577 bytes")
    assert await listed(client, "/api/v1/jobs") == []


async def test_a_huge_body_is_413_not_a_crash(client: Client) -> None:
    # The default limit of the whole body is 32 MiB (a batch carries many payloads).
    response = await client.post("/api/v1/jobs", data=io.BytesIO(b" " * (33 * ONE_MIB)))
    await expect_failure(response, 413, "RequestEntityTooLarge")


async def test_a_payload_for_a_job_without_payload_path_is_422_and_nothing_is_created(
    start: ClientFactory,
) -> None:
    etl = await start("etl")
    response = await etl.post("/api/v1/jobs", json={"payload": "data"})
    await expect_failure(response, 422, "Invalid", "no payload.path")
    assert await listed(etl, "/api/v1/jobs") == []


@pytest.mark.parametrize(
    "name",
    ["compute-20240101000000-abcdefgh", "..%2Fx", "x" * 300, "%00", "compute-"],
)
async def test_an_unknown_job_name_is_404_for_get_and_delete(client: Client, name: str) -> None:
    await expect_failure(await client.get(f"/api/v1/jobs/{name}"), 404, "NotFound")
    await expect_failure(await client.delete(f"/api/v1/jobs/{name}"), 404, "NotFound")


async def test_unknown_routes_and_methods_answer_with_a_status(client: Client) -> None:
    await expect_failure(await client.get("/api/v1/nope"), 404, "NotFound")
    await expect_failure(await client.put("/api/v1/jobs"), 405, "MethodNotAllowed")
