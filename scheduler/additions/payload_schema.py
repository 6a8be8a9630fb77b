"""`GET /payload-schema` and `POST /payload-schema/check`: the job's payload schema, and a payload
checked against it without creating anything (`scheduler.api.payload_schema`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG
from scheduler.models.payloads import PayloadCheck

MODELS = (PayloadCheck,)

_STATUS = {"$ref": "#/definitions/Status"}
_INVALID = (
    "The payload breaks the schema, or is not JSON: the message lists each problem, and "
    "`details.causes` names each one's field, JSON pointer, rule and value"
)

PATHS: dict[str, Any] = {
    "/payload-schema": {
        "get": {
            "tags": [TAG],
            "summary": "Gets the job's payload schema",
            "description": "The JSON Schema (draft 2020-12) every payload of the job must "
            "satisfy, as the radixconfig's payload.schema declares it. GET /info has it too, "
            "as payloadSchema.",
            "operationId": "getPayloadSchema",
            "responses": {
                "200": {"description": "The schema", "schema": {"type": "object"}},
                "404": {"description": "The job has no payload schema", "schema": _STATUS},
                "500": {"description": "Internal server error", "schema": _STATUS},
            },
        }
    },
    "/payload-schema/check": {
        "post": {
            "tags": [TAG],
            "summary": "Checks a payload as a create would",
            "description": "The payload is checked as POST /jobs and POST /batches check each "
            "job's: its size (413), then its schema (422); nothing is created. A job without "
            "a payload schema checks the size only. A job with one takes JSON only: an empty "
            "or absent payload breaks the rule `required`.",
            "operationId": "checkPayload",
            "parameters": [
                {
                    "description": "The payload to check",
                    "name": "payloadCheck",
                    "in": "body",
                    "required": True,
                    "schema": {"$ref": "#/definitions/PayloadCheck"},
                }
            ],
            "responses": {
                "200": {"description": "The payload would be taken", "schema": _STATUS},
                "400": {"description": "Bad request", "schema": _STATUS},
                "413": {"description": "The payload is larger than the limit", "schema": _STATUS},
                "422": {"description": _INVALID, "schema": _STATUS},
                "500": {"description": "Internal server error", "schema": _STATUS},
            },
        }
    },
}
