"""Webhook delivery: POSTs event bodies to one receiver, retried with back-off, in order per key.

Every POST carries `Content-Type: application/json`, `X-Scheduler-Event-Id: <id>`, the same on
each retry so receivers can de-duplicate, and `X-Scheduler-Timestamp: <unix seconds>`, when this
attempt was sent. With a secret it also carries `X-Scheduler-Signature: sha256=<hex>`: the
lowercase hex HMAC-SHA256 of `<id>.<timestamp>.<body>` (the exact body bytes) keyed with the UTF-8
secret. A receiver recomputes it, compares with `hmac.compare_digest`, and refuses a timestamp
outside its freshness window, so a captured delivery cannot be replayed later or with another id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import aiohttp
from yarl import URL

from scheduler.backoff import Backoff
from scheduler.metrics import Metrics

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Scheduler-Event-Id"
SIGNATURE_HEADER = "X-Scheduler-Signature"
TIMESTAMP_HEADER = "X-Scheduler-Timestamp"
# POSTs in flight at once, across keys; a key never has more than one.
MAX_IN_FLIGHT = 8
DROP_LOG_INTERVAL_SECONDS = 10.0
_OUTCOMES = ("delivered", "failed", "dropped")
_RESULTS = ("2xx", "4xx", "5xx", "error")


@dataclass(eq=False, slots=True)
class _Event:
    id: str
    key: str
    body: bytes
    queued_at: float  # time.monotonic()
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one attempt came to."""

    result: str  # the metric label: "2xx", "3xx", "4xx", "5xx" or "error"
    detail: str  # for logs: "HTTP 503", "timed out", ...
    delivered: bool = False
    retryable: bool = False
    retry_after_seconds: float | None = None


def _answer_of(response: aiohttp.ClientResponse) -> _Answer:
    status = response.status
    retry_after = None
    if status in (429, 503):
        retry_after = _seconds(response.headers.get("Retry-After", ""))
    return _Answer(
        result=f"{status // 100}xx",
        detail=f"HTTP {status}",
        delivered=200 <= status < 300,
        retryable=status == 429 or status >= 500,
        retry_after_seconds=retry_after,
    )


def _seconds(value: str) -> float | None:
    # Only the delay-seconds form; an HTTP-date falls back to our own back-off.
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def signature(secret: bytes, *, event_id: str, timestamp: str, body: bytes) -> str:
    """The `X-Scheduler-Signature` value of one attempt."""
    signed = b".".join((event_id.encode(), timestamp.encode(), body))
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def _describe(exc: BaseException) -> str:
    # Never str(exc) wholesale: some aiohttp errors quote the URL, which may hold a token.
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


