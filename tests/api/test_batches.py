"""`/api/v1/batches` end to end: the scheduler app, the real kubernetes.aio client, the fake API.

A batch is a ConfigMap that owns its Jobs; each job is the batch's defaults merged under the
job's own options.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from tests.conftest import (
    NAMESPACE,
    TEST_CONFIG,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.fakekube import FakeKube

Client = TestClient[Any, Any]
ONE_MIB = 1024 * 1024
LONG = {"command": ["sh", "-c", "sleep 1000; exit 0"]}
SHORT = {"command": ["sh", "-c", "sleep 1; exit 0"]}
FAILING = {"command": ["sh", "-c", "sleep 1; exit 3"]}
OWNED_KINDS = ("Job", "Pod", "Secret", "Service", "ConfigMap")
WRITES = ("create", "update", "patch", "delete", "deletecollection")


async def post_batch(client: Client, body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/batches", json=body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


def batch_of(*jobs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"jobScheduleDescriptions": list(jobs), **fields}


async def get_batch(client: Client, name: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/batches/{name}")
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def wait_for_batch(
    client: Client, name: str, reached: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal found
        found = await get_batch(client, name)
        return reached(found)

    await wait_until(check, timeout=15)
    return found


def job_statuses(batch: dict[str, Any]) -> list[str]:
    return [job["status"] for job in batch["jobStatuses"]]


async def expect_status(response: Any, code: int, reason: str, fragment: str = "") -> None:
    assert response.status == code, await response.text()
    body = await response.json()
    assert (body["status"], body["code"], body["reason"]) == ("Failure", code, reason)
    assert fragment in body["message"], body["message"]


def writes(kube: FakeKube) -> list[Any]:
    return [e for e in kube.audit if e.verb in WRITES]


def nothing_in(kube: FakeKube) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        return not any(kube.list(kind, NAMESPACE) for kind in OWNED_KINDS)

    return empty


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def write_radixconfig(tmp_path: Path, **job_keys: Any) -> Path:
    """tests/radixconfig.yaml with extra keys on the `compute` job."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    compute = next(job for job in config["spec"]["jobs"] if job["name"] == "compute")
    compute.update(job_keys)
    path = tmp_path / "radixconfig-variant.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# -- creating ---------------------------------------------------------------------------------


async def test_a_batch_is_created_with_its_ids_echoed_and_radix_names(
    scheduler: Client, kube: FakeKube
) -> None:
    created = await post_batch(
        scheduler, batch_of({"jobId": "a"}, {"jobId": "b"}, {}, batchId="my-batch")
    )
    name = created["name"]
    assert re.fullmatch(r"batch-compute-\d{14}-[a-z]{8}", name)
    assert (created["batchType"], created["batchId"]) == ("batch", "my-batch")
    # Waiting, unless a job has started by the time the answer is made.
    assert created["status"] in ("Waiting", "Active")
    assert created["created"] is not None and created["ended"] is None
    jobs = created["jobStatuses"]
    assert sorted(str(job.get("jobId")) for job in jobs) == ["None", "a", "b"]
    assert len({job["name"] for job in jobs}) == 3
    record = kube.get("ConfigMap", NAMESPACE, name)
    assert record is not None
    owners = set()
    for job in jobs:
        assert re.fullmatch(rf"{name}-[a-z]{{8}}", job["name"])
        assert (job["batchName"], job["batchId"]) == (name, "my-batch")
        kube_job = kube.get("Job", NAMESPACE, job["name"])
        assert kube_job is not None
        owners.add(kube_job["metadata"]["ownerReferences"][0]["uid"])
    assert owners == {record["metadata"]["uid"]}
    # Listed and readable by name at once.
    assert [b["name"] for b in await (await scheduler.get("/api/v1/batches")).json()] == [name]
    assert (await get_batch(scheduler, name))["batchId"] == "my-batch"


async def test_job_statuses_follow_the_order_of_the_job_descriptions(scheduler: Client) -> None:
    ids = [f"job-{index}" for index in range(8)]
    created = await post_batch(scheduler, batch_of(*({"jobId": i} for i in ids)))
    assert [job["jobId"] for job in created["jobStatuses"]] == ids
    batch = await get_batch(scheduler, created["name"])
    assert [job["jobId"] for job in batch["jobStatuses"]] == ids


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


# -- reading ----------------------------------------------------------------------------------


async def test_get_batches_is_an_empty_list_not_null(scheduler: Client) -> None:
    for path in ("/api/v1/batches", "/api/v1/batches/"):
        response = await scheduler.get(path)
        assert response.status == 200
        assert await response.text() == "[]"


