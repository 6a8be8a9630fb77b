"""A job's payload schema at the door, on both backends: a POST /jobs, or a batch, whose payload
is not JSON or breaks the schema is refused with 422 naming, for every job at once, the JSON
pointer, the rule and the value; nothing is created. The schema is served, and a payload can be
checked without creating anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.api.calls import expect_failure, listed
from tests.conftest import TEST_CONFIG, ClientFactory, ok_json
from tests.factories import JSON, Client

ORDER = {
    "title": "Order",
    "description": "The items to compute",
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 0}},
            },
        }
    },
}
GOOD = json.dumps({"items": [{"size": 1}]})
NEGATIVE = json.dumps({"items": [{"size": -1}]})


async def with_schema(start: ClientFactory, tmp_path: Path) -> Client:
    """A scheduler of job `compute` whose payloads must satisfy ORDER."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    compute = next(job for job in config["spec"]["jobs"] if job["name"] == "compute")
    compute["payload"]["schema"] = ORDER
    path = tmp_path / "radixconfig-schema.yaml"
    path.write_text(yaml.safe_dump(config))
    return await start(RADIX_CONFIG_FILE=str(path))


async def causes(response: Any) -> list[JSON]:
    body = await response.json()
    found: list[JSON] = body["details"]["causes"]
    return found


async def nothing_listed(client: Client) -> bool:
    return not await listed(client, "/api/v1/batches") and not await listed(client, "/api/v1/jobs")


async def test_a_payload_that_satisfies_the_schema_creates_the_job(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)

    job = await ok_json(await client.post("/api/v1/jobs", json={"payload": GOOD}))

    assert await listed(client, "/api/v1/jobs") == [job["name"]]


async def test_a_payload_that_breaks_the_schema_is_422_naming_pointer_rule_and_value(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)

    response = await client.post("/api/v1/jobs", json={"payload": NEGATIVE})

    await expect_failure(
        response,
        422,
        "Invalid",
        "the payload does not satisfy the payload schema of job compute: "
        "payload/items/0/size: 'minimum': -1 is less than the minimum of 0",
    )
    assert await causes(response) == [
        {
            "field": "payload",
            "pointer": "/items/0/size",
            "rule": "minimum",
            "value": -1,
            "message": "-1 is less than the minimum of 0",
        }
    ]
    assert await nothing_listed(client)


async def test_a_batch_names_every_job_whose_payload_breaks_the_schema_and_creates_nothing(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)
    jobs = [{"payload": NEGATIVE}, {"payload": GOOD}, {"payload": json.dumps({"items": [{}]})}]

    response = await client.post("/api/v1/batches", json={"jobScheduleDescriptions": jobs})

    await expect_failure(response, 422, "Invalid", "2 of 3 payloads do not satisfy")
    assert [(c["field"], c["pointer"], c["rule"]) for c in await causes(response)] == [
        ("jobScheduleDescriptions[0].payload", "/items/0/size", "minimum"),
        ("jobScheduleDescriptions[2].payload", "/items/0", "required"),
    ]
    assert await nothing_listed(client)


async def test_a_payload_that_is_not_json_is_422_with_the_rule_json(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)

    response = await client.post("/api/v1/jobs", json={"payload": "{'data':'value'}"})

    await expect_failure(response, 422, "Invalid", "payload: 'json': not JSON")
    ((cause,),) = [await causes(response)]
    assert (cause["pointer"], cause["rule"], cause["value"]) == ("", "json", "{'data':'value'}")
    assert await nothing_listed(client)


async def test_a_job_with_a_schema_needs_a_payload(start: ClientFactory, tmp_path: Path) -> None:
    client = await with_schema(start, tmp_path)

    response = await client.post("/api/v1/jobs", data=b"")

    await expect_failure(response, 422, "Invalid", "payload: 'required'")
    assert [c["rule"] for c in await causes(response)] == ["required"]


async def test_a_big_value_is_quoted_short_and_the_causes_are_capped(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)
    payload = json.dumps({"items": [{"size": -i - 1, "note": "x" * 200} for i in range(30)]})

    response = await client.post("/api/v1/jobs", json={"payload": payload})

    await expect_failure(response, 422, "Invalid", "; and 10 more")
    found = await causes(response)
    assert len(found) == 20
    assert found[19]["pointer"] == "/items/19/size"
    # The root's `type` error quotes the payload itself: only its start.
    response = await client.post("/api/v1/jobs", json={"payload": json.dumps(["x" * 500])})
    ((cause,),) = [await causes(response)]
    assert cause["rule"] == "type"
    assert cause["value"].startswith('["xxx') and cause["value"].endswith("…")
    assert len(cause["value"]) == 80


async def test_the_size_limit_is_checked_before_the_schema(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)
    jobs = [{"payload": "not json"}, {"payload": "x" * (1024 * 1024 + 1)}]

    response = await client.post("/api/v1/batches", json={"jobScheduleDescriptions": jobs})

    await expect_failure(
        response, 413, "RequestEntityTooLarge", "jobScheduleDescriptions[1].payload is too large"
    )


async def test_info_and_the_payload_schema_path_serve_the_schema(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)

    info = await ok_json(await client.get("/api/v1/info"))
    served = await ok_json(await client.get("/api/v1/payload-schema"))

    assert info["payloadSchema"] == served == ORDER


async def test_a_job_without_a_schema_serves_none(client: Client) -> None:
    info = await ok_json(await client.get("/api/v1/info"))

    assert "payloadSchema" not in info
    await expect_failure(
        await client.get("/api/v1/payload-schema"),
        404,
        "NotFound",
        "job compute has no payload schema",
    )


async def test_check_says_whether_a_payload_would_be_taken_and_creates_nothing(
    start: ClientFactory, tmp_path: Path
) -> None:
    client = await with_schema(start, tmp_path)
    check = "/api/v1/payload-schema/check"

    good = await ok_json(await client.post(check, json={"payload": GOOD}))
    bad = await client.post(check, json={"payload": NEGATIVE})
    too_large = await client.post(check, json={"payload": "x" * (1024 * 1024 + 1)})

    assert (good["status"], good["message"]) == ("Success", "the payload satisfies the schema")
    await expect_failure(bad, 422, "Invalid", "payload/items/0/size: 'minimum'")
    assert [(c["pointer"], c["rule"], c["value"]) for c in await causes(bad)] == [
        ("/items/0/size", "minimum", -1)
    ]
    await expect_failure(too_large, 413, "RequestEntityTooLarge", "payload is too large")
    assert await nothing_listed(client)


async def test_check_without_a_schema_checks_the_size_only(client: Client) -> None:
    check = "/api/v1/payload-schema/check"

    fits = await ok_json(await client.post(check, json={"payload": "anything"}))

    assert fits["message"] == "job compute has no payload schema; the payload fits"
    await expect_failure(
        await client.post(check, json={"payload": "x" * (1024 * 1024 + 1)}),
        413,
        "RequestEntityTooLarge",
    )
