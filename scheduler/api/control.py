"""Handlers of our additions for ended jobs: `GET .../result` (what the job wrote as its result,
as bytes) and `POST .../restart` of a job, a batch and a batch's job."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.bodies import json_response
from scheduler.api.keys import RESTARTS, RESULTS

# A result is whatever the job wrote: bytes of its own format.
RESULT_CONTENT_TYPE = "application/octet-stream"


async def get_job_result(request: web.Request) -> web.Response:
    body = await request.app[RESULTS].job_result(request.match_info["jobName"])
    return web.Response(body=body, content_type=RESULT_CONTENT_TYPE)


async def get_batch_job_result(request: web.Request) -> web.Response:
    info = request.match_info
    body = await request.app[RESULTS].batch_job_result(info["batchName"], info["jobName"])
    return web.Response(body=body, content_type=RESULT_CONTENT_TYPE)


async def restart_job(request: web.Request) -> web.Response:
    return json_response(await request.app[RESTARTS].restart_job(request.match_info["jobName"]))


async def restart_batch(request: web.Request) -> web.Response:
    return json_response(await request.app[RESTARTS].restart_batch(request.match_info["batchName"]))


async def restart_batch_job(request: web.Request) -> web.Response:
    info = request.match_info
    return json_response(
        await request.app[RESTARTS].restart_batch_job(info["batchName"], info["jobName"])
    )
