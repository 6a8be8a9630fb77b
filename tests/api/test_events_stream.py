"""`GET /api/v1/events`: job and batch events as Server-Sent Events, read as an EventSource would,
on both backends; the benchmark script on a small scale; then the hub alone (ring, replay, slow
subscribers), without HTTP."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from scheduler.api.keys import EVENTS
from scheduler.api.sse import SSE
from scheduler.domain.events import DEFAULT_MAX_SUBSCRIBERS, EventHub
from scheduler.domain.notifying import Notification
from scheduler.models import BatchEvent, BatchType, Event, EventType, JobStatus, JobStatusEnum
from tests.conftest import ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import Client
from tests.service.test_notifications import radixconfig_with_webhook

BENCH = Path(__file__).resolve().parents[2] / "bench" / "events_bench.py"
BENCH_TIMEOUT_SECONDS = 120
SHORT = {"command": ["sh", "-c", "sleep 1; exit 0"]}
LONG = {"command": ["sh", "-c", "sleep 1000; exit 0"]}
# A job's statuses in the order they can follow each other.
PROGRESS = ["Waiting", "Active", "Running", "Stopping", "Succeeded", "Failed", "Stopped"]


@dataclass(frozen=True)
class Frame:
    id: int | None
    event: str | None
    data: str
    comment: str | None = None

    @property
    def number(self) -> int:
        assert self.id is not None, f"a frame without an id: {self}"
        return self.id

    @property
    def body(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.data)
        return result


class Stream:
    """An open event stream, parsed line by line as the SSE spec says."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def read(self) -> Frame | None:
        """The next frame or comment; None once the stream has ended."""
        fields: dict[str, list[str]] = {}
        while True:
            line = await self.response.content.readline()
            if not line:
                assert not fields, f"the stream ended inside a frame: {fields}"
                return None
            text = line.decode().removesuffix("\n")
            if text.startswith(":") and not fields:
                return Frame(None, None, "", comment=text[1:].strip())
            if not text:
                if fields:
                    ids = fields.get("id", [])
                    return Frame(
                        int(ids[-1]) if ids else None,
                        fields.get("event", [None])[-1],
                        "\n".join(fields.get("data", [])),
                    )
                continue
            name, _, value = text.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))

    async def frame(self) -> Frame:
        """The next frame (comments skipped); the stream must not end."""
        while True:
            frame = await self.read()
            assert frame is not None, "the stream ended"
            if frame.comment is None:
                return frame

    async def until(self, name: str, event: str) -> list[Frame]:
        """Frames up to and including `event` (Create, Update, Delete) about job or batch `name`."""
        frames = [await self.frame()]
        while not (frames[-1].event == event and frames[-1].body["name"] == name):
            frames.append(await self.frame())
        return frames

    async def rest(self) -> list[Frame]:
        """Every frame left, up to the end of the stream."""
        frames = []
        while (frame := await self.read()) is not None:
            if frame.comment is None:
                frames.append(frame)
        return frames


async def open_stream(client: Client, last_event_id: str | None = None, **query: str) -> Stream:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    response = await client.get("/api/v1/events", params=query, headers=headers)
    assert response.status == 200, await response.text()
    return Stream(response)


def about(frames: list[Frame], name: str) -> list[Frame]:
    return [frame for frame in frames if frame.body["name"] == name]


def statuses(frame: Frame) -> list[str]:
    return [job["status"] for job in frame.body["jobStatuses"]]


