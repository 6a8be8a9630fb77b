"""The chart's Role grants exactly what the scheduler calls: nothing missing, nothing extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import ClientFactory, post_job, wait_for_status, wait_until
from tests.deploy.test_helm_chart import helm, only, render
from tests.fakekube import FakeKube

__all__ = ["helm"]  # the fixture, re-exported for pytest


async def _succeeded_twice(client: Any, name: str) -> bool:
    response = await client.get(f"/api/v1/jobs/{name}")
    status = await response.json() if response.status == 200 else {}
    return status.get("status") == "Succeeded" and len(status.get("podStatuses") or ()) == 2


async def test_the_role_grants_exactly_the_calls_the_scheduler_makes(
    helm: Path, scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    kube.clear_audit()
    client = await scheduler_factory(
        RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1",
        SCHEDULER_USAGE_INTERVAL_SECONDS="0.05",
    )
    # Every kind of work: create with payload and ports, read, delete, prune, stop, batches,
    # the recovery sweep, relist after 410.
    first = await post_job(client, {"payload": "p", "command": ["sh", "-c", "sleep 1; exit 0"]})
    await wait_for_status(client, first["name"], "Succeeded")
    # Its log (pods/log).
    assert (await client.get(f"/api/v1/jobs/{first['name']}/logs")).status == 200
    # Its result, and a restart: get the Job, delete it (orphaning what it owns), create its
    # replacement, hand its anchor (a ConfigMap) to the new Job, delete the old pods.
    assert (await client.get(f"/api/v1/jobs/{first['name']}/result")).status == 404
    restarted = await client.post(f"/api/v1/jobs/{first['name']}/restart")
    assert restarted.status == 200, await restarted.text()
    await wait_until(lambda: _succeeded_twice(client, first["name"]))
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

    # While it runs, what it uses is sampled from the metrics API (metrics.k8s.io pods, list).
    async def sampled() -> bool:
        return any(e.api_group == "metrics.k8s.io" for e in kube.audit)

    await wait_until(sampled)
    assert (await client.get(f"/api/v1/jobs/{stopped['name']}/usage")).status == 200
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
    # A repeat with an Idempotency-Key reads the claim (a ConfigMap) the first request made.
    for _ in range(2):
        response = await client.post(
            "/api/v1/jobs",
            json={"command": ["sh", "-c", "exit 0"]},
            headers={"Idempotency-Key": "rbac"},
        )
        assert response.status == 200, await response.text()

    # The recovery sweep lists the batches (ConfigMaps) and the pending Jobs.
    async def swept() -> bool:
        return any(e.resource == "configmaps" and e.verb == "list" for e in kube.audit)

    await wait_until(swept)

    async def watching() -> bool:
        return kube.open_watches >= 2  # jobs and pods

    # A relist after 410 Gone: the watches are dropped, reopened, refused, listed and reopened.
    await wait_until(watching)
    kube.expire_history()
    await kube.drop_watches()
    await wait_until(watching)

    # A subresource is granted as `<resource>/<subresource>`.
    called = {
        (e.api_group, f"{e.resource}/{e.subresource}" if e.subresource else e.resource, e.verb)
        for e in kube.audit
        if e.subresource in (None, "log")
    }
    granted = {
        (group, resource, verb)
        for rule in only(render(helm), "Role")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert called == granted


def test_the_role_can_neither_read_nor_change_a_secret_or_a_service(helm: Path) -> None:
    # Every other verb answers with the object (a PATCH or DELETE too): the token would read any
    # Secret it can name, or re-point any Service.
    verbs = {
        resource: set(rule["verbs"])
        for rule in only(render(helm), "Role")["rules"]
        for resource in rule["resources"]
        if "" in rule["apiGroups"]
    }
    assert (verbs["secrets"], verbs["services"]) == ({"create"}, {"create"})