async def test_a_batch_job_is_found_by_its_short_and_full_name_and_through_jobs(
    scheduler: Client,
) -> None:
    created = await post_batch(scheduler, batch_of({"jobId": "j1"}, batchId="b1"))
    batch, full = created["name"], created["jobStatuses"][0]["name"]
    short = full.removeprefix(f"{batch}-")
    assert len(short) == 8
    for job_name in (short, full):
        response = await scheduler.get(f"/api/v1/batches/{batch}/jobs/{job_name}")
        assert response.status == 200, await response.text()
        found = await response.json()
        assert (found["name"], found["jobId"], found["batchName"]) == (full, "j1", batch)
    through_jobs = await job_status(scheduler, full)
    assert (through_jobs["batchName"], through_jobs["batchId"]) == (batch, "b1")


async def test_get_jobs_lists_single_jobs_only(scheduler: Client) -> None:
    single = (await post_job(scheduler))["name"]
    await post_batch(scheduler, batch_of({}, {}))
    listed = await (await scheduler.get("/api/v1/jobs")).json()
    assert [job["name"] for job in listed] == [single]
    batches = await (await scheduler.get("/api/v1/batches")).json()
    assert len(batches) == 1 and len(batches[0]["jobStatuses"]) == 2


async def test_unknown_batches_and_batch_jobs_are_404(scheduler: Client) -> None:
    created = await post_batch(scheduler, batch_of({}))
    batch = created["name"]
    single = (await post_job(scheduler))["name"]
    unknown = "batch-compute-20240101000000-abcdefgh"
    for method, path in [
        ("GET", f"/api/v1/batches/{unknown}"),
        ("DELETE", f"/api/v1/batches/{unknown}"),
        ("POST", f"/api/v1/batches/{unknown}/stop"),
        ("GET", f"/api/v1/batches/{unknown}/jobs/abcdefgh"),
        ("POST", f"/api/v1/batches/{unknown}/jobs/abcdefgh/stop"),
        # A single job is not a batch.
        ("GET", f"/api/v1/batches/{single}"),
        # A batch that exists, a job that does not: 404, not Radix's 500.
        ("GET", f"/api/v1/batches/{batch}/jobs/abcdefgh"),
        ("GET", f"/api/v1/batches/{batch}/jobs/{batch}-abcdefgh"),
        ("POST", f"/api/v1/batches/{batch}/jobs/abcdefgh/stop"),
        # Another batch's job is not this batch's.
        ("GET", f"/api/v1/batches/{batch}/jobs/{single}"),
    ]:
        response = await scheduler.request(method, path)
        await expect_status(response, 404, "NotFound")


async def test_a_batch_is_active_while_a_job_runs_and_completed_when_all_ended(
    scheduler: Client,
) -> None:
    created = await post_batch(scheduler, batch_of(SHORT, LONG))
    name = created["name"]
    assert created["status"] in ("Waiting", "Active")
    active = await wait_for_batch(
        scheduler, name, lambda b: sorted(job_statuses(b)) == ["Running", "Succeeded"]
    )
    assert active["status"] == "Active"
    assert active["started"] is not None and active["ended"] is None
    long_job = next(j["name"] for j in active["jobStatuses"] if j["status"] == "Running")
    response = await scheduler.post(f"/api/v1/jobs/{long_job}/stop")
    assert response.status == 200, await response.text()
    done = await wait_for_batch(scheduler, name, lambda b: b["status"] == "Completed")
    assert sorted(job_statuses(done)) == ["Stopped", "Succeeded"]
    assert done["ended"] is not None
    assert done["ended"] == max(job["ended"] for job in done["jobStatuses"])