async def test_a_subscriber_sees_a_job_created_updated_and_deleted_in_order(
    start: ClientFactory,
) -> None:
    client = await start()
    stream = await open_stream(client)
    headers = stream.response.headers
    assert headers["Content-Type"] == "text/event-stream"
    assert (headers["Cache-Control"], headers["X-Accel-Buffering"]) == ("no-cache", "no")

    name = (await post_job(client, {"jobId": "j1", **SHORT}))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200
    frames = await stream.until(name, "Delete")

    assert all(frame.body["name"] == name for frame in frames)
    kinds = [frame.event for frame in frames]
    assert kinds[0] == "Create" and kinds[-1] == "Delete" and set(kinds[1:-1]) == {"Update"}
    assert [frame.body["event"] for frame in frames] == kinds
    ids = [frame.number for frame in frames]
    assert ids == sorted(set(ids)), ids
    progress = [statuses(frame)[0] for frame in frames[:-1]]
    assert progress[0] == "Waiting" and progress[-1] == "Succeeded" and "Running" in progress
    assert progress == sorted(progress, key=PROGRESS.index), progress
    for frame in frames:
        assert (frame.body["batchType"], frame.body["jobStatuses"][0]["jobId"]) == ("job", "j1")


async def test_each_event_carries_the_webhook_body_byte_for_byte(
    aiohttp_server: AiohttpServer, scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    delivered: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        delivered.append(await request.read())
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    url = str((await aiohttp_server(receiver)).make_url("/hook"))
    config = radixconfig_with_webhook(tmp_path, url, in_environment=False)
    client = await scheduler_factory(RADIX_CONFIG_FILE=str(config))
    stream = await open_stream(client)
    name = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200
    frames = await stream.until(name, "Delete")

    async def all_delivered() -> bool:
        return len(delivered) >= len(frames)

    await wait_until(all_delivered)
    assert [frame.data.encode() for frame in frames] == delivered


async def test_a_batch_create_carries_all_its_jobs(start: ClientFactory) -> None:
    client = await start()
    stream = await open_stream(client)
    jobs = [{"jobId": f"j{i}", **SHORT} for i in range(3)]
    response = await client.post("/api/v1/batches", json={"jobScheduleDescriptions": jobs})
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]

    created = (await stream.until(name, "Create"))[-1]
    assert created.body["batchType"] == "batch"
    assert sorted(job["jobId"] for job in created.body["jobStatuses"]) == ["j0", "j1", "j2"]


async def test_the_job_and_batch_filters_keep_only_their_events(start: ClientFactory) -> None:
    client = await start()
    everything = await open_stream(client)
    single = (await post_job(client, LONG))["name"]
    response = await client.post("/api/v1/batches", json={"jobScheduleDescriptions": [LONG, LONG]})
    batch = await response.json()
    batch_job = batch["jobStatuses"][0]["name"]
    await everything.until(single, "Create")
    await everything.until(batch["name"], "Create")
    by_job = await open_stream(client, job=single)
    by_batch = await open_stream(client, batch=batch["name"])
    by_batch_job = await open_stream(client, job=batch_job)

    # Each filtered stream is read up to its last event, after the others' events happened.
    assert (await client.post(f"/api/v1/jobs/{single}/stop")).status == 200
    await everything.until(single, "Update")
    assert (await client.delete(f"/api/v1/batches/{batch['name']}")).status == 200
    await everything.until(batch["name"], "Delete")
    assert (await client.delete(f"/api/v1/jobs/{single}")).status == 200

    job_frames = await by_job.until(single, "Delete")
    assert about(job_frames, single) == job_frames
    assert job_frames[0].event == "Update"  # the stop: its Create came before the stream
    batch_frames = await by_batch.until(batch["name"], "Delete")
    assert about(batch_frames, batch["name"]) == batch_frames
    # A batch's job is in its batch's events; the Delete carries no jobs, yet is about it.
    batch_job_frames = await by_batch_job.until(batch["name"], "Delete")
    assert about(batch_job_frames, batch["name"]) == batch_job_frames
    for frame in batch_job_frames[:-1]:
        assert batch_job in [job["name"] for job in frame.body["jobStatuses"]]


