"""The route table."""

from __future__ import annotations

from aiohttp import web

from scheduler.api import docs, health, jobs

API = "/api/v1"


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.post(f"{API}/jobs", jobs.create_job),
            web.post(f"{API}/jobs/", jobs.create_job),
            web.get(f"{API}/jobs", jobs.get_jobs, allow_head=False),
            web.get(f"{API}/jobs/", jobs.get_jobs, allow_head=False),
            web.get(f"{API}/jobs/{{jobName}}", jobs.get_job, allow_head=False),
            web.delete(f"{API}/jobs/{{jobName}}", jobs.delete_job),
            web.get("/swagger.json", docs.swagger_json, allow_head=False),
            web.get("/swaggerui", docs.swagger_ui_redirect, allow_head=False),
            web.get("/swaggerui/", docs.swagger_ui, allow_head=False),
            web.static("/swaggerui", docs.SWAGGER_UI_DIR),
            web.get("/healthz", health.healthz, allow_head=False),
            web.get("/readyz", health.readyz, allow_head=False),
            web.get("/metrics", health.metrics, allow_head=False),
        ]
    )
