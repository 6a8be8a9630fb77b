"""The base of every wire model: Radix's leniency about unknown fields, its integer formats, and
its time format."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Swagger 2.0 integer formats, as in Radix's definitions (generated clients pick types from them).
Int32 = Annotated[int, Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]


M = TypeVar("M", bound=BaseModel)


@cache
def _all_fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def built(model: type[M], **values: Any) -> M:
    """A model whose "fields set" is one set shared by all (nothing here reads it) instead of a
    set per object. The view keeps a status per job; those sets were some 1.7 KB of each.
    (Validation, in pydantic's compiled core, is faster than `model_construct`.)"""
    made = model(**values)
    object.__setattr__(made, "__pydantic_fields_set__", _all_fields(model))
    return made


class Wire(BaseModel):
    # Clients written for Radix send fields we may not know yet; like Radix (Go's encoding/json)
    # we ignore them rather than fail.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    # isoformat is some five times faster than strftime, and statuses carry many times.
    return value.isoformat(timespec="seconds")[:19] + "Z"


# Times go out as RFC 3339 UTC with second precision, as the Kubernetes API gives them. Only time
# fields carry the serializer: one on every field ("*") called Python for each of them.
Time = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]


class Timestamps(Wire):
    """A model with `Time` fields."""
