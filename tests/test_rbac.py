"""The chart's Role grants exactly what the scheduler calls: nothing missing, nothing extra."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import ClientFactory, post_job, wait_for_status, wait_until
from tests.fakekube import FakeKube
from tests.test_helm_chart import helm, only, render

__all__ = ["helm"]  # the fixture, re-exported for pytest


async def test_the_role_grants_exactly_the_calls_the_scheduler_makes(
    helm: Path, scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    kube.clear_audit()
    client = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    # Every kind of work: create with payload and ports, read, delete, prune, stop, batches,
    # the recovery sweep, relist after 410.
    first = await post_job(client, {"payload": "p", "command": ["sh", "-c", "sleep 1; exit 0"]})
    await wait_for_status(client, first["name"], "Succeeded")
    await post_job(client, {"command": ["sh", "-c", "sleep 1; exit 0"]})
    kept: list[str] = []

    async def pruned() -> bool:
        jobs = await (await client.get("/api/v1/jobs")).json()
        kept[:] = [job["name"] for job in jobs if job["status"] == "Succeeded"]
        return len(jobs) == 1 and len(kept) == 1

    await wait_until(pruned)
    second = kept[0]
    await client.get(f"/api/v1/jobs/{second}")
    assert (await client.delete(f"/api/v1/jobs/{second}")).status == 200
    # Stop a single job, then a batch (created with payloads and ports), and delete the batch.
    stopped = await post_job(client, {"command": ["sh", "-c", "sleep 1000; exit 0"]})
    await wait_for_status(client, stopped["name"], "Running")
    assert (await client.post(f"/api/v1/jobs/{stopped['name']}/stop")).status == 200
    await wait_for_status(client, stopped["name"], "Stopped")
    response = await client.post(
        "/api/v1/batches",
        json={
            "jobScheduleDescriptions": [{"payload": "p"}, {"payload": "q"}],
            "defaultRadixJobComponentConfig": {"command": ["sh", "-c", "sleep 1000; exit 0"]},
        },
    )
    assert response.status == 200, await response.text()
    created = await response.json()
    batch = created["name"]
    await wait_for_status(client, created["jobStatuses"][0]["name"], "Running")
    assert (await client.post(f"/api/v1/batches/{batch}/stop")).status == 200
    assert (await client.delete(f"/api/v1/batches/{batch}")).status == 200

    # The recovery sweep lists the batches (ConfigMaps) and the pending Jobs.
    async def swept() -> bool:
        return any(e.resource == "configmaps" and e.verb == "list" for e in kube.audit)

    await wait_until(swept)
    kube.expire_history()
    await kube.drop_watches()
    await asyncio.sleep(0.5)

    called = {(e.api_group, e.resource, e.verb) for e in kube.audit if e.subresource is None}
    granted = {
        (group, resource, verb)
        for rule in only(render(helm), "Role")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert called == granted
