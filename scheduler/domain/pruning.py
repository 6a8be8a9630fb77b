"""History pruning: keep the N latest Succeeded (or Stopped) and the N latest Failed single jobs,
and the N latest succeeded and the N latest other finished batches; delete the rest.

Selection is pure; the runner is woken by completions (never inside a POST), rate-limited, and
idempotent: two replicas pruning the same view delete the same jobs and leave exactly N + N.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from scheduler.domain.batch_status import is_batch_done, is_batch_succeeded
from scheduler.domain.view import JobView
from scheduler.errors import NotFoundError, SchedulerError
from scheduler.loops import forever
from scheduler.models import BatchStatus, JobStatus, JobStatusEnum

log = logging.getLogger(__name__)

MIN_PRUNE_INTERVAL_SECONDS = 1.0
_DONE = (JobStatusEnum.SUCCEEDED, JobStatusEnum.FAILED, JobStatusEnum.STOPPED)
Status = TypeVar("Status", bound=JobStatus)


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _completion_key(status: JobStatus) -> tuple[datetime, str]:
    return (status.ended or status.updated or status.created or _EARLIEST, status.name)


def job_bucket(status: JobStatus) -> str | None:
    """A stopped job counts with the succeeded ones, as in Radix: nothing went wrong with it."""
    if status.status in (JobStatusEnum.SUCCEEDED, JobStatusEnum.STOPPED):
        return "succeeded"
    return "failed" if status.status is JobStatusEnum.FAILED else None


def batch_bucket(status: BatchStatus) -> str | None:
    if not is_batch_done(status):
        return None
    return "succeeded" if is_batch_succeeded(status) else "other"


def select_prunable(
    statuses: Iterable[Status],
    limit: int,
    bucket: Callable[[Status], str | None] = job_bucket,
) -> list[str]:
    """Names of finished jobs (or batches) beyond the `limit` latest of their bucket, oldest
    first; unfinished ones (bucket None) are never selected."""
    buckets: dict[str, list[Status]] = {}
    for status in statuses:
        if (key := bucket(status)) is not None:
            buckets.setdefault(key, []).append(status)
    doomed: list[Status] = []
    for finished in buckets.values():
        doomed.extend(sorted(finished, key=_completion_key, reverse=True)[limit:])
    return [s.name for s in sorted(doomed, key=_completion_key)]


class Pruner:
    def __init__(
        self,
        view: JobView,
        delete: Callable[[str], Awaitable[None]],
        *,
        limit: int,
        delete_batch: Callable[[str], Awaitable[object]] | None = None,
        batches: Callable[[], list[BatchStatus]] = list,
        min_interval_seconds: float = MIN_PRUNE_INTERVAL_SECONDS,
        on_pruned: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._view = view
        self._delete = delete
        self._delete_batch = delete_batch
        self._batches = batches
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
        doomed: list[tuple[str, Callable[[str], Awaitable[object]]]] = [
            (name, self._delete)
            for name in select_prunable(self._view.single_statuses(), self._limit)
        ]
        if self._delete_batch is not None:
            doomed += [
                (name, self._delete_batch)
                for name in select_prunable(self._batches(), self._limit, batch_bucket)
            ]
        for name, delete in doomed:
            try:
                await delete(name)
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
        await forever(
            "pruning the history",
            self._prune_when_wanted,
            log=log,
            interval_seconds=self._min_interval,
        )

    async def _prune_when_wanted(self) -> None:
        await self._wanted.wait()
        self._wanted.clear()
        await self.prune_once()
