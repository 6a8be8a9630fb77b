"""Handler of `GET /jobs/{jobName}/request` (our addition): what was asked of a job."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.bodies import json_response
from scheduler.api.keys import SERVICE


async def get_job_request(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].asked(request.match_info["jobName"]))
