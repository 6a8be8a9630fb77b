"""JSON bodies in and out: a request's body parsed as a model (422 naming what is wrong), a model
answered as JSON, and the answer to a create, with or without an Idempotency-Key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from scheduler.domain.idempotency import HEADER as IDEMPOTENCY_KEY
from scheduler.errors import InvalidError
from scheduler.models import JobStatus

JSON = "application/json"
# The name of the job or batch a create made, so that a client (and our request log) has it
# without reading the body.
JOB_NAME_HEADER = "X-Job-Name"
_TOO_DEEP = "depth limit exceeded"
Body = TypeVar("Body", bound=BaseModel)
Created = TypeVar("Created", bound=JobStatus)
# A body at least this large goes to the socket as it is, after its headers: aiohttp (on Python
# before 3.12.9) would join the two into a copy of it first.
_SEPARATE_HEADERS_BYTES = 64 * 1024


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def parse_body(raw: bytes | bytearray, model: type[Body], what: str) -> Body | None:
    """The body as `model`; None for an empty body or JSON null. 422 names what is wrong."""
    if not raw.strip():
        return None
    try:
        # orjson reads the bytes as they are; `json` would decode a copy of them first.
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith(_TOO_DEEP):
            # No request of ours nests deeper than a few levels; orjson gives up at 1024.
            raise InvalidError(f"{what} is invalid: the body's JSON is nested too deeply") from exc
        raise InvalidError(f"{what} is invalid: the body is not JSON: {exc}") from exc
    if document is None:
        return None
    if not isinstance(document, dict):
        raise InvalidError(f"{what} is invalid: the body must be a JSON object ({model.__name__})")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidError(f"{what} is invalid: {problems}") from exc


class SentOnce(web.Response):
    """A response that lets go of its body once it is sent. aiohttp's connection keeps its
    last request and response until the next request comes, so each idle keep-alive
    connection would hold the last answer it carried: at 10,000 jobs a job list is 6 MB."""

    async def write_eof(self, data: bytes = b"") -> None:
        body = self.body
        if (
            self._payload_writer is not None
            and isinstance(body, bytes)
            and len(body) >= _SEPARATE_HEADERS_BYTES
        ):
            # The list of 10,000 jobs is 6 MB: a fresh copy of it on each GET cost more than
            # the rest of the answer.
            self._payload_writer.send_headers()
        await super().write_eof(data)
        self.body = None


def json_bytes(body: bytes) -> web.Response:
    """A JSON answer made already."""
    return SentOnce(body=body, content_type=JSON)


def json_response(model: BaseModel) -> web.Response:
    return json_bytes(model.model_dump_json(by_alias=True).encode())


async def create_response(
    request: web.Request,
    description: Body,
    *,
    create: Callable[[Body], Awaitable[Created]],
    create_with_key: Callable[[str, Body], Awaitable[Created]],
) -> web.Response:
    """Create with `create`, or with `create_with_key` when the request has an Idempotency-Key
    (a repeat then gets the first request's job or batch); answer its status."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    status = await (create(description) if key is None else create_with_key(key, description))
    response = json_response(status)
    response.headers[JOB_NAME_HEADER] = status.name
    return response
