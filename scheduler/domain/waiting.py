"""Waiting on the server: a GET with `?wait=SECONDS` answers once its job, or its batch, has
ended (or is gone), or when the wait runs out. Each waiter is a future, woken by the view's status
changes (the watch's news) or by its own timer: waiting polls nothing and makes no request to the
API server, and a waiter costs a future and a timer handle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from scheduler.domain.batch_status import DONE_JOB_STATUSES, is_batch_done
from scheduler.domain.batches import BatchService
from scheduler.domain.view import JobView
from scheduler.models import JobStatus


class Timer(Protocol):
    def cancel(self) -> None: ...


# `call_later(seconds, callback)`: the event loop's, or a test's clock.
CallLater = Callable[[float, Callable[[], None]], Timer]
_Waiters = dict[str, set[asyncio.Future[None]]]


def is_ended(status: JobStatus) -> bool:
    return status.status in DONE_JOB_STATUSES


class Waiting:
    """The requests waiting for a job or a batch to end, by the job's or batch's name. A wait
    outlives a watch's reconnect: the view keeps its jobs through it, and what changed meanwhile
    reaches the view (and the waiters) when the watch resumes or relists."""

    def __init__(
        self, view: JobView, batches: BatchService, *, call_later: CallLater | None = None
    ) -> None:
        self._view = view
        self._batches = batches
        self._call_later = call_later
        self._jobs: _Waiters = {}
        self._batch_waiters: _Waiters = {}
        self._count = 0
        self._released = False
        view.subscribe(self._changed)

    @property
    def count(self) -> int:
        """Requests waiting now."""
        return self._count

    async def job(self, name: str, seconds: float) -> None:
        """Until job `name` (single or of a batch, by its full name) has ended or is gone, or
        `seconds` have passed. NotFoundError at once when there is no such job."""
        if not is_ended(self._view.require_status(name)):
            await self._waiting(self._jobs, name, seconds)

    async def batch_job(self, batch: str, job: str, seconds: float) -> None:
        """As `job`, for a batch's job named in full or by the suffix after the batch's name."""
        await self.job(self._batches.job(batch, job).name, seconds)

    async def batch(self, name: str, seconds: float) -> None:
        """Until every job of batch `name` has ended, or the batch is gone, or `seconds` have
        passed. NotFoundError at once when there is no such batch."""
        if not is_batch_done(self._batches.status(name)):
            await self._waiting(self._batch_waiters, name, seconds)

    def release_all(self) -> None:
        """Answer every waiter now, and any later one at once: the scheduler is shutting down,
        and a request still waiting would hold the shutdown up."""
        self._released = True
        for waiters in (self._jobs, self._batch_waiters):
            for name in list(waiters):
                _wake(waiters, name)

    async def _waiting(self, waiters: _Waiters, name: str, seconds: float) -> None:
        if seconds <= 0 or self._released:
            return
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        waiters.setdefault(name, set()).add(woken)
        call_later = self._call_later or loop.call_later
        timer = call_later(seconds, lambda: _done(woken))
        self._count += 1
        try:
            await woken
        finally:
            # Also when the request is cancelled (its client left): nothing of it stays.
            timer.cancel()
            self._count -= 1
            alike = waiters.get(name)
            if alike is not None:
                alike.discard(woken)
                if not alike:
                    del waiters[name]

    def _changed(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        # Only an end or a removal ends a wait: most changes (Waiting, Running) pass by here.
        if new is not None and not is_ended(new):
            return
        _wake(self._jobs, name)
        status = new or old
        batch = status.batch_name if status is not None else None
        if batch is not None and batch in self._batch_waiters:
            found = self._batches.find(batch)
            if found is None or is_batch_done(found):
                _wake(self._batch_waiters, batch)


def _wake(waiters: _Waiters, name: str) -> None:
    for woken in waiters.get(name, ()):
        _done(woken)


def _done(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
