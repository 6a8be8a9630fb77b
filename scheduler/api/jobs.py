"""Handlers of `/api/v1/jobs`: parse, call the service, answer JSON."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.bodies import create_response, json_bytes, json_response, parse_body
from scheduler.api.keys import IDEMPOTENCY, SERVICE, WAITING
from scheduler.api.memory import read_body
from scheduler.api.waits import after_waiting
from scheduler.models import JobScheduleDescription


def parse_description(raw: bytes | bytearray) -> JobScheduleDescription:
    """An empty body (or JSON null) is an empty description, as in Radix."""
    return parse_body(raw, JobScheduleDescription, "payload") or JobScheduleDescription()


async def create_job(request: web.Request) -> web.Response:
    return await create_response(
        request,
        parse_description(await read_body(request)),
        create=request.app[SERVICE].create,
        create_with_key=request.app[IDEMPOTENCY].create_job,
    )


async def get_jobs(request: web.Request) -> web.Response:
    return json_bytes(request.app[SERVICE].list_json())


async def get_job(request: web.Request) -> web.Response:
    name = request.match_info["jobName"]
    return await after_waiting(
        request,
        lambda seconds: request.app[WAITING].job(name, seconds),
        lambda: json_bytes(request.app[SERVICE].get_json(name)),
    )


async def delete_job(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].delete(request.match_info["jobName"]))


async def stop_job(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].stop(request.match_info["jobName"]))


async def stop_all_jobs(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].stop_all())
