"""Pure conversion of Kubernetes API objects (JSON dicts) into the neutral records."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from scheduler.backends.base import (
    WAITING_TIMEOUT,
    Condition,
    ContainerState,
    JobRecord,
    Kept,
    PodRecord,
    Usage,
    Waited,
    attempt_order,
)
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_ATTEMPT_PREFIX,
    ANNOTATION_BATCH_ID,
    ANNOTATION_BATCH_INDEX,
    ANNOTATION_CREATED_AT,
    ANNOTATION_GAVE_UP,
    ANNOTATION_GAVE_UP_AT,
    ANNOTATION_JOB_ID,
    ANNOTATION_PREVIOUS_ATTEMPTS,
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_START_AFTER,
    ANNOTATION_STARTED_AT,
    ANNOTATION_STOPPED_AT,
    ANNOTATION_WAITING_TIMEOUT,
    LABEL_BATCH_NAME,
    LABEL_PENDING,
    LABEL_SCHEDULE,
    POD_JOB_NAME_LABEL,
)
from scheduler.models.wire import rfc3339

_EPOCH = datetime.min.replace(tzinfo=UTC)
# Terminated with these, the container never ran: the message is the runtime's, not a result.
_RUNTIME_REASONS = frozenset({"StartError", "ContainerCannotRun"})
# A previous attempt keeps this much of its message: what a status shows of it (and no result).
PREVIOUS_MESSAGE_CHARS = 256
# And of why it waited: room for a scheduler's reasons on a few kinds of node.
WAITED_MESSAGE_CHARS = 512
_STATES: dict[Any, Literal["waiting", "running", "terminated"]] = {
    "waiting": "waiting",
    "running": "running",
    "terminated": "terminated",
}


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return _parsed_time(value)


# The same few timestamps come in every event of a job, and jobs started together share them:
# one datetime for each, not one per event and field.
@lru_cache(maxsize=4096)
def _parsed_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shared(value: Any) -> Any:
    """Values most jobs have in common (a phase, the image) kept once, not once per job."""
    return sys.intern(value) if isinstance(value, str) else value


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _uncounted(status: dict[str, Any], outcome: str) -> int:
    """Pods that ended but the Job controller has not counted yet: it names them first, in the
    same write that may add FailureTarget or SuccessCriteriaMet, and counts them in the next."""
    uncounted = status.get("uncountedTerminatedPods") or {}
    pods = uncounted.get(outcome) if isinstance(uncounted, dict) else None
    return len(pods) if isinstance(pods, list) else 0


def _index(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def job_record(obj: dict[str, Any]) -> JobRecord:
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    status = obj.get("status") or {}
    conditions = tuple(
        Condition(
            type=_shared(str(c.get("type", ""))),
            status=c.get("status") == "True",
            reason=_shared(c.get("reason")),
            message=c.get("message"),
            last_transition=parse_time(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or ()
    )
    if (gave_up := _gave_up(annotations)) is not None:
        conditions = (gave_up, *conditions)
    return JobRecord(
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        job_id=annotations.get(ANNOTATION_JOB_ID),
        # A restarted job's Job is newer than the job: it keeps the first one's creation time.
        created=parse_time(
            annotations.get(ANNOTATION_CREATED_AT) or metadata.get("creationTimestamp")
        ),
        started=parse_time(status.get("startTime") or annotations.get(ANNOTATION_STARTED_AT)),
        completed=parse_time(status.get("completionTime")),
        active=_int(status.get("active")),
        ready=_int(status.get("ready")),
        succeeded=_int(status.get("succeeded")) + _uncounted(status, "succeeded"),
        failed=_int(status.get("failed")) + _uncounted(status, "failed"),
        conditions=conditions,
        deleting=bool(metadata.get("deletionTimestamp")),
        batch_name=labels.get(LABEL_BATCH_NAME),
        batch_id=annotations.get(ANNOTATION_BATCH_ID),
        batch_index=_index(annotations.get(ANNOTATION_BATCH_INDEX)),
        stopped_at=parse_time(annotations.get(ANNOTATION_STOPPED_AT)),
        pending=labels.get(LABEL_PENDING) == "true",
        schedule=labels.get(LABEL_SCHEDULE),
        restarted=parse_time(annotations.get(ANNOTATION_RESTARTED_AT)),
        previous_attempts=previous_attempts(annotations.get(ANNOTATION_PREVIOUS_ATTEMPTS)),
        kept_attempts=kept_attempts(annotations),
        start_after=parse_time(annotations.get(ANNOTATION_START_AFTER)),
        waiting_timeout_seconds=_positive(annotations.get(ANNOTATION_WAITING_TIMEOUT)),
        suspended=bool((obj.get("spec") or {}).get("suspend")),
    )


def _gave_up(annotations: dict[str, Any]) -> Condition | None:
    """A job the scheduler gave up on for waiting too long: Failed, as the Job controller would
    say it (the Job itself is only suspended)."""
    at = parse_time(annotations.get(ANNOTATION_GAVE_UP_AT))
    if at is None:
        return None
    message = annotations.get(ANNOTATION_GAVE_UP)
    return Condition("Failed", True, WAITING_TIMEOUT, message if message else None, at)


def _positive(value: Any) -> int | None:
    number = _index(value)
    return number if number else None


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
    state = _container_state(_blocking_init(status) or first.get("state"))
    return PodRecord(
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        job_name=labels.get(POD_JOB_NAME_LABEL) or labels.get("batch.kubernetes.io/job-name", ""),
        created=parse_time(metadata.get("creationTimestamp")),
        phase=_shared(status.get("phase")) or "Pending",
        started=parse_time(status.get("startTime")),
        container=state or ContainerState("unknown"),
        last_termination=_container_state(first.get("lastState")),
        ready=bool(first.get("ready")),
        restart_count=_int(first.get("restartCount")),
        image=_shared(first.get("image")),
        image_id=_shared(first.get("imageID")),
        condition_reason=condition.get("reason") if condition else None,
        condition_message=condition.get("message") if condition else None,
        result=_result(_container_state(first.get("state"))),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def _blocking_init(status: dict[str, Any]) -> dict[str, Any] | None:
    """The state of an init container (one that puts a large payload together) that keeps the
    job's container from starting: failed, or stuck waiting (its image cannot be pulled); it
    tells what the attempt is. None while they run or once they are done."""
    for init in status.get("initContainerStatuses") or ():
        state = init.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode") != 0:
            return dict(state)
        if waiting is not None and waiting.get("reason") not in (None, "PodInitializing"):
            return dict(state)
    return None


def _result(state: ContainerState | None) -> str | None:
    """A terminated container's termination message: what it wrote as its result."""
    if state is None or state.state != "terminated" or state.reason in _RUNTIME_REASONS:
        return None
    return state.message or None


