"""A handler's work that ends when its client leaves. aiohttp cancels no handler when its client
goes (unless the server is made with `handler_cancellation`, which would also cancel a create
half-made), and a handler learns of it only when it writes: one that waits long without writing
(a followed log that is quiet, a `?wait=`) looks at its connection this often instead."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

CLIENT_CHECK_SECONDS = 1.0
# nginx's code for a request its client gave up on; nobody receives it, the request log does.
CLIENT_CLOSED_REQUEST = 499

T = TypeVar("T")


class ClientLeft(Exception):
    """The client went away before the work was done; the work was cancelled."""


def client_left(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def client_closed_response() -> web.Response:
    """What a handler answers a client that has left: nobody receives it, the request log shows
    it."""
    return web.Response(status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request")


async def unless_client_leaves(request: web.Request, work: Awaitable[T]) -> T:
    """`work`'s result; if the client leaves first, `work` is cancelled (and has ended) and
    `ClientLeft` is raised."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=CLIENT_CHECK_SECONDS)
            if not task.done() and client_left(request):
                task.cancel()
                await asyncio.wait({task})
                raise ClientLeft
        return task.result()
    finally:
        task.cancel()
