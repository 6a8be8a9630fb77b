"""`Status`: the body of every error, and of calls that return no other object."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel, SerializerFunctionWrapHandler, model_serializer

from scheduler.models.wire import Int64, Wire


class StatusReason(RootModel[str]):
    """StatusReason: InternalError, BadRequest, NotFound, Invalid, RequestEntityTooLarge,
    MethodNotAllowed, ServiceUnavailable"""


class Status(Wire):
    """Status is a return value for calls that don't return other objects or when a request
    returns an error"""

    status: str | None = Field(
        default=None,
        description='Status of the operation.\nOne of: "Success" or "Failure".',
        examples=["Failure"],
    )
    message: str | None = Field(
        default=None,
        description="A human-readable description of the status of this operation.",
        examples=["job job123 is not found"],
    )
    reason: StatusReason | None = None
    code: Int64 | None = Field(
        default=None,
        description="Suggested HTTP return code for this status, 0 if not set.",
        examples=[404],
    )

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


def success(message: str) -> Status:
    return Status(status="Success", message=message, code=200)


def failure(message: str, reason: str, code: int) -> Status:
    return Status(status="Failure", message=message, reason=StatusReason(reason), code=code)
