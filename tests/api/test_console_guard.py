"""The web console's server side: a page on another site cannot start, stop, restart or delete a
job through a visitor's browser (forms and cross-origin requests are refused), while scripts,
Radix clients and the console itself go on working; the console's files come with a strict
Content-Security-Policy; `/` leads to the console; `GET /api/v1/info` names what is served."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from scheduler.api.console import CONSOLE_DIR, CONTENT_SECURITY_POLICY
from tests.conftest import post_job, wait_for_status
from tests.factories import Client

EVIL = "https://evil.example"
# What a browser sends with a form that another site's page submits.
CROSS_SITE_FORM = {
    "Origin": EVIL,
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Content-Type": "application/x-www-form-urlencoded",
}
FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]
# A job that runs for 30 s (`sleep N` lasts N * 0.05 s in the tests, on either backend).
LONG_JOB = {"command": ["sh", "-c", "sleep 600"]}


def own_origin(client: Client) -> str:
    return f"http://{client.host}:{client.port}"


async def job_names(client: Client) -> list[str]:
    response = await client.get("/api/v1/jobs")
    return [job["name"] for job in await response.json()]


async def assert_refused(response: Any, code: int, reason: str) -> None:
    assert response.status == code, await response.text()
    body = await response.json()
    assert body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (code, reason)


async def test_a_cross_site_form_post_cannot_create_a_job(client: Client) -> None:
    response = await client.post("/api/v1/jobs", data=b"", headers=CROSS_SITE_FORM)

    await assert_refused(response, 403, "Forbidden")
    assert EVIL in (await response.json())["message"]
    assert await job_names(client) == []


async def test_a_cross_site_text_form_carrying_json_cannot_create_a_job(client: Client) -> None:
    # <form enctype="text/plain"> with a field named `{"payload": "x", "a": "` and value `"}`.
    headers = {**CROSS_SITE_FORM, "Content-Type": "text/plain"}
    body = b'{"payload": "x", "a": "="}'

    response = await client.post("/api/v1/jobs", data=body, headers=headers)

    await assert_refused(response, 403, "Forbidden")
    assert await job_names(client) == []


@pytest.mark.parametrize("content_type", FORM_TYPES)
async def test_a_form_post_from_the_schedulers_own_origin_is_refused_as_415(
    client: Client, content_type: str
) -> None:
    headers = {"Origin": own_origin(client), "Content-Type": content_type}

    response = await client.post("/api/v1/jobs", data=b"", headers=headers)

    await assert_refused(response, 415, "UnsupportedMediaType")
    assert "application/json" in (await response.json())["message"]
    assert await job_names(client) == []


async def test_a_browser_form_without_origin_but_with_fetch_metadata_is_refused(
    client: Client,
) -> None:
    headers = {"Sec-Fetch-Site": "same-origin", "Content-Type": "multipart/form-data; boundary=x"}

    response = await client.post("/api/v1/batches", data=b"", headers=headers)

    await assert_refused(response, 415, "UnsupportedMediaType")


async def test_a_cross_site_form_post_cannot_stop_restart_or_delete_a_job(client: Client) -> None:
    running = await post_job(client, LONG_JOB)
    name = running["name"]
    await wait_for_status(client, name, "Running")

    for path in (f"/api/v1/jobs/{name}/stop", "/api/v1/jobs/stop", f"/api/v1/jobs/{name}/restart"):
        await assert_refused(await client.post(path, headers=CROSS_SITE_FORM), 403, "Forbidden")
    deleted = await client.delete(f"/api/v1/jobs/{name}", headers={"Origin": EVIL})
    await assert_refused(deleted, 403, "Forbidden")

    assert (await client.get(f"/api/v1/jobs/{name}")).status == 200
    assert (await wait_for_status(client, name, "Running"))["ended"] is None
    # Stopped as Radix clients stop it: a POST with no body and no Content-Type.
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200


async def test_a_cross_site_form_post_cannot_stop_or_delete_a_batch(client: Client) -> None:
    body = {"jobScheduleDescriptions": [LONG_JOB]}
    created = await client.post(
        "/api/v1/batches", data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert created.status == 200, await created.text()
    name = (await created.json())["name"]

    stop = await client.post(f"/api/v1/batches/{name}/stop", headers=CROSS_SITE_FORM)
    await assert_refused(stop, 403, "Forbidden")
    deleted = await client.delete(f"/api/v1/batches/{name}", headers={"Origin": "null"})
    await assert_refused(deleted, 403, "Forbidden")

    assert (await client.get(f"/api/v1/batches/{name}")).status == 200
    assert (await client.delete(f"/api/v1/batches/{name}")).status == 200


async def test_json_from_the_console_and_empty_bodies_from_clients_can_create_jobs(
    client: Client,
) -> None:
    console = {"Origin": own_origin(client), "Sec-Fetch-Site": "same-origin"}
    from_console = await client.post(
        "/api/v1/jobs",
        data=json.dumps({"jobId": "from-console"}),
        headers={**console, "Content-Type": "application/json"},
    )
    empty = await client.post("/api/v1/jobs", data=b"", skip_auto_headers=["Content-Type"])

    assert from_console.status == 200, await from_console.text()
    assert (await from_console.json())["jobId"] == "from-console"
    assert empty.status == 200, await empty.text()
    assert len(await job_names(client)) == 2


async def test_scripts_keep_working_whatever_type_they_give_a_json_body(client: Client) -> None:
    # `curl -d '{...}'` sends its body as a form; scripts send no browser headers.
    response = await client.post(
        "/api/v1/jobs",
        data=b'{"jobId": "curl"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status == 200, await response.text()
    assert (await response.json())["jobId"] == "curl"


async def test_a_proxy_that_forwards_the_browsers_host_is_trusted(scheduler: Client) -> None:
    headers = {
        "Origin": "https://jobs.example.com",
        "X-Forwarded-Host": "jobs.example.com",
        "Content-Type": "application/json",
    }

    response = await scheduler.post("/api/v1/jobs", data=b"{}", headers=headers)

    assert response.status == 200, await response.text()


async def test_reading_is_not_guarded(scheduler: Client) -> None:
    # A cross-origin page cannot read the answer anyway (no CORS headers are ever sent).
    response = await scheduler.get("/api/v1/jobs", headers={"Origin": EVIL})

    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_the_root_redirects_to_the_console(scheduler: Client) -> None:
    response = await scheduler.get("/", allow_redirects=False)
    followed = await scheduler.get("/")

    assert response.status == 302
    assert response.headers["Location"] == "console/"
    assert followed.url.path == "/console/"
    assert "<title>" in await followed.text()


@pytest.mark.parametrize(
    "path", ["/", "/console", "/console/", "/console/app.js", "/console/console.css", "/console/x"]
)
async def test_every_console_response_carries_the_security_headers(
    scheduler: Client, path: str
) -> None:
    response = await scheduler.get(path, allow_redirects=False)

    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_policy_allows_only_own_scripts_and_styles_and_no_forms_or_framing() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))

    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["form-action"] == directives["frame-ancestors"] == "'none'"


async def test_the_console_modules_are_served_as_javascript(scheduler: Client) -> None:
    for path in sorted(CONSOLE_DIR.glob("*.js")):
        response = await scheduler.get(f"/console/{path.name}")
        assert response.status == 200
        assert response.content_type in ("text/javascript", "application/javascript")


def test_the_console_has_no_inline_script_or_style_and_loads_nothing_from_elsewhere() -> None:
    for path in CONSOLE_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"\sstyle=|<style|\.innerHTML|insertAdjacentHTML", text), path.name
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name


async def test_info_names_the_job_app_environment_and_backend(client: Client, backend: str) -> None:
    response = await client.get("/api/v1/info")

    assert response.status == 200
    body = await response.json()
    assert body["job"] == "compute"
    assert body["app"] == "myapp"
    assert body["environment"] == "dev"
    assert body["backend"] == backend
    assert body["maxPayloadBytes"] == 1024 * 1024
    assert set(body) == {"job", "app", "environment", "backend", "version", "maxPayloadBytes"}
