"""What was asked of a job, as `GET /jobs/{jobName}/request` answers it (our addition): its
request's options merged with the configuration, without its variables' values or its payload."""

from __future__ import annotations

from pydantic import Field

from scheduler.models.jobs import Node, Runtime
from scheduler.models.wire import Int32, Int64, Time, Timestamps, Wire


class AskedResources(Wire):
    """AskedResources are the compute resources a job asked for, as given (empty when none)."""

    requests: dict[str, str] = Field(
        description="Requested resources by name", examples=[{"cpu": "100m", "memory": "256Mi"}]
    )
    limits: dict[str, str] = Field(
        description="Resource limits by name", examples=[{"memory": "1Gi"}]
    )


class JobAsked(Timestamps):
    """JobAsked is what was asked of a job: the options of its request merged with the job's
    configuration, as the job runs with them. Its variables are named but their values are not
    given, nor is its payload."""

    image: str = Field(description="The image the job runs", examples=["registry/app:1.2"])
    command: list[str] | None = Field(
        default=None, description="Entrypoint array; null: the image's own"
    )
    args: list[str] | None = Field(
        default=None, description="Arguments to the entrypoint; null: the image's own"
    )
    resources: AskedResources
    node: Node | None = Field(default=None, description="The GPU nodes it asked for, if any")
    runtime: Runtime | None = Field(
        default=None, description="The architecture and node type it asked for, if any"
    )
    time_limit_seconds: Int64 | None = Field(
        default=None, alias="timeLimitSeconds", description="Its maximum run time"
    )
    backoff_limit: Int32 | None = Field(
        default=None, alias="backoffLimit", description="How many times a failure is retried"
    )
    start_after: Time | None = Field(
        default=None,
        alias="startAfter",
        description="Not started before this time; null when none was asked or, on Kubernetes, "
        "when it had passed when the job was created or restarted",
        examples=["2026-12-07T03:00:00Z"],
    )
    waiting_timeout_seconds: Int32 | None = Field(
        default=None,
        alias="waitingTimeoutSeconds",
        description="Failed when it has not started this long after it could",
    )
    schedule: str | None = Field(
        default=None, description="The radixconfig schedule whose run this job is"
    )
    variable_names: list[str] = Field(
        alias="variableNames",
        description="The names of its variables, sorted; their values are not given",
        examples=[["MODE", "TARGET"]],
    )
    has_payload: bool = Field(
        alias="hasPayload",
        description="Whether it was given a payload file (its payload.path); the payload is "
        "not given",
    )
    batch_name: str | None = Field(
        default=None, alias="batchName", description="The batch it belongs to"
    )
    job_id: str | None = Field(default=None, alias="jobId", description="Its jobId")
