"""HTTP hygiene of every answer: security headers on all of them, our own request id unless the
caller's is a plain one, HEAD wherever GET is, and a request that is not valid HTTP refused with
400 and one WARNING line (never an ERROR with a traceback)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from scheduler.api.console import CONTENT_SECURITY_POLICY as CONSOLE_POLICY
from tests.conftest import ClientFactory, post_job
from tests.factories import Client

OUR_REQUEST_ID = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
async def client(scheduler_factory: ClientFactory) -> Client:
    return await scheduler_factory("etl")


# -- security headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs",
        "/api/v1/jobs/etl-unknown",  # a 404 Status
        "/api/v1/jobs/etl-unknown/logs",
        "/api/v1/nowhere",  # no route
        "/swagger.json",
        "/healthz",
        "/swaggerui/",
        "/swaggerui/swagger-ui.css",
    ],
)
async def test_every_answer_says_nosniff_and_may_not_be_framed(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy


async def test_swagger_ui_may_run_only_its_own_scripts(client: Client) -> None:
    policy = (await client.get("/swaggerui/")).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"].startswith("'self' 'sha256-")
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["connect-src"] == "'self'"  # "Try it out" calls this scheduler only


async def test_the_console_keeps_its_own_stricter_policy(client: Client) -> None:
    for path in ("/console/", "/console/app.js"):
        response = await client.get(path)
        assert response.headers["Content-Security-Policy"] == CONSOLE_POLICY


# -- request ids -------------------------------------------------------------------------------


async def test_a_plain_request_id_of_the_caller_is_kept(client: Client) -> None:
    for sent in ("abc-123", "trace.id_42", "A" * 64):
        response = await client.get("/api/v1/jobs", headers={"X-Request-Id": sent})
        assert response.headers["X-Request-Id"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        "A" * 65,
        "x" * 8000,
        "two words",
        'forged", "level": "ERROR',
        "caf\u00e9".encode().decode("latin-1"),
        "",
    ],
)
async def test_any_other_request_id_is_replaced_by_our_own(
    client: Client, sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduler.http")
    response = await client.get("/api/v1/jobs", headers={"X-Request-Id": sent})
    answered = response.headers["X-Request-Id"]
    assert OUR_REQUEST_ID.fullmatch(answered), answered
    logged = [r for r in caplog.records if r.getMessage() == "GET /api/v1/jobs 200"]
    assert [getattr(r, "request_id", None) for r in logged] == [answered]


# -- HEAD --------------------------------------------------------------------------------------


async def test_head_answers_like_get_without_a_body(start: ClientFactory) -> None:
    client = await start("etl")
    job = (await post_job(client, {"command": ["sh", "-c", "sleep 1000"]}))["name"]
    for path in ("/api/v1/jobs", f"/api/v1/jobs/{job}", "/swaggerui/", "/console/", "/healthz"):
        got, head = await client.get(path), await client.head(path)
        assert (head.status, got.status) == (200, 200), path
        assert head.headers["Content-Type"] == got.headers["Content-Type"], path
        assert head.headers["Content-Security-Policy"] == got.headers["Content-Security-Policy"]
        assert await head.read() == b"", path
    assert (await client.head("/api/v1/jobs/etl-unknown")).status == 404
    assert (await client.post(f"/api/v1/jobs/{job}/stop")).status == 200


# -- requests that are not HTTP ----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [b"X-Note: a\x00b", b"X-Note: a\x01b", b"Bad Name: x"],
    ids=["nul-in-value", "control-byte-in-value", "space-in-name"],
)
async def test_a_header_with_bytes_http_forbids_is_400_and_one_warning(
    client: Client, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(b"GET /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:100]
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [(r.levelname, r.exc_info) for r in server] == [("WARNING", None)]
    message = server[0].getMessage()
    assert message.startswith("refused a request that is not valid HTTP (400): Invalid header")
    assert "X-Note" not in message and "Bad Name" not in message  # nothing the client sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
