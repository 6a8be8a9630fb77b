"""`GET .../usage` of a job and of a batch's job: what each attempt used (`scheduler.api.usage`,
`scheduler.domain.usage`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG
from scheduler.models.usage import AttemptUsage, JobUsage
from scheduler.swagger_paths import path_parameter

MODELS = (JobUsage, AttemptUsage)

_STATUS = {"$ref": "#/definitions/Status"}
_UNAVAILABLE = "Service unavailable: the Kubernetes API cannot be reached or the view is not synced"

_DESCRIPTION = """\
For each attempt of the job (in the order of its podStatuses), the most memory it held at once
and the CPU time it took, next to the job's requests and limits, with a hint in words such as
"peak 410 MiB of a 2 GiB limit". On Kubernetes the figures come from the metrics API
(metrics.k8s.io), sampled while the pods run (every SCHEDULER_USAGE_INTERVAL_SECONDS, 15 s by
default): the peak is the highest working set sampled and the CPU seconds add up the sampled rates
(an estimate, `cpuEstimated`); an attempt's record keeps them once it has ended. On the local
backend they come from the attempt's process tree (/proc), read every second by default. What an
attempt does after the last sample is not seen. Figures not known are null with
`available` false and a `reason` (the cluster serves no metrics API, the attempt has not
started, it ran too briefly to be measured), never zero."""


def _operation(operation_id: str, summary: str, parameters: list[dict[str, Any]]) -> Any:
    return {
        "tags": [TAG],
        "summary": summary,
        "description": _DESCRIPTION,
        "operationId": operation_id,
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "Successful get usage",
                "schema": {"$ref": "#/definitions/JobUsage"},
            },
            "404": {"description": "No such job (or batch)", "schema": _STATUS},
            "500": {"description": "Internal server error", "schema": _STATUS},
            "503": {"description": _UNAVAILABLE, "schema": _STATUS},
        },
    }


PATHS: dict[str, Any] = {
    "/jobs/{jobName}/usage": {
        "get": _operation(
            "getJobUsage",
            "Gets what each attempt of a job used",
            [path_parameter("jobName", "Name of job")],
        ),
    },
    "/batches/{batchName}/jobs/{jobName}/usage": {
        "get": _operation(
            "getBatchJobUsage",
            "Gets what each attempt of a batch job used",
            [
                path_parameter("batchName", "Name of batch"),
                path_parameter(
                    "jobName", "Name of the job: in full, or the part after the batch's name"
                ),
            ],
        ),
    },
}
