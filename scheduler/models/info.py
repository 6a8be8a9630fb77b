"""What this scheduler serves, as `GET /info` answers it (our addition)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from scheduler.models.wire import Int64, Wire


class SchedulerInfo(Wire):
    """SchedulerInfo says which job of which app and environment this scheduler serves, and how."""

    job: str = Field(
        description="The job (spec.jobs[].name) this scheduler serves", examples=["compute"]
    )
    app: str = Field(description="The app (RADIX_APP)", examples=["myapp"])
    environment: str = Field(description="The environment (RADIX_ENVIRONMENT)", examples=["dev"])
    backend: Literal["kubernetes", "local"] = Field(
        description="Where jobs run: Kubernetes Jobs, or local processes of the scheduler"
    )
    version: str = Field(description="The scheduler's version", examples=["0.1.0"])
    max_payload_bytes: Int64 = Field(
        alias="maxPayloadBytes", description="The largest payload of one job, in bytes of UTF-8"
    )
    payload_schema: dict[str, Any] | None = Field(
        default=None,
        alias="payloadSchema",
        description="The JSON Schema (draft 2020-12) every payload of the job must satisfy "
        "(radixconfig payload.schema); absent when the job has none",
    )

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}
