"""Keeps other web sites from changing jobs through a visitor's browser (cross-site request
forgery): the API has no authentication, so a page elsewhere must not be able to start, stop,
restart or delete a job by posting a form or a "simple" fetch to it.

A state-changing request (POST, PUT, PATCH, DELETE under `/api/`) is refused when
- its `Origin` names another host than the request's own: 403 (browsers send `Origin` with every
  cross-origin POST, a form's included);
- it comes from a browser (`Origin` or `Sec-Fetch-*` headers) with a body type an HTML form can
  send (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`): 415.
Scripts and Radix clients send none of those browser headers, and keep working whatever type they
give a JSON body (`curl -d` sends it as a form); a bodiless POST (stop, restart) needs no type.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from scheduler.errors import ForbiddenError, UnsupportedMediaTypeError

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What `<form enctype=...>` can send, so what a cross-site form could post.
FORM_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
# Headers only browsers send, and cannot be made to leave out.
BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-site and form requests that would change something; see the module doc."""
    if request.method in STATE_CHANGING_METHODS and request.path.startswith("/api/"):
        _check_origin(request)
        _check_content_type(request)
    return await handler(request)


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    hosts = [request.host]
    # A reverse proxy may pass the host the browser used along in X-Forwarded-Host; no page can
    # set that header on a browser's request (it would need a CORS preflight, never granted).
    forwarded = request.headers.get("X-Forwarded-Host")
    if forwarded:
        hosts.append(forwarded.split(",")[0])
    # An unreadable host (None) matches nothing, an unreadable or `null` origin least of all.
    own = {endpoint for endpoint in map(_host_of, hosts) if endpoint is not None}
    if _origin_host(origin) not in own:
        raise ForbiddenError(
            f"cross-origin request refused: origin {origin} is not this scheduler's "
            f"({request.host}); use the API from this host, or without a browser"
        )


def _check_content_type(request: web.Request) -> None:
    if not any(name in request.headers for name in BROWSER_HEADERS):
        return
    # `request.content_type` says application/octet-stream when there is no header: read it raw.
    raw = request.headers.get("Content-Type")
    if raw is None:
        return
    mimetype = raw.split(";", 1)[0].strip().lower()
    if mimetype in FORM_CONTENT_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type {mimetype} is not accepted from a browser: send application/json"
        )


def _host_of(host: str) -> tuple[str, int | None] | None:
    """A `Host` header's host and port (None for a default one)."""
    return _endpoint(f"http://{host.strip()}", default_ports=frozenset(_DEFAULT_PORTS.values()))


def _origin_host(origin: str) -> tuple[str, int | None] | None:
    """An `Origin`'s host and port (None for its scheme's default); None for `null` or garbage."""
    scheme = origin.split("://", 1)[0].lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    return _endpoint(origin, default_ports=frozenset({_DEFAULT_PORTS[scheme]}))


def _endpoint(text: str, default_ports: frozenset[int]) -> tuple[str, int | None] | None:
    try:
        url = URL(text)
    except ValueError:
        return None
    if not url.host:
        return None
    port = url.explicit_port
    return url.host.lower(), None if port in default_ports else port
