"""What request bodies may hold of the scheduler's memory at once. A POST's body, its parsed
payload and the payload's bytes are all in memory until its create is done (three to four times
the body), and payloads may be 64 MiB: so bodies above a small size share a budget of bytes, and
one that does not fit waits its turn (first come, first served) before its body is read. Small
bodies, which are most, never wait."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from scheduler.api.keys import SETTINGS
from scheduler.errors import PayloadTooLargeError
from scheduler.heap import give_back_memory

# Bodies up to this size are read at once: a batch of small jobs, a job with a small payload.
SMALL_BODY_BYTES = 256 * 1024
_READ_CHUNK_BYTES = 256 * 1024


class BodyBudget:
    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.held_bytes = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.asynccontextmanager
    async def holding(self, size: int) -> AsyncIterator[None]:
        """Holds `size` bytes of the budget (all of it, for a body larger than the budget)."""
        size = min(size, self.total_bytes)
        if self._waiters or self.held_bytes + size > self.total_bytes:
            waiter = asyncio.get_running_loop().create_future()
            entry = (size, waiter)
            self._waiters.append(entry)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release(size)  # it was let in as it went away
                else:
                    self._waiters.remove(entry)
                    self._wake()
                raise
        else:
            self.held_bytes += size
        try:
            yield
        finally:
            self._release(size)

    def _release(self, size: int) -> None:
        # Before the next body comes in: what this one was parsed into is free now.
        give_back_memory()
        self.held_bytes -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, waiter = self._waiters[0]
            if self.held_bytes + size > self.total_bytes:
                return
            self._waiters.popleft()
            self.held_bytes += size
            waiter.set_result(None)


BODY_BUDGET = web.AppKey("body_budget", BodyBudget)


@web.middleware
async def body_budget_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Last of the middlewares: a request refused for its host or its token never waits."""
    if not request.can_read_body:
        return await handler(request)
    size = request.content_length
    if size is None:  # chunked: as large as the limit allows
        size = request.app[SETTINGS].max_request_bytes
    if size <= SMALL_BODY_BYTES:
        return await handler(request)
    async with request.app[BODY_BUDGET].holding(size):
        return await handler(request)


async def read_body(request: web.Request) -> bytearray:
    """The request's body, read once into one buffer: `request.read()` would keep a copy of it
    on the request, which aiohttp holds until the connection's next request (on an idle
    keep-alive connection, for a minute). 413 past `max_request_bytes`, as aiohttp's own."""
    limit = request.app[SETTINGS].max_request_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    body = bytearray(declared or 0) if declared else bytearray()
    filled = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK_BYTES):
        end = filled + len(chunk)
        if end > limit:
            raise _too_large(limit)
        if declared:
            body[filled:end] = chunk
        else:
            body += chunk
        filled = end
    if declared and filled < declared:
        del body[filled:]
    return body


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body too large: Maximum request body size {limit} exceeded"
    )
