"""Why each attempt waited stays with the job once it runs, on both backends alike, and after a
scheduler restart: a job held for its start time, one whose pod no node had room for (on
Kubernetes), one that waited in line for a free slot (locally). Its `waited` names the last
reason, in the words its message used while it waited, and how long it waited."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.api.calls import LONG, SHORT, stop
from tests.api.test_kept_attempts import restarted
from tests.api.test_start_after import later
from tests.api.test_waiting_reasons import local_only, message_becomes
from tests.conftest import ClientFactory, job_status, post_job, wait_for_status, wait_until
from tests.factories import JSON, Client
from tests.fakekube.kubelet import Kubelet


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def waited_once_ended(client: Client, name: str) -> JSON:
    """The job's first attempt's `waited` once the job has succeeded and says so (on Kubernetes,
    once its attempt's record keeps it), checked against the job's own times."""
    await wait_for_status(client, name, "Succeeded", timeout=30)
    found: JSON = {}

    async def told() -> bool:
        nonlocal found
        found = await job_status(client, name)
        return "waited" in found["podStatuses"][0]

    await wait_until(told, timeout=15)
    attempt = found["podStatuses"][0]
    waited: JSON = attempt["waited"]
    # Both times are whole seconds on the wire: the wait, counted exactly, is within one.
    since_created = (parse(attempt["startTime"]) - parse(found["created"])).total_seconds()
    assert abs(waited["seconds"] - since_created) <= 1, (waited, found)
    return waited


async def test_a_job_held_for_its_start_time_tells_it_waited_for_it_after_it_ran(
    backend: str, start: ClientFactory
) -> None:
    client = await start()
    begin = later(2)
    name = (await post_job(client, {**SHORT, "startAfter": begin}))["name"]

    waited = await waited_once_ended(client, name)
    assert (waited["reason"], waited["message"]) == ("Held", f"starts at {begin}")
    assert waited["seconds"] >= 1
    status = await job_status(await restarted(client, start), name)
    assert status["podStatuses"][0]["waited"] == waited


@pytest.fixture
def node_with_room_later(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The fake's node, made room on when the test sets the event: until then a pod that asks
    for more than it has is Unschedulable (the fake would keep it so until it is deleted)."""
    freed = asyncio.Event()
    unschedulable = Kubelet._schedule

    async def schedule(kubelet: Kubelet, namespace: str, name: str, uid: str) -> None:
        scheduling = asyncio.ensure_future(unschedulable(kubelet, namespace, name, uid))
        freeing = asyncio.ensure_future(freed.wait())
        try:
            await asyncio.wait({scheduling, freeing}, return_when=asyncio.FIRST_COMPLETED)
            if scheduling.done():
                scheduling.result()  # it fit at once, or it is gone
        finally:
            scheduling.cancel()
            freeing.cancel()

    monkeypatch.setattr(Kubelet, "_schedule", schedule)
    return freed


async def test_a_job_no_node_had_room_for_at_first_tells_so_after_it_ran(
    scheduler_factory: ClientFactory, node_with_room_later: asyncio.Event
) -> None:
    client = await scheduler_factory()
    body = {**SHORT, "resources": {"requests": {"cpu": "100m", "memory": "1Ti"}}}
    name = (await post_job(client, body))["name"]
    told = "0/1 nodes are available: 1 Insufficient memory"
    await message_becomes(client, name, f"Unschedulable: {told}")

    node_with_room_later.set()
    waited = await waited_once_ended(client, name)
    assert (waited["reason"], waited["message"]) == ("Unschedulable", told)
    status = await job_status(await restarted(client, scheduler_factory), name)
    assert status["podStatuses"][0]["waited"] == waited


async def test_a_running_job_no_node_had_room_for_at_first_tells_so_while_it_runs(
    scheduler_factory: ClientFactory, node_with_room_later: asyncio.Event
) -> None:
    client = await scheduler_factory()
    body = {**LONG, "resources": {"requests": {"cpu": "100m", "memory": "1Ti"}}}
    name = (await post_job(client, body))["name"]
    told = "0/1 nodes are available: 1 Insufficient memory"
    await message_becomes(client, name, f"Unschedulable: {told}")

    node_with_room_later.set()
    running = await wait_for_status(client, name, "Running")
    waited = running["podStatuses"][0]["waited"]
    assert (waited["reason"], waited["message"]) == ("Unschedulable", told)


@local_only
async def test_a_job_that_waited_in_line_tells_its_place_after_it_ran(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory(SCHEDULER_MAX_PARALLEL="1")
    holder = (await post_job(client, LONG))["name"]
    await wait_for_status(client, holder, "Running")
    queued = await post_job(client, SHORT)
    assert queued["message"] == "1st in line; 1 running at most"

    await stop(client, holder)
    waited = await waited_once_ended(client, queued["name"])
    assert (waited["reason"], waited["message"]) == ("Queued", "1st in line; 1 running at most")
    again = await restarted(client, local_scheduler_factory)
    assert (await job_status(again, queued["name"]))["podStatuses"][0]["waited"] == waited
    first = (await job_status(again, holder))["podStatuses"][0]
    assert "waited" not in first, "a slot free at once is no wait"
