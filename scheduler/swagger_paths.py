"""The operations of the v1 API as Radix's spec declares them (paths, operationIds, tags,
parameters, 200 schemas), with the error codes we add; `scheduler.swagger` renders them."""

from __future__ import annotations

from copy import deepcopy
from typing import Any, NamedTuple

_ERROR_DESCRIPTIONS = {
    "400": "Bad request",
    "404": "Not found",
    "413": "Payload too large",
    "422": "Invalid data in request",
    "500": "Internal server error",
    "503": "Service unavailable: the Kubernetes API cannot be reached or the view is not synced",
}
# Radix's declared codes, plus 413 for bodies over the size limit and 503 wherever we read the
# watched view or call the Kubernetes API.
_CREATE = ("400", "404", "413", "422", "500", "503")
_LIST = ("500", "503")
_ONE = ("404", "500", "503")
# 422: a `wait` that is not a whole number of seconds, or is above the limit.
_WAITED = ("404", "422", "500", "503")
# 422: deleting, as a single job, a job of a multi-job batch (Radix answers 422 too, undeclared).
_DELETE_JOB = ("404", "422", "500", "503")
# 400: stopping a job or batch that has already finished.
_STOP = ("400", "404", "500", "503")


def _ref(model: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{model}"}


def _list_of(model: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(model)}


def path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "description": description,
        "name": name,
        "in": "path",
        "required": True,
    }


_JOB = _ref("JobStatus")
_BATCH = _ref("BatchStatus")
_STATUS = _ref("Status")
_JOB_NAME = path_parameter("jobName", "Name of job")
_BATCH_NAME = path_parameter("batchName", "Name of batch")
_JOB_CREATION = {
    "description": "Job to create; an empty body creates a job with the configured defaults",
    "name": "jobCreation",
    "in": "body",
    # Radix's spec says required, but Radix (and we) accept an empty body.
    "required": False,
    "schema": _ref("JobScheduleDescription"),
}
# Our `wait` on Radix's GETs of a job, a batch and a batch job. Radix's operations keep exactly
# Radix's parameters, so that a client generated from either spec is the same; `wait` is told in
# an extension (which generators ignore) and in the operation's description.
WAIT_EXTENSION = "x-scheduler-query-parameters"


def _wait(ended: str) -> dict[str, Any]:
    return {
        "description": (
            f"Our addition: with `?wait=SECONDS` the answer comes once {ended}, or when the wait "
            "runs out, whichever is first, with the body a GET gives then. At most the "
            "scheduler's SCHEDULER_MAX_WAIT_SECONDS (300 by default); 0 or absent answers at "
            "once; a value that is not a whole number, or is above the limit, is 422."
        ),
        WAIT_EXTENSION: [
            {
                "name": "wait",
                "in": "query",
                "type": "integer",
                "minimum": 0,
                "required": False,
                "description": "Seconds to wait at most before answering (see the description)",
            }
        ],
    }


_JOB_WAIT = _wait("the job has ended")
_BATCH_WAIT = _wait("every job of the batch has ended")
_BATCH_CREATION = {
    "description": "Batch to create",
    "name": "batchCreation",
    "in": "body",
    "required": True,
    "schema": _ref("BatchScheduleDescription"),
}


class _Operation(NamedTuple):
    method: str
    path: str
    operation_id: str
    summary: str
    success: str
    schema: dict[str, Any]
    errors: tuple[str, ...]
    parameters: tuple[dict[str, Any], ...] = ()
    # More of the operation object: a description, extensions.
    more: dict[str, Any] | None = None


# Radix's paths exactly: GET `/jobs/` and `/batches/` (trailing slash) beside POST `/jobs` and
# `/batches`; clients generated from its spec call these URLs.
# fmt: off
_OPERATIONS = (
    _Operation("post", "/jobs", "createJob", "Create job", "Successful create job",
               _JOB, _CREATE, (_JOB_CREATION,)),
    _Operation("get", "/jobs/", "getJobs", "Gets jobs", "Successful get jobs",
               _list_of("JobStatus"), _LIST),
    _Operation("post", "/jobs/stop", "stopAllJobs", "Stop all jobs", "Successfully stopped jobs",
               _STATUS, _STOP),
    _Operation("get", "/jobs/{jobName}", "getJob", "Gets job", "Successful get job",
               _JOB, _WAITED, (_JOB_NAME,), _JOB_WAIT),
    _Operation("delete", "/jobs/{jobName}", "deleteJob", "Delete job", "Successful delete job",
               _STATUS, _DELETE_JOB, (_JOB_NAME,)),
    _Operation("post", "/jobs/{jobName}/stop", "stopJob", "Stop job", "Successful stop job",
               _STATUS, _STOP, (_JOB_NAME,)),
    _Operation("post", "/batches", "createBatch", "Create batch", "Successful create batch",
               _BATCH, _CREATE, (_BATCH_CREATION,)),
    _Operation("get", "/batches/", "getBatches", "Gets batches", "Successful get batches",
               _list_of("BatchStatus"), _LIST),
    _Operation("post", "/batches/stop", "stopAllBatches", "Stop all batches",
               "Successfully stopped batches", _STATUS, _STOP),
    _Operation("get", "/batches/{batchName}", "getBatch", "Gets batch", "Successful get batch",
               _BATCH, _WAITED, (_BATCH_NAME,), _BATCH_WAIT),
    _Operation("delete", "/batches/{batchName}", "deleteBatch", "Delete batch",
               "Successful delete batch", _STATUS, _ONE, (_BATCH_NAME,)),
    _Operation("get", "/batches/{batchName}/jobs/{jobName}", "getBatchJob", "Gets batch job",
               "Successful get job", _JOB, _WAITED, (_BATCH_NAME, _JOB_NAME), _JOB_WAIT),
    _Operation("post", "/batches/{batchName}/jobs/{jobName}/stop", "stopBatchJob",
               "Stop batch job", "Successful stop batch job", _STATUS, _STOP,
               (_BATCH_NAME, _JOB_NAME)),
    _Operation("post", "/batches/{batchName}/stop", "stopBatch", "Stop batch",
               "Successful stop batch", _STATUS, _STOP, (_BATCH_NAME,)),
)
# fmt: on


def _render(operation: _Operation) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "tags": ["Batch" if operation.path.startswith("/batches") else "Job"],
        "summary": operation.summary,
        "operationId": operation.operation_id,
        **(operation.more or {}),
    }
    if operation.parameters:
        rendered["parameters"] = list(operation.parameters)
    rendered["responses"] = {
        "200": {"description": operation.success, "schema": operation.schema},
        **{
            code: {"description": _ERROR_DESCRIPTIONS[code], "schema": _STATUS}
            for code in operation.errors
        },
    }
    return rendered


def paths() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for operation in _OPERATIONS:
        table.setdefault(operation.path, {})[operation.method] = _render(operation)
    # The rows share parameter and schema objects; callers get a tree of their own.
    return deepcopy(table)
