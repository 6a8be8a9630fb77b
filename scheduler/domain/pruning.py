"""History pruning: keep the N latest Succeeded and the N latest Failed jobs, delete the rest.

Selection is pure; the runner is woken by completions (never inside a POST), rate-limited, and
idempotent: two replicas pruning the same view delete the same jobs and leave exactly N + N.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from scheduler.errors import NotFoundError, SchedulerError
from scheduler.models import JobStatus, JobStatusEnum
from scheduler.store import JobView

log = logging.getLogger(__name__)

MIN_PRUNE_INTERVAL_SECONDS = 1.0
_DONE = (JobStatusEnum.SUCCEEDED, JobStatusEnum.FAILED)


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _completion_key(status: JobStatus) -> tuple[datetime, str]:
    return (status.ended or status.updated or status.created or _EARLIEST, status.name)


def select_prunable(statuses: Iterable[JobStatus], limit: int) -> list[str]:
    """Names of finished jobs beyond the `limit` latest of their bucket, oldest first."""
    everything = list(statuses)
    doomed: list[JobStatus] = []
    for bucket in _DONE:
        finished = sorted(
            (s for s in everything if s.status is bucket), key=_completion_key, reverse=True
        )
        doomed.extend(finished[limit:])
    return [s.name for s in sorted(doomed, key=_completion_key)]


class Pruner:
    def __init__(
        self,
        view: JobView,
        delete: Callable[[str], Awaitable[None]],
        limit: int,
        min_interval_seconds: float = MIN_PRUNE_INTERVAL_SECONDS,
        on_pruned: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._view = view
        self._delete = delete
        self._limit = limit
        self._min_interval = min_interval_seconds
        self._on_pruned = on_pruned
        self._wanted = asyncio.Event()
        view.subscribe(self._on_status)

    def _on_status(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        if new is not None and new.status in _DONE and (old is None or old.status != new.status):
            self._wanted.set()

    def poke(self) -> None:
        self._wanted.set()

    async def prune_once(self) -> list[str]:
        if not self._view.is_synced:
            return []
        pruned = []
        for name in select_prunable(self._view.statuses(), self._limit):
            try:
                await self._delete(name)
            except NotFoundError:
                continue  # another replica, or a user, was faster: the outcome is the same
            except SchedulerError as exc:
                log.warning(
                    "could not prune job %s: %s", name, exc.message, extra={"job_name": name}
                )
                self._wanted.set()
                continue
            pruned.append(name)
            self._on_pruned(name)
            log.info("pruned job %s from the history", name, extra={"job_name": name})
        return pruned

    async def pruning(self) -> None:
        """Run forever: wait for a completion, prune, then rest at least the minimum interval."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.prune_once()
            await asyncio.sleep(self._min_interval)
