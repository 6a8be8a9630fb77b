"""Webhook notifications end to end: a radixconfig with `notifications.webhook`, a scheduler on the
fake API server, and a real receiver on loopback that checks what Radix clients would check."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import TEST_CONFIG, ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube

SECRET = "webhook-secret"
SHORT = {"command": ["sh", "-c", "sleep 1; exit 0"]}
LATER = {"command": ["sh", "-c", "sleep 10; exit 0"]}
LONG = {"command": ["sh", "-c", "sleep 1000; exit 0"]}
# A job's statuses in the order they can follow each other.
PROGRESS = ["Waiting", "Active", "Running", "Stopping", "Succeeded", "Failed", "Stopped"]


@dataclass(frozen=True)
class Seen:
    event_id: str
    timestamp: str
    signature: str | None
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


class Receiver:
    """Records every POST; answers 500 to the first `failures` of them, 200 after."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.failures = 0

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        seen = Seen(
            request.headers["X-Scheduler-Event-Id"],
            request.headers["X-Scheduler-Timestamp"],
            request.headers.get("X-Scheduler-Signature"),
            await request.read(),
        )
        self.requests.append(seen)
        if len(self.requests) <= self.failures:
            return web.Response(status=500)
        return web.Response(status=204)

    @property
    def delivered(self) -> list[Seen]:
        """One per event (the last attempt of each), in the order they were delivered."""
        last = {seen.event_id: seen for seen in self.requests[self.failures :]}
        return list(last.values())

    def events_for(self, name: str) -> list[dict[str, Any]]:
        return [seen.event for seen in self.delivered if seen.event["name"] == name]


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> tuple[Receiver, str]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    return receiver, str(server.make_url("/hook"))


def radixconfig_with_webhook(tmp_path: Path, url: str, *, in_environment: bool) -> Path:
    config = yaml.safe_load(TEST_CONFIG.read_text())
    compute = next(job for job in config["spec"]["jobs"] if job["name"] == "compute")
    if in_environment:
        compute["environmentConfig"] = [{"environment": "dev", "notifications": {"webhook": url}}]
    else:
        compute["notifications"] = {"webhook": url}
    path = tmp_path / "radixconfig-webhook.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def notifying_scheduler(
    receiver: tuple[Receiver, str], scheduler_factory: ClientFactory, tmp_path: Path
) -> Callable[..., Any]:
    """Schedulers whose radixconfig sends the `compute` job's events to the receiver (which is
    set up first so it outlives them: a closing scheduler still delivers what it queued)."""

    async def start(in_environment: bool = False, **env: str) -> Client:
        config = radixconfig_with_webhook(tmp_path, receiver[1], in_environment=in_environment)
        return await scheduler_factory(
            RADIX_CONFIG_FILE=str(config), SCHEDULER_WEBHOOK_SECRET=SECRET, **env
        )

    return start


def signed(seen: Seen) -> bool:
    signed_text = f"{seen.event_id}.{seen.timestamp}.".encode() + seen.body
    digest = hmac.new(SECRET.encode(), signed_text, hashlib.sha256).hexdigest()
    return seen.signature is not None and hmac.compare_digest(seen.signature, f"sha256={digest}")


def assert_in_progress_order(events: list[dict[str, Any]]) -> None:
    """Each job's statuses, across the events that carry it, only move forward."""
    seen: dict[str, list[int]] = {}
    for event in events:
        for job in event["jobStatuses"]:
            seen.setdefault(job["name"], []).append(PROGRESS.index(job["status"]))
    for name, steps in seen.items():
        assert steps == sorted(steps), f"{name} went back: {[PROGRESS[s] for s in steps]}"


@pytest.mark.parametrize("in_environment", [False, True])
async def test_a_single_job_is_announced_created_updated_and_deleted(
    notifying_scheduler: Callable[..., Any],
    receiver: tuple[Receiver, str],
    in_environment: bool,
) -> None:
    hook = receiver[0]
    client = await notifying_scheduler(in_environment=in_environment)
    name = (await post_job(client, {"jobId": "j1", **SHORT}))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200

    async def deleted() -> bool:
        return any(e["event"] == "Delete" for e in hook.events_for(name))

    await wait_until(deleted)
    events = hook.events_for(name)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "Create" and kinds[-1] == "Delete"
    assert set(kinds[1:-1]) == {"Update"}
    assert [e["jobStatuses"][-1]["status"] for e in events][-2:] == ["Succeeded", "Succeeded"]
    for event in events:
        assert (event["batchType"], event["name"]) == ("job", name)
        assert [(j["name"], j["jobId"]) for j in event["jobStatuses"]] == [(name, "j1")]
        assert event["event"] in ("Create", "Update", "Delete")
    assert_in_progress_order(events)
    assert all(signed(seen) for seen in hook.requests)
    ids = [seen.event_id for seen in hook.delivered]
    assert len(ids) == len(set(ids))


