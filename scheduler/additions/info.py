"""`GET /info`: what this scheduler serves (job, app, environment, backend), for the web console's
header and for scripts (`scheduler.api.console`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG
from scheduler.models.info import SchedulerInfo

MODELS = (SchedulerInfo,)

PATHS: dict[str, Any] = {
    "/info": {
        "get": {
            "tags": [TAG],
            "summary": "Gets what this scheduler serves",
            "description": "The job, app and environment this scheduler serves, its backend and "
            "version, the payload limit, and the payload schema, when the job has one.",
            "operationId": "getInfo",
            "responses": {
                "200": {
                    "description": "Successful get info",
                    "schema": {"$ref": "#/definitions/SchedulerInfo"},
                },
                "500": {
                    "description": "Internal server error",
                    "schema": {"$ref": "#/definitions/Status"},
                },
            },
        }
    }
}
