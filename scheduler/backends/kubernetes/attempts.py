"""A job's attempt record on Kubernetes, pure: what it keeps of each attempt once the attempt's pod
may be gone. Its status is an annotation on the Job (so every replica's watch has it, and a
restarted scheduler lists it with the Job); its log's tail and its result are in a ConfigMap the
Job owns, `<job>-attempts`, read only when asked for. Both go with the Job.

The log is kept as the kubelet serves it with timestamps (so it is served with or without them),
gzip-compressed: the last whole lines that fit `log_bytes` (counted without the timestamps) per
attempt, and at most `record_bytes` compressed per job, the oldest attempts' logs dropped first.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.backends.base import (
    ContainerState,
    Identity,
    Kept,
    PodRecord,
    Usage,
    attempt_ended,
    attempt_started,
)
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_ATTEMPT_PREFIX,
    ANNOTATION_PREVIOUS_ATTEMPTS,
    LABEL_ATTEMPTS,
    identity_labels,
    job_owner,
)
from scheduler.backends.kubernetes.records import (
    attempt_summary,
    kept_attempts,
    parse_time,
    previous_attempts,
)
from scheduler.models.wire import rfc3339

RECORD_SUFFIX = "-attempts"
# The attempts of one run a Job's annotations keep (an object's annotations hold 256 KiB at most).
MAX_KEPT_ATTEMPTS = 100
STOPPED = "Stopped"
STOPPED_MESSAGE = "the job was stopped"
DELETED = "Deleted"
DELETED_MESSAGE = "its pod was deleted before it ended (evicted, drained, or deleted by hand)"
_RANK: dict[Kept | None, int] = {None: -1, "status": 0, "partial": 1, "final": 2}
_EPOCH = datetime.min.replace(tzinfo=UTC)
_LOG = ".log"
_META = ".json"


def rank(kept: Kept | None) -> int:
    """How much is kept: nothing, a status, a log read before the end, a log read after it."""
    return _RANK[kept]


def record_name(job: str) -> str:
    return f"{job}{RECORD_SUFFIX}"


def annotation_key(pod: str) -> str:
    return f"{ANNOTATION_ATTEMPT_PREFIX}{pod}"


# -- the status, on the Job ----------------------------------------------------------------------


def kept_summary(
    pod: PodRecord,
    kept: Kept,
    *,
    known: PodRecord | None,
    stopped_at: datetime | None,
    now: datetime,
    usage: Usage | None = None,
) -> str:
    """The annotation that keeps `pod`'s attempt, merged with what the record `known` keeps of
    it: the better log, the later state, the larger figures of what it used (`usage`, as
    sampled, and what is kept), and why it waited to start (as `pod` says, else as kept). An
    attempt the scheduler ends by a stop ends Stopped at `stopped_at` (its pod's own end, if it
    comes, only adds the exit code). What is kept stands for the attempt once its pod is gone:
    one whose end was not seen ended then, Deleted (as of `now`, unless a later sight of its pod
    says how it ended)."""
    state = pod.container
    was_stopped = known is not None and known.container.reason == STOPPED
    if not attempt_ended(pod) and known is not None:
        state = known.container  # nothing newer than what is kept
    if state.state != "terminated" and stopped_at is None:
        state = _ended_as(DELETED, DELETED_MESSAGE, state, finished_at=now)
    elif stopped_at is not None and not attempt_ended(pod) and attempt_started(pod):
        if state.state != "terminated":
            state = _ended_as(STOPPED, STOPPED_MESSAGE, state, finished_at=stopped_at)
        elif state.finished_at is None or state.finished_at >= stopped_at:
            # Its end, kept meanwhile (another keeper saw it), was the stop's: its exit stays.
            ending = state.finished_at
            state = _ended_as(
                STOPPED, STOPPED_MESSAGE, state, finished_at=ending, exit_code=state.exit_code
            )
    elif was_stopped and state.reason != STOPPED:
        ending = state.finished_at
        state = _ended_as(
            STOPPED, STOPPED_MESSAGE, state, finished_at=ending, exit_code=state.exit_code
        )
    level = known.kept if known and _RANK[known.kept] > _RANK[kept] else kept
    if usage is not None:
        usage = usage.merged(known.usage if known is not None else None)
    elif known is not None:
        usage = known.usage
    # Why it waited: as seen (by this replica, since it started), else as kept (by another).
    waited = pod.waited or (known.waited if known is not None else None)
    summary = attempt_summary(dataclasses.replace(pod, container=state, usage=usage, waited=waited))
    summary["kept"] = level
    return json.dumps(summary, separators=(",", ":"), sort_keys=True)


def _ended_as(
    reason: str,
    message: str,
    state: ContainerState,
    *,
    finished_at: datetime | None,
    exit_code: int | None = None,
) -> ContainerState:
    return ContainerState(
        "terminated",
        reason=reason,
        message=message,
        exit_code=exit_code,
        started_at=state.started_at,
        finished_at=finished_at,
    )


def kept_on(job: dict[str, Any]) -> dict[str, PodRecord]:
    """The attempts the Job's annotations keep, by pod name, oldest first."""
    annotations = job["metadata"].get("annotations") or {}
    return {attempt.name: attempt for attempt in kept_attempts(annotations)}


