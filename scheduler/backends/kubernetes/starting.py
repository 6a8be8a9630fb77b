"""Starting a held Job when its time has come, and giving up on one that waited too long.

Both are one patch of the Job, on condition that it has not changed since it was read (its
resourceVersion): a stop, a restart, another replica's start or give-up, or the Job controller's
own writes in between make it a 409, and the Job is read again and judged anew. A stopped Job is
never started; a Job given up on is suspended, so the Job controller deletes its pods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scheduler.backends.base import JobRecord
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_GAVE_UP_AT,
    ANNOTATION_START_AFTER,
    ANNOTATION_STOPPED_AT,
    give_up_patch,
    start_patch,
)
from scheduler.backends.kubernetes.records import job_record, parse_time
from scheduler.backends.kubernetes.restarting import is_being_replaced
from scheduler.errors import BackendUnavailableError, ConflictError, NotFoundError

log = logging.getLogger(__name__)

# Each patch is tried this many times while the Job keeps changing under it.
PATCH_ATTEMPTS = 5
_ENDED = ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")


def _annotations(job: dict[str, Any]) -> dict[str, Any]:
    return job["metadata"].get("annotations") or {}


def _is_ours(job: dict[str, Any] | None, uid: str) -> bool:
    """The Job `uid`, not deleted, not being replaced by a restart, not stopped, not ended."""
    if job is None or job["metadata"].get("uid") != uid:
        return False
    if job["metadata"].get("deletionTimestamp") or is_being_replaced(job):
        return False
    annotations = _annotations(job)
    if ANNOTATION_STOPPED_AT in annotations or ANNOTATION_GAVE_UP_AT in annotations:
        return False
    record = job_record(job)
    return not any(record.condition(kind) for kind in _ENDED)


def is_startable(job: dict[str, Any] | None, uid: str, now: datetime) -> bool:
    """A Job `uid` held until a start time that has come."""
    if not _is_ours(job, uid) or job is None or not job["spec"].get("suspend"):
        return False
    start_after = parse_time(_annotations(job).get(ANNOTATION_START_AFTER))
    return start_after is not None and start_after <= now


def has_not_started(job: dict[str, Any] | None, uid: str) -> bool:
    """A Job `uid` that is still waiting: none of its pods has ended or is ready."""
    if not _is_ours(job, uid) or job is None:
        return False
    status = job.get("status") or {}
    return not any(status.get(count) for count in ("ready", "succeeded", "failed"))


class Starting:
    """Starts and gives up on the Jobs of one namespace."""

    def __init__(self, api: KubeApi, clock: Callable[[], datetime]) -> None:
        self._api = api
        self._clock = clock

    async def start(self, name: str, uid: str) -> JobRecord | None:
        return await self._patch(
            name,
            lambda job: is_startable(job, uid, self._clock()),
            lambda version: start_patch(version),
        )

    async def give_up(self, name: str, uid: str, message: str, now: datetime) -> JobRecord | None:
        return await self._patch(
            name,
            lambda job: has_not_started(job, uid),
            lambda version: give_up_patch(version, now, message),
        )

    async def _patch(
        self,
        name: str,
        applies: Callable[[dict[str, Any] | None], bool],
        patch: Callable[[str], dict[str, Any]],
    ) -> JobRecord | None:
        for _ in range(PATCH_ATTEMPTS):
            job = await self._api.find(Resource.JOBS, name)
            if job is None or not applies(job):
                return None
            try:
                changed = await self._api.patch(
                    Resource.JOBS, name, patch(job["metadata"]["resourceVersion"])
                )
            except ConflictError:
                continue  # changed meanwhile: read it again
            except NotFoundError:
                return None
            return job_record(changed)
        raise BackendUnavailableError(f"job {name} kept changing; it is tried again")
