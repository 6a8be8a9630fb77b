"""Handlers of `GET .../usage` of a job and of a batch's job (our addition): what each attempt
used, next to what the job asked for."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.bodies import json_response
from scheduler.api.keys import USAGE


async def get_job_usage(request: web.Request) -> web.Response:
    return json_response(await request.app[USAGE].job_usage(request.match_info["jobName"]))


async def get_batch_job_usage(request: web.Request) -> web.Response:
    info = request.match_info
    return json_response(
        await request.app[USAGE].batch_job_usage(info["batchName"], info["jobName"])
    )
