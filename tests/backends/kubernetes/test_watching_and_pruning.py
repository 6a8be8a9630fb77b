"""The watch keeps the view true through dropped streams and 410 Gone; pruning keeps N + N."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.conftest import NAMESPACE, ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube


async def names(client: Client) -> set[str]:
    return {job["name"] for job in await (await client.get("/api/v1/jobs")).json()}


async def test_a_dropped_watch_reconnects_and_misses_nothing(
    scheduler: Client, scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    other = await scheduler_factory()
    await kube.drop_watches()
    name = (await post_job(other))["name"]
    done = await wait_for_status(scheduler, name, "Succeeded")
    assert done["ended"] is not None


async def test_after_410_gone_the_scheduler_relists_and_sees_changes_made_meanwhile(
    scheduler: Client, scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    writer = await scheduler_factory()
    kept = (await post_job(writer))["name"]
    removed = (await post_job(writer))["name"]
    await wait_until(lambda: _listed(scheduler, {kept, removed}))
    kube.expire_history()
    await kube.drop_watches()
    assert (await writer.delete(f"/api/v1/jobs/{removed}")).status == 200
    added = (await post_job(writer))["name"]
    await wait_until(lambda: _exactly(scheduler, {kept, added}))


async def _listed(client: Client, wanted: set[str]) -> bool:
    return wanted <= await names(client)


async def _exactly(client: Client, wanted: set[str]) -> bool:
    return await names(client) == wanted


async def test_history_keeps_the_latest_n_succeeded_and_n_failed_jobs(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="2")
    ok = {"command": ["sh", "-c", "sleep 1; exit 0"], "payload": "p"}
    bad = {"command": ["sh", "-c", "sleep 1; exit 1"]}
    # Kubernetes times have second precision: the oldest pair finishes a second before the rest.
    oldest_ok = (await post_job(client, ok))["name"]
    oldest_bad = (await post_job(client, bad))["name"]
    ended: str = max(
        (await wait_for_status(client, oldest_ok, "Succeeded"))["ended"],
        (await wait_for_status(client, oldest_bad, "Failed"))["ended"],
    )

    async def a_second_later() -> bool:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > ended

    await wait_until(a_second_later)
    for body in (ok, bad, ok, bad, ok):
        await post_job(client, body)
    long_running = (await post_job(client, {"command": ["sh", "-c", "sleep 1000; exit 0"]}))["name"]

    async def pruned() -> bool:
        jobs = await (await client.get("/api/v1/jobs")).json()
        by_status: dict[str, list[str]] = {}
        for job in jobs:
            by_status.setdefault(job["status"], []).append(job["name"])
        finished = len(by_status.get("Succeeded", [])), len(by_status.get("Failed", []))
        # Settled: every job but the long-running one has finished, and pruning has caught up.
        return len(jobs) == 5 and finished == (2, 2)

    await wait_until(pruned, timeout=20)
    remaining = await names(client)
    assert long_running in remaining, "a running job is never pruned"
    assert oldest_ok not in remaining and oldest_bad not in remaining, "the oldest go first"

    async def cluster_matches() -> bool:
        jobs = {j["metadata"]["name"] for j in kube.list("Job", NAMESPACE)}
        secrets = {s["metadata"]["name"] for s in kube.list("Secret", NAMESPACE)}
        return jobs == remaining and secrets <= {f"{n}-payload" for n in remaining}

    await wait_until(cluster_matches)
    metrics = await (await client.get("/metrics")).text()
    assert "job_scheduler_pruned_jobs_total 3.0" in metrics


async def test_two_replicas_pruning_at_once_still_leave_exactly_n_plus_n(
    scheduler_factory: ClientFactory,
) -> None:
    one = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    two = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    for index in range(6):
        code = index % 2
        await post_job(
            one if index < 3 else two, {"command": ["sh", "-c", f"sleep 1; exit {code}"]}
        )
        await asyncio.sleep(0.1)

    async def settled(client: Client) -> bool:
        statuses = [j["status"] for j in await (await client.get("/api/v1/jobs")).json()]
        return sorted(statuses) == ["Failed", "Succeeded"]

    await wait_until(lambda: settled(one), timeout=20)
    await wait_until(lambda: settled(two), timeout=20)
    assert await names(one) == await names(two)
