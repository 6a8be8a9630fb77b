"""`/api/v1/payload-schema`: the job's payload schema, and a payload checked as a create would
check it, with nothing created (for the console's start form and for scripts)."""

from __future__ import annotations

import orjson
from aiohttp import web

from scheduler.api.bodies import json_bytes, json_response, parse_body
from scheduler.api.keys import SERVICE, SETTINGS
from scheduler.api.memory import read_body
from scheduler.errors import NotFoundError
from scheduler.models import success
from scheduler.models.payloads import PayloadCheck


async def get_payload_schema(request: web.Request) -> web.Response:
    definition = request.app[SETTINGS].definition
    if definition.payload_schema is None:
        raise NotFoundError(f"job {definition.name} has no payload schema")
    return json_bytes(orjson.dumps(definition.payload_schema.document))


async def check_payload(request: web.Request) -> web.Response:
    check = parse_body(await read_body(request), PayloadCheck, "PayloadCheck") or PayloadCheck()
    rules = request.app[SERVICE].payloads
    # The same rules, in the same order, as a POST /jobs: 413, then 422 with its causes.
    rules.check([("payload", check.payload)])
    if rules.schema is None:
        return json_response(success(f"job {rules.job} has no payload schema; the payload fits"))
    return json_response(success("the payload satisfies the schema"))
