"""Wire models of batches: the create body and the batch status, with Radix's names, field names
and types; `swagger.json` is generated from these classes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from scheduler.models.jobs import (
    JobScheduleDescription,
    JobStatus,
    RadixJobComponentConfig,
    StartAfter,
    WaitingTimeout,
    extension,
)
from scheduler.models.wire import Wire

__all__ = ["MAX_BATCH_JOBS", "BatchScheduleDescription", "BatchStatus", "BatchType"]

# The RadixBatch CRD allows at most 500 jobs in a batch.
MAX_BATCH_JOBS = 500


class BatchScheduleDescription(Wire):
    """BatchScheduleDescription holds description about batch scheduling job"""

    model_config = ConfigDict(
        json_schema_extra=extension(" In a batch: each job's, unless the job has its own.")
    )

    batch_id: str | None = Field(
        default=None,
        alias="batchId",
        description="Defines a user defined ID of the batch.",
        examples=["batch-id-1"],
    )
    default_radix_job_component_config: RadixJobComponentConfig | None = Field(
        default=None, alias="defaultRadixJobComponentConfig"
    )
    # At least one job, but declared only, not validated here: an empty list is Radix's 422 with
    # its own message ("empty job description list"), which the domain gives.
    job_schedule_descriptions: Annotated[
        list[JobScheduleDescription],
        Field(max_length=MAX_BATCH_JOBS, json_schema_extra={"minItems": 1}),
    ] = Field(
        alias="jobScheduleDescriptions",
        description="JobScheduleDescriptions descriptions of jobs to schedule within the batch",
    )
    start_after: SkipJsonSchema[StartAfter | None] = Field(default=None, alias="startAfter")
    waiting_timeout_seconds: SkipJsonSchema[WaitingTimeout | None] = Field(
        default=None, alias="waitingTimeoutSeconds"
    )


class BatchType(StrEnum):
    """A single job (`POST /jobs`) is a batch of one, of type `job`."""

    JOB = "job"
    BATCH = "batch"


class BatchStatus(JobStatus):
    """BatchStatus holds general information about batch status"""

    job_statuses: list[JobStatus] | None = Field(
        default=None, alias="jobStatuses", description="JobStatuses of the jobs in the batch"
    )
    # Radix declares a plain string, not an enum: clients generated from the spec must not
    # reject a batch type added later.
    batch_type: Annotated[BatchType, WithJsonSchema({"type": "string"})] = Field(
        default=BatchType.BATCH,
        alias="batchType",
        description="BatchType Single job or multiple jobs batch",
        examples=["batch"],
    )
