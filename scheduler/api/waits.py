"""`?wait=SECONDS` on the GET of a job, a batch or a batch's job: the request is answered once the
job or batch has ended, or when the wait runs out, with the body a GET then gives. The wait ends
when the client leaves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from scheduler.api.keys import SETTINGS
from scheduler.api.leaving import ClientLeft, client_closed_response, unless_client_leaves
from scheduler.errors import InvalidError

WAIT = "wait"


def parse_wait(value: str | None, max_seconds: int) -> int:
    """The seconds to wait (0: absent); 422 naming the parameter, and the limit when it is
    above it, so that a client learns what this scheduler allows rather than waiting less than
    it asked without knowing."""
    if value is None:
        return 0
    if not (value.isascii() and value.isdigit()):
        raise InvalidError(f"{WAIT} is invalid: {value!r} is not a whole number of seconds")
    seconds = int(value)
    if seconds > max_seconds:
        raise InvalidError(
            f"{WAIT} is invalid: {seconds} is above this scheduler's limit of {max_seconds} seconds"
        )
    return seconds


async def after_waiting(
    request: web.Request,
    until: Callable[[int], Awaitable[None]],
    answer: Callable[[], web.Response],
) -> web.Response:
    """`answer()` once `until(seconds)` is over, as the query asks. A HEAD is answered at once:
    it has no body to wait for."""
    seconds = parse_wait(request.query.get(WAIT), request.app[SETTINGS].max_wait_seconds)
    if seconds and request.method != "HEAD":
        try:
            await unless_client_leaves(request, until(seconds))
        except ClientLeft:
            return client_closed_response()
    return answer()
