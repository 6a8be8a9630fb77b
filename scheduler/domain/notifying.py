"""Notifications: the view's status changes as Radix `BatchEvent`s (Create, Update, Delete), for
the webhook (and any other subscriber).

A single job is a batch of one (`batchType: job`). A batch's changes made in one pass of the
event loop (a batch of 500 created at once) become one event; an Update carries only the jobs
that changed, as Radix's do. Nothing is sent for what the view finds at start-up: a restarted
scheduler does not announce old news again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from scheduler.models import BatchEvent, BatchStatus, BatchType, Event, EventType, JobStatus
from scheduler.store import JobView

# (event id, ordering key, body): events of one key must be delivered in order.
Send = Callable[[str, str, bytes], None]


def single_job_event(event: EventType, status: JobStatus) -> BatchEvent:
    return BatchEvent(
        **status.model_dump(exclude={"batch_name", "batch_id"}),
        batch_type=BatchType.JOB,
        job_statuses=[status],
        event=Event(event),
    )


def batch_event(event: EventType, status: BatchStatus, jobs: list[JobStatus]) -> BatchEvent:
    return BatchEvent(
        **status.model_dump(exclude={"job_statuses"}), job_statuses=jobs, event=Event(event)
    )


class Notifier:
    def __init__(
        self, view: JobView, batch_status: Callable[[str], BatchStatus | None], send: Send
    ) -> None:
        self._view = view
        self._batch_status = batch_status
        self._send = send
        # Per batch: each changed job's latest status, and whether it is new to the view.
        self._changed: dict[str, dict[str, tuple[JobStatus, bool]]] = {}
        self._known: dict[str, BatchStatus] = {}
        self._flush_scheduled = False
        view.subscribe(self._on_change)

    def _on_change(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        if not self._view.is_synced:
            return
        status = new or old
        assert status is not None, "a change has an old or a new status"
        if status.batch_name is None:
            kind = EventType.CREATE if old is None else EventType.UPDATE
            self._emit(name, single_job_event(EventType.DELETE if new is None else kind, status))
            return
        changes = self._changed.setdefault(status.batch_name, {})
        was_new = changes[name][1] if name in changes else old is None
        changes[name] = (status, was_new)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        changed, self._changed = self._changed, {}
        for batch, jobs in changed.items():
            current = self._batch_status(batch)
            previous = self._known.get(batch)
            if current is None:
                if previous is not None:
                    del self._known[batch]
                    self._emit(batch, batch_event(EventType.DELETE, previous, []))
                continue
            self._known[batch] = current
            if previous is None and all(was_new for _, was_new in jobs.values()):
                self._emit(
                    batch, batch_event(EventType.CREATE, current, current.job_statuses or [])
                )
            else:
                live = {job.name for job in current.job_statuses or []}
                updated = [job for name, (job, _) in jobs.items() if name in live]
                self._emit(batch, batch_event(EventType.UPDATE, current, updated))

    def _emit(self, key: str, event: BatchEvent) -> None:
        self._send(uuid.uuid4().hex, key, event.model_dump_json(by_alias=True).encode())
