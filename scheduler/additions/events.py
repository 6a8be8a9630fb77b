"""`GET /events`: the webhook's events as a Server-Sent Events stream (`scheduler.api.events`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG


def _query(name: str, description: str) -> dict[str, Any]:
    return {"type": "string", "description": description, "name": name, "in": "query"}


_DESCRIPTION = """\
One event per job or batch change (created, each status change, deleted), as Server-Sent Events:
`id: <integer>`, `event: Create|Update|Delete`, `data: <BatchEvent JSON>` (the webhook's body).
A client that reconnects with `Last-Event-ID` gets the events it missed while the scheduler
still keeps them; otherwise, or when it falls too far behind, it gets `event: reset` with
`data: {"reason": "..."}` and should list jobs and batches again. A comment line (`: heartbeat`)
comes every 15 seconds (SCHEDULER_EVENTS_HEARTBEAT_SECONDS)."""

# Swagger 2.0 has no way to say "a stream of"; this is the stream as an SSE parser reads it.
_EVENTS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "An increasing integer"},
            "event": {"type": "string", "enum": ["Create", "Update", "Delete", "reset"]},
            "data": {
                "type": "string",
                "description": "A BatchEvent as JSON (the webhook's body); for `reset`, "
                '`{"reason": "..."}`',
            },
        },
    },
}

PATHS: dict[str, Any] = {
    "/events": {
        "get": {
            "tags": [TAG],
            "summary": "Stream job and batch events",
            "description": _DESCRIPTION,
            "operationId": "streamEvents",
            "produces": ["text/event-stream"],
            "parameters": [
                _query("job", "Only events about this job (a single job or a batch's job)"),
                _query("batch", "Only events about this batch"),
                _query("lastEventId", "As Last-Event-ID, for clients that cannot set headers"),
                {
                    "type": "string",
                    "description": "The id of the last event received: resume after it",
                    "name": "Last-Event-ID",
                    "in": "header",
                },
            ],
            "responses": {
                "200": {
                    "description": "The event stream; it ends when the scheduler shuts down",
                    "schema": _EVENTS,
                },
                "500": {
                    "description": "Internal server error",
                    "schema": {"$ref": "#/definitions/Status"},
                },
            },
        }
    }
}
