"""The event stream's hub: it numbers the Notifier's events, keeps the last ones in a ring for
clients that come back, and fans each out to its subscribers through bounded queues. Publishing
never waits on a subscriber: one that falls too far behind gets a `reset` and is dropped.

How an event looks on the wire is the API layer's `Framing`; the hub frames each event once and
shares that frame with every subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from types import TracebackType

from scheduler.domain.notifying import Notification
from scheduler.errors import BusyError
from scheduler.models import BatchType, EventType
from scheduler.settings import DEFAULT_QUEUE_SIZE, DEFAULT_RING_SIZE

log = logging.getLogger(__name__)

# Open streams at once; each holds a connection (an fd) and a queue. More wait for a place.
DEFAULT_MAX_SUBSCRIBERS = 100
BUSY_RETRY_AFTER_SECONDS = 10
# Our ids are microseconds since 1970 (16 digits now); a longer one is not ours, and Python
# would refuse to read one of more than 4300 digits.
MAX_ID_DIGITS = 20


@dataclass(frozen=True, slots=True)
class Framing:
    """How the hub's events go on the wire, given by the API layer."""

    # An event's frame from its id, its name (Create, Update, Delete) and its JSON body.
    event: Callable[[int, str, bytes], bytes]
    # The frame that tells a client to list jobs and batches again, with its id and why.
    reset: Callable[[int, str], bytes]
    # What keeps an idle stream (and the proxies on its way) open.
    heartbeat: bytes


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """A published event: its id, what the filters look at, and its frame (shared by all)."""

    id: int
    batch: str | None  # the batch's name; None for a single job
    jobs: frozenset[str]  # the jobs it is about
    frame: bytes