async def test_batch_status_rules_of_the_radixconfig_decide_the_batch_status(
    scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    rules = [
        {"condition": "Any", "operator": "In", "jobStatuses": ["Failed"], "batchStatus": "Failed"},
        {
            "condition": "All",
            "operator": "In",
            "jobStatuses": ["Succeeded"],
            "batchStatus": "Succeeded",
        },
    ]
    config = write_radixconfig(tmp_path, batchStatusRules=rules)
    client = await scheduler_factory(RADIX_CONFIG_FILE=str(config))
    succeeding = (await post_batch(client, batch_of(SHORT, SHORT)))["name"]
    failing = (await post_batch(client, batch_of(FAILING, LONG)))["name"]
    done = await wait_for_batch(client, succeeding, lambda b: b["status"] == "Succeeded")
    assert job_statuses(done) == ["Succeeded", "Succeeded"]
    # Failed as soon as one job fails, though the other still runs.
    failed = await wait_for_batch(client, failing, lambda b: b["status"] == "Failed")
    assert sorted(job_statuses(failed)) == ["Failed", "Running"]


async def test_without_rules_a_batch_with_a_failed_job_is_completed(scheduler: Client) -> None:
    name = (await post_batch(scheduler, batch_of(FAILING, SHORT)))["name"]
    done = await wait_for_batch(scheduler, name, lambda b: b["status"] == "Completed")
    assert sorted(job_statuses(done)) == ["Failed", "Succeeded"]
    assert done["failed"] == 1


# -- stopping ---------------------------------------------------------------------------------


async def test_stopping_a_batch_stops_its_unfinished_jobs(
    scheduler: Client, kube: FakeKube
) -> None:
    name = (await post_batch(scheduler, batch_of(SHORT, LONG, LONG)))["name"]
    await wait_for_batch(
        scheduler, name, lambda b: sorted(job_statuses(b)) == ["Running", "Running", "Succeeded"]
    )
    response = await scheduler.post(f"/api/v1/batches/{name}/stop")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    done = await wait_for_batch(
        scheduler, name, lambda b: sorted(job_statuses(b)) == ["Stopped", "Stopped", "Succeeded"]
    )
    assert done["status"] == "Completed"
    for job in done["jobStatuses"]:
        record = kube.get("Job", NAMESPACE, job["name"])
        assert record is not None
        assert record["spec"]["suspend"] is (job["status"] == "Stopped")
    # Nothing left to stop: 400, as for a finished job.
    await expect_status(
        await scheduler.post(f"/api/v1/batches/{name}/stop"), 400, "BadRequest", name
    )


async def test_stopping_one_job_of_a_batch_leaves_the_others_running(scheduler: Client) -> None:
    created = await post_batch(scheduler, batch_of(LONG, LONG))
    name = created["name"]
    first, second = (job["name"] for job in created["jobStatuses"])
    await wait_for_batch(scheduler, name, lambda b: job_statuses(b) == ["Running", "Running"])
    short = first.removeprefix(f"{name}-")
    response = await scheduler.post(f"/api/v1/batches/{name}/jobs/{short}/stop")
    assert response.status == 200, await response.text()
    await wait_for_status(scheduler, first, "Stopped")
    assert (await job_status(scheduler, second))["status"] == "Running"
    assert (await get_batch(scheduler, name))["status"] == "Active"
    # By its full name too; a second stop of a stopped job is 400.
    await expect_status(
        await scheduler.post(f"/api/v1/batches/{name}/jobs/{first}/stop"), 400, "BadRequest"
    )


async def test_stop_all_batches_stops_every_batch_and_no_single_job(scheduler: Client) -> None:
    single = (await post_job(scheduler, LONG))["name"]
    names = [(await post_batch(scheduler, batch_of(LONG)))["name"] for _ in range(2)]
    for name in names:
        await wait_for_batch(scheduler, name, lambda b: job_statuses(b) == ["Running"])
    await wait_for_status(scheduler, single, "Running")
    response = await scheduler.post("/api/v1/batches/stop")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    for name in names:
        await wait_for_batch(scheduler, name, lambda b: job_statuses(b) == ["Stopped"])
    assert (await job_status(scheduler, single))["status"] == "Running"
    # With nothing left to stop it is still 200.
    assert (await scheduler.post("/api/v1/batches/stop")).status == 200


# -- deleting ---------------------------------------------------------------------------------


async def test_deleting_a_batch_removes_every_object_it_owns(
    scheduler: Client, kube: FakeKube
) -> None:
    created = await post_batch(scheduler, batch_of({"payload": "p1"}, {"payload": "p2", **LONG}))
    name = created["name"]
    await wait_for_batch(scheduler, name, lambda b: "Running" in job_statuses(b))
    assert kube.list("Secret", NAMESPACE) and kube.list("Service", NAMESPACE)
    response = await scheduler.delete(f"/api/v1/batches/{name}")
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "status": "Success",
        "message": f"batch {name} successfully deleted",
        "code": 200,
    }
    await expect_status(await scheduler.get(f"/api/v1/batches/{name}"), 404, "NotFound")
    assert await (await scheduler.get("/api/v1/batches")).json() == []
    for job in created["jobStatuses"]:
        await expect_status(await scheduler.get(f"/api/v1/jobs/{job['name']}"), 404, "NotFound")
    await wait_until(nothing_in(kube))


