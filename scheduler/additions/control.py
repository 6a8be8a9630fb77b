"""`GET .../result` of a job and of a batch's job, and `POST .../restart` of a job, a batch and a
batch's job (`scheduler.api.control`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG
from scheduler.swagger_paths import path_parameter

_STATUS = {"$ref": "#/definitions/Status"}
_UNAVAILABLE = "Service unavailable: the Kubernetes API cannot be reached or the view is not synced"


def _job() -> dict[str, Any]:
    return path_parameter("jobName", "Name of job")


def _batch() -> dict[str, Any]:
    return path_parameter("batchName", "Name of batch")


def _batch_job() -> dict[str, Any]:
    return path_parameter("jobName", "Name of the job: in full, or the part after the batch's name")


def _errors(described: dict[str, str]) -> dict[str, Any]:
    described = {**described, "500": "Internal server error", "503": _UNAVAILABLE}
    return {
        code: {"description": description, "schema": _STATUS}
        for code, description in sorted(described.items())
    }


_RESULT_DESCRIPTION = """\
What the job's last attempt wrote as its result, as bytes: on Kubernetes its termination message
(what the container wrote to /dev/termination-log; the kubelet keeps the last 4 KiB), on the local
backend the last 4 KiB of the file named by the job's RADIX_RESULT_PATH variable. There once the
job has ended (Succeeded, Failed or Stopped); a restarted job's result is its new run's."""

_RESTART_DESCRIPTION = """\
Runs the ended (Succeeded, Failed or Stopped) job again under the same name, with the same options
and payload: its status goes back to Waiting, its earlier attempts stay in its podStatuses, and its
`restart` is the time of the restart. A job that has not ended cannot be restarted (400)."""

_BATCH_RESTART_DESCRIPTION = """\
Restarts each ended (Succeeded, Failed or Stopped) job of the batch, as a job restart does; jobs
that have not ended are left alone. 400 when none of its jobs has ended."""


def _result(operation_id: str, summary: str, parameters: list[dict[str, Any]]) -> Any:
    return {
        "tags": [TAG],
        "summary": summary,
        "description": _RESULT_DESCRIPTION,
        "operationId": operation_id,
        # The result, or a Status when there is none.
        "produces": ["application/octet-stream", "application/json"],
        "parameters": parameters,
        "responses": {
            "200": {"description": "The result", "schema": {"type": "string", "format": "binary"}},
            **_errors(
                {
                    "404": "No such job (or batch), or the job wrote no result",
                    "409": "The job has not ended yet",
                }
            ),
        },
    }


def _restart(
    operation_id: str, *, summary: str, description: str, parameters: list[dict[str, Any]]
) -> Any:
    return {
        "tags": [TAG],
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "parameters": parameters,
        "responses": {
            "200": {"description": "Successfully restarted", "schema": _STATUS},
            **_errors(
                {
                    "400": "The job has not ended (for a batch: none of its jobs has)",
                    "404": "No such job or batch",
                    "409": "A restart of the job is under way, or it was restarted meanwhile",
                }
            ),
        },
    }


PATHS: dict[str, Any] = {
    "/jobs/{jobName}/result": {
        "get": _result("getJobResult", "Gets the result of a job", [_job()]),
    },
    "/batches/{batchName}/jobs/{jobName}/result": {
        "get": _result(
            "getBatchJobResult", "Gets the result of a batch job", [_batch(), _batch_job()]
        ),
    },
    "/jobs/{jobName}/restart": {
        "post": _restart(
            "restartJob",
            summary="Restart job",
            description=_RESTART_DESCRIPTION,
            parameters=[_job()],
        ),
    },
    "/batches/{batchName}/restart": {
        "post": _restart(
            "restartBatch",
            summary="Restart batch",
            description=_BATCH_RESTART_DESCRIPTION,
            parameters=[_batch()],
        ),
    },
    "/batches/{batchName}/jobs/{jobName}/restart": {
        "post": _restart(
            "restartBatchJob",
            summary="Restart batch job",
            description=_RESTART_DESCRIPTION,
            parameters=[_batch(), _batch_job()],
        ),
    },
}
