"""Pure conversion of Kubernetes API objects (JSON dicts) into the neutral records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scheduler.backends.base import Condition, ContainerState, JobRecord, PodRecord
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_BATCH_ID,
    ANNOTATION_BATCH_INDEX,
    ANNOTATION_JOB_ID,
    ANNOTATION_STARTED_AT,
    ANNOTATION_STOPPED_AT,
    LABEL_BATCH_NAME,
    LABEL_PENDING,
    POD_JOB_NAME_LABEL,
)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _index(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def job_record(obj: dict[str, Any]) -> JobRecord:
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    status = obj.get("status") or {}
    conditions = tuple(
        Condition(
            type=str(c.get("type", "")),
            status=c.get("status") == "True",
            reason=c.get("reason"),
            message=c.get("message"),
            last_transition=parse_time(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or ()
    )
    return JobRecord(
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        job_id=annotations.get(ANNOTATION_JOB_ID),
        created=parse_time(metadata.get("creationTimestamp")),
        started=parse_time(status.get("startTime") or annotations.get(ANNOTATION_STARTED_AT)),
        completed=parse_time(status.get("completionTime")),
        active=_int(status.get("active")),
        ready=_int(status.get("ready")),
        succeeded=_int(status.get("succeeded")),
        failed=_int(status.get("failed")),
        conditions=conditions,
        deleting=bool(metadata.get("deletionTimestamp")),
        batch_name=labels.get(LABEL_BATCH_NAME),
        batch_id=annotations.get(ANNOTATION_BATCH_ID),
        batch_index=_index(annotations.get(ANNOTATION_BATCH_INDEX)),
        stopped_at=parse_time(annotations.get(ANNOTATION_STOPPED_AT)),
        pending=labels.get(LABEL_PENDING) == "true",
    )


def _container_state(state: dict[str, Any] | None) -> ContainerState | None:
    if not state:
        return None
    if (waiting := state.get("waiting")) is not None:
        return ContainerState("waiting", waiting.get("reason"), waiting.get("message"))
    if (running := state.get("running")) is not None:
        return ContainerState("running", started_at=parse_time(running.get("startedAt")))
    if (terminated := state.get("terminated")) is not None:
        return ContainerState(
            "terminated",
            reason=terminated.get("reason"),
            message=terminated.get("message"),
            exit_code=_int(terminated.get("exitCode")),
            started_at=parse_time(terminated.get("startedAt")),
            finished_at=parse_time(terminated.get("finishedAt")),
        )
    return None


def _latest_unhappy_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    unhappy = [c for c in status.get("conditions") or () if c.get("status") != "True"]
    unhappy.sort(key=lambda c: c.get("lastTransitionTime") or "")
    return unhappy[-1] if unhappy else None


def pod_record(obj: dict[str, Any]) -> PodRecord:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    labels = metadata.get("labels") or {}
    containers = status.get("containerStatuses") or []
    first = containers[0] if containers else {}
    condition = _latest_unhappy_condition(status)
    return PodRecord(
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        job_name=labels.get(POD_JOB_NAME_LABEL) or labels.get("batch.kubernetes.io/job-name", ""),
        created=parse_time(metadata.get("creationTimestamp")),
        phase=status.get("phase") or "Pending",
        started=parse_time(status.get("startTime")),
        container=_container_state(first.get("state")) or ContainerState("unknown"),
        last_termination=_container_state(first.get("lastState")),
        ready=bool(first.get("ready")),
        restart_count=_int(first.get("restartCount")),
        image=first.get("image"),
        image_id=first.get("imageID"),
        condition_reason=condition.get("reason") if condition else None,
        condition_message=condition.get("message") if condition else None,
    )
