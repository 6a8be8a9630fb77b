"""Notifications: the view's status changes as Radix `BatchEvent`s (Create, Update, Delete), for
the webhook (and any other subscriber).

A single job is a batch of one (`batchType: job`). A batch being created is held until all its
jobs are in the view, so its Create carries them all; later changes made in one pass of the event
loop become one event. As in Radix, an Update is sent when a job's status or message changed (not
for a new timestamp) and carries only those jobs; so is a new attempt (a retry after a failure, or
a restart), which Radix leaves unannounced when the status stays the same. Nothing is sent for
what the view finds at start-up: a restarted scheduler does not announce old news again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from scheduler.domain.view import JobView
from scheduler.models import BatchEvent, BatchStatus, BatchType, Event, EventType, JobStatus


class Notification:
    """One event for the subscribers: its id (the webhook's `X-Scheduler-Event-Id`), the key
    whose events must be delivered in order, and the event. Its JSON body is made once, when a
    subscriber first asks for it: with no webhook and no client of the event stream, nobody
    does. (Dumping every event, and parsing it back for the stream, was two thirds of what
    a notification cost in a burst of POSTs.)"""

    __slots__ = ("_body", "event", "id", "key")

    def __init__(self, key: str, event: BatchEvent) -> None:
        self.id = uuid.uuid4().hex
        self.key = key
        self.event = event
        self._body: bytes | None = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = self.event.model_dump_json(by_alias=True).encode()
        return self._body


Send = Callable[[Notification], None]


# Events are built from the fields of the view's statuses, not from their dumps: dumping them to
# dicts and validating those back into models was most of what a status change cost.
def single_job_event(event: EventType, status: JobStatus) -> BatchEvent:
    return BatchEvent(
        **_fields(status, excluded=("batch_name", "batch_id")),
        batch_type=BatchType.JOB,
        job_statuses=[status],
        event=Event(event),
    )


def batch_event(event: EventType, status: BatchStatus, jobs: list[JobStatus]) -> BatchEvent:
    return BatchEvent(
        **_fields(status, excluded=("job_statuses",)),
        job_statuses=jobs,
        event=Event(event),
    )


def _fields(status: JobStatus, excluded: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: getattr(status, name) for name in type(status).model_fields if name not in excluded
    }


class Notifier:
    def __init__(self, view: JobView, batch_status: Callable[[str], BatchStatus | None]) -> None:
        self._view = view
        self._batch_status = batch_status
        self._subscribers: list[Send] = []
        # Per batch: each changed job's latest status, and whether it is new to the view.
        self._changed: dict[str, dict[str, tuple[JobStatus, bool]]] = {}
        self._known: dict[str, BatchStatus] = {}
        self._flush_scheduled = False
        self._held: set[str] = set()
        view.subscribe(self._on_change)

    def subscribe(self, send: Send) -> None:
        self._subscribers.append(send)

    @contextmanager
    def holding(self, batch: str) -> Iterator[None]:
        """While a batch is being created: its events wait until all its jobs are in."""
        self._held.add(batch)
        try:
            yield
        finally:
            self._held.discard(batch)
            if batch in self._changed:
                self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _on_change(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        if not self._subscribers or not self._view.is_synced:
            return
        status = new or old
        assert status is not None, "a change has an old or a new status"
        if old is not None and new is not None and not _news(old, new):
            return
        if status.batch_name is None:
            kind = EventType.CREATE if old is None else EventType.UPDATE
            self._emit(name, single_job_event(EventType.DELETE if new is None else kind, status))
            return
        changes = self._changed.setdefault(status.batch_name, {})
        was_new = changes[name][1] if name in changes else old is None
        changes[name] = (status, was_new)
        if status.batch_name not in self._held:
            self._schedule_flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        changed = {b: jobs for b, jobs in self._changed.items() if b not in self._held}
        for batch in changed:
            del self._changed[batch]
        for batch, jobs in changed.items():
            current = self._batch_status(batch)
            previous = self._known.get(batch)
            if current is None:
                gone = previous or _last_seen(batch, [job for job, _ in jobs.values()])
                self._known.pop(batch, None)
                self._emit(batch, batch_event(EventType.DELETE, gone, []))
                continue
            self._known[batch] = current
            if previous is None and all(was_new for _, was_new in jobs.values()):
                self._emit(
                    batch, batch_event(EventType.CREATE, current, current.job_statuses or [])
                )
            else:
                live = {job.name for job in current.job_statuses or []}
                updated = [job for name, (job, _) in jobs.items() if name in live]
                if updated or previous is None or previous.status != current.status:
                    self._emit(batch, batch_event(EventType.UPDATE, current, updated))

    def _emit(self, key: str, event: BatchEvent) -> None:
        notification = Notification(key, event)
        for send in self._subscribers:
            send(notification)


def _news(old: JobStatus, new: JobStatus) -> bool:
    """What Radix notifies about, a change of status or message (not a new timestamp), and a new
    attempt: a restart, or one more attempt after a first one (the first pod appearing is no news
    of its own; its status change is)."""
    if (old.status, old.message, old.restart) != (new.status, new.message, new.restart):
        return True
    before = len(old.pod_statuses)
    return before > 0 and len(new.pod_statuses) > before


def _last_seen(batch: str, jobs: list[JobStatus]) -> BatchStatus:
    """A deleted batch this scheduler never announced (it was there at start-up)."""
    batch_id = next((job.batch_id for job in jobs if job.batch_id is not None), None)
    return BatchStatus(name=batch, batch_id=batch_id, job_statuses=jobs)
