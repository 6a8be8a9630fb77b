"""Wire models of single jobs: the create body and the job and pod statuses, with Radix's names,
field names and types; `swagger.json` is generated from these classes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_serializer,
)
from pydantic.json_schema import SkipJsonSchema

from scheduler.models.wire import Int32, Int64, Time, Timestamps, Wire

_MIB = 1024 * 1024
# What one Secret holds: a larger payload goes in several, on Kubernetes.
SECRET_CAPACITY_BYTES = _MIB
# A payload's limit: Radix's, that of one Secret, unless the operator sets another up to 64 MiB.
DEFAULT_MAX_PAYLOAD_BYTES = SECRET_CAPACITY_BYTES
MAX_PAYLOAD_BYTES_LIMIT = 64 * _MIB
# activeDeadlineSeconds is an int64; past it the API server cannot even read the Job.
MAX_TIME_LIMIT_SECONDS = 2**63 - 1

# Kubernetes' IsEnvVarName: letters, digits, '-', '.', '_', not starting with a digit, and not
# ".", ".." or "..<anything>". The API server answers 422 for any other name, and the local
# backend would run what a cluster refuses (or fail on '=' or NUL); both refuse it here, before
# anything is made. Written without lookahead, which pydantic's regex engine (Rust's) lacks.
ENV_VAR_NAME_PATTERN = r"^([-_a-zA-Z]|\.[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$"
# A quantity the API server takes for a container's requests and limits (resource.Quantity):
# a non-negative decimal with a binary (Ki..Ei) or decimal (n..E) suffix or an exponent.
QUANTITY_PATTERN = (
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
)

EnvVarName = Annotated[str, StringConstraints(pattern=ENV_VAR_NAME_PATTERN)]
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)]


class EnvVars(RootModel[dict[EnvVarName, str]]):
    """EnvVars Map of environment variables in the form '<envvarname>: <value>'

    A name holds letters, digits, '-', '.' and '_', does not begin with a digit, and is not '.'
    and does not begin with '..' (Kubernetes' rule; x-key-pattern): others are refused with 422."""


class ResourceList(RootModel[dict[str, Quantity]]):
    """Resource quantities by name, e.g. {"cpu": "500m", "memory": "256Mi"}"""


class Resources(Wire):
    """Resources describes the compute resource requirements."""

    limits: ResourceList | None = None
    requests: ResourceList | None = None


class Node(Wire):
    """Node defines node attributes, where container should be scheduled"""

    gpu: str | None = Field(default=None, description="Defines rules for allowed GPU types.")
    gpu_count: str | None = Field(
        default=None, alias="gpuCount", description="Defines minimum number of required GPUs."
    )


class Runtime(Wire):
    """Runtime defines the component or job's target runtime requirements"""

    architecture: str | None = Field(default=None, description="CPU architecture")
    # Radix's pattern; at most 63 characters because the node type is the value of a node
    # affinity and a toleration, which Kubernetes takes only as a label value (422 otherwise).
    node_type: (
        Annotated[str, Field(max_length=63, pattern=r"^(([a-z0-9][-a-z0-9]*)?[a-z0-9])?$")] | None
    ) = Field(
        default=None, alias="nodeType", description="Defines the node type for the component."
    )


class FailurePolicyRuleAction(StrEnum):
    FAIL_JOB = "FailJob"
    IGNORE = "Ignore"
    COUNT = "Count"


class FailurePolicyRuleOnExitCodesOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"


# An exit code as Kubernetes takes it (int32); the bounds make a larger number our 422, not the
# API server's 400 or a value the local backend takes alone.
ExitCode = Annotated[Int32, Field(ge=-(2**31), le=2**31 - 1)]


class FailurePolicyRuleOnExitCodes(Wire):
    """FailurePolicyRuleOnExitCodes describes the requirement for handling
    a failed job replica based on its exit code."""

    operator: FailurePolicyRuleOnExitCodesOperator = Field(
        description="Relationship between the job replica's exit code and the values."
    )
    values: Annotated[list[ExitCode], Field(min_length=1, max_length=255)] = Field(
        description="The set of exit codes to check against: unique, in ascending order, "
        "and without 0 for the In operator."
    )

    # Kubernetes' podFailurePolicy validation: the API server answers 422 otherwise, and the
    # local backend would take what a cluster refuses. Declared in the description only: a
    # generator may make `uniqueItems` a set, which would change what a generated client sees.
    @field_validator("values")
    @classmethod
    def _as_kubernetes_takes_them(cls, values: list[int], info: ValidationInfo) -> list[int]:
        if any(later <= earlier for earlier, later in pairwise(values)):
            raise ValueError("exit codes must be unique and in ascending order")
        if info.data.get("operator") is FailurePolicyRuleOnExitCodesOperator.IN and 0 in values:
            raise ValueError("exit code 0 is not allowed with the In operator")
        return values


class FailurePolicyRule(Wire):
    """FailurePolicyRule describes how a job replica failure is handled when the onExitCodes
    rules are met."""

    action: FailurePolicyRuleAction = Field(
        description="Action taken on a job replica failure when onExitCodes is satisfied."
    )
    on_exit_codes: FailurePolicyRuleOnExitCodes = Field(alias="onExitCodes")


class FailurePolicy(Wire):
    """FailurePolicy describes how failed job replicas influence the backoffLimit."""

    rules: Annotated[list[FailurePolicyRule], Field(max_length=20)] = Field(
        description="A list of failure policy rules, evaluated in order."
    )


class RadixJobComponentConfig(Wire):
    """RadixJobComponentConfig holds description of RadixJobComponent"""

    resources: Resources | None = None
    node: Node | None = None
    runtime: Runtime | None = None
    time_limit_seconds: Annotated[Int64, Field(ge=1, le=MAX_TIME_LIMIT_SECONDS)] | None = Field(
        default=None,
        alias="timeLimitSeconds",
        description="TimeLimitSeconds defines maximum job run time. "
        "Corresponds to ActiveDeadlineSeconds in K8s.",
    )
    backoff_limit: Annotated[Int32, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None,
        alias="backoffLimit",
        description="BackoffLimit defines attempts to restart job if it fails. "
        "Corresponds to BackoffLimit in K8s.",
    )
    failure_policy: FailurePolicy | None = Field(default=None, alias="failurePolicy")
    image: str | None = Field(
        default=None, description="Name of an existing container image to use when running the job."
    )
    image_tag_name: str | None = Field(
        default=None,
        alias="imageTagName",
        description="ImageTagName defines the image tag name to use for the job image",
    )
    variables: EnvVars | None = None
    command: list[str] | None = Field(
        default=None, description="Entrypoint array. Not executed within a shell."
    )
    args: list[str] | None = Field(default=None, description="Arguments to the entrypoint.")


# -- our fields in Radix's request bodies ---------------------------------------------------------
# A client generated from Radix's spec must see Radix's fields only, so these are left out of the
# definitions' `properties` and declared beside them, in this extension (generators ignore it).
EXTENSION = "x-job-scheduler-properties"
MAX_WAITING_TIMEOUT_SECONDS = 2**31 - 1
# RFC 3339 with an offset (`Z` or `+01:00`): a time without one would be read in the scheduler's
# time zone, which a client cannot know.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_RFC3339_PROBLEM = "must be an RFC 3339 time with a time zone offset, e.g. 2026-12-07T03:00:00Z"


def _rfc3339_time(value: Any) -> datetime:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError(_RFC3339_PROBLEM)
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(_RFC3339_PROBLEM) from None
    return parsed.astimezone(UTC)


StartAfter = Annotated[datetime, BeforeValidator(_rfc3339_time)]
WaitingTimeout = Annotated[int, Field(ge=1, le=MAX_WAITING_TIMEOUT_SECONDS)]


def extension(note: str = "") -> Callable[[dict[str, Any]], None]:
    """What declares our fields in a request body's schema (`note` added to each): the
    extension, and a sentence in the body's description that points to it."""

    def declare(schema: dict[str, Any]) -> None:
        schema[EXTENSION] = {
            "startAfter": {
                "type": "string",
                "format": "date-time",
                "description": "Start the job no earlier than this time (RFC 3339 with a "
                "time zone offset); until then it is Waiting, its message saying when it "
                f"starts. A time that has passed: at once.{note}",
                "example": "2026-12-07T03:00:00Z",
            },
            "waitingTimeoutSeconds": {
                "type": "integer",
                "format": "int32",
                "minimum": 1,
                "maximum": MAX_WAITING_TIMEOUT_SECONDS,
                "description": "Fail the job when it has not started this many seconds after it "
                "could (its creation, or its startAfter); its message then names why it was "
                f"still waiting. Overrides the radixconfig's waitingTimeoutSeconds.{note}",
            },
        }
        described = schema.get("description")
        ours = f"This scheduler also takes the fields declared in `{EXTENSION}`."
        schema["description"] = f"{described}\n\n{ours}" if described else ours

    return declare


class JobScheduleDescription(RadixJobComponentConfig):
    """JobScheduleDescription holds description about scheduling job"""

    model_config = ConfigDict(json_schema_extra=extension())

    job_id: str | None = Field(
        default=None, alias="jobId", description="JobId Optional ID of a job", examples=["job1"]
    )
    # maxLength: the largest limit a scheduler may be given, 64 MiB of UTF-8, is at most that many
    # characters (413 past the scheduler's own limit, which GET /info says).
    payload: (
        Annotated[str, Field(json_schema_extra={"maxLength": MAX_PAYLOAD_BYTES_LIMIT})] | None
    ) = Field(
        default=None,
        description="Payload holding json data to be mapped to component. "
        "At most 1 MiB (1,048,576 bytes of UTF-8) unless the scheduler is set to take "
        "more, up to 64 MiB: GET /api/v1/info says its maxPayloadBytes.",
        examples=["{'data':'value'}"],
    )
    start_after: SkipJsonSchema[StartAfter | None] = Field(default=None, alias="startAfter")
    waiting_timeout_seconds: SkipJsonSchema[WaitingTimeout | None] = Field(
        default=None, alias="waitingTimeoutSeconds"
    )


class JobStatusEnum(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    WAITING = "Waiting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ACTIVE = "Active"
    COMPLETED = "Completed"


class ReplicaStatusEnum(StrEnum):
    PENDING = "Pending"
    SUCCEEDED = "Succeeded"
    FAILING = "Failing"
    FAILED = "Failed"
    RUNNING = "Running"
    TERMINATED = "Terminated"
    STARTING = "Starting"
    STOPPED = "Stopped"


class ReplicaStatus(Wire):
    """ReplicaStatus describes the status of a component container inside a pod"""

    status: ReplicaStatusEnum = Field(description="Status of the container")


class Waited(Wire):
    """Why an attempt waited before its container started (ours: see `_declare_waited`)."""

    reason: str
    message: str | None = None
    seconds: Int64

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


def _declare_waited(schema: dict[str, Any]) -> None:
    """`waited` is ours: declared beside Radix's fields, in the extension generators ignore, so a
    client generated from Radix's spec keeps exactly Radix's PodStatus."""
    schema[EXTENSION] = {
        "waited": {
            "type": "object",
            "description": "Why the attempt waited before its container started, as last seen: "
            "no node had room, its image could not be pulled, its start time (startAfter), its "
            "place in the local backend's line. Absent when it waited for nothing worth telling "
            "(or, on Kubernetes, the scheduler restarted after the attempt started and before "
            "it was kept), and while the attempt still waits (statusMessage says why).",
            "required": ["reason", "seconds"],
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "CamelCase: Unschedulable, ImagePullBackOff, Held (its "
                    "startAfter), Queued (the local backend's line), ...",
                    "example": "Unschedulable",
                },
                "message": {
                    "type": "string",
                    "example": "0/3 nodes are available: 3 Insufficient memory",
                },
                "seconds": {
                    "type": "integer",
                    "format": "int64",
                    "description": "How long it waited: from the job's creation (or restart) "
                    "for its first attempt, from the previous attempt's end for another, to its "
                    "container's start",
                    "example": 12,
                },
            },
        }
    }
    ours = f"This scheduler may also answer the fields declared in `{EXTENSION}`."
    schema["description"] = f"{schema['description']}\n\n{ours}"


