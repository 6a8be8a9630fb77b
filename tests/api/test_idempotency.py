"""Safe retries: an Idempotency-Key on POST /jobs and /batches answers a repeat with what the first
request made, across restarts and replicas, until the key expires."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.api.keys import BACKEND, BATCHES, SERVICE, VIEW
from scheduler.backends.kubernetes.keys import claim_name
from scheduler.backends.kubernetes.manifests import LABEL_IDEMPOTENCY_KEY
from scheduler.domain.idempotency import IN_PROGRESS, Idempotency, body_hash, key_hash
from scheduler.errors import ConflictError
from scheduler.models import JobScheduleDescription
from tests.conftest import NAMESPACE, ClientFactory, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube

SHORT = {"command": ["sh", "-c", "sleep 1; exit 0"]}


async def post(client: Client, path: str, body: Any, key: str | None) -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(f"/api/v1/{path}", data=data, headers=headers)
    return response.status, await response.json()


async def job_names(client: Client) -> list[str]:
    return [job["name"] for job in await (await client.get("/api/v1/jobs")).json()]


async def test_a_repeat_with_the_same_key_and_body_answers_with_the_first_job(
    start: ClientFactory,
) -> None:
    client = await start("etl")
    status, first = await post(client, "jobs", {"jobId": "a", **SHORT}, "key-1")
    assert status == 200
    # The same request spelled differently: other whitespace, other key order.
    spelled = b'{ "command" : ["sh", "-c", "sleep 1; exit 0"],\n  "jobId": "a" }'
    status, again = await post(client, "jobs", spelled, "key-1")
    assert status == 200
    assert again["name"] == first["name"] and again["jobId"] == "a"
    assert await job_names(client) == [first["name"]]


async def test_the_same_key_with_another_body_is_422_saying_so(start: ClientFactory) -> None:
    client = await start("etl")
    status, first = await post(client, "jobs", {"jobId": "a", **SHORT}, "key-1")
    assert status == 200
    status, answer = await post(client, "jobs", {"jobId": "b", **SHORT}, "key-1")
    assert status == 422
    assert answer["reason"] == "Invalid"
    assert "Idempotency-Key was used before with a different request body" in answer["message"]
    assert first["name"] in answer["message"]
    # A key used for a job is not a batch's key either.
    status, answer = await post(client, "batches", {"jobScheduleDescriptions": [{}]}, "key-1")
    assert status == 422
    assert await job_names(client) == [first["name"]]


async def test_the_stored_body_hash_cannot_confirm_a_guessed_body_without_the_key(
    start: ClientFactory,
) -> None:
    client = await start("etl")
    body = {"jobId": "a", "variables": {"DB_PASSWORD": "hunter2"}, **SHORT}
    assert (await post(client, "jobs", body, "key-1"))[0] == 200
    assert (await post(client, "jobs", body, "key-2"))[0] == 200
    stored = {key: await stored_body_hash(client, key) for key in ("key-1", "key-2")}

    # Whoever reads the claims can compute a guess's plain SHA-256: it matches neither.
    canonical = json.dumps(
        _description(body).model_dump(mode="json", by_alias=True),
        sort_keys=True,
        separators=(",", ":"),
    )
    guessed = hashlib.sha256(canonical.encode()).hexdigest()
    assert guessed not in stored.values()
    assert stored["key-1"] != stored["key-2"]  # keyed: the same body, another hash
    # And the key still tells the same body from another.
    status, answer = await post(
        client, "jobs", {**body, "variables": {"DB_PASSWORD": "x"}}, "key-1"
    )
    assert status == 422
    assert "Idempotency-Key was used before with a different request body" in answer["message"]


async def stored_body_hash(client: Client, key: str) -> str:
    claim = await client.app[BACKEND].keys.claim_key(
        key_hash("etl", key), body_hash="probe", kind="job", name="etl-probe", now=datetime.now(UTC)
    )
    assert not claim.new
    return claim.body_hash


async def test_a_key_makes_a_batch_once(start: ClientFactory) -> None:
    client = await start("etl")
    body = {"batchId": "b1", "jobScheduleDescriptions": [SHORT, SHORT]}
    status, first = await post(client, "batches", body, "batch-key")
    assert status == 200
    status, again = await post(client, "batches", body, "batch-key")
    assert status == 200
    assert again["name"] == first["name"]
    assert sorted(j["name"] for j in again["jobStatuses"]) == sorted(
        j["name"] for j in first["jobStatuses"]
    )
    batches = await (await client.get("/api/v1/batches")).json()
    assert [batch["name"] for batch in batches] == [first["name"]]


async def test_requests_without_a_key_or_with_other_keys_make_jobs_of_their_own(
    start: ClientFactory,
) -> None:
    client = await start("etl")
    names = {(await post(client, "jobs", SHORT, key))[1]["name"] for key in (None, None, "x", "y")}
    assert len(names) == 4


async def test_an_empty_key_is_422(start: ClientFactory) -> None:
    client = await start("etl")
    status, answer = await post(client, "jobs", SHORT, "  ")
    assert status == 422 and "Idempotency-Key" in answer["message"]
    assert await job_names(client) == []


async def test_a_key_holds_across_a_restart(start: ClientFactory) -> None:
    first = await start("etl")
    status, created = await post(first, "jobs", SHORT, "restart-key")
    assert status == 200
    await first.close()
    second = await start("etl")
    status, again = await post(second, "jobs", SHORT, "restart-key")
    assert status == 200
    assert again["name"] == created["name"]
    assert await job_names(second) == [created["name"]]


async def test_two_replicas_racing_the_same_key_create_one_job(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    one, two = await scheduler_factory("etl"), await scheduler_factory("etl")
    for round_ in range(5):
        key = f"race-{round_}"
        (s1, a), (s2, b) = await asyncio.gather(
            post(one, "jobs", SHORT, key), post(two, "jobs", SHORT, key)
        )
        assert (s1, s2) == (200, 200), (a, b)
        assert a["name"] == b["name"]
    assert len(kube.list("Job", NAMESPACE)) == 5


async def test_after_the_ttl_a_key_makes_a_new_job(start: ClientFactory) -> None:
    client = await start("etl", SCHEDULER_IDEMPOTENCY_TTL_SECONDS="1")
    status, first = await post(client, "jobs", SHORT, "short-lived")
    assert status == 200
    latest: dict[str, Any] = first

    async def expired() -> bool:
        nonlocal latest
        status, latest = await post(client, "jobs", SHORT, "short-lived")
        assert status == 200
        return bool(latest["name"] != first["name"])

    await wait_until(expired)
    assert sorted(await job_names(client)) == sorted([first["name"], latest["name"]])


async def test_the_sweep_removes_expired_claims(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory("etl", SCHEDULER_IDEMPOTENCY_TTL_SECONDS="1")
    assert (await post(client, "jobs", SHORT, "swept"))[0] == 200
    claims = lambda: kube.list("ConfigMap", NAMESPACE, LABEL_IDEMPOTENCY_KEY)  # noqa: E731
    assert [c["metadata"]["name"] for c in claims()] == [claim_name(key_hash("etl", "swept"))]

    async def swept() -> bool:
        return not claims()

    await wait_until(swept)


def _description(body: dict[str, Any]) -> JobScheduleDescription:
    return JobScheduleDescription.model_validate(body)


async def test_a_claim_whose_job_never_appeared_is_taken_over_after_the_grace_time(
    start: ClientFactory,
) -> None:
    # A scheduler claimed the key and crashed before it created the job.
    client = await start("etl", SCHEDULER_CREATE_GRACE_SECONDS="1")
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await client.app[BACKEND].keys.claim_key(
        key_hash("etl", "crashed"),
        body_hash=body_hash(_description(SHORT), "crashed"),
        kind="job",
        name="etl-gone",
        now=long_ago,
    )
    status, created = await post(client, "jobs", SHORT, "crashed")
    assert status == 200 and created["name"] != "etl-gone"
    status, again = await post(client, "jobs", SHORT, "crashed")
    assert (status, again["name"]) == (200, created["name"])


async def test_a_repeat_while_the_first_is_still_creating_is_409_retry(
    start: ClientFactory,
) -> None:
    client = await start("etl")
    app = client.app
    await app[BACKEND].keys.claim_key(
        key_hash("etl", "busy"),
        body_hash=body_hash(_description(SHORT), "busy"),
        kind="job",
        name="etl-soon",
        now=datetime.now(UTC),
    )
    impatient = Idempotency(
        app[BACKEND].keys, app[VIEW], app[SERVICE], app[BATCHES], wait_seconds=0.05
    )
    with pytest.raises(ConflictError, match=IN_PROGRESS) as raised:
        await impatient.create_job("busy", _description(SHORT))
    assert raised.value.http_status == 409
    assert await job_names(client) == []
