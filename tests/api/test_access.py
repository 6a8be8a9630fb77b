"""Who may use the API, on both backends: only requests that name the scheduler in `Host` (its
address, loopback, its Service name, `--allowed-hosts`) are answered, whatever their method;
with an API token every request but the probes and the console's files needs it; without one,
Radix clients go on as before."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from scheduler.api.hosts import OwnHosts
from tests.conftest import ClientFactory
from tests.factories import Client

TOKEN = "0123456789abcdef0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# A job that ends at once on either backend.
QUICK_JOB = {"command": ["sh", "-c", "exit 0"]}


async def assert_status(response: Any, code: int, reason: str) -> dict[str, Any]:
    assert response.status == code, await response.text()
    body: dict[str, Any] = await response.json()
    assert (body["status"], body["code"], body["reason"]) == ("Failure", code, reason)
    return body


def host(client: Client, name: str) -> dict[str, str]:
    return {"Host": f"{name}:{client.port}"}


async def job_count(client: Client, **headers: str) -> int:
    response = await client.get("/api/v1/jobs", headers=headers)
    assert response.status == 200, await response.text()
    return len(await response.json())


# -- Host ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/stop"),
        ("DELETE", "/api/v1/batches/b"),
        ("GET", "/api/v1/events"),
        ("GET", "/console/"),
        ("GET", "/metrics"),
        ("GET", "/no/such/route"),
    ],
)
async def test_a_request_for_another_host_is_refused_whatever_its_method(
    start: ClientFactory, method: str, path: str
) -> None:
    client = await start()

    response = await client.request(method, path, data=b"{}", headers=host(client, "evil.example"))

    body = await assert_status(response, 403, "Forbidden")
    assert "'evil.example:" in body["message"] and "--allowed-hosts" in body["message"]
    assert await job_count(client) == 0


async def test_a_rebinding_page_cannot_create_a_job_though_its_origin_matches_its_host(
    start: ClientFactory,
) -> None:
    client = await start()
    page = f"evil.example:{client.port}"
    headers = {"Host": page, "Origin": f"http://{page}", "Content-Type": "application/json"}

    response = await client.post("/api/v1/jobs", data=json.dumps(QUICK_JOB), headers=headers)

    await assert_status(response, 403, "Forbidden")
    assert await job_count(client) == 0


@pytest.mark.parametrize(
    "name",
    [
        "127.0.0.1",
        "10.244.1.7",
        "[::1]",
        "[fd00::2]",
        "localhost",
        "LocalHost.",
        "console.localhost",
        "compute",
        "compute.myapp-dev",
        "compute.myapp-dev.svc",
        "compute.myapp-dev.svc.cluster.local",
    ],
)
async def test_the_schedulers_own_names_and_addresses_are_answered(
    start: ClientFactory, name: str
) -> None:
    client = await start()

    assert await job_count(client, **host(client, name)) == 0


async def test_a_radix_client_calling_the_service_name_without_a_port_is_answered(
    scheduler: Client,
) -> None:
    response = await scheduler.post(
        "/api/v1/jobs", data=json.dumps(QUICK_JOB), headers={"Host": "compute"}
    )

    assert response.status == 200, await response.text()


async def test_names_added_with_allowed_hosts_are_answered(start: ClientFactory) -> None:
    client = await start(SCHEDULER_ALLOWED_HOSTS="jobs.example.com,other")

    assert await job_count(client, **host(client, "Jobs.Example.Com")) == 0
    assert await job_count(client, Host="other") == 0
    response = await client.get("/api/v1/jobs", headers=host(client, "example.com"))
    await assert_status(response, 403, "Forbidden")


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_are_answered_whatever_the_host(scheduler: Client, path: str) -> None:
    response = await scheduler.get(path, headers={"Host": "kubelet.example:8000"})

    assert response.status == 200


async def test_a_refused_host_is_logged_once(
    scheduler: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.api.hosts")
    for name in ("evil.example", "evil.example", "other.example", "evil.example"):
        await scheduler.get("/api/v1/jobs", headers=host(scheduler, name))

    refusals = [r.getMessage() for r in caplog.records if r.name == "scheduler.api.hosts"]
    assert len(refusals) == 2, refusals
    assert f"'evil.example:{scheduler.port}'" in refusals[0]
    assert f"'other.example:{scheduler.port}'" in refusals[1]


async def test_a_request_without_host_from_http_1_0_is_answered(scheduler: Client) -> None:
    # Browsers always send a Host, so a request without one cannot come from a rebinding page.
    assert scheduler.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", scheduler.port)
    try:
        writer.write(b"GET /api/v1/jobs HTTP/1.0\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"200", answer
    assert rest.endswith(b"[]")


@pytest.mark.parametrize(
    ("value", "ours"),
    [
        ("compute:8000", True),
        ("[::1]:8000", True),
        ("1.2.3.4", True),
        ("compute:http", False),
        ("[::1]x", False),
        ("[::1", False),
        ("::1", False),
        ("compute.other-namespace", False),
        ("compute.myapp-dev.svc.cluster.local.evil.example", False),
        ("localhost.evil.example", False),
        ("1.2.3.4.evil.example", False),
        ("", False),
    ],
)
def test_own_hosts_read_a_host_header_strictly(value: str, ours: bool) -> None:
    assert (value in OwnHosts("compute", "myapp-dev")) is ours


# -- the API token -------------------------------------------------------------------------


async def test_with_a_token_a_call_without_it_is_401_with_a_bearer_challenge(
    start: ClientFactory,
) -> None:
    client = await start(SCHEDULER_API_TOKEN=TOKEN)

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get("/api/v1/jobs", headers=headers)
        body = await assert_status(response, 401, "Unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in body["message"]


async def test_with_a_token_a_call_with_it_is_answered(start: ClientFactory) -> None:
    client = await start(SCHEDULER_API_TOKEN=TOKEN)

    created = await client.post("/api/v1/jobs", data=json.dumps(QUICK_JOB), headers=BEARER)
    assert created.status == 200, await created.text()
    assert await job_count(client, Authorization=f"bearer  {TOKEN} ") == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/stop"),
        ("POST", "/api/v1/batches/stop"),
        ("DELETE", "/api/v1/jobs/some-job"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/info"),
        ("GET", "/api/v1/schedules"),
        ("GET", "/metrics"),
        ("GET", "/no/such/route"),
    ],
)
async def test_with_a_token_every_api_call_and_the_metrics_need_it(
    scheduler_factory: ClientFactory, method: str, path: str
) -> None:
    client = await scheduler_factory(SCHEDULER_API_TOKEN=TOKEN)

    response = await client.request(method, path, data=b"{}")

    await assert_status(response, 401, "Unauthorized")
    assert await job_count(client, **BEARER) == 0


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/console/", "/console/app.js", "/swaggerui/", "/swagger.json"]
)
async def test_with_a_token_the_probes_and_the_consoles_files_are_open(
    scheduler_factory: ClientFactory, path: str
) -> None:
    client = await scheduler_factory(SCHEDULER_API_TOKEN=TOKEN)

    assert (await client.get(path)).status == 200


async def test_with_a_token_a_foreign_host_is_still_refused(
    scheduler_factory: ClientFactory,
) -> None:
    client = await scheduler_factory(SCHEDULER_API_TOKEN=TOKEN)

    response = await client.get("/api/v1/jobs", headers={**BEARER, **host(client, "evil.example")})

    await assert_status(response, 403, "Forbidden")


async def test_without_a_token_the_kubernetes_backend_answers_radix_clients_as_before(
    scheduler: Client,
) -> None:
    # What a Radix client sends: no Authorization, the Service name in Host, a JSON body.
    headers = {"Host": f"compute:{scheduler.port}", "Content-Type": "application/json"}

    created = await scheduler.post("/api/v1/jobs", data=json.dumps(QUICK_JOB), headers=headers)

    assert created.status == 200, await created.text()
    name = (await created.json())["name"]
    assert (await scheduler.get(f"/api/v1/jobs/{name}", headers=headers)).status == 200
    assert (await scheduler.get("/metrics", headers=headers)).status == 200
    assert "WWW-Authenticate" not in created.headers