def attempt_summary(pod: PodRecord) -> dict[str, Any]:
    """What a restarted job's Job keeps of an attempt of its runs before (its pod is deleted)."""
    state = pod.container
    summary: dict[str, Any] = {
        "name": pod.name,
        "created": rfc3339(pod.created),
        "phase": pod.phase,
        "state": state.state,
        "reason": state.reason,
        "message": state.message[:PREVIOUS_MESSAGE_CHARS] if state.message else None,
        "exitCode": state.exit_code,
        "startedAt": rfc3339(state.started_at),
        "finishedAt": rfc3339(state.finished_at),
        "image": pod.image,
        "imageID": pod.image_id,
        "restartCount": pod.restart_count,
        "usage": _usage_summary(pod.usage),
        "waited": _waited_summary(pod.waited),
    }
    return {key: value for key, value in summary.items() if value is not None}


def _waited_summary(waited: Waited | None) -> dict[str, str] | None:
    if waited is None:
        return None
    if waited.message is None:
        return {"reason": waited.reason}
    return {"reason": waited.reason, "message": waited.message[:WAITED_MESSAGE_CHARS]}


def _kept_waited(summary: Any) -> Waited | None:
    """Why an attempt waited, as its record keeps it; None when it keeps nothing readable."""
    if not isinstance(summary, dict) or not isinstance(reason := summary.get("reason"), str):
        return None
    message = summary.get("message")
    return Waited(_shared(reason), message if isinstance(message, str) else None)


def _usage_summary(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "peakMemoryBytes": usage.peak_memory_bytes,
        "cpuSeconds": round(usage.cpu_seconds, 3),
        "samples": usage.samples,
        "estimated": usage.estimated,
    }


def _kept_usage(summary: Any) -> Usage | None:
    """What an attempt used, as its record keeps it; None when it keeps nothing readable."""
    if not isinstance(summary, dict):
        return None
    peak, cpu, samples = (summary.get(k) for k in ("peakMemoryBytes", "cpuSeconds", "samples"))
    if (
        not isinstance(peak, int)
        or not isinstance(cpu, int | float)
        or not isinstance(samples, int)
    ):
        return None
    return Usage(peak, float(cpu), samples, estimated=summary.get("estimated") is True)


_KEPT: dict[Any, Kept] = {"final": "final", "partial": "partial", "status": "status"}


def _previous_attempt(summary: dict[str, Any]) -> PodRecord:
    return PodRecord(
        name=str(summary.get("name", "")),
        uid="",
        resource_version="",
        job_name="",
        created=parse_time(summary.get("created")),
        phase=_shared(str(summary.get("phase") or "Unknown")),
        started=parse_time(summary.get("startedAt")),
        container=ContainerState(
            _STATES.get(summary.get("state"), "unknown"),
            reason=_shared(summary.get("reason")),
            message=summary.get("message"),
            exit_code=summary["exitCode"] if isinstance(summary.get("exitCode"), int) else None,
            started_at=parse_time(summary.get("startedAt")),
            finished_at=parse_time(summary.get("finishedAt")),
        ),
        restart_count=_int(summary.get("restartCount")),
        image=_shared(summary.get("image")),
        image_id=_shared(summary.get("imageID")),
        kept=_KEPT.get(summary.get("kept"), "status"),
        usage=_kept_usage(summary.get("usage")),
        waited=_kept_waited(summary.get("waited")),
    )


def previous_attempts(text: Any) -> tuple[PodRecord, ...]:
    """The attempts a restarted job's Job keeps (its annotation); none when it is unreadable."""
    if not isinstance(text, str) or not text:
        return ()
    try:
        summaries = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(summaries, list):
        return ()
    return tuple(_previous_attempt(s) for s in summaries if isinstance(s, dict))


def kept_attempt(text: Any) -> PodRecord | None:
    """An attempt its job's record keeps (one annotation); None when it is unreadable."""
    if not isinstance(text, str):
        return None
    try:
        summary = json.loads(text)
    except ValueError:
        return None
    return _previous_attempt(summary) if isinstance(summary, dict) else None


def kept_attempts(annotations: dict[str, Any]) -> tuple[PodRecord, ...]:
    """The attempts of a Job's current run that its record keeps, oldest first."""
    kept = [
        attempt
        for key, text in annotations.items()
        if key.startswith(ANNOTATION_ATTEMPT_PREFIX) and (attempt := kept_attempt(text))
    ]
    if not kept:
        return ()
    kept.sort(key=attempt_order)
    return tuple(kept)