class WebhookSender:
    """Queues events and POSTs them from background lanes, one lane per ordering key.

    `send` is synchronous, never blocks and never raises; call it from the event loop's thread.
    Start with `start()` and stop with `close()`, e.g. from an aiohttp `cleanup_ctx`.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None,
        attempts: int,
        timeout_seconds: float = 10.0,
        queue_size: int,
        metrics: Metrics,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        target = URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise ValueError("the webhook URL must be an absolute http(s) URL")
        if attempts < 1 or queue_size < 1 or max_in_flight < 1:
            raise ValueError("attempts, queue_size and max_in_flight must be at least 1")
        if not timeout_seconds > 0 or not 0 < backoff_initial_seconds <= backoff_max_seconds:
            raise ValueError("need timeout_seconds > 0 and 0 < initial back-off <= maximum")
        self._url = target
        self._secret = secret.encode() if secret else None
        self._attempts = attempts
        self._timeout = timeout_seconds
        self._queue_size = queue_size
        self._metrics = metrics
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        # Waiting events in send order (to drop the oldest), and the same events by key.
        self._waiting: OrderedDict[_Event, None] = OrderedDict()
        self._lanes: dict[str, deque[_Event]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._in_flight: set[_Event] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._drops_unlogged = 0
        self._drop_logged_at = -math.inf
        for outcome in _OUTCOMES:
            metrics.webhook_deliveries.labels(outcome)
        for result in _RESULTS:
            metrics.webhook_attempts.labels(result)

    async def start(self) -> None:
        if self._session is not None or self._closed:
            raise RuntimeError("a WebhookSender starts once")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_in_flight),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            # Like Go's http.Post in Radix: HTTP(S)_PROXY and NO_PROXY apply.
            trust_env=True,
        )
        for key in self._lanes:
            self._open_lane(key)

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Give queued events up to `drain_seconds` to go out, then drop the rest."""
        self._closed = True
        lanes = list(self._lane_tasks.values())
        if lanes and drain_seconds > 0:
            await asyncio.wait(lanes, timeout=drain_seconds)
        for task in lanes:
            task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
        undelivered = len(self._waiting) + len(self._in_flight)
        if undelivered:
            self._metrics.webhook_deliveries.labels("dropped").inc(undelivered)
            log.warning("closing: %d webhook event(s) not delivered", undelivered)
        self._waiting.clear()
        self._lanes.clear()
        self._in_flight.clear()
        self._metrics.webhook_queue.set(0)
        if self._drops_unlogged:
            log.warning("%d more webhook event(s) dropped", self._drops_unlogged)
            self._drops_unlogged = 0
        if self._session is not None:
            await self._session.close()

    def send(self, event_id: str, ordering_key: str, body: bytes) -> None:
        """Queue an event; when the queue is full the oldest waiting event makes room."""
        try:
            self._enqueue(_Event(event_id, ordering_key, body, time.monotonic()))
        except Exception:  # the caller is a request or a watch: it must never see our trouble
            log.exception("webhook event %s (key %s) could not be queued", event_id, ordering_key)

    def _enqueue(self, event: _Event) -> None:
        if self._closed:
            self._dropped(event, "the sender is closed")
            return
        while len(self._waiting) >= self._queue_size:
            self._drop_oldest()
        self._waiting[event] = None
        self._lanes.setdefault(event.key, deque()).append(event)
        self._metrics.webhook_queue.set(len(self._waiting))
        if self._session is not None and event.key not in self._lane_tasks:
            self._open_lane(event.key)

    def _drop_oldest(self) -> None:
        event, _ = self._waiting.popitem(last=False)
        # The oldest waiting event is also the oldest waiting one of its key: its lane's head.
        lane = self._lanes[event.key]
        lane.popleft()
        if not lane and event.key not in self._lane_tasks:
            del self._lanes[event.key]
        self._metrics.webhook_queue.set(len(self._waiting))
        self._dropped(event, "the queue is full")

    def _dropped(self, event: _Event, reason: str) -> None:
        self._metrics.webhook_deliveries.labels("dropped").inc()
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_INTERVAL_SECONDS:
            log.warning(
                "webhook event %s (key %s) dropped: %s (%d dropped since the last such warning)",
                event.id,
                event.key,
                reason,
                self._drops_unlogged,
            )
            self._drops_unlogged = 0
            self._drop_logged_at = now

    def _open_lane(self, key: str) -> None:
        self._lane_tasks[key] = asyncio.create_task(self._lane(key), name=f"webhook-lane-{key}")

    async def _lane(self, key: str) -> None:
        """Deliver one key's events one at a time, each until it is settled."""
        lane = self._lanes[key]
        try:
            while True:
                # An event leaves the queue only once a slot is free, so it can still be dropped.
                async with self._slots:
                    if not lane:
                        return
                    event = lane.popleft()
                    del self._waiting[event]
                    self._in_flight.add(event)
                    self._metrics.webhook_queue.set(len(self._waiting))
                    answer = await self._post(event)
                # A retry keeps its key's later events back but frees its slot while it waits.
                backoff = Backoff(self._backoff_initial, self._backoff_max, jitter="full")
                while answer.retryable and event.attempts < self._attempts:
                    await asyncio.sleep(backoff.delay_after(answer.retry_after_seconds))
                    async with self._slots:
                        answer = await self._post(event)
                self._in_flight.discard(event)
                self._settle(event, answer)
        finally:
            del self._lane_tasks[key]
            if not lane and self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _post(self, event: _Event) -> _Answer:
        assert self._session is not None, "lanes run between start() and close()"
        event.attempts += 1
        # Each attempt's own time, so a retry after a long back-off is as fresh as a first try.
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.id,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(
                self._secret, event_id=event.id, timestamp=timestamp, body=event.body
            )
        try:
            async with self._session.post(
                self._url, data=event.body, headers=headers, allow_redirects=False
            ) as response:
                answer = _answer_of(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            answer = _Answer("error", _describe(exc), retryable=True)
        except Exception as exc:  # e.g. a header aiohttp refuses: another try would fail alike
            answer = _Answer("error", _describe(exc))
        self._metrics.webhook_attempts.labels(answer.result).inc()
        if not answer.delivered:
            log.debug(
                "webhook event %s (key %s) attempt %d/%d: %s",
                event.id,
                event.key,
                event.attempts,
                self._attempts,
                answer.detail,
            )
        return answer

    def _settle(self, event: _Event, answer: _Answer) -> None:
        if answer.delivered:
            self._metrics.webhook_deliveries.labels("delivered").inc()
            self._metrics.webhook_delivery_seconds.observe(time.monotonic() - event.queued_at)
            return
        self._metrics.webhook_deliveries.labels("failed").inc()
        log.warning(
            "webhook event %s (key %s) failed after %d attempt(s): %s",
            event.id,
            event.key,
            event.attempts,
            answer.detail,
        )
