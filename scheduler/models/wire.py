"""The base of every wire model: Radix's leniency about unknown fields, its integer formats, and
its time format."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

# Swagger 2.0 integer formats, as in Radix's definitions (generated clients pick types from them).
Int32 = Annotated[int, Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]


class Wire(BaseModel):
    # Clients written for Radix send fields we may not know yet; like Radix (Go's encoding/json)
    # we ignore them rather than fail.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class Timestamps(Wire):
    """Times go out as RFC 3339 UTC with second precision, as the Kubernetes API gives them."""

    @field_serializer("*", when_used="json", check_fields=False)
    def _times(self, value: Any) -> Any:
        return rfc3339(value) if isinstance(value, datetime) else value