@pytest.mark.parametrize("how", ["header", "query"])
async def test_a_client_that_reconnects_with_its_last_event_id_gets_exactly_what_it_missed(
    start: ClientFactory, how: str
) -> None:
    client = await start()
    witness, leaving = await open_stream(client), await open_stream(client)
    first = (await post_job(client, SHORT))["name"]
    last_seen = (await leaving.until(first, "Create"))[-1]
    await witness.until(first, "Create")
    leaving.response.close()

    second = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, second, "Succeeded")
    assert (await client.delete(f"/api/v1/jobs/{second}")).status == 200
    missed = await witness.until(second, "Delete")

    if how == "header":
        back = await open_stream(client, last_event_id=str(last_seen.number))
    else:
        back = await open_stream(client, lastEventId=str(last_seen.number))
    assert await back.until(second, "Delete") == missed
    assert about(missed, second)[0].event == "Create"


async def test_an_id_older_than_the_ring_gets_a_reset_then_live_events(
    start: ClientFactory,
) -> None:
    client = await start(SCHEDULER_EVENTS_RING_SIZE="3")
    witness = await open_stream(client)
    frames: list[Frame] = []
    for _ in range(2):  # each job: a Create, two Updates or more, a Delete
        name = (await post_job(client, SHORT))["name"]
        await wait_for_status(client, name, "Succeeded")
        assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200
        frames += await witness.until(name, "Delete")
    oldest, newest = frames[0], frames[-1]
    assert newest.number - oldest.number > 3

    # Still in the ring: the events after it.
    recent = await open_stream(client, last_event_id=str(newest.number - 1))
    assert await recent.frame() == newest

    late = await open_stream(client, last_event_id=str(oldest.id))
    reset = await late.frame()
    assert (reset.event, reset.id) == ("reset", newest.id)
    assert "older than the 3 events kept" in reset.body["reason"]
    live = (await post_job(client, SHORT))["name"]
    assert [frame.number > newest.number for frame in await late.until(live, "Create")] == [True]


