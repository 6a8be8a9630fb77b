"""Fixtures: a fake Kubernetes API server on loopback, schedulers talking to it through the real
`kubernetes.aio` client, schedulers on the local backend, and `backend`, `start` and `client`,
which run a test of the shared API suite once on each backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from scheduler.app import create_app, identity_of, kubernetes_backend
from scheduler.backends.local.backend import LocalBackend
from scheduler.settings import Settings, load_settings
from tests.factories import JSON, Client
from tests.fakekube import FakeKube

TEST_CONFIG = Path(__file__).parent / "radixconfig.yaml"
# On the local backend, jobs find a `sleep` here that runs on the fake's compressed clock.
LOCAL_SHIMS = Path(__file__).parent / "local_shims"
NAMESPACE = "myapp-dev"
# The fake runs `sleep N` for N * TIME_SCALE seconds.
TIME_SCALE = 0.05
# The fake cluster runs every job at once; the local backend's default would be this machine's
# CPU count, which a test running three jobs at once must not depend on.
LOCAL_MAX_PARALLEL = "8"

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with FakeKube(time_scale=TIME_SCALE, pending_seconds=0.02) as fake:
        yield fake


@pytest.fixture
async def slow_kube() -> AsyncIterator[FakeKube]:
    """A fake whose simulated time runs 20 times slower than real: a pod's retry back-off
    (10 s) lasts 200 s."""
    async with FakeKube(time_scale=20, pending_seconds=0.02) as fake:
        yield fake


def make_settings(tmp_path: Path, job: str = "compute", **env: str) -> Settings:
    """Settings of a scheduler on the fake Kubernetes API server, unless `env` names another
    backend (with no kubeconfig or pod around, the default would be the local one)."""
    environ = {
        "RADIX_CONFIG_FILE": str(TEST_CONFIG),
        "RADIX_COMPONENT": job,
        "RADIX_ENVIRONMENT": "dev",
        "SCHEDULER_NAMESPACE": NAMESPACE,
        "SCHEDULER_BACKEND": "kubernetes",
        **env,
    }
    return load_settings([], environ, namespace_file=tmp_path / "no-namespace")


def make_app(kube: FakeKube, settings: Settings, prune_interval: float = 0.02) -> web.Application:
    backend = kubernetes_backend(settings, kube.configuration())
    return create_app(settings, backend, prune_interval_seconds=prune_interval)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def counting_turns() -> AsyncIterator[Callable[[], int]]:
    """How many turns of the event loop other work got while the block ran: a block that never
    yields gives it none."""
    turns = 0

    async def taking_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    other = asyncio.create_task(taking_turns())
    await asyncio.sleep(0)
    turns = 0
    try:
        yield lambda: turns
    finally:
        other.cancel()


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


def make_local_app(
    settings: Settings, state_dir: Path, prune_interval: float = 0.02, **options: Any
) -> web.Application:
    """A scheduler on the local backend: jobs as processes, state in `state_dir`."""
    backend = LocalBackend(
        identity_of(settings),
        state_dir,
        max_parallel=settings.max_parallel,
        log_limit_bytes=settings.log_limit_bytes,
        **{
            "kill_grace_seconds": 2.0,
            "retry_backoff_seconds": 0.05,
            "base_env": {**os.environ, "PATH": f"{LOCAL_SHIMS}:{os.environ.get('PATH', '')}"},
            # Jobs write into the test's private tmp_path: as root they would run as their
            # runAsUser (1000 in the test radixconfig), who may not.
            "switch_user": False,
            **options,
        },
    )
    return create_app(settings, backend, prune_interval_seconds=prune_interval)


@pytest.fixture
def local_scheduler_factory(aiohttp_client: AiohttpClient, tmp_path: Path) -> ClientFactory:
    """Schedulers on the local backend, sharing one state dir (a second one is a restart)."""

    async def start(
        job: str = "compute", options: dict[str, Any] | None = None, **env: str
    ) -> TestClient[web.Request, web.Application]:
        settings = make_settings(
            tmp_path,
            job,
            SCHEDULER_BACKEND="local",
            **{"SCHEDULER_MAX_PARALLEL": LOCAL_MAX_PARALLEL, **env},
        )
        app = make_local_app(settings, tmp_path / "state", **(options or {}))
        client = await aiohttp_client(app)

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await wait_until(ready)
        return client

    return start


@pytest.fixture(params=["kubernetes", "local"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a test of the shared API suite runs on."""
    if request.param == "local" and sys.platform != "linux":
        pytest.skip("the local backend's jobs are Linux processes, read from /proc")
    return str(request.param)


@pytest.fixture
def start(backend: str, request: pytest.FixtureRequest) -> ClientFactory:
    """Schedulers on the backend under test (the fake API server starts only when used)."""
    factory = "scheduler_factory" if backend == "kubernetes" else "local_scheduler_factory"
    started: ClientFactory = request.getfixturevalue(factory)
    return started


@pytest.fixture
async def client(start: ClientFactory) -> Client:
    """A scheduler of job `compute` on the backend under test."""
    return await start()


@pytest.fixture
async def scheduler(scheduler_factory: ClientFactory) -> TestClient[web.Request, web.Application]:
    """A scheduler of job `compute` on the fake Kubernetes API server."""
    return await scheduler_factory()


async def ok_json(response: Any) -> JSON:
    """The body of a 200 answer; any other answer fails the test with its body."""
    assert response.status == 200, await response.text()
    result: JSON = await response.json()
    return result


async def post_job(client: Client, body: Any = None) -> JSON:
    data = b"" if body is None else json.dumps(body)
    return await ok_json(await client.post("/api/v1/jobs", data=data))


async def job_status(client: Client, name: str) -> JSON:
    return await ok_json(await client.get(f"/api/v1/jobs/{name}"))


async def wait_for_status(client: Client, name: str, status: str, timeout: float = 15.0) -> JSON:
    found: JSON = {}

    async def reached() -> bool:
        nonlocal found
        response = await client.get(f"/api/v1/jobs/{name}")
        if response.status == 404:
            return False  # not yet seen by this replica's watch
        assert response.status == 200, await response.text()
        found = await response.json()
        return bool(found["status"] == status)

    await wait_until(reached, timeout)
    return found


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the tests of a module that shares a costly module-scoped fixture (a
    browser, generated clients, an end-to-end cluster) run on one worker, which makes it once.
    Those, and the tests that ask for more time than the default, start first: none of them is
    then left running alone at the end."""
    default_timeout = float(config.getini("timeout"))
    weights: dict[str, float] = {}
    for item in items:
        if _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
            weights[item.nodeid] = math.inf
        elif (timeout := item.get_closest_marker("timeout")) is not None:
            weights[item.nodeid] = float(timeout.args[0])
    # Stable: the rest keep their order.
    items.sort(key=lambda item: -weights.get(item.nodeid, default_timeout))


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    definitions = getattr(item, "_fixtureinfo", None)
    return definitions is not None and any(
        fixturedef.scope == "module"
        for fixturedefs in definitions.name2fixturedefs.values()
        for fixturedef in fixturedefs
    )
