"""`GET /schedules`: the job's cron schedules from the radixconfig, with their next run times
(`scheduler.api.schedules`, `scheduler.domain.schedules`)."""

from __future__ import annotations

from typing import Any

from scheduler.additions import TAG
from scheduler.models.schedules import ScheduleStatus

MODELS = (ScheduleStatus,)

PATHS: dict[str, Any] = {
    "/schedules": {
        "get": {
            "tags": [TAG],
            "summary": "Gets the job's cron schedules",
            "description": "The schedules of the radixconfig for this job and environment. A run "
            "is an ordinary job (listed, stoppable, pruned with the history) with the jobId "
            "`schedule:<name>`.",
            "operationId": "getSchedules",
            "responses": {
                "200": {
                    "description": "Successful get schedules",
                    "schema": {"type": "array", "items": {"$ref": "#/definitions/ScheduleStatus"}},
                },
                "500": {
                    "description": "Internal server error",
                    "schema": {"$ref": "#/definitions/Status"},
                },
            },
        }
    }
}
