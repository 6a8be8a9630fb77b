"""Operating the service: health and readiness, metrics, JSON logs without payloads, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from scheduler.logs import JsonFormatter
from tests.conftest import (
    NAMESPACE,
    TEST_CONFIG,
    ClientFactory,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client, free_port
from tests.fakekube import FakeKube


async def test_healthz_answers_while_readyz_follows_the_api_server(
    scheduler: Client, kube: FakeKube
) -> None:
    assert (await scheduler.get("/healthz")).status == 200
    assert (await scheduler.get("/readyz")).status == 200
    kube.faults.down = True
    await kube.drop_watches()

    async def not_ready() -> bool:
        return (await scheduler.get("/readyz")).status == 503

    await wait_until(not_ready)
    body = await (await scheduler.get("/readyz")).json()
    assert "watch of" in body["reason"]
    assert (await scheduler.get("/healthz")).status == 200
    kube.faults.down = False

    async def ready() -> bool:
        return (await scheduler.get("/readyz")).status == 200

    await wait_until(ready, timeout=40)


async def test_readyz_is_503_until_the_view_has_synced(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    kube.faults.delay("GET", r"/pods$", seconds=1.0, times=1)
    # The factory waits for readiness; before that, /readyz said why it was not ready.
    client = await scheduler_factory()
    assert (await client.get("/readyz")).status == 200


async def test_metrics_count_requests_by_route_template_and_jobs_by_status(
    scheduler: Client,
) -> None:
    name = (await post_job(scheduler))["name"]
    await wait_for_status(scheduler, name, "Succeeded")
    await scheduler.get("/api/v1/jobs/compute-20240101000000-nopenope")
    text = await (await scheduler.get("/metrics")).text()
    assert (
        'job_scheduler_http_requests_total{code="200",method="POST",route="/api/v1/jobs"} 1.0'
        in text
    )
    assert 'route="/api/v1/jobs/{jobName}"' in text
    assert name not in text, "metrics must use route templates, not raw paths"
    assert "job_scheduler_http_request_duration_seconds_bucket" in text
    assert 'job_scheduler_jobs{status="Succeeded"} 1.0' in text
    assert "job_scheduler_watch_restarts_total" in text or "job_scheduler_watch_restarts" in text
    assert "job_scheduler_api_server_errors" in text
    assert "job_scheduler_pruned_jobs_total 0.0" in text


async def test_watch_restarts_and_relists_are_counted(scheduler: Client, kube: FakeKube) -> None:
    async def watching() -> bool:
        return kube.open_watches >= 2  # jobs and pods: readiness comes before they open

    await wait_until(watching)
    kube.expire_history()
    await kube.drop_watches()
    name = (await post_job(scheduler))["name"]
    await wait_for_status(scheduler, name, "Succeeded")

    async def counted() -> bool:
        text = await (await scheduler.get("/metrics")).text()
        return "job_scheduler_watch_restarts_total{" in text

    await wait_until(counted)


def test_a_log_line_is_one_json_object_without_payload_fields() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "created job %s",
            "args": ("compute-1",),
            "levelname": "INFO",
            "job_name": "compute-1",
            "payload": "s3cr3t",
            "name": "scheduler",
        }
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "created job compute-1"
    assert entry["level"] == "INFO" and entry["job_name"] == "compute-1"
    assert "s3cr3t" not in line and "\n" not in line


async def test_no_log_line_ever_contains_the_payload(
    scheduler: Client, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "TOP-SECRET-PAYLOAD-4711"
    caplog.set_level(logging.DEBUG)
    name = (await post_job(scheduler, {"payload": secret}))["name"]
    await wait_for_status(scheduler, name, "Succeeded")
    await scheduler.delete(f"/api/v1/jobs/{name}")
    await scheduler.post("/api/v1/jobs", data=b'{"payload": "TOP-SECRET-PAYLOAD-4711", "x": ')
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any(name in line for line in lines)
    assert not any(secret in line for line in lines)
    requests = [json.loads(line) for line in lines if '"route": "/api/v1/jobs' in line]
    done = [
        r for r in requests if r["status"] == 200 and r["message"].startswith(("POST", "DELETE"))
    ]
    assert len(done) == 2 and {r["job_name"] for r in done} == {name}
    assert all(r.get("request_id") for r in requests)


# -- the real process --------------------------------------------------------------------------


class Process:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def process(kube: FakeKube, tmp_path: Path) -> AsyncIterator[Process]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    port = free_port()
    env = {
        **os.environ,
        "RADIX_CONFIG_FILE": str(TEST_CONFIG),
        "RADIX_COMPONENT": "compute",
        "RADIX_ENVIRONMENT": "dev",
        "SCHEDULER_NAMESPACE": NAMESPACE,
        "SCHEDULER_PORT": str(port),
        "SCHEDULER_HOST": "127.0.0.1",
        "KUBECONFIG": str(kubeconfig),
        "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS": "10",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scheduler",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Process(proc, port)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def test_sigterm_finishes_in_flight_requests_and_exits_0(
    process: Process, kube: FakeKube
) -> None:
    async def ready() -> bool:
        return await _status(f"{process.url}/readyz") == 200

    await wait_until(ready, timeout=20)
    held = kube.faults.hold("POST", r"/jobs$")
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.post(f"{process.url}/api/v1/jobs", json={}))
        # The request is in flight when the signal comes: the scheduler waits on the API server.
        await held.wait_arrived(timeout=30)
        process.proc.send_signal(signal.SIGTERM)
        held.release()
        response = await in_flight
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "Waiting"
    assert await asyncio.wait_for(process.proc.wait(), timeout=15) == 0
    assert kube.get("Job", NAMESPACE, body["name"]) is not None
    assert process.proc.stderr is not None
    logs = (await process.proc.stderr.read()).decode()
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert lines and all("level" in line and "time" in line for line in lines)
    assert lines[-1]["message"] == "stopped"


@pytest.fixture
def api_down(kube: FakeKube) -> FakeKube:
    kube.faults.down = True
    return kube


async def test_started_with_the_api_server_down_it_stays_up_and_recovers(
    api_down: FakeKube, process: Process
) -> None:
    kube = api_down

    async def serving() -> bool:
        return await _status(f"{process.url}/healthz") == 200

    await wait_until(serving, timeout=20)
    assert await _status(f"{process.url}/readyz") == 503
    assert await _status(f"{process.url}/api/v1/jobs") == 503
    kube.faults.down = False

    async def ready() -> bool:
        return await _status(f"{process.url}/readyz") == 200

    await wait_until(ready, timeout=45)
    assert await _status(f"{process.url}/api/v1/jobs") == 200
