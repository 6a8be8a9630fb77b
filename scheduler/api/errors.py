"""The one place errors become responses: every failure is a `Status` body with its HTTP code."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from scheduler.api.bodies import JOB_NAME_HEADER, JSON
from scheduler.api.keys import METRICS
from scheduler.errors import BackendError, BackendUnavailableError, BusyError, SchedulerError
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
REQUEST_ID = "X-Request-Id"
# A caller's request id is kept only when it looks like one: it is in every log line of the
# request and in the answer, so it may not be long, odd or another request's forged line.
_CALLERS_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_PARSE_ERROR_CHARS = 200


def status_response(
    message: str, reason: str, code: int, causes: Sequence[Mapping[str, Any]] = ()
) -> web.Response:
    body = failure(message, reason, code, causes).model_dump_json(by_alias=True)
    return web.Response(status=code, text=body, content_type=JSON)


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _created_name(response: web.StreamResponse) -> str | None:
    """The job a successful POST created, so its request line names it too."""
    return response.headers.get(JOB_NAME_HEADER)


def _request_id(request: web.Request) -> str:
    sent = request.headers.get(REQUEST_ID)
    if sent is not None and _CALLERS_REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex[:16]


def _what_is_wrong(message: str) -> str:
    """The first line of aiohttp's parse error ("Invalid header value char"), without the
    request's bytes it quotes below it: a header's value may be a credential."""
    lines = message.strip().splitlines()
    return (lines[0] if lines else "").rstrip(":")[:_MAX_PARSE_ERROR_CHARS]


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log (the app's `handler_args` logger). A request aiohttp cannot parse
    (a NUL or another byte HTTP forbids in a header, a bad request line) is the client's
    mistake, answered 400 before any handler runs: one WARNING line, not an ERROR with a
    traceback."""

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= (exc_info.code or 0) < 500:
            remote = args[0] if args else None
            self.logger.warning(
                "refused a request that is not valid HTTP (%d): %s",
                exc_info.code,
                _what_is_wrong(exc_info.message),
                extra={"remote": str(remote), "status": exc_info.code},
            )
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


SERVER_LOG = ServerLog(logging.getLogger("aiohttp.server"))


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to `Status`, and log and measure each request under its route template."""
    token = request_id.set(_request_id(request))
    started = time.perf_counter()
    metrics = request.app[METRICS]
    try:
        try:
            response = await handler(request)
        except SchedulerError as exc:
            if isinstance(exc, BackendUnavailableError | BackendError):
                metrics.api_server_errors.labels("request").inc()
            response = status_response(exc.message, exc.reason, exc.http_status, exc.causes)
            if isinstance(exc, BusyError):
                response.headers["Retry-After"] = str(exc.retry_after_seconds)
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
                    # The request line names its id under any handler, with our filter or not.
                    "request_id": request_id.get(),
                    "route": route,
                    "status": response.status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "job_name": request.match_info.get("jobName") or _created_name(response),
                },
            )
        response.headers[REQUEST_ID] = request_id.get() or ""
        return response
    finally:
        request_id.reset(token)
