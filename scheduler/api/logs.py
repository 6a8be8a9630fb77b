"""Handlers of a job's log (`/jobs/{jobName}/logs`, `/batches/{batchName}/jobs/{jobName}/logs`):
`text/plain`, streamed as the backend reads it; with `follow` until the job ends or the client
leaves."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from scheduler.api.errors import REQUEST_ID
from scheduler.api.keys import LOGS
from scheduler.api.leaving import ClientLeft, client_closed_response, unless_client_leaves
from scheduler.backends.base import OpenLog
from scheduler.domain.logs import LogOptions
from scheduler.errors import InvalidError, SchedulerError
from scheduler.logs import request_id

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
MAX_COUNT = 2**63 - 1  # the API server's int64

# Our headers on a log its attempt's record serves (its pod is gone), and on one the record
# holds only the tail of.
LOG_SOURCE = "X-Log-Source"
LOG_TRUNCATED = "X-Log-Truncated"

Opening = Callable[[], Awaitable[OpenLog]]


async def get_job_logs(request: web.Request) -> web.StreamResponse:
    options = _options(request)
    name = request.match_info["jobName"]
    return await _serving(request, lambda: request.app[LOGS].job_log(name, options))


async def get_batch_job_logs(request: web.Request) -> web.StreamResponse:
    options = _options(request)
    batch, job = request.match_info["batchName"], request.match_info["jobName"]
    return await _serving(request, lambda: request.app[LOGS].batch_job_log(batch, job, options))


def _options(request: web.Request) -> LogOptions:
    options = parse_options(request.query)
    if request.method == "HEAD":
        # Nothing of the log is sent: answer at once, without waiting for the job to start.
        return dataclasses.replace(options, follow=False)
    return options


def parse_options(query: Mapping[str, str]) -> LogOptions:
    """The query's options; 422 naming the first one that is wrong."""
    return LogOptions(
        follow=_flag(query, "follow"),
        tail=_count(query, "tail"),
        attempt=_count(query, "attempt"),
        timestamps=_flag(query, "timestamps"),
    )


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise InvalidError(f"{name} is invalid: {value!r} is neither true nor false")


def _count(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_COUNT:
        raise InvalidError(f"{name} is invalid: {value!r} is not a whole number of 0 or more")
    return int(value)


async def _serving(request: web.Request, opening: Opening) -> web.StreamResponse:
    """Stream the log, and stop when the client leaves (even while nothing is written)."""
    response = web.StreamResponse(headers={"Content-Type": TEXT})
    try:
        return await unless_client_leaves(request, _streaming(request, response, opening))
    except ClientLeft:
        return response if response.prepared else client_closed_response()


async def _streaming(
    request: web.Request, response: web.StreamResponse, opening: Opening
) -> web.StreamResponse:
    opened = await opening()  # errors until here are answered as a Status
    async with contextlib.aclosing(opened.chunks) as chunks:
        # The error middleware adds it too late for a response sent already.
        response.headers[REQUEST_ID] = request_id.get() or ""
        if opened.kept:
            response.headers[LOG_SOURCE] = "record"
        if opened.truncated:
            response.headers[LOG_TRUNCATED] = "true"
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except ConnectionError:
            return response  # the client left
        except SchedulerError as exc:
            # The status line is out: the text just ends, as `kubectl logs` does.
            log.warning("the log for %s broke off: %s", request.path, exc.message)
        await response.write_eof()
    return response
