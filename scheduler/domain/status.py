"""Derive a job's wire status from its Job and Pod records, as Radix does (radix-notes §1.7).

Pure: the same records always give the same status, so statuses are cached and table-tested.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from scheduler.backends.base import (
    WAITING_TIMEOUT,
    Condition,
    ContainerState,
    JobRecord,
    PodRecord,
    Waited,
    attempt_order,
    waiting_for,
)
from scheduler.models import JobStatus, JobStatusEnum, PodStatus, ReplicaStatus, ReplicaStatusEnum
from scheduler.models import Waited as WaitedStatus
from scheduler.models.wire import built, rfc3339

OUT_OF_MEMORY = "OOMKilled"
STOPPED = "Stopped"
_EPOCH = datetime.min.replace(tzinfo=UTC)
# A termination message may be a job's whole result (up to 4 KiB): statuses show its first line,
# cut to this; the whole of it is served at the job's `/result`.
STATUS_MESSAGE_LIMIT_CHARS = 200


UNSCHEDULABLE = "Unschedulable"
# Why a job's first attempt waited when it was held for its start time (`startAfter`).
HELD = "Held"
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})
# What the scheduler adds after why a pod does not fit: whether evicting others would help.
_PREEMPTION = re.compile(r"\.?\s+preemption: .*$", re.DOTALL)
_QUOTED = re.compile(r'"([^"]+)"')
_RPC_PREFIX = re.compile(r"^(rpc error: code = \w+ desc = )+")
_IMAGE_NOT_FOUND = re.compile(r"not found|code = NotFound|manifest unknown", re.IGNORECASE)
_IMAGE_DENIED = re.compile(
    r"unauthorized|denied|forbidden|authorization failed|authentication required", re.IGNORECASE
)


def starts_at(moment: datetime) -> str:
    """A held job's message: its start time, to the second (rounded up: it starts no earlier)."""
    whole = moment.replace(microsecond=0)
    return f"starts at {rfc3339(whole if whole == moment else whole + timedelta(seconds=1))}"


def scheduling_problem(message: str) -> str:
    """Why no node takes the pod, as the scheduler says it, without its note on preemption:
    `0/3 nodes are available: 3 Insufficient memory`."""
    return _PREEMPTION.sub("", message).strip().rstrip(".")


def image_problem(message: str | None, image: str | None) -> str:
    """Why an image cannot be pulled, in a sentence: `image "x" not found`, `image "x" cannot be
    pulled: access denied`; else the runtime's own words without its RPC prefix. The kubelet's
    back-off message names the last pull's error since Kubernetes 1.32."""
    text = message or ""
    quoted = _QUOTED.search(text)
    named = image or (quoted.group(1) if quoted else None)
    if named and _IMAGE_NOT_FOUND.search(text):
        return f'image "{named}" not found'
    if named and _IMAGE_DENIED.search(text):
        return f'image "{named}" cannot be pulled: access denied'
    return _RPC_PREFIX.sub("", text) or "the image cannot be pulled"


def _brief(message: str) -> str:
    text = message.strip()
    line = text.split("\n", 1)[0].rstrip()
    if len(line) > STATUS_MESSAGE_LIMIT_CHARS:
        return line[: STATUS_MESSAGE_LIMIT_CHARS - 1] + "\u2026"
    return line if line == text else f"{line} \u2026"


def _shown_message(state: ContainerState) -> str | None:
    if state.state == "terminated" and state.message:
        return _brief(state.message)
    return state.message


def _termination_detail(state: ContainerState) -> str:
    if state.reason == OUT_OF_MEMORY:
        return f"Out of memory. The container was OOMKilled (exit code {state.exit_code})"
    detail = f"the container exited with code {state.exit_code}"
    if state.reason and state.reason not in ("Error", "Completed"):
        detail += f" ({state.reason})"
    if state.message:
        detail += f": {_brief(state.message)}"
    return detail


def _pod_problem(pod: PodRecord) -> str | None:
    """Why this pod is not (or no longer) doing well, in a user's words; None when it is fine."""
    state = pod.container
    if state.reason == STOPPED:
        return None  # not the attempt's own doing: its message says it was stopped
    if state.state == "terminated" and (state.exit_code or state.reason == OUT_OF_MEMORY):
        return _termination_detail(state)
    waiting = waiting_for(pod)
    if waiting is None:
        return None
    message = _waiting_problem(waiting, pod.image)
    return f"{waiting.reason}: {message}" if message else waiting.reason


