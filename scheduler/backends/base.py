"""The Backend port and the neutral records that cross it.

Records are small frozen dataclasses (not API dicts) so the in-memory view stays compact and the
domain never sees Kubernetes types.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Final, Literal, Protocol


class Kind(Enum):
    JOB = "jobs"
    POD = "pods"


@dataclass(frozen=True, slots=True)
class Identity:
    """Whose jobs these are: one scheduler serves one job of one app in one environment."""

    app: str
    environment: str
    component: str
    namespace: str


@dataclass(frozen=True, slots=True)
class PortSpec:
    name: str
    port: int


@dataclass(frozen=True, slots=True)
class ExitCodeRule:
    action: str  # FailJob | Ignore | Count
    operator: str  # In | NotIn
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Radix's deprecated `node`: a GPU type list (e.g. "nvidia-v100, -nvidia-k80") and count."""

    gpu: str | None = None
    gpu_count: str | None = None


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """Radix's `runtime`: the CPU architecture and the node type (node pool) to run on."""

    architecture: str | None = None
    node_type: str | None = None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Everything needed to start one job, already merged from config and request."""

    name: str
    job_id: str | None
    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: Mapping[str, str]
    ports: tuple[PortSpec, ...]
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    payload: bytes | None  # None: the job has no payload path, so nothing is mounted
    payload_path: str | None
    time_limit_seconds: int
    backoff_limit: int
    run_as_user: int | None = None
    failure_rules: tuple[ExitCodeRule, ...] = ()
    node: NodeSpec | None = None
    runtime: RuntimeSpec | None = None
    batch_name: str | None = None
    batch_id: str | None = None
    batch_index: int | None = None  # its place in the batch request
    schedule: str | None = None  # the radixconfig schedule whose tick this run is
    # Not to start before this (`startAfter`); a time that has passed: at once.
    start_after: datetime | None = None
    # Failed when it has not started this long after it could (`waitingTimeoutSeconds`).
    waiting_timeout_seconds: int | None = None


# Variables every job gets from the scheduler (its name, the app, environment and component),
# whatever its request says: no part of what was asked of it.
SCHEDULER_VARIABLES: Final = frozenset(
    {"RADIX_JOB_NAME", "RADIX_APP", "RADIX_ENVIRONMENT", "RADIX_COMPONENT"}
)


@dataclass(frozen=True, slots=True)
class Asked:
    """What was asked of a job, as its backend keeps it: its request's options, merged with the
    configuration, with the names of its variables (never their values) and whether it was given
    a payload (never the payload). A None option is one the backend does not know."""

    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    variable_names: tuple[str, ...]  # sorted
    has_payload: bool
    node: NodeSpec | None = None
    runtime: RuntimeSpec | None = None
    time_limit_seconds: int | None = None
    backoff_limit: int | None = None
    start_after: datetime | None = None
    waiting_timeout_seconds: int | None = None
    schedule: str | None = None
    batch_name: str | None = None
    job_id: str | None = None


def asked_of(request: JobRequest, *, has_payload: bool) -> Asked:
    """What `request` asks, told apart from its values. `has_payload`: whether the job was given
    a payload file (the request as stored may not hold the payload itself)."""
    return Asked(
        image=request.image,
        command=request.command,
        args=request.args,
        requests=dict(request.requests),
        limits=dict(request.limits),
        variable_names=tuple(sorted(request.env.keys() - SCHEDULER_VARIABLES)),
        has_payload=has_payload,
        node=request.node,
        runtime=request.runtime,
        time_limit_seconds=request.time_limit_seconds,
        backoff_limit=request.backoff_limit,
        start_after=request.start_after,
        waiting_timeout_seconds=request.waiting_timeout_seconds,
        schedule=request.schedule,
        batch_name=request.batch_name,
        job_id=request.job_id,
    )


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """A batch to create whole: its jobs, each already merged with the batch's defaults."""

    name: str
    batch_id: str | None
    jobs: tuple[JobRequest, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str | None
    message: str | None
    last_transition: datetime | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    name: str
    uid: str
    resource_version: str
    job_id: str | None
    created: datetime | None
    started: datetime | None
    completed: datetime | None
    active: int
    ready: int
    succeeded: int
    failed: int
    conditions: tuple[Condition, ...] = ()
    deleting: bool = False
    batch_name: str | None = None
    batch_id: str | None = None
    batch_index: int | None = None
    # When a stop was asked for; the job keeps its record and ends Stopped.
    stopped_at: datetime | None = None
    # Created but not yet committed: no client was told of it, so it is nobody's job yet.
    pending: bool = False
    # When it was last restarted, and the attempts of its runs before that, oldest first.
    restarted: datetime | None = None
    previous_attempts: tuple[PodRecord, ...] = ()
    schedule: str | None = None  # a run of this radixconfig schedule
    # The attempts of its current run that its record keeps (their pods may be gone).
    kept_attempts: tuple[PodRecord, ...] = ()
    # Not to start before this (`startAfter`; kept once it has started), and its waiting
    # timeout. `suspended`: it does not run now: held until `start_after` (or, on Kubernetes,
    # its Job suspended for a stop or a give-up, which say so themselves).
    start_after: datetime | None = None
    waiting_timeout_seconds: int | None = None
    suspended: bool = False
    # Why it waits, in the backend's words, when its pods cannot say (its place in a queue).
    waiting_reason: str | None = None

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind and c.status), None)


