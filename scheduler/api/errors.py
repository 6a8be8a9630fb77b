"""The one place errors become responses: every failure is a `Status` body with its HTTP code."""

from __future__ import annotations

import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from scheduler.api.keys import METRICS
from scheduler.errors import BackendError, BackendUnavailableError, SchedulerError
from scheduler.logs import request_id
from scheduler.models import failure

log = logging.getLogger("scheduler.http")

# aiohttp's own HTTP errors (no route, wrong method, body too large) keep their code.
_REASONS_BY_CODE = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


def status_response(message: str, reason: str, code: int) -> web.Response:
    body = failure(message, reason, code).model_dump_json(by_alias=True)
    return web.Response(status=code, text=body, content_type="application/json")


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _created_name(response: web.StreamResponse) -> str | None:
    """The job a successful POST created, so its request line names it too."""
    return response.headers.get("X-Job-Name")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to `Status`, and log and measure each request under its route template."""
    token = request_id.set(request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16])
    started = time.perf_counter()
    metrics = request.app[METRICS]
    try:
        try:
            response = await handler(request)
        except SchedulerError as exc:
            if isinstance(exc, BackendUnavailableError | BackendError):
                metrics.api_server_errors.labels("request").inc()
            response = status_response(exc.message, exc.reason, exc.http_status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = _REASONS_BY_CODE.get(exc.status, "BadRequest")
            message = exc.reason
            if exc.status == 404:
                message = f"no such route: {request.method} {request.path}"
            elif exc.status == 413:
                message = f"request body too large: {exc.text or exc.reason}"
            response = status_response(message, reason, exc.status)
            if "Allow" in exc.headers:  # a 405 says which methods the route takes
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            response = status_response("internal error", "InternalError", 500)
        route = _route_template(request)
        elapsed = time.perf_counter() - started
        metrics.requests.labels(route, request.method, str(response.status)).inc()
        metrics.latency.labels(route, request.method).observe(elapsed)
        if not route.startswith(("/healthz", "/readyz", "/metrics")):
            log.info(
                "%s %s %d",
                request.method,
                request.path,
                response.status,
                extra={
                    "route": route,
                    "status": response.status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "job_name": request.match_info.get("jobName") or _created_name(response),
                },
            )
        response.headers["X-Request-Id"] = request_id.get() or ""
        return response
    finally:
        request_id.reset(token)
