"""`GET /jobs/{jobName}/request`: what was asked of a job, for the console's job page
(`scheduler.api.asked`, `JobService.asked`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG
from scheduler.models.asked import AskedResources, JobAsked
from scheduler.swagger_paths import path_parameter

MODELS = (JobAsked, AskedResources)

_STATUS = {"$ref": "#/definitions/Status"}
_UNAVAILABLE = "Service unavailable: the Kubernetes API cannot be reached or the view is not synced"

_DESCRIPTION = """\
The options the job runs with: those of its request (or its batch's defaults) merged with the
radixconfig's, kept with the job, so also after a scheduler restart. Its variables are named, but
their values are not given; nor is its payload, only whether it has one. On Kubernetes they are
read off the job's Job, which keeps some as the job uses them: of `node` and `runtime` only the
one that places the job (a node type, else a GPU request, else the architecture), a GPU list
lower-cased, and no `startAfter` that had passed when the job was created or restarted."""

PATHS: dict[str, Any] = {
    "/jobs/{jobName}/request": {
        "get": {
            "tags": [TAG],
            "summary": "Gets what was asked of a job",
            "description": _DESCRIPTION,
            "operationId": "getJobRequest",
            "parameters": [
                path_parameter("jobName", "Name of job (a batch's job by its full name)")
            ],
            "responses": {
                "200": {
                    "description": "Successful get job request",
                    "schema": {"$ref": "#/definitions/JobAsked"},
                },
                "404": {"description": "No such job", "schema": _STATUS},
                "500": {"description": "Internal server error", "schema": _STATUS},
                "503": {"description": _UNAVAILABLE, "schema": _STATUS},
            },
        }
    }
}