@dataclass(frozen=True, slots=True)
class ContainerState:
    state: Literal["waiting", "running", "terminated", "unknown"]
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What one attempt used, as far as it was seen, from `samples` looks at it: the most memory
    it held at once (bytes) and the CPU time it took (seconds). `estimated`: the CPU time is
    sampled rates added up (Kubernetes' metrics API), not a count the kernel kept."""

    peak_memory_bytes: int
    cpu_seconds: float
    samples: int
    estimated: bool = False

    def merged(self, other: Usage | None) -> Usage:
        """Two looks at one attempt (two replicas', or before and after a scheduler restart) as
        one: each saw less than all of it, so each figure is the larger of the two."""
        if other is None:
            return self
        return Usage(
            peak_memory_bytes=max(self.peak_memory_bytes, other.peak_memory_bytes),
            cpu_seconds=max(self.cpu_seconds, other.cpu_seconds),
            samples=max(self.samples, other.samples),
            estimated=self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class UsageReport:
    """What a backend can tell of a job's use: what it asked for (`requests` and `limits`, cpu
    and memory as given), the figures so far of its attempts still under watch (by pod name),
    how figures are taken (`source`, in a user's words), and why none can be had (`unavailable`,
    e.g. the cluster serves no metrics API)."""

    requests: Mapping[str, str]
    limits: Mapping[str, str]
    live: Mapping[str, Usage]
    source: str
    unavailable: str | None = None


@dataclass(frozen=True, slots=True)
class Waited:
    """Why an attempt waited before its container started, as last seen: a CamelCase `reason`
    (`Unschedulable`, `ImagePullBackOff`, locally `Queued`) and its message, in the words of
    whoever said it (the formatting for a user is the domain's)."""

    reason: str
    message: str | None = None


# Waiting reasons that are just a pod starting up, not a wait worth telling of.
ROUTINE_WAITING_REASONS: Final = frozenset({"ContainerCreating", "PodInitializing"})


@dataclass(frozen=True, slots=True)
class PodRecord:
    name: str
    uid: str
    resource_version: str
    job_name: str
    created: datetime | None
    phase: str
    started: datetime | None
    container: ContainerState = field(default_factory=lambda: ContainerState("unknown"))
    last_termination: ContainerState | None = None
    ready: bool = False
    restart_count: int = 0
    image: str | None = None
    image_id: str | None = None
    # Why a pod without container state is not progressing (e.g. Unschedulable).
    condition_reason: str | None = None
    condition_message: str | None = None
    # What the container wrote as its result once it ended (Kubernetes' termination message, at
    # most 4 KiB); None when it wrote none.
    result: str | None = None
    deleting: bool = False  # its pod is being deleted
    # An attempt that a record keeps, not a pod: how much of it the record holds (`Kept`).
    kept: Kept | None = None
    # What it used, as its record keeps it (on Kubernetes once it is kept, locally once it ended).
    usage: Usage | None = None
    # Why it waited before its container started, as last seen (None: for nothing worth telling,
    # or not known); what its status says while it still waits is `waiting_for(pod)`.
    waited: Waited | None = None


_EPOCH = datetime.min.replace(tzinfo=UTC)
_NEVER = datetime.max.replace(tzinfo=UTC)


def attempt_started(pod: PodRecord) -> bool:
    """Its container has run (a pod that never ran is no attempt to measure or keep)."""
    return pod.container.started_at is not None or pod.container.state in ("running", "terminated")


def waiting_for(pod: PodRecord) -> Waited | None:
    """What keeps the pod's container from starting, as its status says, when it is worth telling
    (no node takes it, its image cannot be pulled; not the routine creation of a container);
    None otherwise."""
    state = pod.container
    if state.state == "waiting" and state.reason and state.reason not in ROUTINE_WAITING_REASONS:
        return Waited(state.reason, state.message)
    if state.state == "unknown" and pod.condition_reason and pod.condition_message:
        return Waited(pod.condition_reason, pod.condition_message)
    return None


def attempt_ended(pod: PodRecord) -> bool:
    return pod.container.state == "terminated" or pod.phase in ("Succeeded", "Failed")


def attempt_order(pod: PodRecord) -> tuple[datetime, datetime, str]:
    """Where an attempt comes among its job's: by creation, which Kubernetes times to the second
    only, so of two created in the same second the one that ended first (one pod runs at a time,
    a retry after its predecessor's end), then by name."""
    finished = pod.container.finished_at if pod.container.state == "terminated" else None
    return (pod.created or _EPOCH, finished or _NEVER, pod.name)


# How much of an attempt its record keeps: its log read once it had ended, or before (a stop, or
# its pod being deleted), or its status only (its pod went before its log could be read).
Kept = Literal["final", "partial", "status"]


@dataclass(frozen=True, slots=True)
class OpenLog:
    """An attempt's log, open: its chunks, and whether they come from the attempt's record
    (its pod is gone) holding only the log's tail."""

    chunks: AsyncGenerator[bytes, None]
    kept: bool = False
    truncated: bool = False


Record = JobRecord | PodRecord
# OPENED: the stream is established (nothing changed); readiness needs it in a quiet namespace.
WatchEventType = Literal["OPENED", "ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: WatchEventType
    resource_version: str
    record: Record | None  # None for OPENED and BOOKMARK


# The reason of a job failed for not having started within its waiting timeout.
WAITING_TIMEOUT = "WaitingTimeout"

ClaimKind = Literal["job", "batch"]


@dataclass(frozen=True, slots=True)
class Claim:
    """An Idempotency-Key's claim: which request (`body_hash`) made which job or batch."""

    body_hash: str
    kind: ClaimKind
    name: str
    created: datetime
    version: str  # to replace or remove exactly this claim
    new: bool  # made by this call (else it is someone's earlier claim)


class KeyStore(Protocol):
    """Claims of Idempotency-Keys, shared by every replica and kept across restarts."""

    async def claim_key(
        self, key_hash: str, *, body_hash: str, kind: ClaimKind, name: str, now: datetime
    ) -> Claim:
        """A new claim, or the one that exists for `key_hash` (then `new` is False)."""
        ...

    async def release_key(self, key_hash: str, version: str | None = None) -> None:
        """Remove the claim (only if still at `version`); NotFoundError when it is not."""
        ...

    async def expire_keys(self, before: datetime) -> int:
        """Remove the claims made before `before`; return how many."""
        ...


class Backend(Protocol):
    """Where jobs run. Raise the `scheduler.errors` family, never a client library's errors."""

    identity: Identity

    @property
    def keys(self) -> KeyStore:
        """Where Idempotency-Keys are claimed."""
        ...

    async def start(self) -> None:
        """Load credentials and open connections; no request to the API is needed yet."""
        ...

    async def create_job(self, request: JobRequest) -> JobRecord:
        """Create the job and everything it needs, or nothing at all."""
        ...

    async def create_batch(self, batch: BatchRequest) -> list[JobRecord]:
        """Create every job of the batch, or none: no job runs before all of them exist."""
        ...

    async def stop_job(self, name: str, started: datetime | None) -> JobRecord:
        """Terminate the job's pods and keep the job, marked as stopped; `started` is kept as
        the job's start time (Kubernetes forgets it when a Job is suspended)."""
        ...

    async def delete_job(self, name: str, uid: str) -> None:
        """Delete the job (and what it owns). NotFoundError when it is already gone."""
        ...

    async def restart_job(self, name: str, uid: str, now: datetime) -> JobRecord:
        """Run the ended job `uid` again under its name, with the same request and payload; its
        attempts so far stay as previous attempts. BadRequestError while it runs, ConflictError
        while a restart of it is under way (or when it is no longer `uid`), NotFoundError when
        it is gone."""
        ...

    async def delete_batch(self, name: str) -> None:
        """Delete the batch with all its jobs. NotFoundError when it is already gone."""
        ...

    async def start_held_job(self, name: str, uid: str) -> JobRecord | None:
        """Start the job `uid`, `suspended` until its `start_after`, which has come. None when
        it was started, stopped or ended meanwhile, or is gone."""
        ...

    async def fail_waiting_job(
        self, name: str, uid: str, message: str, now: datetime
    ) -> JobRecord | None:
        """End the job `uid`, which has not started, as Failed with `message` (reason
        `WaitingTimeout`), its pods removed. None when it started, ended or was stopped
        meanwhile, or is gone."""
        ...

    async def recover(self) -> int:
        """Finish or remove what a crashed creation left half-made (past its grace time);
        return how many jobs and batches it settled."""
        ...

    async def list_records(self, kind: Kind) -> tuple[list[Record], str]:
        """This scheduler's records of `kind` and the version to watch from."""
        ...

    def watch_records(self, kind: Kind, resource_version: str) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version`; ResourceExpiredError when that is too old."""
        ...

    async def open_log(
        self, job: str, pod: str, *, follow: bool, tail: int | None, timestamps: bool
    ) -> OpenLog:
        """The log of one attempt of `job` (`pod`: its PodStatus name), open: errors until here
        are the request's. `tail`: the last N lines only; `timestamps`: each line after its
        RFC 3339 time and a space; `follow`: on until the attempt ends. NotFoundError (saying
        why) when the log is gone; ConflictError while the attempt has not started."""
        ...

    async def attempt_result(self, job: str, pod: str) -> str | None:
        """The result of an attempt that only a record keeps (`PodRecord.kept`), which does not
        hold it; None when it wrote none."""
        ...

    async def job_usage(self, job: str) -> UsageReport:
        """What the job asked for, and the figures so far of its attempts under watch (those
        that ended are in their records' `PodRecord.usage`)."""
        ...

    async def asked(self, job: str) -> Asked:
        """What was asked of the job, as the backend keeps it with the job (so also after a
        scheduler restart). NotFoundError when it is gone."""
        ...

    async def close(self) -> None: ...