class PodStatus(Timestamps):
    """PodStatus contains details for the current status of the job's pods."""

    model_config = ConfigDict(json_schema_extra=_declare_waited)

    name: str = Field(description="Pod name")
    created: Time | None = Field(default=None, description="Created timestamp")
    start_time: Time | None = Field(
        default=None, alias="startTime", description="The time at which the pod started"
    )
    end_time: Time | None = Field(
        default=None, alias="endTime", description="The time at which the pod finished"
    )
    container_started: Time | None = Field(
        default=None, alias="containerStarted", description="Container started timestamp"
    )
    replica_status: ReplicaStatus = Field(
        default_factory=lambda: ReplicaStatus(status=ReplicaStatusEnum.PENDING),
        alias="replicaStatus",
    )
    status_message: str | None = Field(
        default=None,
        alias="statusMessage",
        description="StatusMessage provides message describing the status of the container",
    )
    restart_count: Int32 = Field(
        default=0, alias="restartCount", description="RestartCount count of container restarts"
    )
    image: str | None = Field(default=None, description="The image the container is running.")
    image_id: str | None = Field(
        default=None, alias="imageId", description="ImageID of the container's image."
    )
    pod_index: Int64 = Field(
        default=0, alias="podIndex", description="The index of the pod in the re-starts"
    )
    exit_code: Int32 = Field(
        default=0,
        alias="exitCode",
        description="Exit status from the last termination of the container",
    )
    reason: str | None = Field(
        default=None,
        description="A brief CamelCase reason why the pod is in this phase",
    )
    waited: SkipJsonSchema[Waited | None] = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