async def test_a_batch_is_announced_in_order_with_only_the_changed_jobs_in_updates(
    notifying_scheduler: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    hook = receiver[0]
    client = await notifying_scheduler()
    response = await client.post(
        "/api/v1/batches",
        json={"batchId": "b1", "jobScheduleDescriptions": [SHORT, {**LATER, "jobId": "x"}]},
    )
    assert response.status == 200, await response.text()
    created = await response.json()
    name = created["name"]
    jobs = {job["name"] for job in created["jobStatuses"]}

    async def completed() -> bool:
        return any(e.get("status") == "Completed" for e in hook.events_for(name))

    await wait_until(completed)
    assert (await client.delete(f"/api/v1/batches/{name}")).status == 200

    async def deleted() -> bool:
        return any(e["event"] == "Delete" for e in hook.events_for(name))

    await wait_until(deleted)
    events = hook.events_for(name)
    assert [e["event"] for e in events[:1]] == ["Create"]
    assert {j["name"] for j in events[0]["jobStatuses"]} == jobs
    assert events[-1]["event"] == "Delete"
    assert {e["event"] for e in events[1:-1]} == {"Update"}
    for event in events:
        assert (event["batchType"], event["batchId"]) == ("batch", "b1")
        assert {j["name"] for j in event["jobStatuses"]} <= jobs
        assert all(j["batchName"] == name for j in event["jobStatuses"])
    # An update carries the jobs that changed, not the whole batch: the later job ends alone.
    assert [j["jobId"] for j in events[-2]["jobStatuses"]] == ["x"]
    batch_statuses = [e["status"] for e in events[:-1]]
    assert batch_statuses[0] in ("Waiting", "Active") and batch_statuses[-1] == "Completed"
    assert all(signed(seen) for seen in hook.requests)


async def test_a_restarted_scheduler_announces_no_create_for_jobs_it_finds(
    notifying_scheduler: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    hook = receiver[0]
    first = await notifying_scheduler()
    old = (await post_job(first, LONG))["name"]
    await wait_for_status(first, old, "Running")

    async def announced() -> bool:
        return any(e["event"] == "Create" for e in hook.events_for(old))

    await wait_until(announced)
    await first.close()
    hook.requests.clear()

    second = await notifying_scheduler()
    assert (await post_job(second, SHORT))["name"]
    new = (await post_job(second, SHORT))["name"]
    assert (await second.post(f"/api/v1/jobs/{old}/stop")).status == 200

    async def caught_up() -> bool:
        old_events = hook.events_for(old)
        return bool(hook.events_for(new)) and any(
            e["jobStatuses"][0]["status"] == "Stopped" for e in old_events
        )

    await wait_until(caught_up)
    # The old job's news since the restart are updates; it is not announced as new.
    assert {e["event"] for e in hook.events_for(old)} == {"Update"}
    assert hook.events_for(new)[0]["event"] == "Create"


async def test_events_reach_a_receiver_that_fails_and_then_recovers(
    notifying_scheduler: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    hook = receiver[0]
    hook.failures = 3
    client = await notifying_scheduler(SCHEDULER_WEBHOOK_ATTEMPTS="10")
    name = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, name, "Succeeded")

    async def all_delivered() -> bool:
        return any(e["jobStatuses"][0]["status"] == "Succeeded" for e in hook.events_for(name))

    await wait_until(all_delivered, timeout=30)
    # The failed attempts were of the first event, retried under the same id until it got
    # through; nothing overtook it.
    first_id = hook.requests[0].event_id
    assert {seen.event_id for seen in hook.requests[:4]} == {first_id}
    events = hook.events_for(name)
    assert events[0]["event"] == "Create"
    assert hook.delivered[0].event_id == first_id
    assert_in_progress_order(events)
    assert all(signed(seen) for seen in hook.requests)


async def test_a_restarted_scheduler_announces_the_deletion_of_a_batch_it_found(
    notifying_scheduler: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    hook = receiver[0]
    first = await notifying_scheduler()
    response = await first.post("/api/v1/batches", json={"jobScheduleDescriptions": [SHORT]})
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]

    async def completed() -> bool:
        return any(e["status"] == "Completed" for e in hook.events_for(name))

    await wait_until(completed)
    await first.close()
    hook.requests.clear()

    second = await notifying_scheduler()
    assert (await second.get(f"/api/v1/batches/{name}")).status == 200
    assert (await second.delete(f"/api/v1/batches/{name}")).status == 200
    single = (await post_job(second, SHORT))["name"]

    async def delivered() -> bool:  # events of one scheduler go out in order per key only
        return bool(hook.events_for(single)) and bool(hook.events_for(name))

    await wait_until(delivered)
    assert [e["event"] for e in hook.events_for(name)] == ["Delete"]


async def test_an_update_is_sent_only_when_a_job_status_or_message_changes(
    notifying_scheduler: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    hook = receiver[0]
    client = await notifying_scheduler()
    name = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, name, "Succeeded")

    async def succeeded() -> bool:
        return any(e["jobStatuses"][0]["status"] == "Succeeded" for e in hook.events_for(name))

    await wait_until(succeeded)
    steps = [(e["jobStatuses"][0]["status"], e.get("message")) for e in hook.events_for(name)]
    repeated = [a for a, b in itertools.pairwise(steps) if a == b]
    assert repeated == [], steps


async def test_the_create_event_of_a_batch_carries_all_its_jobs(
    notifying_scheduler: Callable[..., Any], receiver: tuple[Receiver, str], kube: FakeKube
) -> None:
    hook = receiver[0]
    client = await notifying_scheduler()
    # One job of the batch is started later than the other (a slow API server).
    held = kube.faults.hold("PATCH", r"/jobs/batch-", times=1)
    body = {"jobScheduleDescriptions": [SHORT, SHORT]}
    answer = asyncio.ensure_future(client.post("/api/v1/batches", json=body))
    await held.wait_arrived()

    async def one_job_visible() -> bool:
        return bool(await (await client.get("/api/v1/batches")).json())

    await wait_until(one_job_visible)
    held.release()
    response = await answer
    assert response.status == 200, await response.text()
    created = await response.json()

    async def announced() -> bool:
        return any(e["event"] == "Create" for e in hook.events_for(created["name"]))

    await wait_until(announced)
    create = hook.events_for(created["name"])[0]
    assert create["event"] == "Create"
    assert {j["name"] for j in create["jobStatuses"]} == {j["name"] for j in created["jobStatuses"]}
