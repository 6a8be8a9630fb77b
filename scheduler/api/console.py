"""The web console: static files from `scheduler/console/` at `/console/`, `/` sending the browser
there, `GET /api/v1/info` for its header, and the security headers of every response (the
console's strictest)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from scheduler import __version__
from scheduler.api import docs
from scheduler.api.bodies import json_response
from scheduler.api.keys import SETTINGS
from scheduler.models.info import SchedulerInfo

CONSOLE_DIR = Path(__file__).parent.parent / "console"
# Only our own files run, nothing is framed, and no form may post anywhere: the console talks to
# the API with fetch() and EventSource, same origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on each load (a 304 when unchanged), so an upgraded scheduler never runs
    # yesterday's modules.
    "Cache-Control": "no-cache",
}
# Every other answer (JSON, logs, results, streams) is data, never a page: no browser may guess
# it is HTML, run anything in it, or frame it.
API_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
SWAGGER_UI_SECURITY_HEADERS = {
    "Content-Security-Policy": docs.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
}


async def console_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CONSOLE_DIR / "index.html")


async def console_redirect(request: web.Request) -> web.Response:
    # Relative (from `/` and from `/console` alike), so the console also works behind a proxy
    # that serves the scheduler under a path prefix; its API calls are relative too.
    raise web.HTTPFound("console/")


async def get_info(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    definition = settings.definition
    info = SchedulerInfo(
        job=definition.name,
        app=definition.app,
        environment=definition.environment,
        backend=settings.backend,
        version=__version__,
        max_payload_bytes=settings.max_payload_bytes,
        payload_schema=definition.payload_schema.document if definition.payload_schema else None,
    )
    return json_response(info)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook: every response, its 404s and 304s included."""
    path = request.path
    if path == "/" or _is_under(path, "/console"):
        response.headers.update(SECURITY_HEADERS)
    elif _is_under(path, "/swaggerui"):
        response.headers.update(SWAGGER_UI_SECURITY_HEADERS)
    else:
        response.headers.update(API_SECURITY_HEADERS)
