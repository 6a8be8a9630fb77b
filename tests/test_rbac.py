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
    # Every kind of work: create with payload and ports, read, delete, prune, relist after 410.
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
