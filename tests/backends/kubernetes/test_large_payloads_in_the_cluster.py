"""What a payload above one Secret's 1 MiB leaves in the cluster: its parts (Secrets of at most
512 KiB, owned as the one payload Secret of a smaller payload is), the pod that puts them
together in an init container of the scheduler's image, their end with the job, a restart that
reads them again, parts that do not add up, and a scheduler killed at every step of a large
create. That the job reads its payload byte for byte, on both backends, is in
tests/api/test_large_payloads.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from scheduler.backends.kubernetes.manifests import anchor_name, payload_secret_name
from scheduler.backends.kubernetes.payloads import part_secret_name
from tests.api.test_large_payloads import IMAGE, PART_BYTES, payload_of
from tests.api.test_results_and_restart import expect_restarted, restart, wait_for_attempts
from tests.backends.kubernetes.test_crash_safety import (
    ARRIVAL_SECONDS,
    RECOVERY_SECONDS,
    Census,
    Launch,
    http,
    launch,
    settle,
)
from tests.conftest import NAMESPACE, ClientFactory, ok_json, wait_for_status, wait_until
from tests.factories import JSON, Client
from tests.fakekube import FakeKube

__all__ = ["http", "launch"]  # fixtures, re-exported for pytest

MIB = 1024 * 1024
# Three parts: 512 KiB, 512 KiB and one byte.
SIZE = MIB + 1
SETTINGS = {"SCHEDULER_MAX_PAYLOAD_BYTES": str(16 * MIB), "SCHEDULER_IMAGE": IMAGE}
READS_ITS_PAYLOAD = [
    "sh",
    "-c",
    "sha256sum /compute/args/payload; wc -c < /compute/args/payload",
]
RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
TIMEOUT_SECONDS = 30.0


@pytest.fixture
async def client(scheduler_factory: ClientFactory) -> Client:
    return await scheduler_factory(**SETTINGS)


async def post_large_job(client: Client, payload: str, **fields: Any) -> str:
    body = {"payload": payload, "command": READS_ITS_PAYLOAD, **fields}
    response = await client.post("/api/v1/jobs", data=json.dumps(body))
    assert response.status == 200, await response.text()
    return str((await response.json())["name"])


def parts_of(kube: FakeKube, name: str) -> list[JSON]:
    secrets = kube.list("Secret", NAMESPACE, f"radix-job-name={name}")
    return sorted(
        (s for s in secrets if s["metadata"]["name"] != payload_secret_name(name)),
        key=lambda s: int(s["metadata"]["name"].rsplit("-", 1)[1]),
    )


def owner_uids(obj: JSON | None) -> list[str]:
    assert obj is not None
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or ()]


def read_back(log: str) -> tuple[str, int]:
    checksum, size, *_ = log.splitlines()
    return checksum.split()[0], int(size.split()[0])


async def log_of(client: Client, name: str) -> str:
    response = await client.get(f"/api/v1/jobs/{name}/logs")
    assert response.status == 200, await response.text()
    return await response.text()


# -- the parts and the pod ---------------------------------------------------------------------


async def test_a_large_payload_goes_in_parts_of_512_kib_held_by_the_job_s_anchor(
    client: Client, kube: FakeKube
) -> None:
    payload = payload_of(SIZE).encode()
    name = await post_large_job(client, payload.decode())
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)

    parts = parts_of(kube, name)
    assert [p["metadata"]["name"] for p in parts] == [part_secret_name(name, i) for i in range(3)]
    contents = [base64.b64decode(p["data"]["payload"]) for p in parts]
    assert [len(c) for c in contents] == [PART_BYTES, PART_BYTES, 1]
    assert b"".join(contents) == payload
    anchor = kube.get("ConfigMap", NAMESPACE, anchor_name(name))
    assert anchor is not None
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None
    for part in parts:
        assert part["immutable"] is True and part["type"] == "Opaque"
        assert owner_uids(part) == [anchor["metadata"]["uid"]]
        assert part["metadata"]["labels"] == {
            key: value for key, value in job["metadata"]["labels"].items() if "pending" not in key
        }
    # No Secret of a small payload beside them.
    assert kube.get("Secret", NAMESPACE, payload_secret_name(name)) is None
    assert read_back(await log_of(client, name)) == (hashlib.sha256(payload).hexdigest(), SIZE)


async def test_the_pod_puts_the_payload_together_in_an_init_container_of_the_scheduler_s_image(
    client: Client, kube: FakeKube
) -> None:
    name = await post_large_job(client, payload_of(SIZE), resources=RESOURCES)
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)

    job = kube.get("Job", NAMESPACE, name)
    assert job is not None
    pod = job["spec"]["template"]["spec"]
    [container], [init] = pod["containers"], pod["initContainers"]
    assert init["image"] == IMAGE
    assert init["command"][:3] == ["python", "-m", "scheduler.assemble_payload"]
    # The pod asks for no more than the job's container does, and runs as locked down.
    assert init["resources"] == container["resources"] == RESOURCES
    assert init["securityContext"] == container["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert container["volumeMounts"] == [
        {"name": "job-payload", "mountPath": "/compute/args", "readOnly": True}
    ]
    assert volumes["job-payload"]["emptyDir"] == {}
    sources = volumes["job-payload-parts"]["projected"]["sources"]
    assert [s["secret"]["name"] for s in sources] == [part_secret_name(name, i) for i in range(3)]
    [pod_object] = kube.list("Pod", NAMESPACE, f"job-name={name}")
    [init_status] = pod_object["status"]["initContainerStatuses"]
    assert init_status["state"]["terminated"]["reason"] == "Completed"


async def test_a_payload_of_one_mib_stays_in_one_secret_with_no_init_container(
    client: Client, kube: FakeKube
) -> None:
    payload = payload_of(MIB).encode()
    name = await post_large_job(client, payload.decode())
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)

    secret = kube.get("Secret", NAMESPACE, payload_secret_name(name))
    assert secret is not None and base64.b64decode(secret["data"]["payload"]) == payload
    assert parts_of(kube, name) == []
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None and "initContainers" not in job["spec"]["template"]["spec"]


async def test_a_batch_job_s_parts_are_owned_by_the_batch(client: Client, kube: FakeKube) -> None:
    payloads = [payload_of(SIZE, seed=1), "small"]
    body = {
        "jobScheduleDescriptions": [{"payload": p} for p in payloads],
        "defaultRadixJobComponentConfig": {"command": READS_ITS_PAYLOAD},
    }
    batch = await ok_json(await client.post("/api/v1/batches", data=json.dumps(body)))
    record = kube.get("ConfigMap", NAMESPACE, batch["name"])
    assert record is not None
    for job, payload in zip(batch["jobStatuses"], payloads, strict=True):
        await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)
        expected = (hashlib.sha256(payload.encode()).hexdigest(), len(payload.encode()))
        assert read_back(await log_of(client, job["name"])) == expected
    big = batch["jobStatuses"][0]["name"]
    assert [owner_uids(p) for p in parts_of(kube, big)] == [[record["metadata"]["uid"]]] * 3


# -- the parts' end, a restart, parts that do not add up ---------------------------------------


async def test_deleting_the_job_takes_every_part_along(client: Client, kube: FakeKube) -> None:
    name = await post_large_job(client, payload_of(3 * MIB))
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    assert len(parts_of(kube, name)) == 6

    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200

    async def all_gone() -> bool:
        return (
            not parts_of(kube, name) and kube.get("ConfigMap", NAMESPACE, anchor_name(name)) is None
        )

    await wait_until(all_gone, TIMEOUT_SECONDS)


async def test_a_restarted_job_reads_its_large_payload_again_from_the_same_parts(
    client: Client, kube: FakeKube
) -> None:
    payload = payload_of(SIZE, seed=2).encode()
    name = await post_large_job(client, payload.decode())
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    before = [(p["metadata"]["uid"], p["data"]) for p in parts_of(kube, name)]

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    await wait_for_attempts(client, name, "Succeeded", 2)

    assert [(p["metadata"]["uid"], p["data"]) for p in parts_of(kube, name)] == before
    new = kube.get("Job", NAMESPACE, name)
    anchor = kube.get("ConfigMap", NAMESPACE, anchor_name(name))
    assert new is not None and owner_uids(anchor) == [new["metadata"]["uid"]]
    assert read_back(await log_of(client, name)) == (hashlib.sha256(payload).hexdigest(), SIZE)


async def test_parts_that_do_not_add_up_fail_the_job_with_the_assembler_s_message(
    client: Client, kube: FakeKube
) -> None:
    name = await post_large_job(client, payload_of(SIZE, seed=3))
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    # A part that changed behind the scheduler's back (an immutable Secret cannot, through the
    # API): the run after a restart puts together something else, and refuses to.
    [first, *_] = parts_of(kube, name)
    first["data"]["payload"] = base64.b64encode(b"changed").decode()
    kube.put(first)

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    failed = await wait_for_attempts(client, name, "Failed", 2)

    assert "the payload cannot be put together: the 3 parts hold" in failed["message"]
    latest = failed["podStatuses"][-1]
    assert latest["statusMessage"].startswith(
        "the container exited with code 1: the payload cannot be put together: the 3 parts hold"
    )


# -- a scheduler killed at every step of a large create ----------------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    method: str
    path: str
    # What else of the create has landed at the moment of the kill.
    at_kill: Callable[[Census], bool]
    # The held request, released after the kill, has landed.
    landed: Callable[[Census], bool]
    committed: bool


def _anything(census: Census) -> bool:
    return True


# A single job whose payload is three parts: the Job (pending, held), its anchor, its three part
# Secrets and its Service together, the commit.
STEPS = [
    Step("job-post", "POST", r"/jobs$", _anything, lambda c: len(c.jobs) == 1, committed=False),
    Step(
        "anchor-post",
        "POST",
        r"/configmaps$",
        lambda c: len(c.jobs) == 1,
        lambda c: len(c.anchors) == 1,
        committed=False,
    ),
    Step(
        "first-part-post",  # the other two parts and the Service land
        "POST",
        r"/secrets$",
        lambda c: len(c.secrets) == 2 and len(c.services) == 1,
        lambda c: len(c.secrets) == 3,
        committed=False,
    ),
    Step(
        "service-post",  # every part lands
        "POST",
        r"/services$",
        lambda c: len(c.secrets) == 3,
        lambda c: len(c.services) == 1,
        committed=False,
    ),
    Step(
        "commit-patch",
        "PATCH",
        r"/jobs/[^/]+$",
        _anything,
        lambda c: not c.jobs[0]["metadata"]["labels"].get("radix.equinor.com/pending"),
        committed=True,
    ),
]


async def _wait_for(kube: FakeKube, condition: Callable[[Census], bool], what: str) -> None:
    await settle(kube, lambda census: [] if condition(census) else [what], what)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.id)
async def test_a_kill_at_any_step_of_a_large_create_leaves_it_whole_or_gone(
    step: Step, kube: FakeKube, launch: Launch, http: aiohttp.ClientSession
) -> None:
    first = await launch(**SETTINGS)
    hold = kube.faults.hold(step.method, step.path)
    body = json.dumps({"payload": payload_of(SIZE), "command": READS_ITS_PAYLOAD})
    posting = asyncio.create_task(http.post(f"{first.url}/api/v1/jobs", data=body))
    await hold.wait_arrived(ARRIVAL_SECONDS)
    await _wait_for(kube, step.at_kill, f"the state at the kill of step {step.id}")

    await first.kill()
    with pytest.raises(aiohttp.ClientError):
        await posting  # the client never got an answer
    hold.release()  # the request goes on to the API server, though its sender is dead
    await _wait_for(kube, step.landed, "the held request landing after the kill")
    second = await launch(**SETTINGS)

    def unmet(census: Census) -> list[str]:
        done = census.single_job_runs() if step.committed else census.remains()
        return census.incomplete() + done

    try:
        census = await settle(kube, unmet, "a whole create" if step.committed else "nothing left")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nthe restarted scheduler logged:\n{second.log_tail()}"
        ) from None
    if step.committed:
        name = census.jobs[0]["metadata"]["name"]

        async def succeeded() -> bool:
            async with http.get(f"{second.url}/api/v1/jobs/{name}") as response:
                return response.status == 200 and (await response.json())["status"] == "Succeeded"

        await wait_until(succeeded, RECOVERY_SECONDS)
        assert len(parts_of(kube, name)) == 3
