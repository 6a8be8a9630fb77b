"""`GET /api/v1/events`: job and batch events as Server-Sent Events, from the app's event hub.

Each frame is `id: N`, `event: Create|Update|Delete|reset` and `data: <JSON>`; a comment comes
every heartbeat (15 s). Streams end when the client leaves or the app shuts down. The hub serves
a bounded number of streams at once; past it a client gets 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from scheduler.api.errors import REQUEST_ID
from scheduler.api.keys import EVENTS, SETTINGS
from scheduler.domain.events import EventHub, Subscription
from scheduler.logs import request_id
from scheduler.loops import cancelled

LAST_EVENT_ID = "Last-Event-ID"
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx (and ingress-nginx) would otherwise buffer the stream.
    "X-Accel-Buffering": "no",
}
# The connections of the open streams.
_OPEN_STREAMS: web.AppKey[set[asyncio.Transport]] = web.AppKey("open_event_streams")


def serve_events(app: web.Application, hub: EventHub) -> None:
    """Give the app its hub, a heartbeat for the streams, and their end when it shuts down."""
    app[EVENTS] = hub
    app[_OPEN_STREAMS] = set()
    app.cleanup_ctx.append(_heartbeating)
    app.on_shutdown.append(_ending_streams)


async def stream_events(request: web.Request) -> web.StreamResponse:
    # The header is what a reconnecting EventSource sends; the query parameter is for clients
    # that cannot set headers.
    after = request.headers.get(LAST_EVENT_ID) or request.query.get("lastEventId") or None
    job, batch = request.query.get("job") or None, request.query.get("batch") or None
    open_streams = request.app[_OPEN_STREAMS]
    # The error middleware sets this header when a response ends: too late for a stream's.
    headers = {**STREAM_HEADERS, REQUEST_ID: request_id.get() or ""}
    if request.method == "HEAD":
        return web.Response(headers=headers)  # the GET's headers; there is no body to wait for
    response = web.StreamResponse(headers=headers)
    # Subscribed before the headers go out, so nothing published meanwhile is missed.
    with request.app[EVENTS].subscribe(after, job=job, batch=batch) as subscription:
        transport = request.transport
        if transport is None:
            return response  # the client has left already
        open_streams.add(transport)
        try:
            await response.prepare(request)
            await _streaming(response, subscription)
            await response.write_eof()
        except ConnectionError:
            pass  # the client left
        finally:
            open_streams.discard(transport)
    return response


async def _streaming(response: web.StreamResponse, subscription: Subscription) -> None:
    while frames := await subscription.frames():
        await response.write(frames[0] if len(frames) == 1 else b"".join(frames))


async def _heartbeating(app: web.Application) -> AsyncIterator[None]:
    # One timer for all streams, not one per stream and wait: a thousand streams stay cheap.
    task = asyncio.create_task(
        _beating(app[EVENTS], app[SETTINGS].events_heartbeat_seconds), name="event-heartbeat"
    )
    try:
        yield
    finally:
        await cancelled(task)


async def _beating(hub: EventHub, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        hub.heartbeat()


async def _ending_streams(app: web.Application) -> None:
    app[EVENTS].close()
    for transport in app[_OPEN_STREAMS]:
        # A handler whose client stopped reading waits for room to write (until the transport
        # holds no more than its low-water mark), and would hold the drain until the shutdown
        # timeout: cut it off. The others end at once.
        if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[0]:
            transport.abort()