def previous_on(job: dict[str, Any]) -> frozenset[str]:
    """The pods of the Job's runs before a restart (its history, which is not kept here)."""
    annotations = job["metadata"].get("annotations") or {}
    earlier = previous_attempts(annotations.get(ANNOTATION_PREVIOUS_ATTEMPTS))
    return frozenset(attempt.name for attempt in earlier)


def annotation_patch(job: dict[str, Any], pod: str, summary: str) -> dict[str, Any] | None:
    """The Job's patch that keeps `summary` for `pod`, on condition that the Job is as read; it
    forgets the oldest attempts beyond the most it keeps. None when it keeps that already."""
    metadata = job["metadata"]
    annotations = metadata.get("annotations") or {}
    key = annotation_key(pod)
    if annotations.get(key) == summary:
        return None
    changes: dict[str, str | None] = {key: summary}
    others = [attempt for name, attempt in kept_on(job).items() if name != pod]
    for dropped in others[: max(0, len(others) + 1 - MAX_KEPT_ATTEMPTS)]:
        changes[annotation_key(dropped.name)] = None
    return {"metadata": {"resourceVersion": metadata["resourceVersion"], "annotations": changes}}


def without_kept(annotations: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if not k.startswith(ANNOTATION_ATTEMPT_PREFIX)}


# -- the log, as read and as served --------------------------------------------------------------


def _text_size(line: bytes) -> int:
    """A line's size as a client reads it without timestamps."""
    stamp, space, text = line.partition(b" ")
    return len(text) if space and stamp.endswith(b"Z") else len(line)


def log_tail(log: bytes, limit: int) -> tuple[bytes, bool]:
    """The last whole lines of a timestamped log that fit `limit` (counted without the
    timestamps), and whether anything was left out."""
    lines = log.splitlines(keepends=True)
    size = 0
    first = len(lines)
    while first > 0 and size + _text_size(lines[first - 1].rstrip(b"\n")) + 1 <= limit:
        first -= 1
        size += _text_size(lines[first].rstrip(b"\n")) + 1
    return b"".join(lines[first:]), first > 0


def served(log: bytes, *, tail: int | None, timestamps: bool) -> bytes:
    """A kept log as a client asked for it: its last `tail` lines, with or without timestamps."""
    lines = log.splitlines(keepends=True)
    if tail is not None:
        lines = lines[len(lines) - tail :] if tail else []
    if timestamps:
        return b"".join(lines)
    return b"".join(_untimed(line) for line in lines)


def _untimed(line: bytes) -> bytes:
    stamp, space, text = line.partition(b" ")
    return text if space and stamp.endswith(b"Z") else line


# -- the log and the result, in the job's ConfigMap ----------------------------------------------


@dataclass(frozen=True, slots=True)
class KeptLog:
    """What the ConfigMap keeps of one attempt. `log` is None when it holds no log of it: none
    was read, or it was dropped (`dropped`) to keep the record within its size."""

    pod: str
    created: datetime | None
    log: bytes | None
    truncated: bool = False
    final: bool = False  # read once the attempt had ended
    dropped: bool = False
    result: str | None = None


def new_record(identity: Identity, job: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record_name(job),
            "labels": {**identity_labels(identity), LABEL_ATTEMPTS: "true"},
            "ownerReferences": [job_owner(job, uid)],
        },
    }