async def test_deleting_a_batch_job_through_jobs_is_422(scheduler: Client, kube: FakeKube) -> None:
    created = await post_batch(scheduler, batch_of({}))
    job = created["jobStatuses"][0]["name"]
    await expect_status(
        await scheduler.delete(f"/api/v1/jobs/{job}"), 422, "Invalid", "not a single job"
    )
    assert kube.get("Job", NAMESPACE, job) is not None
    assert (await get_batch(scheduler, created["name"]))["jobStatuses"][0]["name"] == job


# -- failures leave nothing -------------------------------------------------------------------


async def test_a_failed_secret_create_rolls_the_whole_batch_back_and_no_job_ever_runs(
    scheduler: Client, kube: FakeKube
) -> None:
    pods_seen: list[str] = []
    unsubscribe = kube.store.add_listener(
        lambda event: (
            pods_seen.append(event.record.name) if event.record.kind.name == "Pod" else None
        )
    )
    try:
        # Every Job is created; then one of the four payload Secrets fails while the others
        # are written: they all wait until the four are in flight.
        kube.faults.fail("POST", r"/secrets", status=500, times=1)
        held = kube.faults.hold("POST", r"/secrets", times=None)
        body = batch_of(*({"payload": f"p{i}"} for i in range(4)))
        answer = asyncio.ensure_future(scheduler.post("/api/v1/batches", json=body))
        await held.wait_arrived(count=4)
        assert len(kube.list("Job", NAMESPACE)) == 4
        held.release()
        response = await answer
        await expect_status(response, 503, "ServiceUnavailable", "500")
        await wait_until(nothing_in(kube))
        assert await (await scheduler.get("/api/v1/batches")).json() == []
        assert await (await scheduler.get("/api/v1/jobs")).json() == []
    finally:
        unsubscribe()
    assert pods_seen == []


async def test_an_empty_or_missing_job_list_is_422_and_creates_nothing(
    scheduler: Client, kube: FakeKube
) -> None:
    message = "BatchScheduleDescription is invalid: empty job description list"
    kube.clear_audit()
    for data in (b"", b"null", json.dumps(batch_of()).encode()):
        response = await scheduler.post("/api/v1/batches", data=data)
        await expect_status(response, 422, "Invalid", message)
    # Radix says "empty job description list" here too; we name the missing field.
    response = await scheduler.post("/api/v1/batches", data=b"{}")
    await expect_status(response, 422, "Invalid", "BatchScheduleDescription is invalid")
    assert writes(kube) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "BatchScheduleDescription is invalid"),
        (b"[]", "BatchScheduleDescription is invalid"),
        (json.dumps({"jobScheduleDescriptions": {}}).encode(), "jobScheduleDescriptions"),
        (
            json.dumps(batch_of({}, {"timeLimitSeconds": 0})).encode(),
            "jobScheduleDescriptions.1.timeLimitSeconds",
        ),
        (
            json.dumps(batch_of({}, defaultRadixJobComponentConfig={"backoffLimit": -1})).encode(),
            "defaultRadixJobComponentConfig.backoffLimit",
        ),
        (json.dumps(batch_of(*([{}] * 501))).encode(), "jobScheduleDescriptions"),
    ],
)
async def test_a_body_that_does_not_fit_is_422_and_creates_nothing(
    scheduler: Client, kube: FakeKube, body: bytes, fragment: str
) -> None:
    kube.clear_audit()
    response = await scheduler.post("/api/v1/batches", data=body)
    await expect_status(response, 422, "Invalid", fragment)
    assert writes(kube) == []


async def test_a_batch_of_500_jobs_is_accepted(scheduler: Client) -> None:
    created = await post_batch(scheduler, batch_of(*([{}] * 500)))
    assert len(created["jobStatuses"]) == 500


