"""A 5 MiB payload on a cluster: it travels in Secrets of at most 512 KiB, an init container of
the scheduler's own image puts it together, and busybox reads it byte for byte at
`<payload.path>/payload`; deleting the job takes the parts along. On a real cluster the scheduler's
image must be one the cluster can pull: SCHEDULER_E2E_IMAGE (the fake runs the assembler from
this repository)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from scheduler.app import create_app
from scheduler.settings import load_settings
from tests.api.test_large_payloads import PART_BYTES, payload_of
from tests.e2e.conftest import (
    E2E_MARKS,
    READY_TIMEOUT_SECONDS,
    TEST_CONFIG,
    Client,
    Cluster,
    wait_until,
)

IMAGE_ENV = "SCHEDULER_E2E_IMAGE"
FAKE_IMAGE = "job-scheduler:e2e"
SIZE = 5 * 1024 * 1024
JOB_SECONDS = 180.0
GC_SECONDS = 60.0

pytestmark = E2E_MARKS


def image_of(cluster: Cluster) -> str:
    if cluster.is_fake:
        return FAKE_IMAGE
    image = os.environ.get(IMAGE_ENV)
    if not image:
        pytest.skip(
            f"a payload above 1 MiB is put together by the scheduler's image: set {IMAGE_ENV} "
            "to a job-scheduler image the cluster can pull"
        )
    return image


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def large(
    cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    """A scheduler of job `compute` that takes payloads up to 8 MiB."""
    workdir: Path = tmp_path_factory.mktemp("payloads")
    environ = {
        "RADIX_CONFIG_FILE": str(TEST_CONFIG),
        "RADIX_COMPONENT": "compute",
        "RADIX_ENVIRONMENT": "dev",
        "SCHEDULER_NAMESPACE": namespace,
        "KUBECONFIG": str(cluster.kubeconfig),
        "SCHEDULER_MAX_PAYLOAD_BYTES": str(8 * 1024 * 1024),
        "SCHEDULER_IMAGE": image_of(cluster),
    }
    settings = load_settings([], environ, namespace_file=workdir / "no-namespace")
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await wait_until(ready, READY_TIMEOUT_SECONDS, "scheduler ready")
        yield client
    finally:
        await client.close()


async def test_a_5_mib_payload_is_read_byte_for_byte_and_goes_with_its_job(
    large: Client, cluster: Cluster, namespace: str
) -> None:
    payload = payload_of(SIZE, seed=5)
    script = "sha256sum /compute/args/payload; wc -c < /compute/args/payload"
    body = {"payload": payload, "command": ["sh", "-c", script]}
    response = await large.post("/api/v1/jobs", data=json.dumps(body))
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]

    async def ended() -> bool:
        status = await (await large.get(f"/api/v1/jobs/{name}")).json()
        assert status["status"] != "Failed", status
        return bool(status["status"] == "Succeeded")

    await wait_until(ended, JOB_SECONDS, f"job {name} succeeding")
    log = await (await large.get(f"/api/v1/jobs/{name}/logs")).text()
    checksum, size, *_ = log.splitlines()
    encoded = payload.encode()
    assert (checksum.split()[0], int(size.split()[0])) == (
        hashlib.sha256(encoded).hexdigest(),
        SIZE,
    )

    selector = f"radix-job-name={name}"
    secrets = (await cluster.core.list_namespaced_secret(namespace, label_selector=selector)).items
    parts = sorted(secrets, key=lambda s: int(s.metadata.name.rsplit("-", 1)[1]))
    contents = [base64.b64decode(s.data["payload"]) for s in parts]
    assert len(contents) == 10 and all(len(c) <= PART_BYTES for c in contents)
    assert b"".join(contents) == encoded

    assert (await large.delete(f"/api/v1/jobs/{name}")).status == 200

    async def parts_gone() -> bool:
        listed = await cluster.core.list_namespaced_secret(namespace, label_selector=selector)
        return not listed.items

    await wait_until(parts_gone, GC_SECONDS, f"the payload parts of job {name} going with it")
