"""Fixtures of the end-to-end suite: a cluster (a real one named by SCHEDULER_E2E_KUBECONFIG, or
the fake when SCHEDULER_E2E_FAKE=1), a namespace of the suite's own, and the scheduler serving
in-process against it. All of them live for the module, on the module's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kubernetes.aio import client as k8s

from scheduler.app import create_app
from scheduler.backends.kubernetes.client import load_configuration
from scheduler.settings import load_settings
from tests.e2e.proxy import CuttingProxy, proxied_kubeconfig, target_of

KUBECONFIG_ENV = "SCHEDULER_E2E_KUBECONFIG"
FAKE_ENV = "SCHEDULER_E2E_FAKE"
# On the fake, `sleep N` lasts N * FAKE_TIME_SCALE seconds.
FAKE_TIME_SCALE = 0.1
HISTORY_LIMIT = 2
READY_TIMEOUT_SECONDS = 60.0
# Per test: a job may take 120 s on a real cluster (image pull, scheduling) plus GC of what it owns.
TEST_TIMEOUT_SECONDS = 420

# The radixconfig the in-process tests serve: job `compute`, busybox, payload path and a port.
TEST_CONFIG = Path(__file__).parent.parent / "radixconfig.yaml"

Client = TestClient[web.Request, web.Application]


def skip_reason(environ: dict[str, str] | None = None) -> str | None:
    """Why the suite cannot run here, or None when it can."""
    env = dict(os.environ) if environ is None else environ
    kubeconfig = env.get(KUBECONFIG_ENV)
    if kubeconfig:
        if not Path(kubeconfig).is_file():
            return f"{KUBECONFIG_ENV}={kubeconfig} is not a file"
        return None
    if env.get(FAKE_ENV) == "1":
        return None
    return (
        f"end-to-end suite: set {KUBECONFIG_ENV} to a kubeconfig of a cluster "
        f"(or {FAKE_ENV}=1 to run it against the in-process fake API server)"
    )


# Every scenario module's marks: skipped without a cluster, on the module's event loop.
E2E_MARKS = [
    pytest.mark.e2e,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(TEST_TIMEOUT_SECONDS),
]


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    is_fake: bool
    api: k8s.ApiClient

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    @property
    def batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.api)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    async with AsyncExitStack() as stack:
        real = os.environ.get(KUBECONFIG_ENV)
        if real:
            kubeconfig = Path(real)
        else:
            # Imported here so a real-cluster run does not depend on the fake.
            from tests.fakekube import FakeKube

            fake = await stack.enter_async_context(FakeKube(time_scale=FAKE_TIME_SCALE))
            kubeconfig = fake.write_kubeconfig(tmp_path_factory.mktemp("e2e") / "kubeconfig")
        api = k8s.ApiClient(await load_configuration(kubeconfig))
        stack.push_async_callback(api.close)
        yield Cluster(kubeconfig=kubeconfig, is_fake=not real, api=api)


def _suffix(length: int = 6) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def namespace(cluster: Cluster) -> AsyncIterator[str]:
    name = f"e2e-{_suffix()}"
    body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"purpose": "e2e"}))
    try:
        await cluster.core.create_namespace(body)
    except k8s.ApiException:
        if not cluster.is_fake:
            raise
        # The fake accepts any namespace without creating it first.
    try:
        yield name
    finally:
        try:
            # Background: the namespace controller removes everything left in it.
            await cluster.core.delete_namespace(name, propagation_policy="Background")
        except k8s.ApiException:
            if not cluster.is_fake:
                raise


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def scheduler(
    cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    async with serving(
        cluster.kubeconfig, namespace, tmp_path_factory.mktemp("scheduler")
    ) as client:
        yield client


@contextlib.asynccontextmanager
async def serving(kubeconfig: Path, namespace: str, workdir: Path) -> AsyncIterator[Client]:
    """A scheduler serving job `compute` in-process, on the cluster the kubeconfig names."""
    environ = {
        "RADIX_CONFIG_FILE": str(TEST_CONFIG),
        "RADIX_COMPONENT": "compute",
        "RADIX_ENVIRONMENT": "dev",
        "SCHEDULER_NAMESPACE": namespace,
        "KUBECONFIG": str(kubeconfig),
        "RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT": str(HISTORY_LIMIT),
    }
    settings = load_settings([], environ, namespace_file=workdir / "no-namespace")
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        await wait_until(lambda: _is_ready(client), READY_TIMEOUT_SECONDS, "scheduler ready")
        yield client
    finally:
        await client.close()


async def _is_ready(client: Client) -> bool:
    return (await client.get("/readyz")).status == 200


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    within_seconds: float,
    what: str,
    interval: float = 0.1,
) -> None:
    """Await `predicate()` until it is true; fail naming `what` after `within_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not reached within {within_seconds:.0f}s")
        await asyncio.sleep(interval)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def proxy(cluster: Cluster) -> AsyncIterator[CuttingProxy]:
    """A proxy in front of the cluster's API server that a test can cut or take down."""
    cutting = CuttingProxy(*target_of(cluster.kubeconfig))
    await cutting.start()
    try:
        yield cutting
    finally:
        await cutting.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def proxied_scheduler(
    cluster: Cluster, namespace: str, proxy: CuttingProxy, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    """A second scheduler for the same namespace that reaches the API server through `proxy`."""
    workdir = tmp_path_factory.mktemp("proxied")
    kubeconfig = proxied_kubeconfig(cluster.kubeconfig, proxy, workdir / "kubeconfig")
    async with serving(kubeconfig, namespace, workdir) as client:
        yield client
