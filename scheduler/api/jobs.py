"""Handlers of `/api/v1/jobs`: parse, call the service, answer JSON."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from scheduler.api.keys import IDEMPOTENCY, SERVICE
from scheduler.domain.idempotency import HEADER as IDEMPOTENCY_KEY
from scheduler.errors import InvalidError
from scheduler.models import JobScheduleDescription

JSON = "application/json"
Body = TypeVar("Body", bound=BaseModel)


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def parse_body(raw: bytes, model: type[Body], what: str) -> Body | None:
    """The body as `model`; None for an empty body or JSON null. 422 names what is wrong."""
    if not raw.strip():
        return None
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidError(f"{what} is invalid: the body is not JSON: {exc}") from exc
    except RecursionError as exc:
        # No request of ours nests deeper than a few levels; Python's parser gives up at ~1000.
        raise InvalidError(f"{what} is invalid: the body's JSON is nested too deeply") from exc
    if document is None:
        return None
    if not isinstance(document, dict):
        raise InvalidError(f"{what} is invalid: the body must be a JSON object ({model.__name__})")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidError(f"{what} is invalid: {problems}") from exc


def parse_description(raw: bytes) -> JobScheduleDescription:
    """An empty body (or JSON null) is an empty description, as in Radix."""
    return parse_body(raw, JobScheduleDescription, "payload") or JobScheduleDescription()


def json_response(model: BaseModel) -> web.Response:
    return web.Response(body=model.model_dump_json(by_alias=True), content_type=JSON)


async def create_job(request: web.Request) -> web.Response:
    description = parse_description(await request.read())
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        status = await request.app[SERVICE].create(description)
    else:
        status = await request.app[IDEMPOTENCY].create_job(key, description)
    response = json_response(status)
    response.headers["X-Job-Name"] = status.name
    return response


async def get_jobs(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVICE].list_json(), content_type=JSON)


async def get_job(request: web.Request) -> web.Response:
    body = request.app[SERVICE].get_json(request.match_info["jobName"])
    return web.Response(body=body, content_type=JSON)


async def delete_job(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].delete(request.match_info["jobName"]))


async def stop_job(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].stop(request.match_info["jobName"]))


async def stop_all_jobs(request: web.Request) -> web.Response:
    return json_response(await request.app[SERVICE].stop_all())