async def test_a_payload_over_one_mib_is_413_naming_it_and_creates_nothing(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.clear_audit()
    body = batch_of({"payload": "small"}, {"payload": "x" * (ONE_MIB + 1)})
    response = await scheduler.post("/api/v1/batches", data=io.BytesIO(json.dumps(body).encode()))
    await expect_status(
        response, 413, "RequestEntityTooLarge", "jobScheduleDescriptions[1].payload"
    )
    assert writes(kube) == []


async def test_a_request_over_the_body_limit_is_413_and_creates_nothing(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_MAX_REQUEST_BYTES=str(2 * ONE_MIB))
    kube.clear_audit()
    # Every payload is under 1 MiB; together they are over the 2 MiB limit.
    body = batch_of(*({"payload": "x" * (ONE_MIB - 1024)} for _ in range(3)))
    response = await client.post("/api/v1/batches", data=io.BytesIO(json.dumps(body).encode()))
    await expect_status(response, 413, "RequestEntityTooLarge")
    assert writes(kube) == []


async def test_a_payload_for_a_job_without_payload_path_is_422_and_creates_nothing(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    etl = await scheduler_factory("etl")
    kube.clear_audit()
    response = await etl.post("/api/v1/batches", json=batch_of({}, {"payload": "data"}))
    await expect_status(response, 422, "Invalid", "jobScheduleDescriptions[1].payload")
    assert writes(kube) == []


# -- crash safety -----------------------------------------------------------------------------


async def test_a_job_of_a_committed_batch_that_could_not_be_started_is_started_later(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_CREATE_GRACE_SECONDS="1")
    # The batch is committed; starting its first job fails once.
    kube.faults.fail("PATCH", r"/jobs/batch-", status=500, times=1)
    created = await post_batch(client, batch_of(SHORT, SHORT))
    name = created["name"]
    assert len(created["jobStatuses"]) == 2
    # The recovery sweep starts it once its grace time is over.
    done = await wait_for_batch(
        client, name, lambda b: job_statuses(b) == ["Succeeded", "Succeeded"]
    )
    assert done["status"] == "Completed"


async def test_a_second_scheduler_shows_every_job_of_a_batch_whose_start_failed_once(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    # The batch is committed; starting its first job fails once: the start is tried again.
    kube.faults.fail("PATCH", r"/jobs/batch-", status=500, times=1)
    created = await post_batch(one, batch_of(SHORT, SHORT))
    name = created["name"]

    async def two_sees_both_jobs() -> bool:
        response = await two.get(f"/api/v1/batches/{name}")
        return response.status == 200 and len((await response.json())["jobStatuses"]) == 2

    await wait_until(two_sees_both_jobs)
    done = await wait_for_batch(two, name, lambda b: job_statuses(b) == ["Succeeded", "Succeeded"])
    assert done["status"] == "Completed"


async def test_a_job_that_finished_while_its_batch_was_created_stays_finished(
    scheduler: Client, kube: FakeKube
) -> None:
    # One job of the batch is started (and finishes) long before the other (a slow API server).
    held = kube.faults.hold("PATCH", r"/jobs/batch-", times=1)
    answer = asyncio.ensure_future(scheduler.post("/api/v1/batches", json=batch_of(SHORT, SHORT)))
    await held.wait_arrived()

    async def one_succeeded() -> bool:
        batches = await (await scheduler.get("/api/v1/batches")).json()
        return bool(batches) and "Succeeded" in job_statuses(batches[0])

    await wait_until(one_succeeded)
    held.release()
    response = await answer
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]
    done = await wait_for_batch(scheduler, name, lambda b: b["status"] == "Completed")
    assert job_statuses(done) == ["Succeeded", "Succeeded"]


# -- history ----------------------------------------------------------------------------------


def completed_or_pruned(client: Client, name: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        response = await client.get(f"/api/v1/batches/{name}")
        return response.status == 404 or (await response.json())["status"] == "Completed"

    return check


async def test_history_keeps_the_latest_succeeded_and_the_latest_other_batch(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    single = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, single, "Succeeded")
    names: dict[str, str] = {}
    for key, jobs in [
        ("succeeded", (SHORT, SHORT)),
        ("failed", (FAILING, SHORT)),
        ("succeeded later", (SHORT,)),
    ]:
        names[key] = (await post_batch(client, batch_of(*jobs)))["name"]
        await wait_until(completed_or_pruned(client, names[key]))
    kept: list[str] = []

    async def pruned() -> bool:
        kept[:] = [b["name"] for b in await (await client.get("/api/v1/batches")).json()]
        return len(kept) == 2

    await wait_until(pruned)
    # One of the two succeeded batches goes (their end times are whole seconds and may tie);
    # the batch with a failed job has a bucket of its own.
    assert names["failed"] in kept
    assert len(set(kept) & {names["succeeded"], names["succeeded later"]}) == 1
    gone = ({names["succeeded"], names["succeeded later"]} - set(kept)).pop()

    async def gone_from_the_cluster() -> bool:
        return kube.get("ConfigMap", NAMESPACE, gone) is None and not kube.list(
            "Job", NAMESPACE, f"radix-batch-name={gone}"
        )

    await wait_until(gone_from_the_cluster)
    # Batches do not count against single jobs.
    assert [j["name"] for j in await (await client.get("/api/v1/jobs")).json()] == [single]
