"""Fixtures: a fake Kubernetes API server on loopback, and schedulers talking to it through the
real `kubernetes.aio` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from scheduler.app import create_app, identity_of
from scheduler.backends.kubernetes.client import KubernetesBackend
from scheduler.settings import Settings, load_settings
from tests.fakekube import FakeKube

TEST_CONFIG = Path(__file__).parent / "radixconfig.yaml"
NAMESPACE = "myapp-dev"
# The fake runs `sleep N` for N * TIME_SCALE seconds.
TIME_SCALE = 0.05

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with FakeKube(time_scale=TIME_SCALE, pending_seconds=0.02) as fake:
        yield fake


def make_settings(tmp_path: Path, job: str = "compute", **env: str) -> Settings:
    environ = {
        "RADIX_CONFIG_FILE": str(TEST_CONFIG),
        "RADIX_COMPONENT": job,
        "RADIX_ENVIRONMENT": "dev",
        "SCHEDULER_NAMESPACE": NAMESPACE,
        **env,
    }
    return load_settings([], environ, namespace_file=tmp_path / "no-namespace")


def make_app(kube: FakeKube, settings: Settings, prune_interval: float = 0.02) -> web.Application:
    backend = KubernetesBackend(identity_of(settings), configuration=kube.configuration())
    return create_app(settings, backend, prune_interval_seconds=prune_interval)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture
def scheduler_factory(
    kube: FakeKube, aiohttp_client: AiohttpClient, tmp_path: Path
) -> ClientFactory:
    async def start(job: str = "compute", **env: str) -> TestClient[web.Request, web.Application]:
        client = await aiohttp_client(make_app(kube, make_settings(tmp_path, job, **env)))

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await wait_until(ready)
        return client

    return start


@pytest.fixture
async def scheduler(scheduler_factory: ClientFactory) -> TestClient[web.Request, web.Application]:
    return await scheduler_factory()


async def post_job(client: TestClient[Any, Any], body: Any = None) -> dict[str, Any]:
    response = await client.post("/api/v1/jobs", data=b"" if body is None else json.dumps(body))
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def job_status(client: TestClient[Any, Any], name: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{name}")
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def wait_for_status(
    client: TestClient[Any, Any], name: str, status: str, timeout: float = 15.0
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal found
        response = await client.get(f"/api/v1/jobs/{name}")
        if response.status == 404:
            return False  # not yet seen by this replica's watch
        assert response.status == 200, await response.text()
        found = await response.json()
        return found["status"] == status

    await wait_until(reached, timeout)
    return found
