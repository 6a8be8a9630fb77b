"""Webhook delivery against a real receiver on loopback whose answers are scripted per event."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import logging
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy
from pytest_aiohttp import AiohttpServer

from scheduler.metrics import Metrics
from scheduler.webhook import WebhookSender
from tests.conftest import wait_until

SenderFactory = Callable[..., Awaitable[WebhookSender]]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # hold the request until the receiver is released, then answer


@dataclass(frozen=True)
class Seen:
    event_id: str
    body: bytes
    headers: CIMultiDictProxy[str]


class Receiver:
    """A webhook receiver: records every request and answers from a per-event script."""

    def __init__(self, serve: AiohttpServer) -> None:
        self._serve = serve
        self._server: TestServer | None = None
        self.port: int | None = None
        self.default = Reply()
        self.scripts: dict[str, list[Reply]] = {}
        self.requests: list[Seen] = []
        self.answered_2xx: list[str] = []
        self.holding = 0
        self.peak_holding = 0
        self.released = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=t0ken"

    def script(self, event_id: str, *replies: Reply) -> None:
        """Answer the first attempts of `event_id` with `replies`, later ones by default."""
        self.scripts[event_id] = list(replies)

    def attempts_at(self, event_id: str) -> int:
        return sum(1 for seen in self.requests if seen.event_id == event_id)

    def release(self) -> None:
        self.released.set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        # The same port after a stop: the sender sees a receiver come back at its URL.
        self._server = await self._serve(app, port=self.port)
        self.port = self._server.port

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.close()

    async def _handle(self, request: web.Request) -> web.Response:
        event_id = request.headers.get("X-Scheduler-Event-Id", "")
        self.requests.append(Seen(event_id, await request.read(), request.headers))
        script = self.scripts.get(event_id)
        reply = script.pop(0) if script else self.default
        if reply.hang:
            self.holding += 1
            self.peak_holding = max(self.peak_holding, self.holding)
            try:
                await self.released.wait()
            finally:
                self.holding -= 1
        if 200 <= reply.status < 300:
            self.answered_2xx.append(event_id)
        return web.Response(status=reply.status, headers=reply.headers)


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> AsyncIterator[Receiver]:
    receiver = Receiver(aiohttp_server)
    await receiver.start()
    yield receiver
    receiver.release()  # held requests finish, so the server can close


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def new_sender(receiver: Receiver, metrics: Metrics) -> AsyncIterator[SenderFactory]:
    senders: list[WebhookSender] = []

    async def new(started: bool = True, **options: Any) -> WebhookSender:
        settings: dict[str, Any] = {
            "secret": None,
            "attempts": 5,
            "queue_size": 100,
            "backoff_initial_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            **options,
        }
        sender = WebhookSender(receiver.url, metrics=metrics, **settings)
        senders.append(sender)
        if started:
            await sender.start()
        return sender

    yield new
    # Every test leaves no lane running and no unclosed session behind its senders.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while senders:  # no name may keep a closed sender alive past this block
            await senders.pop().close(drain_seconds=0)
        gc.collect()
    assert webhook_tasks() == []
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def webhook_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("webhook")]


def body_of(event_id: str) -> bytes:
    return json.dumps({"event": event_id, "private": "job-payload-marker"}).encode()


def send(sender: WebhookSender, key: str, *event_ids: str) -> None:
    for event_id in event_ids:
        sender.send(event_id, key, body_of(event_id))


def deliveries(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "job_scheduler_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


def attempts(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "job_scheduler_webhook_attempts_total", {"result": result}
    )
    return value or 0.0


def waiting(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("job_scheduler_webhook_queue") or 0.0


async def eventually(condition: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return condition()

    await wait_until(holds, timeout=30.0, interval=0.005)


async def test_a_delivered_event_carries_its_body_content_type_and_event_id(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    sender = await new_sender()
    send(sender, "batch-1", "event-1")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    [seen] = receiver.requests
    assert seen.body == body_of("event-1")
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["X-Scheduler-Event-Id"] == "event-1"
    assert seen.headers["X-Scheduler-Timestamp"].isdigit()
    assert "X-Scheduler-Signature" not in seen.headers
    assert attempts(metrics, "2xx") == 1
    assert metrics.registry.get_sample_value("job_scheduler_webhook_delivery_seconds_count") == 1


FRESHNESS_WINDOW_SECONDS = 300


def is_from_the_scheduler(
    event_id: str, timestamp: str, body: bytes, signature: str, secret: str, now: float
) -> bool:
    """The receiver's check, as the README gives it."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > FRESHNESS_WINDOW_SECONDS:
        return False
    signed = f"{event_id}.{timestamp}.".encode() + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def verified(seen: Seen, secret: str, now: float | None = None, event_id: str = "") -> bool:
    return is_from_the_scheduler(
        event_id or seen.headers["X-Scheduler-Event-Id"],
        seen.headers["X-Scheduler-Timestamp"],
        seen.body,
        seen.headers["X-Scheduler-Signature"],
        secret,
        time.time() if now is None else now,
    )


