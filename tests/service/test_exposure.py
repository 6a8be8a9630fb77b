"""What a real `python -m scheduler` on the local backend exposes, and to whom: by default this
machine only; beyond loopback only with an API token (or it refuses to start); never to a web page
that calls it by a name of its own; while Radix clients calling the Service name and kubelet
probing by address keep working."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.backends.local import test_process as processes
from tests.backends.local.test_process import EXIT_CONFIG_ERROR, Launch, Scheduler, local, ready
from tests.conftest import wait_until

pytestmark = processes.pytestmark
launch = processes.launch  # the fixture: `python -m scheduler` for job compute, killed at the end

TOKEN = "t0ken-of-the-exposure-tests-0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
JOB = {"command": ["sh", "-c", "exit 0"]}


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None if it has none."""
    found: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listing = subprocess.run(
            ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=5
        ).stdout
        found += [line.split()[3].split("/")[0] for line in listing.splitlines()]
    # The address a packet to a documentation network would leave from (none is sent).
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.255", 9))
        found.append(probe.getsockname()[0])
    for address in found:
        with contextlib.suppress(ValueError):
            if not ipaddress.IPv4Address(address).is_loopback and address != "0.0.0.0":
                return address
    return None


@pytest.fixture
def outside() -> str:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    return address


def port_of(scheduler: Scheduler) -> int:
    return int(scheduler.url.rsplit(":", 1)[1])


async def call(
    address: str, port: int, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"http://{address}:{port}{path}",
            data=None if body is None else json.dumps(body),
            headers=headers,
        ) as response,
    ):
        text = await response.text()
        with contextlib.suppress(ValueError):
            return response.status, json.loads(text), dict(response.headers)
        return response.status, text, dict(response.headers)


def connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


async def test_by_default_the_scheduler_listens_on_loopback_only(
    launch: Launch, tmp_path: Path, outside: str
) -> None:
    # The address is reachable from here: something listening on it is connected to.
    with socket.create_server((outside, 0)) as control:
        assert connects(outside, control.getsockname()[1])

    scheduler = await ready(await launch(*local(tmp_path / "state"), SCHEDULER_HOST=""))
    port = port_of(scheduler)

    assert not connects(outside, port), f"the scheduler answers on {outside}"
    assert (await call("127.0.0.1", port, "GET", "/api/v1/jobs"))[0] == 200
    assert scheduler.log_messages()[0] == (
        "backend: local (chosen by SCHEDULER_BACKEND/--backend), "
        f"listening on 127.0.0.1:{port} (this machine only)"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
async def test_a_local_backend_beyond_loopback_without_a_token_exits_2_with_one_line(
    launch: Launch, tmp_path: Path, host: str
) -> None:
    scheduler = await launch(*local(tmp_path / "state"), "--host", host)

    assert await scheduler.ended() == EXIT_CONFIG_ERROR
    [line] = scheduler.stderr
    assert line.startswith(f"job-scheduler: refusing to listen on {host}: ")
    assert "API token" in line


async def test_with_a_token_file_it_listens_beyond_loopback_and_answers_401_then_200(
    launch: Launch, tmp_path: Path, outside: str
) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    flags = ("--host", "0.0.0.0", "--api-token-file", str(token_file))
    scheduler = await ready(await launch(*local(tmp_path / "state"), *flags))
    port = port_of(scheduler)

    code, body, headers = await call(outside, port, "POST", "/api/v1/jobs", JOB)
    assert (code, body["reason"]) == (401, "Unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    code, created, _ = await call(outside, port, "POST", "/api/v1/jobs", JOB, **BEARER)
    assert code == 200, created
    code, jobs, _ = await call(outside, port, "GET", "/api/v1/jobs", **BEARER)
    assert (code, [job["name"] for job in jobs]) == (200, [created["name"]])
    assert (await call(outside, port, "GET", "/readyz"))[0] == 200
    assert scheduler.log_messages()[0].endswith(f"listening on 0.0.0.0:{port} (API token required)")


async def test_a_token_from_the_environment_works_and_never_reaches_a_job(
    launch: Launch, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    scheduler = await ready(
        await launch(*local(state), "--host", "0.0.0.0", SCHEDULER_API_TOKEN=TOKEN)
    )
    port = port_of(scheduler)
    assert (await call("127.0.0.1", port, "GET", "/api/v1/jobs"))[0] == 401

    code, created, _ = await call(
        "127.0.0.1", port, "POST", "/api/v1/jobs", {"command": ["env"]}, **BEARER
    )
    assert code == 200, created

    async def succeeded() -> bool:
        found = await call("127.0.0.1", port, "GET", f"/api/v1/jobs/{created['name']}", **BEARER)
        assert found[1]["status"] in ("Waiting", "Running", "Succeeded"), json.dumps(found[1])
        return bool(found[1]["status"] == "Succeeded")

    await wait_until(succeeded, processes.TIMEOUT_SECONDS)
    job_env = (state / "logs" / created["name"] / "0.log").read_text()
    assert f"RADIX_JOB_NAME={created['name']}" in job_env
    assert TOKEN not in job_env


async def test_a_page_calling_it_by_its_own_name_gets_403_on_get_and_post(
    launch: Launch, tmp_path: Path
) -> None:
    scheduler = await ready(await launch(*local(tmp_path / "state")))
    port = port_of(scheduler)
    # What a browser sends once evil.example resolves to 127.0.0.1 (DNS rebinding).
    page = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}

    code, body, _ = await call("127.0.0.1", port, "GET", "/api/v1/jobs", **page)
    assert (code, body["reason"]) == (403, "Forbidden")
    code, body, _ = await call(
        "127.0.0.1",
        port,
        "POST",
        "/api/v1/jobs",
        JOB,
        **page,
        **{"Content-Type": "application/json"},
    )
    assert (code, body["reason"]) == (403, "Forbidden")
    code, jobs, _ = await call("127.0.0.1", port, "GET", "/api/v1/jobs")
    assert (code, jobs) == (200, [])
    refusals = [m for m in scheduler.log_messages() if "refused requests for host" in m]
    assert refusals == [
        f"refused requests for host 'evil.example:{port}': not one of this scheduler's names "
        "(add it with --allowed-hosts if it is)"
    ]


async def test_a_radix_client_by_service_name_and_kubelet_probes_by_address_still_work(
    launch: Launch, tmp_path: Path, outside: str
) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN)
    flags = ("--host", "0.0.0.0", "--api-token-file", str(token_file))
    scheduler = await ready(await launch(*local(tmp_path / "state"), *flags))
    port = port_of(scheduler)

    service = {"Host": f"compute:{port}", **BEARER}
    code, created, _ = await call(outside, port, "POST", "/api/v1/jobs", JOB, **service)
    assert code == 200, created
    assert (await call(outside, port, "GET", "/api/v1/jobs", **service))[0] == 200
    for path in ("/healthz", "/readyz"):
        # kubelet: the pod's address in Host, no token.
        assert (await call(outside, port, "GET", path, Host=f"{outside}:{port}"))[0] == 200
