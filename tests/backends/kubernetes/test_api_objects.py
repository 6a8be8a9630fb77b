"""What the API's jobs and batches are in the cluster: a job's Job, its payload Secret and Service
owned through its anchor ConfigMap; a batch's ConfigMap owning its Jobs; a stopped job's Job kept,
suspended; what a delete or the history limit takes away. The local backend has no such objects:
what the API answers is tested on both backends in tests/api."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.api.calls import (
    LONG,
    SHORT,
    batch_of,
    completed_or_pruned,
    expect_failure,
    expect_stopped_answer,
    job_statuses,
    listed,
    post_batch,
    running_job,
    stop,
    stop_while_waiting_for_a_retry,
    wait_for_batch,
)
from tests.conftest import (
    NAMESPACE,
    AiohttpClient,
    ClientFactory,
    job_status,
    make_app,
    make_settings,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import JSON, Client
from tests.fakekube import FakeKube

STOPPED_AT = "radix.equinor.com/stopped-at"
OWNED_KINDS = ("Job", "Pod", "Secret", "Service", "ConfigMap")


def pods_of(kube: FakeKube, name: str) -> list[JSON]:
    return kube.list("Pod", NAMESPACE, f"job-name={name}")


def env_of(job: JSON) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def nothing_in(kube: FakeKube) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        return not any(kube.list(kind, NAMESPACE) for kind in OWNED_KINDS)

    return empty


# -- single jobs ------------------------------------------------------------------------------


async def test_the_payload_is_stored_in_a_secret_mounted_as_the_payload_file(
    scheduler: Client, kube: FakeKube
) -> None:
    payload = '{"x": 10, "y": 20}'
    created = await post_job(scheduler, {"payload": payload, "jobId": "job1"})
    name = created["name"]
    assert created["jobId"] == "job1"
    job = kube.get("Job", NAMESPACE, name)
    secret = kube.get("Secret", NAMESPACE, f"{name}-payload")
    assert job is not None and secret is not None
    assert base64.b64decode(secret["data"]["payload"]).decode() == payload
    # Owned by the job's anchor, which its Job owns: deleting the Job deletes the payload.
    anchor = kube.get("ConfigMap", NAMESPACE, f"{name}-anchor")
    assert anchor is not None
    assert anchor["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == anchor["metadata"]["uid"]
    pod_spec = job["spec"]["template"]["spec"]
    volume = next(v for v in pod_spec["volumes"] if v["name"] == "job-payload")
    assert volume["secret"]["secretName"] == f"{name}-payload"
    mount = pod_spec["containers"][0]["volumeMounts"][0]
    assert (mount["mountPath"], mount["readOnly"]) == ("/compute/args", True)
    env = {e["name"]: e.get("value") for e in pod_spec["containers"][0]["env"]}
    assert env["RADIX_JOB_NAME"] == name and env["MODE"] == "test"
    service = kube.get("Service", NAMESPACE, name)
    assert service is not None and service["spec"]["ports"][0]["port"] == 3000


async def test_no_payload_gives_an_empty_payload_file(scheduler: Client, kube: FakeKube) -> None:
    name = (await post_job(scheduler, {}))["name"]
    secret = kube.get("Secret", NAMESPACE, f"{name}-payload")
    assert secret is not None
    assert base64.b64decode(secret["data"].get("payload", "")) == b""


async def test_delete_removes_the_job_its_secret_and_its_service(
    scheduler: Client, kube: FakeKube
) -> None:
    name = (await post_job(scheduler, {"payload": "p"}))["name"]
    assert (await scheduler.delete(f"/api/v1/jobs/{name}")).status == 200

    async def all_gone() -> bool:
        return not any(
            kube.get(kind, NAMESPACE, n)
            for kind, n in (("Job", name), ("Secret", f"{name}-payload"), ("Service", name))
        ) and not kube.list("Pod", NAMESPACE, f"job-name={name}")

    await wait_until(all_gone)


# -- stopping ---------------------------------------------------------------------------------


async def test_a_stopped_job_keeps_its_job_suspended_and_marked_and_its_pods_go(
    scheduler: Client, kube: FakeKube
) -> None:
    name = await running_job(scheduler)
    await expect_stopped_answer(await stop(scheduler, name), name)
    await wait_for_status(scheduler, name, "Stopped")

    async def pods_gone() -> bool:
        return not pods_of(kube, name)

    await wait_until(pods_gone)
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None
    assert job["spec"]["suspend"] is True
    assert STOPPED_AT in job["metadata"]["annotations"]
    # The record outlives the pods: it is still listed and read as Stopped.
    assert (await job_status(scheduler, name))["status"] == "Stopped"


async def test_a_job_stopped_while_waiting_for_a_retry_keeps_its_job_suspended(
    slow_kube: FakeKube, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(make_app(slow_kube, make_settings(tmp_path)))
    name = await stop_while_waiting_for_a_retry(client)
    job = slow_kube.get("Job", NAMESPACE, name)
    assert job is not None and job["spec"]["suspend"] is True


async def test_stop_all_leaves_a_batch_job_its_pods(scheduler: Client, kube: FakeKube) -> None:
    single = await running_job(scheduler)
    batch = await post_batch(scheduler, batch_of(LONG))
    batch_job = batch["jobStatuses"][0]["name"]
    await wait_for_status(scheduler, batch_job, "Running")

    assert (await scheduler.post("/api/v1/jobs/stop")).status == 200
    await wait_for_status(scheduler, single, "Stopped")
    # A batch's jobs are stopped through the batch API only.
    assert pods_of(kube, batch_job)


# -- batches ----------------------------------------------------------------------------------


async def test_a_batch_is_a_configmap_that_owns_its_jobs(scheduler: Client, kube: FakeKube) -> None:
    created = await post_batch(scheduler, batch_of({"jobId": "a"}, {"jobId": "b"}, {}))
    record = kube.get("ConfigMap", NAMESPACE, created["name"])
    assert record is not None
    owners = set()
    for job in created["jobStatuses"]:
        kube_job = kube.get("Job", NAMESPACE, job["name"])
        assert kube_job is not None
        owners.add(kube_job["metadata"]["ownerReferences"][0]["uid"])
    assert owners == {record["metadata"]["uid"]}


async def test_each_job_is_the_batch_defaults_merged_under_its_own_options(
    scheduler: Client, kube: FakeKube
) -> None:
    defaults = {
        "command": ["sh", "-c", "sleep 1; exit 0"],
        "args": ["default-arg"],
        "timeLimitSeconds": 100,
        "backoffLimit": 2,
        "imageTagName": "1.37",
        "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}},
        "variables": {"SHARED": "default", "ONLY_DEFAULT": "d"},
        "runtime": {"nodeType": "memory-optimized-v1"},
    }
    own = {
        "jobId": "own",
        "payload": "own payload",
        "timeLimitSeconds": 7,
        "image": "alpine:3.20",
        "args": [],
        "resources": {"limits": {"memory": "1Gi"}},
        "variables": {"SHARED": "own"},
        "runtime": {"architecture": "arm64"},
    }
    created = await post_batch(
        scheduler, batch_of(own, {"jobId": "plain"}, defaultRadixJobComponentConfig=defaults)
    )
    jobs = {job["jobId"]: kube.get("Job", NAMESPACE, job["name"]) for job in created["jobStatuses"]}
    mine, plain = jobs["own"], jobs["plain"]
    assert mine is not None and plain is not None
    mine_spec, plain_spec = mine["spec"], plain["spec"]
    mine_pod, plain_pod = mine_spec["template"]["spec"], plain_spec["template"]["spec"]
    mine_box, plain_box = mine_pod["containers"][0], plain_pod["containers"][0]
    # Scalars: the job's own value wins, else the default.
    assert (mine_spec["activeDeadlineSeconds"], plain_spec["activeDeadlineSeconds"]) == (7, 100)
    assert (mine_spec["backoffLimit"], plain_spec["backoffLimit"]) == (2, 2)
    # The job's image with the default tag; the radixconfig's image with the default tag.
    assert (mine_box["image"], plain_box["image"]) == ("alpine:1.37", "busybox:1.37")
    # Command from the defaults; `[]` clears the default args.
    assert mine_box["command"] == plain_box["command"] == ["sh", "-c", "sleep 1; exit 0"]
    assert mine_box["args"] == [] and plain_box["args"] == ["default-arg"]
    # Resources per key; variables combined, the job's keys winning, over the radixconfig's.
    assert mine_box["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "100m"},
    }
    assert plain_box["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}}
    assert {k: env_of(mine)[k] for k in ("MODE", "SHARED", "ONLY_DEFAULT")} == {
        "MODE": "test",
        "SHARED": "own",
        "ONLY_DEFAULT": "d",
    }
    assert env_of(plain)["SHARED"] == "default"
    # Runtime is replaced whole: the job's own runtime drops the default node type.
    tolerations = {t.get("key"): t.get("value") for t in plain_pod["tolerations"]}
    assert tolerations.get("radix-nodetype") == "memory-optimized-v1"
    assert "radix-nodetype" not in {t.get("key") for t in mine_pod.get("tolerations") or []}
    assert "arm64" in json.dumps(mine_pod["affinity"])
    # The payload is the job's own.
    secret = kube.get("Secret", NAMESPACE, f"{mine['metadata']['name']}-payload")
    assert secret is not None
    assert base64.b64decode(secret["data"]["payload"]).decode() == "own payload"


async def test_an_empty_command_in_the_defaults_clears_the_radixconfig_command(
    scheduler: Client, kube: FakeKube
) -> None:
    created = await post_batch(
        scheduler, batch_of({}, defaultRadixJobComponentConfig={"command": []})
    )
    job = kube.get("Job", NAMESPACE, created["jobStatuses"][0]["name"])
    assert job is not None
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == []


async def test_stopping_a_batch_suspends_the_jobs_it_stopped_only(
    scheduler: Client, kube: FakeKube
) -> None:
    name = (await post_batch(scheduler, batch_of(SHORT, LONG, LONG)))["name"]
    await wait_for_batch(
        scheduler, name, lambda b: sorted(job_statuses(b)) == ["Running", "Running", "Succeeded"]
    )
    assert (await scheduler.post(f"/api/v1/batches/{name}/stop")).status == 200
    done = await wait_for_batch(
        scheduler, name, lambda b: sorted(job_statuses(b)) == ["Stopped", "Stopped", "Succeeded"]
    )
    for job in done["jobStatuses"]:
        record = kube.get("Job", NAMESPACE, job["name"])
        assert record is not None
        assert record["spec"]["suspend"] is (job["status"] == "Stopped")


async def test_deleting_a_batch_removes_every_object_it_owns(
    scheduler: Client, kube: FakeKube
) -> None:
    created = await post_batch(scheduler, batch_of({"payload": "p1"}, {"payload": "p2", **LONG}))
    name = created["name"]
    await wait_for_batch(scheduler, name, lambda b: "Running" in job_statuses(b))
    assert kube.list("Secret", NAMESPACE) and kube.list("Service", NAMESPACE)
    assert (await scheduler.delete(f"/api/v1/batches/{name}")).status == 200
    await wait_until(nothing_in(kube))


async def test_deleting_a_batch_job_through_jobs_leaves_its_job(
    scheduler: Client, kube: FakeKube
) -> None:
    created = await post_batch(scheduler, batch_of({}))
    job = created["jobStatuses"][0]["name"]
    await expect_failure(
        await scheduler.delete(f"/api/v1/jobs/{job}"), 422, "Invalid", "not a single job"
    )
    assert kube.get("Job", NAMESPACE, job) is not None


async def test_a_batch_the_history_limit_removes_leaves_the_cluster_with_its_jobs(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    names = []
    for jobs in ((SHORT, SHORT), (SHORT,)):
        name = (await post_batch(client, batch_of(*jobs)))["name"]
        names.append(name)
        await wait_until(completed_or_pruned(client, name))
    kept: list[str] = []

    async def pruned() -> bool:
        kept[:] = await listed(client, "/api/v1/batches")
        return len(kept) == 1

    await wait_until(pruned)
    gone = (set(names) - set(kept)).pop()

    async def gone_from_the_cluster() -> bool:
        return kube.get("ConfigMap", NAMESPACE, gone) is None and not kube.list(
            "Job", NAMESPACE, f"radix-batch-name={gone}"
        )

    await wait_until(gone_from_the_cluster)
