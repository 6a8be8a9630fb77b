"""Readiness follows the watches: 503 with a reason while the API server is down, and 200 again
as soon as the watches are re-established, even when nothing happens in the namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import TIME_SCALE, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube

WATCHED = ("jobs", "pods")
# Well under the watch back-off's maximum (30 s), and nothing to do with watch timeouts.
RECOVERY_SECONDS = 10.0
RETRIES = 2


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    # No bookmarks (a real API server sends one about once a minute): after a reconnect a quiet
    # namespace sends the scheduler nothing at all, so only the opened stream can tell it.
    async with FakeKube(time_scale=TIME_SCALE, pending_seconds=0.02, bookmark_seconds=3600) as fake:
        yield fake


def _refused_watches(kube: FakeKube, resource: str) -> int:
    return sum(
        1
        for entry in kube.audit
        if entry.verb == "watch" and entry.resource == resource and entry.status_code == 503
    )


async def _readiness(client: Client) -> int:
    return (await client.get("/readyz")).status


async def test_readyz_is_503_with_the_reason_while_the_api_server_is_down(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.faults.down = True

    async def retried_in_vain() -> bool:
        return all(_refused_watches(kube, r) >= RETRIES for r in WATCHED)

    await wait_until(retried_in_vain, timeout=30)
    response = await scheduler.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["ready"] is False
    for resource in WATCHED:
        assert f"watch of {resource}: the Kubernetes API answered 503" in body["reason"]
    assert (await scheduler.get("/healthz")).status == 200


async def test_readyz_is_200_once_the_watches_reconnect_in_a_quiet_namespace(
    scheduler: Client, kube: FakeKube
) -> None:
    version = kube.store.resource_version
    kube.faults.down = True

    async def not_ready() -> bool:
        return await _readiness(scheduler) == 503

    await wait_until(not_ready)
    kube.faults.down = False

    async def ready() -> bool:
        return await _readiness(scheduler) == 200

    await wait_until(ready, timeout=RECOVERY_SECONDS)
    assert kube.store.resource_version == version, "nothing may have happened in the namespace"
