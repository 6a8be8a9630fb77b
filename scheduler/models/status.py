"""`Status`: the body of every error, and of calls that return no other object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.json_schema import SkipJsonSchema

from scheduler.models.jobs import EXTENSION
from scheduler.models.wire import Int64, Wire


class StatusReason(RootModel[str]):
    """StatusReason: InternalError, BadRequest, NotFound, Invalid, RequestEntityTooLarge,
    MethodNotAllowed, ServiceUnavailable"""


class StatusCause(Wire):
    """One thing wrong with a request (today: a payload that breaks the job's payload schema)."""

    field: str
    pointer: str
    rule: str
    value: Any = None
    message: str


class StatusDetails(Wire):
    causes: list[StatusCause]


def _declare_details(schema: dict[str, Any]) -> None:
    """`details` is ours: declared beside Radix's fields, in the extension generators ignore, so a
    client generated from Radix's spec keeps exactly Radix's Status."""
    text = {"type": "string"}
    schema[EXTENSION] = {
        "details": {
            "type": "object",
            "description": "Each thing wrong with the request, when the scheduler can say: for "
            "a payload that breaks the job's payload schema (422), one cause per broken rule.",
            "properties": {
                "causes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {
                                **text,
                                "description": "The request's field: `payload`, or "
                                "`jobScheduleDescriptions[1].payload` in a batch",
                            },
                            "pointer": {
                                **text,
                                "description": "JSON pointer (RFC 6901) into the payload; "
                                "empty for the payload itself",
                                "example": "/items/0/size",
                            },
                            "rule": {
                                **text,
                                "description": "The schema keyword broken (`minimum`, "
                                "`required`, ...); `json` for a payload that is not JSON",
                                "example": "minimum",
                            },
                            "value": {
                                "description": "The value that broke the rule; when its JSON "
                                "is longer than 80 characters, the start of that JSON and `…`",
                            },
                            "message": {**text, "example": "-1 is less than the minimum of 0"},
                        },
                    },
                }
            },
        }
    }
    ours = f"This scheduler may also answer the fields declared in `{EXTENSION}`."
    schema["description"] = f"{schema['description']}\n\n{ours}"


class Status(Wire):
    """Status is a return value for calls that don't return other objects or when a request
    returns an error"""

    model_config = ConfigDict(json_schema_extra=_declare_details)

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
    details: SkipJsonSchema[StatusDetails | None] = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


def success(message: str) -> Status:
    return Status(status="Success", message=message, code=200)


def failure(
    message: str, reason: str, code: int, causes: Sequence[Mapping[str, Any]] = ()
) -> Status:
    details = StatusDetails.model_validate({"causes": causes}) if causes else None
    return Status(
        status="Failure", message=message, reason=StatusReason(reason), code=code, details=details
    )
