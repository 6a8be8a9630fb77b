"""The API token: when one is configured, every request needs `Authorization: Bearer <token>`,
or gets 401 with `WWW-Authenticate: Bearer`. The token is compared in constant time.

Open without it: the probes (`/healthz`, `/readyz`), and the files that are the same for every
scheduler and tell nothing about its jobs (the console's and Swagger UI's code, `swagger.json`),
since a browser cannot add a header to the page and scripts it loads; the console then asks for
the token and sends it with each API call.
"""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from scheduler.api.errors import status_response
from scheduler.api.health import PROBE_PATHS

OPEN_PATHS = PROBE_PATHS | {"/", "/console", "/swaggerui", "/swagger.json"}
OPEN_PREFIXES = ("/console/", "/swaggerui/")
CHALLENGE = 'Bearer realm="job-scheduler"'


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def token_middleware(token: str) -> Middleware:
    """Let a request through only with the token (or to an open path); see the module doc."""
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request.path):
            return await handler(request)
        presented = _bearer(request)
        if presented is None:
            return _unauthorized(
                "this scheduler needs its API token: send Authorization: Bearer <token>"
            )
        if not hmac.compare_digest(presented, expected):
            return _unauthorized("the API token is not this scheduler's")
        return await handler(request)

    return middleware


def _bearer(request: web.Request) -> bytes | None:
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    # Headers are decoded with surrogate escapes: any bytes a client sent compare as sent.
    return credentials.strip().encode("utf-8", "surrogateescape")


def _unauthorized(message: str) -> web.Response:
    # Built here rather than raised: the error middleware still logs and counts it, and the
    # challenge header goes with it.
    response = status_response(message, "Unauthorized", 401)
    response.headers[hdrs.WWW_AUTHENTICATE] = CHALLENGE
    return response
