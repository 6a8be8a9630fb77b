"""Server-Sent Events framing: how the event hub's events, resets and heartbeats go on the wire of
`GET /api/v1/events` (`SSE`, given to the hub when the app is made)."""

from __future__ import annotations

import json

from scheduler.domain.events import Framing

# The event name of a frame that tells the client to list jobs and batches again.
RESET = "reset"
# A comment: it keeps idle connections (and proxies) open and shows the client the stream lives.
HEARTBEAT = b": heartbeat\n\n"


def sse_frame(event_id: int, name: str, data: bytes) -> bytes:
    """One Server-Sent Events frame; every line of `data` gets its own `data:` field."""
    lines = b"".join(b"data: %s\n" % line for line in data.split(b"\n"))
    return b"id: %d\nevent: %s\n%s\n" % (event_id, name.encode(), lines)


def reset_frame(event_id: int, reason: str) -> bytes:
    data = json.dumps({"reason": f"{reason}: list jobs and batches again"}).encode()
    return sse_frame(event_id, RESET, data)


SSE = Framing(event=sse_frame, reset=reset_frame, heartbeat=HEARTBEAT)
