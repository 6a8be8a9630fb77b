"""Wire model of the webhook body: a batch's status and what happened to it, with Radix's names,
field names and types; `swagger.json` is generated from these classes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import RootModel, WithJsonSchema

from scheduler.models.batches import BatchStatus

__all__ = ["BatchEvent", "Event", "EventType"]


class EventType(StrEnum):
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"


# Radix's `Event` is a named plain string (a Go `type Event string`), not an enum: a receiver
# generated from the spec then accepts an event type added later.
class Event(RootModel[Annotated[EventType, WithJsonSchema({"type": "string"})]]):
    """Event: Create, Update or Delete"""


class BatchEvent(BatchStatus):
    """BatchEvent holds general information about batch event on change of status"""

    event: Event