_ALWAYS_PRESENT = frozenset({"name", "created", "started", "ended", "updated", "status"})


class JobStatus(Timestamps):
    """JobStatus holds general information about job status"""

    job_id: str | None = Field(
        default=None, alias="jobId", description="JobId Optional ID of a job", examples=["job1"]
    )
    batch_name: str | None = Field(
        default=None, alias="batchName", description="BatchName Optional Batch ID of a job"
    )
    batch_id: str | None = Field(
        default=None, alias="batchId", description="Defines a user defined ID of the batch."
    )
    name: str = Field(description="Name of the job", examples=["compute-20210407105556-rkwaibwe"])
    created: Time | None = Field(default=None, description="Created timestamp")
    started: Time | None = Field(default=None, description="Started timestamp")
    ended: Time | None = Field(default=None, description="Ended timestamp")
    updated: Time | None = Field(
        default=None, description="Updated timestamp when the status was updated"
    )
    status: JobStatusEnum = Field(
        default=JobStatusEnum.WAITING,
        description="Status of the job\nRunning = Job is running\nSucceeded = Job has succeeded\n"
        "Failed = Job has failed\nWaiting = Job is waiting\nStopping = Job is stopping\n"
        "Stopped = Job has been stopped\nActive = Job is active\nCompleted = Job is completed",
    )
    message: str | None = Field(default=None, description="Message, if any, of the job")
    failed: Int32 = Field(
        default=0, description="The number of times the container for the job has failed."
    )
    restart: str | None = Field(
        default=None, description="Timestamp of the job restart, if applied."
    )
    pod_statuses: list[PodStatus] = Field(
        default_factory=list,
        alias="podStatuses",
        description="PodStatuses for each pod of the job",
    )
    deployment_name: str | None = Field(
        default=None, alias="DeploymentName", description="DeploymentName for this batch"
    )

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Radix always sends the timestamps (null when unset); other absent fields are left out.
        return {k: v for k, v in handler(self).items() if v is not None or k in _ALWAYS_PRESENT}
