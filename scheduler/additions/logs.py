"""`GET .../logs` of a job and of a batch's job: its output as plain text (`scheduler.api.logs`)."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from scheduler.additions import TAG
from scheduler.swagger_paths import path_parameter

_STATUS = {"$ref": "#/definitions/Status"}


def _query(name: str, kind: str, description: str) -> dict[str, Any]:
    return {"type": kind, "description": description, "name": name, "in": "query"}


# The API server's int64 (scheduler.api.logs.MAX_COUNT): a larger count is 422.
_MAX_COUNT = 2**63 - 1

_OPTIONS = [
    _query(
        "follow",
        "boolean",
        "Stream the log as it is written until the job ends (or the client leaves); waits for "
        "the first attempt to start. Default false",
    ),
    {
        **_query("tail", "integer", "Only the last N lines"),
        "format": "int64",
        "minimum": 0,
        "maximum": _MAX_COUNT,
    },
    {
        **_query(
            "attempt",
            "integer",
            "The attempt to read: the podIndex of one of the job's podStatuses. Default: the "
            "latest (with follow, the later attempts follow it)",
        ),
        "format": "int64",
        "minimum": 0,
        "maximum": _MAX_COUNT,
    },
    _query(
        "timestamps",
        "boolean",
        "Begin each line with the RFC 3339 time it was written and a space. Default false",
    ),
]

_DESCRIPTION = """\
The output of one attempt of the job (its pod's container on Kubernetes, its process on the local
backend), as plain text. On Kubernetes an attempt whose pod is gone (a stop, a restart, an
eviction, a deleted pod) is served from the job's record, which keeps the tail of each attempt's
log (`X-Log-Source: record`; `X-Log-Truncated: true` when the start of the log was not kept). A
log that was not kept (its pod went before it could be read) is 404, saying so."""

_HEADERS = {
    "X-Log-Source": {
        "type": "string",
        "enum": ["record"],
        "description": "Present when the job's record serves the log: the attempt's pod is gone",
    },
    "X-Log-Truncated": {
        "type": "string",
        "enum": ["true"],
        "description": "Present when the record kept only the end of the log",
    },
}


def _operation(operation_id: str, summary: str, parameters: list[dict[str, Any]]) -> Any:
    return {
        "tags": [TAG],
        "summary": summary,
        "description": _DESCRIPTION,
        "operationId": operation_id,
        "produces": ["text/plain"],
        "parameters": [*parameters, *deepcopy(_OPTIONS)],
        "responses": {
            "200": {
                "description": "The log",
                "schema": {"type": "string"},
                "headers": deepcopy(_HEADERS),
            },
            "404": {
                "description": "No such job (or batch), attempt, or the attempt's log is gone",
                "schema": _STATUS,
            },
            "409": {"description": "The attempt has not started yet", "schema": _STATUS},
            "422": {"description": "A query parameter is invalid", "schema": _STATUS},
            "500": {"description": "Internal server error", "schema": _STATUS},
            "503": {
                "description": "Service unavailable: the Kubernetes API cannot be reached or the "
                "view is not synced",
                "schema": _STATUS,
            },
        },
    }


PATHS: dict[str, Any] = {
    "/jobs/{jobName}/logs": {
        "get": _operation(
            "getJobLogs", "Gets the log of a job", [path_parameter("jobName", "Name of job")]
        )
    },
    "/batches/{batchName}/jobs/{jobName}/logs": {
        "get": _operation(
            "getBatchJobLogs",
            "Gets the log of a batch job",
            [
                path_parameter("batchName", "Name of batch"),
                path_parameter(
                    "jobName", "Name of the job: in full, or the part after the batch's name"
                ),
            ],
        )
    },
}