async def test_a_signed_event_carries_a_signature_the_receiver_can_verify(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    sender = await new_sender(secret="s3cret")
    sent_at = time.time()
    send(sender, "batch-1", "event-1")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    [seen] = receiver.requests
    assert abs(int(seen.headers["X-Scheduler-Timestamp"]) - sent_at) <= 2
    assert verified(seen, "s3cret")
    assert not verified(seen, "guess")
    body_only = "sha256=" + hmac.new(b"s3cret", seen.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(seen.headers["X-Scheduler-Signature"], body_only)


async def test_a_captured_signed_delivery_cannot_be_replayed_later_or_under_another_id(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    sender = await new_sender(secret="s3cret")
    send(sender, "batch-1", "event-1")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    [seen] = receiver.requests
    assert not verified(seen, "s3cret", event_id="event-2")
    later = int(seen.headers["X-Scheduler-Timestamp"]) + FRESHNESS_WINDOW_SECONDS + 1
    assert not verified(seen, "s3cret", now=later)


async def test_each_retry_keeps_the_event_id_and_is_signed_with_its_own_timestamp(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.script("event-1", Reply(503), Reply(503))
    sender = await new_sender(secret="s3cret")
    send(sender, "batch-1", "event-1")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    assert [seen.event_id for seen in receiver.requests] == ["event-1"] * 3
    assert all(verified(seen, "s3cret") for seen in receiver.requests)


async def test_a_receiver_that_fails_then_recovers_gets_every_event_in_order_per_key(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.default = Reply(500)
    sender = await new_sender(attempts=1000, backoff_max_seconds=0.1)
    send(sender, "batch-a", "a1", "a2", "a3")
    send(sender, "batch-b", "b1", "b2")
    await eventually(lambda: receiver.attempts_at("a1") >= 2 and receiver.attempts_at("b1") >= 2)

    await receiver.stop()  # now the connection is refused
    await eventually(lambda: attempts(metrics, "error") >= 2)
    receiver.default = Reply()
    await receiver.start()
    await eventually(lambda: deliveries(metrics, "delivered") == 5)

    assert [e for e in receiver.answered_2xx if e.startswith("a")] == ["a1", "a2", "a3"]
    assert [e for e in receiver.answered_2xx if e.startswith("b")] == ["b1", "b2"]
    for key in "ab":
        # A retrying event held back the later events of its key.
        seen = [s.event_id for s in receiver.requests if s.event_id.startswith(key)]
        assert seen == sorted(seen)
    # Each retry was the same event: same id, same body.
    assert receiver.attempts_at("a1") >= 3
    assert {s.body for s in receiver.requests if s.event_id == "a1"} == {body_of("a1")}
    assert attempts(metrics, "5xx") >= 4
    assert attempts(metrics, "2xx") == 5
    assert deliveries(metrics, "failed") == deliveries(metrics, "dropped") == 0


async def test_an_event_that_uses_up_its_attempts_fails_and_later_events_still_go_out(
    new_sender: SenderFactory,
    receiver: Receiver,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="scheduler.webhook")
    receiver.script("doomed", Reply(503), Reply(500), Reply(502))
    sender = await new_sender(attempts=3)
    send(sender, "batch-1", "doomed", "next")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    assert [s.event_id for s in receiver.requests] == ["doomed"] * 3 + ["next"]
    assert receiver.answered_2xx == ["next"]
    assert deliveries(metrics, "failed") == 1
    assert attempts(metrics, "5xx") == 3
    assert "doomed" in caplog.text and "failed after 3 attempt(s): HTTP 502" in caplog.text
    # Logs name the event, never its body or the URL's token.
    assert "job-payload-marker" not in caplog.text and "t0ken" not in caplog.text


async def test_a_client_error_is_not_retried(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.script("rejected", Reply(400))
    sender = await new_sender()
    send(sender, "batch-1", "rejected", "next")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    assert [s.event_id for s in receiver.requests] == ["rejected", "next"]
    assert deliveries(metrics, "failed") == 1
    assert attempts(metrics, "4xx") == 1


async def test_too_many_requests_is_retried_when_retry_after_says(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    # Our own back-off would wait up to a minute; the receiver asks for no wait at all.
    receiver.script("busy", Reply(429, {"Retry-After": "0"}))
    sender = await new_sender(backoff_initial_seconds=60.0, backoff_max_seconds=60.0)
    send(sender, "batch-1", "busy")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    assert receiver.attempts_at("busy") == 2
    assert attempts(metrics, "4xx") == 1


async def test_retry_after_is_capped_by_the_maximum_back_off(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.script("busy", Reply(503, {"Retry-After": "3600"}))
    sender = await new_sender(backoff_max_seconds=0.05)
    send(sender, "batch-1", "busy")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    assert receiver.attempts_at("busy") == 2


async def test_a_full_queue_drops_the_oldest_and_send_never_blocks(
    new_sender: SenderFactory,
    receiver: Receiver,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.script("blocker", Reply(hang=True))
    sender = await new_sender(queue_size=3, timeout_seconds=60.0)
    send(sender, "batch-1", "blocker")
    await eventually(lambda: receiver.holding == 1)

    # The receiver hangs on to the first event; ten more arrive for the same key meanwhile.
    send(sender, "batch-1", *(f"e{i}" for i in range(10)))
    assert deliveries(metrics, "dropped") == 7
    assert waiting(metrics) == 3
    # One warning, naming the first event dropped, stands for the whole flood.
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "e0" in warned[0].getMessage()

    receiver.release()
    await eventually(lambda: deliveries(metrics, "delivered") == 4)
    assert receiver.answered_2xx == ["blocker", "e7", "e8", "e9"]
    assert waiting(metrics) == 0


async def test_a_hanging_key_does_not_hold_back_another_key(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.script("slow-1", Reply(hang=True))
    sender = await new_sender(timeout_seconds=60.0)
    send(sender, "slow-batch", "slow-1", "slow-2")
    send(sender, "fast-batch", "fast-1", "fast-2")
    await eventually(lambda: deliveries(metrics, "delivered") == 2)

    assert receiver.answered_2xx == ["fast-1", "fast-2"]
    assert receiver.holding == 1
    assert receiver.attempts_at("slow-2") == 0
    receiver.release()
    await eventually(lambda: deliveries(metrics, "delivered") == 4)
    assert receiver.answered_2xx[2:] == ["slow-1", "slow-2"]


async def test_posts_in_flight_are_bounded(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.default = Reply(hang=True)
    sender = await new_sender(max_in_flight=2, timeout_seconds=60.0)
    for key in ("batch-1", "batch-2", "batch-3"):
        send(sender, key, f"{key}-event")
    await eventually(lambda: receiver.holding == 2)

    receiver.release()
    await eventually(lambda: deliveries(metrics, "delivered") == 3)
    assert receiver.peak_holding == 2


async def test_an_attempt_that_outlives_its_timeout_is_retried(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.script("event-1", Reply(hang=True))
    sender = await new_sender(timeout_seconds=0.2, attempts=20)
    send(sender, "batch-1", "event-1")
    await eventually(lambda: deliveries(metrics, "delivered") == 1)

    assert receiver.attempts_at("event-1") >= 2
    assert attempts(metrics, "error") >= 1


async def test_close_drains_queued_events_and_leaves_no_tasks(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    sender = await new_sender()
    send(sender, "batch-a", "a1", "a2", "a3")
    send(sender, "batch-b", "b1", "b2")
    await sender.close(drain_seconds=30.0)

    assert sorted(receiver.answered_2xx) == ["a1", "a2", "a3", "b1", "b2"]
    assert deliveries(metrics, "delivered") == 5
    assert webhook_tasks() == []


async def test_close_drops_what_a_hanging_receiver_keeps_after_the_drain_time(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    receiver.script("stuck", Reply(hang=True))
    sender = await new_sender(timeout_seconds=60.0)
    send(sender, "batch-1", "stuck", "behind")
    await eventually(lambda: receiver.holding == 1)
    await sender.close(drain_seconds=0.1)

    assert deliveries(metrics, "dropped") == 2
    assert waiting(metrics) == 0
    assert receiver.attempts_at("behind") == 0
    assert webhook_tasks() == []


async def test_events_sent_before_start_go_out_once_started(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    sender = await new_sender(started=False)
    send(sender, "batch-1", "early-1", "early-2")
    assert waiting(metrics) == 2
    await sender.start()
    await eventually(lambda: deliveries(metrics, "delivered") == 2)
    assert receiver.answered_2xx == ["early-1", "early-2"]


async def test_an_event_sent_after_close_is_dropped_without_an_error(
    new_sender: SenderFactory, receiver: Receiver, metrics: Metrics
) -> None:
    sender = await new_sender()
    await sender.close()
    send(sender, "batch-1", "late")
    assert deliveries(metrics, "dropped") == 1
    assert receiver.requests == []


async def test_an_app_starts_and_closes_the_sender_in_its_cleanup_ctx(
    receiver: Receiver, metrics: Metrics
) -> None:
    sender = WebhookSender(receiver.url, secret=None, attempts=3, queue_size=10, metrics=metrics)

    async def webhook(app: web.Application) -> AsyncIterator[None]:
        await sender.start()
        yield
        await sender.close(drain_seconds=30.0)

    async def create_job(request: web.Request) -> web.Response:
        sender.send(request.match_info["name"], "jobs", body_of(request.match_info["name"]))
        return web.Response(status=202)

    app = web.Application()
    app.cleanup_ctx.append(webhook)
    app.router.add_post("/jobs/{name}", create_job)
    async with TestClient(TestServer(app)) as client:
        for name in ("job-1", "job-2"):
            assert (await client.post(f"/jobs/{name}")).status == 202

    assert receiver.answered_2xx == ["job-1", "job-2"]
    assert webhook_tasks() == []


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("ftp://receiver/hook", {}),
        ("/hook", {}),
        ("http://receiver/hook", {"attempts": 0}),
        ("http://receiver/hook", {"queue_size": 0}),
        ("http://receiver/hook", {"timeout_seconds": 0}),
        ("http://receiver/hook", {"backoff_initial_seconds": 2, "backoff_max_seconds": 1}),
    ],
)
def test_a_sender_refuses_settings_it_cannot_work_with(url: str, options: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"secret": None, "attempts": 1, "queue_size": 1, **options}
    with pytest.raises(ValueError):
        WebhookSender(url, metrics=Metrics(), **settings)
