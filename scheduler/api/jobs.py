"""Handlers of `/api/v1/jobs`: parse, call the service, answer JSON."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from scheduler.api.keys import SERVICE
from scheduler.errors import InvalidError
from scheduler.models import JobScheduleDescription

_JSON = "application/json"


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def parse_description(raw: bytes) -> JobScheduleDescription:
    """An empty body (or JSON null) is an empty description, as in Radix."""
    if not raw.strip():
        return JobScheduleDescription()
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidError(f"payload is invalid: the body is not JSON: {exc}") from exc
    if document is None:
        return JobScheduleDescription()
    if not isinstance(document, dict):
        raise InvalidError(
            "payload is invalid: the body must be a JSON object (JobScheduleDescription)"
        )
    try:
        return JobScheduleDescription.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidError(f"payload is invalid: {problems}") from exc


async def create_job(request: web.Request) -> web.Response:
    description = parse_description(await request.read())
    status = await request.app[SERVICE].create(description)
    response = web.Response(body=status.model_dump_json(by_alias=True), content_type=_JSON)
    response.headers["X-Job-Name"] = status.name
    return response


async def get_jobs(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVICE].list_json(), content_type=_JSON)


async def get_job(request: web.Request) -> web.Response:
    body = request.app[SERVICE].get_json(request.match_info["jobName"])
    return web.Response(body=body, content_type=_JSON)


async def delete_job(request: web.Request) -> web.Response:
    status = await request.app[SERVICE].delete(request.match_info["jobName"])
    return web.Response(body=status.model_dump_json(by_alias=True), content_type=_JSON)