def _waiting_problem(waiting: Waited, image: str | None) -> str | None:
    """What keeps an attempt waiting, in a user's words (after its reason)."""
    if waiting.reason in IMAGE_PULL_REASONS:
        return image_problem(waiting.message, image)
    if waiting.reason == UNSCHEDULABLE and waiting.message:
        return scheduling_problem(waiting.message)
    return waiting.message


def _replica_status(pod: PodRecord) -> ReplicaStatusEnum:
    state = pod.container
    if state.reason == STOPPED:
        return ReplicaStatusEnum.STOPPED
    if state.state == "running":
        return ReplicaStatusEnum.RUNNING
    if state.state == "terminated":
        if state.exit_code == 0 and state.reason in (None, "Completed"):
            return ReplicaStatusEnum.SUCCEEDED
        return ReplicaStatusEnum.FAILED
    if pod.phase == "Succeeded":
        return ReplicaStatusEnum.SUCCEEDED
    if pod.phase == "Failed":
        return ReplicaStatusEnum.FAILED
    return ReplicaStatusEnum.PENDING


def _waited(pod: PodRecord, since: datetime | None, held: Waited | None) -> WaitedStatus | None:
    """Why the attempt waited, from `since` (when it could start) to its container's start: what
    its record says it waited for last, else why its job was `held`; None while it waits."""
    waiting = pod.waited or held
    started = pod.container.started_at
    if waiting is None or started is None or since is None:
        return None
    return built(
        WaitedStatus,
        reason=waiting.reason,
        message=_waiting_problem(waiting, pod.image),
        seconds=max(0, round((started - since).total_seconds())),
    )


def _waits(
    attempts: Sequence[PodRecord], since: datetime | None, held: Waited | None = None
) -> list[WaitedStatus | None]:
    """Why each of a run's attempts waited: the first from `since` (the run's start), why it
    was `held` if nothing later; each other from its predecessor's end."""
    waits = []
    for attempt in attempts:
        waits.append(_waited(attempt, since, held))
        since, held = attempt.container.finished_at, None
    return waits


def _held(job: JobRecord) -> Waited | None:
    """Why the job's current run waited before its first attempt, when its pods cannot say: it
    was held for its start time."""
    begun = job.restarted or job.created
    if job.start_after is None or begun is None or job.start_after <= begun:
        return None
    return Waited(HELD, starts_at(job.start_after))


def _pod_status(
    pod: PodRecord,
    index: int,
    stopped: datetime | None = None,
    waited: WaitedStatus | None = None,
) -> PodStatus:
    state = pod.container
    problem = _pod_problem(pod)
    replica = _stopped_replica(pod, stopped) if stopped else _replica_status(pod)
    # The attempts a stop ended say so, as on every backend (their pods' own reason is the
    # signal's, e.g. Error with exit code 143).
    reason = STOPPED if replica is ReplicaStatusEnum.STOPPED else state.reason
    return built(
        PodStatus,
        name=pod.name,
        created=pod.created,
        start_time=state.started_at,
        end_time=state.finished_at,
        container_started=state.started_at,
        replica_status=built(ReplicaStatus, status=replica),
        status_message=problem or _shown_message(state),
        restart_count=pod.restart_count,
        image=pod.image,
        image_id=pod.image_id,
        pod_index=index,
        exit_code=state.exit_code or 0,
        reason=reason,
        waited=waited,
    )


def _stopped_replica(pod: PodRecord, stopped: datetime) -> ReplicaStatusEnum:
    """A stopped job's pods that had not finished, or that the stop ended, are Stopped, as in
    Radix."""
    status = _replica_status(pod)
    if status in (ReplicaStatusEnum.PENDING, ReplicaStatusEnum.RUNNING):
        return ReplicaStatusEnum.STOPPED
    finished = pod.container.finished_at
    if status is ReplicaStatusEnum.FAILED and finished is not None and finished >= stopped:
        return ReplicaStatusEnum.STOPPED
    return status


def _is_live(pod: PodRecord) -> bool:
    return pod.phase in ("Pending", "Running") and pod.container.state != "terminated"


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _failure_message(condition: Condition, pods: list[PodRecord]) -> str:
    message = condition.message or condition.reason or "the job failed"
    if condition.reason == WAITING_TIMEOUT:
        return message  # it names why the job was waiting already
    problems = [p for p in (_pod_problem(pod) for pod in reversed(pods)) if p]
    return f"{message}: {problems[0]}" if problems else message


