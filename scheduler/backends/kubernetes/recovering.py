"""The recovery sweep: settle what a crashed creation left pending once its grace time is over.

A pending batch record is removed with everything it owns; a pending job of a committed batch is
started (the batch was promised to a client); any other pending job is removed, and with it its
anchor, Secret and Service (the garbage collector follows the owners). Each write is
conditional on the object not having changed since it was read, so a creation that commits at
the last moment, or a second replica sweeping at the same time, is never harmed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from scheduler.backends.base import Identity
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_COMMIT_DEADLINE,
    LABEL_ANCHOR,
    LABEL_ATTEMPTS,
    LABEL_BATCH_NAME,
    LABEL_IDEMPOTENCY_KEY,
    LABEL_PENDING,
    LABEL_RESTART,
    commit_patch,
    label_selector,
    pending_selector,
)
from scheduler.backends.kubernetes.records import parse_time
from scheduler.clock import CLOCK_SKEW_SECONDS
from scheduler.errors import NotFoundError

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 500


async def list_all(api: KubeApi, resource: Resource, selector: str) -> AsyncIterator[Any]:
    token: str | None = None
    while True:
        page = await api.list(resource, selector, limit=LIST_PAGE_SIZE, token=token)
        for item in page.get("items") or ():
            yield item
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def _overdue(obj: dict[str, Any], now: datetime) -> bool:
    deadline = parse_time(
        (obj["metadata"].get("annotations") or {}).get(ANNOTATION_COMMIT_DEADLINE)
    )
    # No readable deadline: someone else's half-made object; treat it as long overdue.
    return deadline is None or now > deadline + timedelta(seconds=CLOCK_SKEW_SECONDS)


def _is_pending(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("labels") or {}).get(LABEL_PENDING) == "true"


def _is_restart(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("labels") or {}).get(LABEL_RESTART) == "true"


async def sweep(
    api: KubeApi,
    identity: Identity,
    *,
    now: datetime,
    finish_restart: Callable[[dict[str, Any]], Awaitable[int]] | None = None,
) -> int:
    """Settle every overdue pending job and batch, and with `finish_restart` every overdue
    restart record (`restarting.py`); return how many were settled."""
    # Idempotency-Key claims, single jobs' anchors and jobs' attempt records are ConfigMaps too,
    # but no batches (and there are as many anchors and records as jobs: they are not listed).
    selector = (
        f"{label_selector(identity)},!{LABEL_IDEMPOTENCY_KEY},!{LABEL_ANCHOR},!{LABEL_ATTEMPTS}"
    )
    configmaps = [item async for item in list_all(api, Resource.CONFIGMAPS, selector)]
    # A restart record is no batch either.
    batches = {item["metadata"]["name"]: item for item in configmaps if not _is_restart(item)}
    settled = 0
    for record in configmaps:
        if finish_restart is not None and _is_restart(record) and _overdue(record, now):
            settled += await finish_restart(record)
    for name, record in batches.items():
        if _is_pending(record) and _overdue(record, now):
            settled += await _settle(
                api.delete(
                    Resource.CONFIGMAPS,
                    name,
                    resource_version=record["metadata"]["resourceVersion"],
                ),
                "removed a batch whose creation never completed",
                name,
            )
    async for job in list_all(api, Resource.JOBS, pending_selector(identity)):
        metadata = job["metadata"]
        batch = (metadata.get("labels") or {}).get(LABEL_BATCH_NAME)
        committed = batch is not None and batch in batches and not _is_pending(batches[batch])
        # A committed batch's job is started at once: the batch was promised, and a job left
        # unstarted stays invisible to every replica until it is.
        if not committed and not _overdue(job, now):
            continue
        if committed:
            settled += await _settle(
                api.patch(Resource.JOBS, metadata["name"], commit_patch()),
                "started a job of a committed batch that a crash left unstarted",
                metadata["name"],
            )
        elif batch is None or batch not in batches:
            settled += await _settle(
                api.delete(
                    Resource.JOBS, metadata["name"], resource_version=metadata["resourceVersion"]
                ),
                "removed a job whose creation never completed",
                metadata["name"],
            )
    return settled


async def _settle(call: Any, what: str, name: str) -> int:
    try:
        await call
    except NotFoundError:
        return 0  # committed or settled by someone else meanwhile
    log.warning(what, extra={"job_name": name})
    return 1
