"""A cron schedule of the job, as `GET /schedules` answers it (our addition)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from scheduler.models.wire import Time, Timestamps


class ScheduleStatus(Timestamps):
    """ScheduleStatus describes a cron schedule of the job: each tick runs the job once, as a job
    whose jobId is `schedule:<name>`."""

    name: str = Field(description="Name of the schedule, unique in the job", examples=["nightly"])
    cron: str = Field(
        description="Five cron fields, a macro (@hourly, @daily, ...) or `@every <duration>`",
        examples=["0 2 * * *"],
    )
    time_zone: str = Field(
        alias="timeZone", description="IANA time zone of the cron fields", examples=["UTC"]
    )
    concurrency: Literal["Allow", "Forbid", "Replace"] = Field(
        description="Allow: runs may overlap\nForbid: a tick is skipped while a run is active\n"
        "Replace: a tick stops the active runs, then starts"
    )
    next_run: Time = Field(alias="nextRun", description="When the next run starts")
    last_run: Time | None = Field(
        default=None,
        alias="lastRun",
        description="When the latest run still in the job list was created",
    )

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}
