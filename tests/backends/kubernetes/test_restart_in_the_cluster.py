"""What a restart leaves in the cluster (the new Job owns the old Secret and Service through the
job's anchor; no orphan or restart record remains), a restart held half way by the API server,
and a scheduler killed at each step of one. Kubernetes only: the local backend restarts a job in
one SQLite transaction, with nothing to hand over or to leave behind; what the API answers is
tested on both backends in tests/api/test_results_and_restart.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from scheduler.backends.kubernetes.manifests import anchor_name, payload_secret_name
from tests.api.test_results_and_restart import (
    PAYLOAD,
    TIMEOUT_SECONDS,
    expect_failure,
    expect_restarted,
    restart,
    shell,
    wait_for_attempts,
)
from tests.backends.kubernetes.kept import attempts_kept
from tests.backends.kubernetes.test_crash_safety import (
    SELECTOR,
    Census,
    Launch,
    SchedulerProcess,
    http,
    launch,
)
from tests.conftest import NAMESPACE, ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import JSON
from tests.fakekube import FakeKube

__all__ = ["http", "launch"]  # fixtures, re-exported for pytest

# -- what a restart leaves -------------------------------------------------------------------

RESTART_RECORD = "restart-"


def _owners(obj: JSON | None) -> list[str]:
    assert obj is not None
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or ()]


def leftovers(kube: FakeKube, name: str) -> list[str]:
    """What a user could trip over after the restart of job `name`: orphans and records."""
    job = kube.get("Job", NAMESPACE, name)
    if job is None:
        return [f"job {name} is gone"]
    uid = job["metadata"]["uid"]
    found = [f"{problem}" for problem in Census.of(kube).incomplete()]
    found += [
        f"pod {pod['metadata']['name']} is not the new Job's"
        for pod in kube.list("Pod", NAMESPACE, f"job-name={name}")
        if _owners(pod) != [uid]
    ]
    # The Secret and the Service are the anchor's, untouched; the anchor is the new Job's.
    anchor = kube.get("ConfigMap", NAMESPACE, anchor_name(name))
    if anchor is None or _owners(anchor) != [uid]:
        found.append(f"the anchor of job {name} is not owned by the new Job")
    else:
        for kind, owned in (("Secret", payload_secret_name(name)), ("Service", name)):
            if _owners(kube.get(kind, NAMESPACE, owned)) != [anchor["metadata"]["uid"]]:
                found.append(f"{kind} {owned} is not owned by the job's anchor")
    found += [
        f"restart record {record['metadata']['name']} remains"
        for record in kube.list("ConfigMap", NAMESPACE, SELECTOR)
        if record["metadata"]["name"].startswith(RESTART_RECORD)
    ]
    return found


async def test_a_restart_hands_the_secret_and_service_to_the_new_job_and_leaves_no_orphan(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    job = await post_job(client, {"payload": PAYLOAD, **shell("sleep 1; exit 0")})
    name = job["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    old = kube.get("Job", NAMESPACE, name)
    assert old is not None
    secret = kube.get("Secret", NAMESPACE, payload_secret_name(name))
    service = kube.get("Service", NAMESPACE, name)
    kube.clear_audit()

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    await wait_for_attempts(client, name, "Succeeded", 2)

    async def settled() -> bool:
        return not leftovers(kube, name)

    await wait_until(settled, TIMEOUT_SECONDS)
    new = kube.get("Job", NAMESPACE, name)
    assert new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["spec"]["template"]["spec"] == old["spec"]["template"]["spec"]
    kept = kube.get("Secret", NAMESPACE, payload_secret_name(name))
    assert kept is not None and secret is not None
    assert (kept["metadata"]["uid"], kept["data"]) == (secret["metadata"]["uid"], secret["data"])
    # Neither was written: the restart handed over their anchor.
    assert kube.get("Service", NAMESPACE, name) == service
    written = {(e.verb, e.resource) for e in kube.audit if e.verb in ("patch", "update")}
    assert written == {("patch", "jobs"), ("patch", "configmaps")}
    # Deleting the job now takes what it owns with it.
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200

    async def all_gone() -> bool:
        return not any(
            kube.get(kind, NAMESPACE, owned)
            for kind, owned in (
                ("Secret", payload_secret_name(name)),
                ("Service", name),
                ("ConfigMap", anchor_name(name)),
            )
        )

    await wait_until(all_gone, TIMEOUT_SECONDS)


async def test_a_second_restart_while_one_is_under_way_is_409(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    name = (await post_job(client, shell("sleep 1; exit 0")))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    held = kube.faults.hold("DELETE", rf"/jobs/{name}$")
    first = asyncio.create_task(restart(client, f"jobs/{name}"))
    await held.wait_arrived(TIMEOUT_SECONDS)

    await expect_failure(
        await restart(client, f"jobs/{name}"),
        409,
        f"a restart of job {name} is already under way",
    )
    held.release()
    await expect_restarted(await first, f"job {name} was successfully restarted")
    await wait_for_attempts(client, name, "Succeeded", 2)


async def test_a_stop_during_a_restart_wins_over_its_start(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    name = (await post_job(client, shell("sleep 1; exit 0")))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    start = kube.faults.hold("PATCH", rf"/jobs/{name}$")
    restarting = asyncio.create_task(restart(client, f"jobs/{name}"))
    await start.wait_arrived(TIMEOUT_SECONDS)
    await wait_for_status(client, name, "Waiting", TIMEOUT_SECONDS)

    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    start.release()
    await expect_restarted(await restarting, f"job {name} was successfully restarted")

    stopped = await wait_for_status(client, name, "Stopped", TIMEOUT_SECONDS)
    assert len(stopped["podStatuses"]) == 1  # the attempt before the restart, and no new one


# -- a scheduler killed in the middle of a restart -----------------------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    method: str
    path: str  # `{name}` is the job's
    landed: bool  # the held request reaches the API server after the kill (else it is lost)


STEPS = [
    Step("record-post", "POST", r"/configmaps$", landed=True),
    # The old Job's mark (its patch names its field manager) and the record's word of it.
    Step("old-job-mark", "PATCH", r"/jobs/{name}\?", landed=False),
    Step("old-job-mark-landed", "PATCH", r"/jobs/{name}\?", landed=True),
    Step("record-marked-patch", "PATCH", r"/configmaps/restart-{name}$", landed=False),
    Step("old-job-delete", "DELETE", r"/jobs/{name}$", landed=False),
    Step("new-job-post", "POST", r"/jobs$", landed=True),
    Step("new-job-post-lost", "POST", r"/jobs$", landed=False),
    Step("anchor-patch", "PATCH", r"/configmaps/{name}-anchor$", landed=False),
    Step("anchor-patch-landed", "PATCH", r"/configmaps/{name}-anchor$", landed=True),
    Step("old-pod-delete", "DELETE", r"/pods/{name}-", landed=True),
    Step("start-patch", "PATCH", r"/jobs/{name}$", landed=False),
    Step("record-delete", "DELETE", r"/configmaps/restart-{name}$", landed=False),
]


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def _wait_for_job(
    http: aiohttp.ClientSession, scheduler: SchedulerProcess, name: str, attempts: int
) -> JSON:
    found: JSON = {}

    async def done() -> bool:
        nonlocal found
        status, found = await _get(http, f"{scheduler.url}/api/v1/jobs/{name}")
        pods = found.get("podStatuses") or () if status == 200 else ()
        return found.get("status") == "Succeeded" and len(pods) == attempts

    try:
        await wait_until(done, 60.0)
    except AssertionError:
        raise AssertionError(f"job {name}: {found}\n{scheduler.log_tail()}") from None
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.id)
async def test_a_kill_at_any_step_of_a_restart_is_finished_by_the_next_scheduler(
    step: Step, kube: FakeKube, launch: Launch, http: aiohttp.ClientSession
) -> None:
    first = await launch()
    body = {
        "payload": PAYLOAD,
        **shell("sleep 1; cat /compute/args/payload > /dev/termination-log"),
    }
    async with http.post(f"{first.url}/api/v1/jobs", data=json.dumps(body)) as response:
        assert response.status == 200, await response.text()
        name = (await response.json())["name"]
    before = await _wait_for_job(http, first, name, 1)
    # Kept in the background once it ended; then the restart's first ConfigMap is its record.
    await attempts_kept(kube, name)
    hold = kube.faults.hold(step.method, step.path.format(name=name))
    restarting = asyncio.create_task(http.post(f"{first.url}/api/v1/jobs/{name}/restart"))
    await hold.wait_arrived(TIMEOUT_SECONDS)

    await first.kill()
    with pytest.raises(aiohttp.ClientError):
        await restarting  # the client never got an answer
    if step.landed:
        hold.release()  # the request goes on to the API server, though its sender is dead
    else:
        hold.drop()
    second = await launch()

    after = await _wait_for_job(http, second, name, 2)
    assert after["podStatuses"][0] == before["podStatuses"][0]
    assert after["restart"] is not None and after["created"] == before["created"]
    async with http.get(f"{second.url}/api/v1/jobs/{name}/result") as response:
        assert (response.status, await response.read()) == (200, PAYLOAD.encode())

    async def settled() -> bool:
        return not leftovers(kube, name)

    try:
        await wait_until(settled, 60.0)
    except AssertionError:
        raise AssertionError(f"{leftovers(kube, name)}\n{second.log_tail()}") from None