def read_kept(record: dict[str, Any], pod: str) -> KeptLog | None:
    """What the record keeps of `pod`'s attempt; None when nothing (or nothing readable)."""
    try:
        meta = json.loads((record.get("data") or {})[pod + _META])
    except (KeyError, ValueError, TypeError):
        return None
    if not isinstance(meta, dict):
        return None
    log = None
    encoded = (record.get("binaryData") or {}).get(pod + _LOG)
    if isinstance(encoded, str):
        try:
            log = gzip.decompress(base64.b64decode(encoded))
        except (binascii.Error, OSError, EOFError):
            log = None
    result = meta.get("result")
    return KeptLog(
        pod=pod,
        created=parse_time(meta.get("created")),
        log=log,
        truncated=bool(meta.get("truncated")),
        final=bool(meta.get("final")),
        dropped=bool(meta.get("dropped")),
        result=result if isinstance(result, str) else None,
    )


def _better(new: KeptLog, known: KeptLog | None) -> KeptLog:
    if known is None:
        return new
    log_of = new if new.log is not None and (known.log is None or not known.final) else known
    return KeptLog(
        pod=new.pod,
        created=new.created or known.created,
        log=log_of.log,
        truncated=log_of.truncated,
        final=log_of.final,
        dropped=known.dropped and new.log is None,
        result=new.result if new.result is not None else known.result,
    )


def _meta(kept: KeptLog) -> str:
    meta: dict[str, Any] = {"created": rfc3339(kept.created), "final": kept.final}
    if kept.truncated:
        meta["truncated"] = True
    if kept.dropped:
        meta["dropped"] = True
    if kept.result is not None:
        meta["result"] = kept.result
    return json.dumps(meta, separators=(",", ":"), sort_keys=True)


def record_patch(
    record: dict[str, Any], kept: KeptLog, *, record_bytes: int
) -> dict[str, Any] | None:
    """The record's patch (on condition that it is as read) that keeps `kept`, merged with what
    it keeps of that attempt, the oldest attempts' logs dropped to stay within `record_bytes`;
    None when it keeps as much already. Only this attempt's log is unpacked and packed."""
    data: dict[str, str] = record.get("data") or {}
    binary: dict[str, str] = record.get("binaryData") or {}
    known = read_kept(record, kept.pod)
    current = _better(kept, known)
    if current == known:
        return None
    packed = {
        key.removesuffix(_META): (meta, binary.get(key.removesuffix(_META) + _LOG))
        for key, meta in data.items()
        if key.endswith(_META)
    }
    packed[kept.pod] = _packed(current)
    others = sorted(
        (pod for pod, (_, log) in packed.items() if pod != kept.pod and log is not None),
        key=lambda pod: (_created(packed[pod][0]), pod),
    )
    for pod in others:
        if _size(packed) <= record_bytes:
            break
        packed[pod] = (_dropped(packed[pod][0]), None)
    while _size(packed) > record_bytes and current.log:
        # Even alone it does not fit (a log that hardly compresses): keep less of it.
        shorter, _ = log_tail(current.log, len(current.log) // 2)
        current = dataclasses.replace(current, log=shorter, truncated=True)
        packed[kept.pod] = _packed(current)
    patch: dict[str, Any] = {"data": {}, "binaryData": {}}
    for pod, (meta, encoded) in packed.items():
        if data.get(pod + _META) != meta:
            patch["data"][pod + _META] = meta
        if binary.get(pod + _LOG) != encoded:
            patch["binaryData"][pod + _LOG] = encoded
    version = (record.get("metadata") or {}).get("resourceVersion")
    if version:
        patch["metadata"] = {"resourceVersion": version}
    return patch


def _created(meta: str) -> datetime:
    try:
        found = parse_time(json.loads(meta).get("created"))
    except (ValueError, AttributeError):
        return _EPOCH
    return found or _EPOCH


def _dropped(meta: str) -> str:
    """An attempt's meta once its log is dropped."""
    try:
        fields = json.loads(meta)
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    fields["dropped"] = True
    fields.pop("truncated", None)
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def _packed(attempt: KeptLog) -> tuple[str, str | None]:
    log = None
    if attempt.log is not None:
        log = base64.b64encode(gzip.compress(attempt.log, compresslevel=6, mtime=0)).decode()
    return _meta(attempt), log


def _size(packed: dict[str, tuple[str, str | None]]) -> int:
    """The record's size as the API server counts it: its data, and its binary data decoded."""
    return sum(
        len(meta.encode()) + (len(log) * 3 // 4 if log is not None else 0)
        for meta, log in packed.values()
    )