class Subscription:
    """One client's events: those it missed (from the ring), then live ones, in order.

    Live frames wait in a queue of at most `capacity`; the hub ends a subscription that would
    need more. Use it as a context manager: leaving it unsubscribes.
    """

    def __init__(self, hub: EventHub, *, job: str | None, batch: str | None, capacity: int) -> None:
        self.job, self.batch = job, batch
        self._hub = hub
        self._capacity = capacity
        self._frames: deque[bytes] = deque()
        self._replaying = 0  # frames at the head of the queue that came from the ring
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False

    def wants(self, event: StreamEvent) -> bool:
        return (self.batch is None or event.batch == self.batch) and (
            self.job is None or self.job in event.jobs
        )

    async def frames(self) -> list[bytes]:
        """Everything queued, waiting for something if nothing is; [] once ended and empty."""
        while not self._frames and not self.ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take()

    def take(self) -> list[bytes]:
        """Everything queued, without waiting."""
        frames = list(self._frames)
        self._frames.clear()
        self._replaying = 0
        return frames

    def close(self) -> None:
        self._hub._unsubscribe(self)
        self._end()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the hub's side ----------------------------------------------------------------------

    def _replay(self, frames: list[bytes]) -> None:
        self._frames.extend(frames)
        self._replaying = len(self._frames)

    def _offer(self, frame: bytes) -> bool:
        """Queue a live frame; False when the queue is full."""
        if len(self._frames) - self._replaying >= self._capacity:
            return False
        self._frames.append(frame)
        self._wake()
        return True

    def _end(self, last: bytes | None = None) -> None:
        if not self.ended and last is not None:
            self._frames.append(last)
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventHub:
    """Subscribe it to the Notifier (`notifier.subscribe(hub.publish)`).

    Ids are increasing integers of this hub's own (the webhook's event ids stay the webhook's).
    They start from the time in microseconds, so an id from an earlier run of the scheduler is
    older than this run's ring and gets a `reset`, never the wrong events.
    """

    def __init__(
        self,
        framing: Framing,
        *,
        ring_size: int = DEFAULT_RING_SIZE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        first_id: int | None = None,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        self.max_subscribers = max_subscribers
        self._framing = framing
        self._ring: deque[StreamEvent] = deque(maxlen=ring_size)
        self._queue_size = queue_size
        self._next_id = time.time_ns() // 1000 if first_id is None else first_id
        self._subscribers: dict[Subscription, None] = {}  # in the order they came
        # The jobs each batch's events named: a batch's Delete carries none, yet is about them.
        self._members: dict[str, set[str]] = {}
        self._closed = False
        self._listened = False  # whether a client has subscribed yet
        self.dropped = 0  # subscribers dropped for falling behind

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def last_id(self) -> int:
        """The newest event's id (one less than the first id while there is none)."""
        return self._next_id - 1

    def publish(self, notification: Notification) -> None:
        """The Notifier's `Send`: number the event, keep it, and queue it for each subscriber.

        Until the first client subscribes, events are only numbered: none can come back for
        them (ids reach clients only through a stream), so nothing is serialized or kept."""
        event = notification.event
        named = frozenset(job.name for job in event.job_statuses or ())
        batch: str | None = None
        jobs = named
        if event.batch_type != BatchType.JOB:
            batch = event.name
            members = self._members.setdefault(batch, set())
            members |= named
            if event.event.root == EventType.DELETE:
                jobs = frozenset(self._members.pop(batch))
        event_id = self._next_id
        self._next_id += 1
        if not self._listened:
            return
        frame = self._framing.event(event_id, event.event.root.value, notification.body)
        published = StreamEvent(event_id, batch, jobs, frame)
        self._ring.append(published)
        for subscription in tuple(self._subscribers):
            if subscription.wants(published) and not subscription._offer(frame):
                self._drop(subscription)

    def subscribe(
        self, after: str | None = None, job: str | None = None, batch: str | None = None
    ) -> Subscription:
        """Events after the id `after` (from the ring), then live ones; None: live ones only.

        An id the ring no longer holds, or that is not one of ours, queues a `reset` first.
        BusyError when `max_subscribers` streams are open already.
        """
        if len(self._subscribers) >= self.max_subscribers:
            raise BusyError(
                f"the event stream has {self.max_subscribers} clients, as many as it serves at "
                f"once; retry in {BUSY_RETRY_AFTER_SECONDS} s",
                BUSY_RETRY_AFTER_SECONDS,
            )
        self._listened = True
        subscription = Subscription(self, job=job, batch=batch, capacity=self._queue_size)
        if after is not None:
            missed = self._since(after)
            if isinstance(missed, str):
                subscription._replay([self._reset_frame(missed)])
            else:
                subscription._replay([e.frame for e in missed if subscription.wants(e)])
        if self._closed:
            subscription._end()
        else:
            self._subscribers[subscription] = None
        return subscription

    def heartbeat(self) -> None:
        """Queue a heartbeat for every subscriber (it takes a place in the queue too)."""
        for subscription in tuple(self._subscribers):
            if not subscription._offer(self._framing.heartbeat):
                self._drop(subscription)

    def close(self) -> None:
        """End every subscription (the app is shutting down); later ones end at once."""
        self._closed = True
        for subscription in tuple(self._subscribers):
            subscription._end()
        self._subscribers.clear()

    def _since(self, after: str) -> list[StreamEvent] | str:
        """The events after id `after`, or why they cannot be had."""
        if not after.isascii() or not after.isdecimal() or len(after) > MAX_ID_DIGITS:
            shown = after if len(after) <= MAX_ID_DIGITS else f"{after[:MAX_ID_DIGITS]}..."
            return f"event id {shown!r} is not one of this scheduler's"
        last = int(after)
        if last > self.last_id:
            return f"event id {last} is not one of this scheduler's"
        oldest = self._ring[0].id if self._ring else self._next_id
        if last + 1 < oldest:
            return f"event {last} is older than the {self._ring.maxlen} events kept"
        return list(islice(self._ring, last + 1 - oldest, None))

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.pop(subscription, None)

    def _drop(self, subscription: Subscription) -> None:
        self._unsubscribe(subscription)
        self.dropped += 1
        reason = f"more than {self._queue_size} events behind"
        log.info("event stream dropped: %s", reason)
        subscription._end(self._reset_frame(reason))

    def _reset_frame(self, reason: str) -> bytes:
        # Its id is the newest event's: a client that lists again after it resumes from there.
        return self._framing.reset(self.last_id, reason)
