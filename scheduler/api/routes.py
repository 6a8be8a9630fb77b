"""The route table."""

from __future__ import annotations

from aiohttp import web

from scheduler.api import (
    asked,
    batches,
    console,
    control,
    docs,
    events,
    health,
    jobs,
    logs,
    payload_schema,
    schedules,
    usage,
)

API = "/api/v1"


def add_routes(app: web.Application) -> None:
    # Every GET route answers HEAD too (aiohttp's `allow_head`): the GET's status and headers,
    # no body. The streams answer a HEAD at once, without waiting for anything to stream.
    app.add_routes(
        [
            web.post(f"{API}/jobs", jobs.create_job),
            web.post(f"{API}/jobs/", jobs.create_job),
            web.get(f"{API}/jobs", jobs.get_jobs),
            web.get(f"{API}/jobs/", jobs.get_jobs),
            web.get(f"{API}/jobs/{{jobName}}", jobs.get_job),
            web.delete(f"{API}/jobs/{{jobName}}", jobs.delete_job),
            web.post(f"{API}/jobs/stop", jobs.stop_all_jobs),
            web.post(f"{API}/jobs/{{jobName}}/stop", jobs.stop_job),
            web.get(f"{API}/jobs/{{jobName}}/logs", logs.get_job_logs),
            web.get(f"{API}/jobs/{{jobName}}/result", control.get_job_result),
            web.post(f"{API}/jobs/{{jobName}}/restart", control.restart_job),
            web.get(f"{API}/jobs/{{jobName}}/usage", usage.get_job_usage),
            web.get(f"{API}/jobs/{{jobName}}/request", asked.get_job_request),
            web.post(f"{API}/batches", batches.create_batch),
            web.post(f"{API}/batches/", batches.create_batch),
            web.get(f"{API}/batches", batches.get_batches),
            web.get(f"{API}/batches/", batches.get_batches),
            web.post(f"{API}/batches/stop", batches.stop_all_batches),
            web.get(f"{API}/batches/{{batchName}}", batches.get_batch),
            web.delete(f"{API}/batches/{{batchName}}", batches.delete_batch),
            web.post(f"{API}/batches/{{batchName}}/stop", batches.stop_batch),
            web.post(f"{API}/batches/{{batchName}}/restart", control.restart_batch),
            web.get(f"{API}/batches/{{batchName}}/jobs/{{jobName}}", batches.get_batch_job),
            web.post(f"{API}/batches/{{batchName}}/jobs/{{jobName}}/stop", batches.stop_batch_job),
            web.get(
                f"{API}/batches/{{batchName}}/jobs/{{jobName}}/result", control.get_batch_job_result
            ),
            web.post(
                f"{API}/batches/{{batchName}}/jobs/{{jobName}}/restart", control.restart_batch_job
            ),
            web.get(f"{API}/batches/{{batchName}}/jobs/{{jobName}}/logs", logs.get_batch_job_logs),
            web.get(
                f"{API}/batches/{{batchName}}/jobs/{{jobName}}/usage", usage.get_batch_job_usage
            ),
            web.get(f"{API}/events", events.stream_events),
            web.get(f"{API}/schedules", schedules.get_schedules),
            web.get(f"{API}/info", console.get_info),
            web.get(f"{API}/payload-schema", payload_schema.get_payload_schema),
            web.post(f"{API}/payload-schema/check", payload_schema.check_payload),
            web.get("/", console.console_redirect),
            web.get("/console", console.console_redirect),
            web.get("/console/", console.console_index),
            web.static("/console", console.CONSOLE_DIR),
            web.get("/swagger.json", docs.swagger_json),
            web.get("/swaggerui", docs.swagger_ui_redirect),
            web.get("/swaggerui/", docs.swagger_ui),
            web.static("/swaggerui", docs.SWAGGER_UI_DIR),
            web.get("/healthz", health.healthz),  # the PROBE_PATHS
            web.get("/readyz", health.readyz),
            web.get("/metrics", health.metrics),
        ]
    )