# 5000 digits: more than Python reads as an int (4300), which once answered 500.
@pytest.mark.parametrize("last_event_id", ["not-a-number", "99999999999999999999", "9" * 5000])
async def test_an_id_that_is_not_ours_gets_a_reset(
    start: ClientFactory, last_event_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start()
    stream = await open_stream(client, last_event_id=last_event_id)
    reset = await stream.frame()
    assert reset.event == "reset" and "not one of this scheduler's" in reset.body["reason"]
    assert len(reset.data) < 200  # the reason quotes only the start of a long id
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_past_its_limit_of_clients_the_stream_answers_503_with_retry_after(
    start: ClientFactory,
) -> None:
    client = await start()
    hub = client.app[EVENTS]
    assert hub.max_subscribers == DEFAULT_MAX_SUBSCRIBERS == 100
    hub.max_subscribers = 2
    first, _second = await open_stream(client), await open_stream(client)

    refused = await client.get("/api/v1/events")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "10"
    body = await refused.json()
    assert body["reason"] == "ServiceUnavailable"
    assert "the event stream has 2 clients, as many as it serves at once" in body["message"]
    assert hub.subscribers == 2

    first.response.close()  # a client leaves: its place is free again
    await wait_until(lambda: _subscribers_are(hub, 1))
    await open_stream(client)


async def _subscribers_are(hub: EventHub, count: int) -> bool:
    return hub.subscribers == count


async def test_head_on_the_event_stream_answers_its_headers_at_once(start: ClientFactory) -> None:
    client = await start()
    response = await client.head("/api/v1/events")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await response.read() == b""
    assert client.app[EVENTS].subscribers == 0


async def test_an_idle_stream_gets_heartbeat_comments(start: ClientFactory) -> None:
    client = await start(SCHEDULER_EVENTS_HEARTBEAT_SECONDS="0.2")
    stream = await open_stream(client)
    for _ in range(2):
        assert await stream.read() == Frame(None, None, "", comment="heartbeat")


def flood(index: int) -> Notification:
    """An event far bigger than any job's: a few of them fill a client's socket buffers."""
    status = JobStatus(name=f"flood-{index}", status=JobStatusEnum.RUNNING, message="x" * 100_000)
    return Notification(
        "flood",
        BatchEvent(
            name="flood", batch_type=BatchType.BATCH, event=Event(EventType.UPDATE),
            job_statuses=[status],
        ),
    )  # fmt: skip


async def stall(client: Client, reader: Stream) -> None:
    """Publish big events until a subscriber that does not read has been dropped; `reader` reads
    each. Through the API alone this would take thousands of jobs."""
    hub = client.app[EVENTS]
    index = 0
    while hub.dropped == 0:
        hub.publish(flood(index))
        assert (await reader.frame()).body["jobStatuses"][0]["name"] == f"flood-{index}"
        index += 1


async def test_a_client_that_stops_reading_is_reset_and_dropped_while_others_keep_up(
    start: ClientFactory,
) -> None:
    client = await start(SCHEDULER_EVENTS_QUEUE_SIZE="2")
    hub = client.app[EVENTS]
    reading, stalled = await open_stream(client), await open_stream(client)
    await stall(client, reading)
    assert hub.subscribers == 1

    # The API and the reading client carry on.
    assert (await client.get("/api/v1/jobs")).status == 200
    name = (await post_job(client, SHORT))["name"]
    await reading.until(name, "Create")

    # The stalled client gets what was queued for it, then a reset, then the end of its stream.
    frames = await stalled.rest()
    assert frames[-1].event == "reset" and "more than 2 events behind" in frames[-1].body["reason"]
    assert {frame.body["name"] for frame in frames[:-1]} == {"flood"}


async def test_shutdown_ends_the_streams_even_of_a_client_that_stopped_reading(
    start: ClientFactory,
) -> None:
    client = await start(SCHEDULER_EVENTS_QUEUE_SIZE="2")
    reading, stalled = await open_stream(client), await open_stream(client)
    await stall(client, reading)
    idle = await open_stream(client)

    # Without ending the streams the server would wait out its shutdown timeout (60 s).
    await client.server.close()
    assert await idle.rest() == []
    assert await reading.rest() == []
    with pytest.raises(aiohttp.ClientPayloadError):
        await stalled.rest()  # cut off: it could not take the end of its stream


async def test_a_client_that_leaves_is_unsubscribed(start: ClientFactory) -> None:
    client = await start()
    hub = client.app[EVENTS]
    stream = await open_stream(client)

    async def subscribed(count: int) -> bool:
        return hub.subscribers == count

    await wait_until(lambda: subscribed(1))
    stream.response.close()
    await wait_until(lambda: subscribed(0))


@pytest.mark.timeout(BENCH_TIMEOUT_SECONDS + 10)
def test_the_events_benchmark_runs_on_a_small_scale_and_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--subscribers", "3", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for figure in ("status change -> Running", "fan-out", "scheduler RSS MiB", "CPU ms per event"):
        assert figure in result.stdout, result.stdout


# -- the hub alone ------------------------------------------------------------------------------


def notification(
    name: str, event: str = "Update", batch_jobs: list[str] | None = None
) -> Notification:
    """A webhook event: of a single job, or of a batch whose event carries `batch_jobs`."""
    jobs = [name] if batch_jobs is None else batch_jobs
    batch_type = BatchType.JOB if batch_jobs is None else BatchType.BATCH
    body = BatchEvent(
        name=name,
        batch_type=batch_type,
        event=Event(EventType(event)),
        job_statuses=[JobStatus(name=job) for job in jobs],
    )
    return Notification(name, body)


def ids(frames: list[bytes]) -> list[bytes]:
    return [frame.split(b"\n")[0] for frame in frames]


def test_events_get_increasing_ids_and_one_frame_shared_by_all_subscribers() -> None:
    hub = EventHub(SSE, first_id=100)
    first, second = hub.subscribe(), hub.subscribe()
    created, updated = notification("job-1", "Create"), notification("job-1")
    hub.publish(created)
    hub.publish(updated)
    frames = first.take()
    # The webhook's body, as it is.
    assert frames == [
        b"id: 100\nevent: Create\ndata: " + created.body + b"\n\n",
        b"id: 101\nevent: Update\ndata: " + updated.body + b"\n\n",
    ]
    assert json.loads(created.body)["jobStatuses"][0]["name"] == "job-1"
    assert all(a is b for a, b in zip(frames, second.take(), strict=True))


def test_a_subscriber_that_falls_behind_is_reset_and_dropped_and_the_others_get_everything() -> (
    None
):
    hub = EventHub(SSE, queue_size=2, first_id=1)
    slow, fast = hub.subscribe(), hub.subscribe()
    received = []
    for i in range(5):
        hub.publish(notification(f"job-{i}"))
        received += fast.take()
    assert ids(received) == [b"id: 1", b"id: 2", b"id: 3", b"id: 4", b"id: 5"]
    assert (hub.subscribers, hub.dropped) == (1, 1)
    frames = slow.take()
    assert frames[:2] == received[:2] and len(frames) == 3
    assert frames[2].startswith(b"id: 3\nevent: reset\ndata: ")
    assert b"more than 2 events behind" in frames[2]
    assert slow.ended and not fast.ended


def test_the_ring_replays_what_it_keeps_and_resets_what_it_does_not() -> None:
    hub = EventHub(SSE, ring_size=3, first_id=1)
    hub.subscribe()  # a client listens: from now on, events are kept for it
    for i in range(5):  # ids 1 to 5; the ring keeps 3, 4 and 5
        hub.publish(notification(f"job-{i}"))
    assert ids(hub.subscribe("2").take()) == [b"id: 3", b"id: 4", b"id: 5"]
    assert hub.subscribe("5").take() == []
    assert ids(hub.subscribe("3", job="job-4").take()) == [b"id: 5"]
    for after in ("1", "6", "x", "-1", "٣"):
        (reset,) = hub.subscribe(after).take()
        assert reset.startswith(b"id: 5\nevent: reset\n"), after


def test_a_batch_delete_is_about_the_jobs_its_batch_had() -> None:
    hub = EventHub(SSE, first_id=1)
    by_job, by_batch = hub.subscribe(job="b-1"), hub.subscribe(batch="b")
    hub.publish(notification("b", "Create", ["b-1", "b-2"]))
    hub.publish(notification("b", "Update", ["b-2"]))
    hub.publish(notification("b", "Delete", []))
    hub.publish(notification("b-1", "Create"))  # a single job, not the batch's
    assert [frame.split(b"\n")[1] for frame in by_job.take()] == [
        b"event: Create",
        b"event: Delete",
        b"event: Create",
    ]
    assert ids(by_batch.take()) == [b"id: 1", b"id: 2", b"id: 3"]


def test_before_any_client_subscribes_events_are_numbered_but_not_kept() -> None:
    # No client can hold an id of this hub's yet (ids only reach clients through a stream), so
    # there is nothing to replay: a scheduler nobody listens to serializes no event for it.
    hub = EventHub(SSE, first_id=1)
    hub.publish(notification("job-0"))
    hub.publish(notification("b", "Create", ["b-1"]))
    by_job = hub.subscribe(job="b-1")
    hub.publish(notification("b", "Delete", []))
    (deleted,) = by_job.take()
    assert deleted.startswith(b"id: 3\nevent: Delete\n")  # still about the job named before
    (reset,) = hub.subscribe("1").take()
    assert reset.startswith(b"id: 3\nevent: reset\n")
    assert ids(hub.subscribe("2").take()) == [b"id: 3"]


def test_a_closed_hub_ends_every_subscription_and_those_that_come_later() -> None:
    hub = EventHub(SSE)
    before = hub.subscribe()
    hub.close()
    assert before.ended and hub.subscribe().ended and hub.subscribers == 0


async def test_waiting_for_frames_returns_them_all_then_nothing_once_ended() -> None:
    hub = EventHub(SSE, first_id=1)
    with hub.subscribe() as subscription:
        hub.publish(notification("a"))
        hub.heartbeat()
        assert ids(await subscription.frames()) == [b"id: 1", b": heartbeat"]
        hub.close()
        assert await subscription.frames() == []
    assert hub.subscribers == 0