def _waiting_message(job: JobRecord, attempts: list[PodRecord]) -> str | None:
    """Why a job waits: held until its start time, its place in a queue, or its pods' trouble."""
    if job.suspended and job.start_after is not None:
        return starts_at(job.start_after)
    if job.waiting_reason:
        return job.waiting_reason
    return next((m for m in (_pod_problem(p) for p in reversed(attempts)) if m), None)


def current_attempts(job: JobRecord, pods: Iterable[PodRecord]) -> list[PodRecord]:
    """The attempts of the job's current run, oldest first: its pods, and those its record
    keeps whose pods are gone. A restart's earlier attempts are history, not among them."""
    earlier = {pod.name for pod in job.previous_attempts}
    current = {pod.name: pod for pod in pods if pod.name not in earlier}
    for kept in job.kept_attempts:
        live = current.get(kept.name)
        if live is None and kept.name not in earlier:
            current[kept.name] = kept
        elif live is not None and live.waited is None and kept.waited is not None:
            # Why it waited, kept, which a scheduler that started since has not seen itself.
            current[kept.name] = dataclasses.replace(live, waited=kept.waited)
    return sorted(current.values(), key=attempt_order)


def derive_status(job: JobRecord, pods: Iterable[PodRecord]) -> JobStatus:
    # A restarted job's earlier attempts are history: they show first and decide nothing.
    previous = job.previous_attempts
    ordered = current_attempts(job, pods)
    completed = job.condition("Complete") or job.condition("SuccessCriteriaMet")
    if completed is not None and any(_is_live(p) for p in ordered):
        # The Job's end came before its pod's (two watches): the job has succeeded once its
        # pod is seen to have, so that its result is there when it shows Succeeded.
        completed = None
    failed = job.condition("Failed") or job.condition("FailureTarget")
    stopped = job.stopped_at
    if (
        failed is not None
        and stopped is not None
        and (failed.last_transition or stopped) >= stopped
    ):
        failed = None  # the stop ended the job; it did not fail on its own
    message: str | None = None
    ended: datetime | None = None
    if completed is not None:
        # It finished before the stop reached it: that is what happened.
        status = JobStatusEnum.SUCCEEDED
        ended = job.completed or completed.last_transition
        stopped = None
    elif failed is not None:
        stopped = None
        status = JobStatusEnum.FAILED
        ended = failed.last_transition
        message = _failure_message(failed, ordered)
    elif stopped is not None:
        if any(_is_live(p) for p in ordered):
            status = JobStatusEnum.STOPPING
        else:
            status = JobStatusEnum.STOPPED
            suspended = job.condition("Suspended")
            ended = _latest(stopped, suspended.last_transition if suspended else None)
    elif job.active > 0 or any(p.container.state == "running" for p in ordered):
        running = job.ready > 0 or any(p.ready for p in ordered)
        status = JobStatusEnum.RUNNING if running else JobStatusEnum.ACTIVE
        message = next((m for m in (_pod_problem(p) for p in reversed(ordered)) if m), None)
    else:
        status = JobStatusEnum.WAITING
        message = _waiting_message(job, ordered)
    updated = _latest(
        job.created,
        job.started,
        job.completed,
        job.stopped_at,
        job.restarted,
        *(c.last_transition for c in job.conditions),
        *(p.created for p in ordered),
        *(p.container.started_at for p in ordered),
        *(p.container.finished_at for p in ordered),
    )
    return built(
        JobStatus,
        job_id=job.job_id,
        batch_name=job.batch_name,
        batch_id=job.batch_id,
        name=job.name,
        created=job.created,
        started=job.started,
        ended=ended,
        updated=updated,
        status=status,
        message=message,
        failed=job.failed,
        restart=rfc3339(job.restarted),
        pod_statuses=[
            *(
                _pod_status(pod, index, waited=waited)
                for index, (pod, waited) in enumerate(
                    zip(previous, _waits(previous, job.created), strict=True)
                )
            ),
            *(
                _pod_status(pod, len(previous) + index, stopped, waited)
                for index, (pod, waited) in enumerate(
                    zip(
                        ordered,
                        _waits(ordered, job.restarted or job.created, _held(job)),
                        strict=True,
                    )
                )
            ),
        ],
    )
