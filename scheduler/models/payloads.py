"""The body of `POST /payload-schema/check` (our addition): a payload to check as a create would."""

from __future__ import annotations

from pydantic import Field

from scheduler.models.wire import Wire


class PayloadCheck(Wire):
    """PayloadCheck holds a payload to check against the job's payload schema and size limit,
    without creating anything."""

    payload: str | None = Field(
        default=None,
        description="The payload, as a job's payload is given (JSON text)",
        examples=['{"items": [{"size": 1}]}'],
    )
