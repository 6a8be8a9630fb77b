"""The web console: static files from `scheduler/console/` at `/console/`, `/` sending the browser
there, `GET /api/v1/info` for its header, and the security headers of every console response."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from scheduler import __version__
from scheduler.additions.info import SchedulerInfo
from scheduler.api.keys import SETTINGS
from scheduler.models.jobs import MAX_PAYLOAD_BYTES

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
        max_payload_bytes=MAX_PAYLOAD_BYTES,
    )
    return web.Response(text=info.model_dump_json(by_alias=True), content_type="application/json")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook: every console response, its 404s and 304s included."""
    if request.path == "/" or request.path == "/console" or request.path.startswith("/console/"):
        response.headers.update(SECURITY_HEADERS)
