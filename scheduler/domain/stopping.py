"""Stopping jobs: which statuses can be stopped, and the stop itself (the job keeps its record and
ends Stopped once its pods are gone)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from scheduler.backends.base import Backend
from scheduler.domain.view import JobView
from scheduler.errors import BadRequestError, NotFoundError
from scheduler.models import JobStatus, JobStatusEnum

log = logging.getLogger(__name__)

STOPPABLE = frozenset({JobStatusEnum.WAITING, JobStatusEnum.ACTIVE, JobStatusEnum.RUNNING})


def is_stoppable(status: JobStatus) -> bool:
    return status.status in STOPPABLE


def check_stoppable(status: JobStatus) -> bool:
    """True when a stop is needed, False when one is already under way; 400 when the job has
    ended and there is nothing left to stop."""
    if status.status is JobStatusEnum.STOPPING:
        return False
    if not is_stoppable(status):
        raise BadRequestError(f"cannot stop the job {status.name} with the status {status.status}")
    return True


class Stopper:
    def __init__(self, backend: Backend, view: JobView) -> None:
        self._backend = backend
        self._view = view

    async def stop(self, status: JobStatus) -> None:
        """Stop one job whose status the caller read (400 when it has ended)."""
        if check_stoppable(status):
            await self._stop(status)

    async def stop_all(self, statuses: Iterable[JobStatus]) -> int:
        """Stop every stoppable job of `statuses`; those that ended meanwhile are skipped."""
        doomed = [s for s in statuses if is_stoppable(s)]
        results = await asyncio.gather(*(self._stop(s) for s in doomed), return_exceptions=True)
        for result in results:
            if isinstance(result, NotFoundError):
                continue  # deleted meanwhile: nothing left to stop
            if isinstance(result, BaseException):
                raise result
        return len(doomed)

    async def _stop(self, status: JobStatus) -> None:
        name = status.name
        try:
            record = await self._backend.stop_job(name, status.started)
        except NotFoundError:
            self._view.forget_job(name)
            raise NotFoundError(f"job {name} not found") from None
        self._view.upsert_job(record)
        log.info("stopped job %s", name, extra={"job_name": name})
